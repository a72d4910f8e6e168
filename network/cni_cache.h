// Each pod's CNI attachment on disk, one JSON file per pod in the cache directory
// (<root_dir>/cni/results): the network configuration list as ADD used it, the attachment's
// parameters (netns, interface, CNI_ARGS, capability arguments), the final ADD result once
// there is one, and how many DELs have failed. It is written before the first ADD and removed
// after a successful DEL, so a DEL after a crash, a cribd restart or a change of the conf
// directory runs with what ADD had, as the CNI specification asks. Files only; runs nothing.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "network/cni_config.h"
#include "nlohmann/json.hpp"

namespace crib::network::cni {

struct Attachment {
  std::string pod_id;  // CNI_CONTAINERID
  NetworkConfigList network;
  std::string netns;
  std::string ifname;
  std::string cni_args;
  nlohmann::json capability_args = nlohmann::json::object();
  nlohmann::json result;  // null until ADD has succeeded
  int del_failures = 0;
};

class AttachmentCache {
 public:
  explicit AttachmentCache(std::string dir) : dir_(std::move(dir)) {}

  const std::string& dir() const { return dir_; }
  std::string PathOf(absl::string_view pod_id) const;

  // Writes the attachment atomically (creating the directory, mode 0700, if need be).
  absl::Status Save(const Attachment& attachment) const;
  // NotFound if the pod has no attachment; InvalidArgument naming the file if it is unreadable.
  absl::StatusOr<Attachment> Load(absl::string_view pod_id) const;
  // OK if there is none.
  absl::Status Remove(absl::string_view pod_id) const;
  // The pods with an attachment; empty when the directory does not exist.
  std::vector<std::string> PodIds() const;

 private:
  const std::string dir_;
};

}  // namespace crib::network::cni
