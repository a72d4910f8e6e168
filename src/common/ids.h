// Object ids: 64 hex digits from the kernel's random source, as containerd and CRI-O make them
// (crictl shows their first 13).
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"

namespace crib {

absl::StatusOr<std::string> NewObjectId();

// Keeps the record whose `id` is `id`, else the one record whose id starts with it (as crictl
// expects of a short id); none when the prefix is ambiguous or matches nothing.
template <typename Record>
void KeepIdOrUniquePrefix(std::vector<Record>* records, absl::string_view id) {
  std::vector<Record> matches;
  for (Record& r : *records) {
    if (r.id == id) {
      matches = {std::move(r)};
      break;
    }
    if (absl::StartsWith(r.id, id)) matches.push_back(std::move(r));
  }
  if (matches.size() > 1) matches.clear();
  *records = std::move(matches);
}

// Whether `labels` holds every key of `selector` with its value (an empty selector matches).
inline bool LabelsMatch(const std::map<std::string, std::string>& labels,
                        const std::map<std::string, std::string>& selector) {
  for (const auto& [key, value] : selector) {
    auto it = labels.find(key);
    if (it == labels.end() || it->second != value) return false;
  }
  return true;
}

}  // namespace crib
