// Object ids: 64 hex digits from the kernel's random source, as containerd and CRI-O make them
// (crictl shows their first 13).
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/errors.h"

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

// The full id of the object `id_or_prefix` names, as crictl expects of a short id: an exact id,
// else the one id that starts with it. `get` reads one record by id (NotFound when absent),
// `list` all records; `kind` names the object in errors ("container", "pod sandbox").
// InvalidArgument for an empty or ambiguous prefix, CriNotFound when nothing matches.
template <typename Get, typename List>
absl::StatusOr<std::string> ResolveObjectId(absl::string_view kind, const std::string& id_or_prefix,
                                            Get get, List list) {
  if (id_or_prefix.empty()) return absl::InvalidArgumentError(absl::StrCat(kind, " id is empty"));
  auto exact = get(id_or_prefix);
  if (exact.ok()) return exact->id;
  if (!absl::IsNotFound(exact.status())) return exact.status();
  auto all = list();
  if (!all.ok()) return all.status();
  std::vector<std::string> matches;
  for (const auto& record : *all) {
    if (absl::StartsWith(record.id, id_or_prefix)) matches.push_back(record.id);
  }
  if (matches.empty()) return CriNotFound(absl::StrCat(kind, " ", id_or_prefix, " not found"));
  if (matches.size() > 1) {
    return absl::InvalidArgumentError(absl::StrCat(kind, " id prefix ", id_or_prefix,
                                                   " is ambiguous (", matches.size(), " ids)"));
  }
  return matches[0];
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
