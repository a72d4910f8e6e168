// The pod room's part of a store::PodRecord: its `data` blob (JSON) and the conversions
// between records and PodSandbox values.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "network/backend.h"
#include "pod/sandbox.h"
#include "store/records.h"

namespace crib::pod {

struct PodData {
  // Set while RunPodSandbox works, and while RemovePodSandbox does: a cribd that restarts
  // finds these and undoes or finishes them.
  bool creating = false;
  bool removing = false;
  std::string hostname;
  std::string log_directory;
  std::string runtime_handler;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  NamespaceOptions namespaces;
  std::vector<network::PortMapping> port_mappings;
  std::string cgroup_path;
  std::string netns_path;  // empty for host-network pods
  std::string ipc_ns_path;  // the pinned ipc namespace; empty: the host's, or crib-pause's
  std::string uts_ns_path;  // the pinned uts namespace; empty: the host's, or crib-pause's
  std::string user_ns_path;  // the pinned user namespace; empty: the host's
  std::string pod_dir;
  pid_t pid = 0;  // crib-pause, 0 for a pod that shares no process namespace
  uint64_t pid_start_time = 0;  // /proc/<pid>/stat field 22, against pid reuse
  std::vector<std::string> ips;
  std::string config_bytes;

  // The pins this pod has (netns, ipc, uts, user; not the empty ones).
  std::vector<std::string> Pins() const {
    std::vector<std::string> pins;
    for (const std::string* pin : {&netns_path, &ipc_ns_path, &uts_ns_path, &user_ns_path}) {
      if (!pin->empty()) pins.push_back(*pin);
    }
    return pins;
  }
};

std::string EncodePodData(const PodData& data);
absl::StatusOr<PodData> DecodePodData(const std::string& id, const std::string& blob);

// The record's values with `data`; state is what the record says (not yet checked against
// the live pause process).
PodSandbox ToPodSandbox(const store::PodRecord& record, const PodData& data);

}  // namespace crib::pod
