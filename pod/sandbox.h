// Pod sandboxes as the pod room sees them: what RunPodSandbox asks for and what Status and
// List report, in plain values. The server translates CRI messages to and from these; nothing
// here knows protobuf or gRPC (the CRI config travels as opaque serialized bytes).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cgroup/resources.h"
#include "network/backend.h"

namespace crib::pod {

// CRI's NamespaceMode values.
enum class NamespaceMode { kPod = 0, kContainer = 1, kNode = 2, kTarget = 3 };

// A range of ids: `length` ids from `container_id` inside a user namespace are the ids from
// `host_id` outside (CRI's IDMapping, a line of /proc/<pid>/uid_map).
struct IdMapping {
  uint32_t container_id = 0;
  uint32_t host_id = 0;
  uint32_t length = 0;
  bool operator==(const IdMapping&) const = default;
};

struct NamespaceOptions {
  NamespaceMode network = NamespaceMode::kPod;
  NamespaceMode pid = NamespaceMode::kContainer;
  NamespaceMode ipc = NamespaceMode::kPod;
  // kPod: a user namespace of the pod's own with these mappings; kNode: the host's.
  NamespaceMode user = NamespaceMode::kNode;
  std::vector<IdMapping> uid_mappings;
  std::vector<IdMapping> gid_mappings;
};

struct DnsConfig {
  std::vector<std::string> servers;
  std::vector<std::string> searches;
  std::vector<std::string> options;
  bool empty() const { return servers.empty() && searches.empty() && options.empty(); }
};

struct PodSandboxSpec {
  std::string name;
  std::string namespace_;
  std::string uid;
  uint32_t attempt = 0;
  std::string hostname;  // empty: the host's
  std::string log_directory;
  std::string runtime_handler;
  DnsConfig dns;
  std::vector<network::PortMapping> port_mappings;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  std::string cgroup_parent;  // empty: crib's own parent
  std::map<std::string, std::string> sysctls;
  NamespaceOptions namespaces;
  cgroup::Resources resources;  // pod resources plus overhead
  std::string config_bytes;     // the CRI PodSandboxConfig, serialized, kept for Status
};

// CRI's PodSandboxState values.
enum class PodState { kReady = 0, kNotReady = 1 };

struct PodSandbox {
  std::string id;
  std::string name;
  std::string namespace_;
  std::string uid;
  uint32_t attempt = 0;
  PodState state = PodState::kNotReady;
  int64_t created_at_ns = 0;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  std::string runtime_handler;
  NamespaceOptions namespaces;
  std::vector<std::string> ips;
  pid_t pid = 0;  // crib-pause, 0 when the pod shares no process namespace
  uint64_t pid_start_time = 0;
  std::string hostname;
  std::string log_directory;
  std::string netns_path;
  // The pinned ipc and uts namespaces; empty for the host's (pods made before pinning have
  // them in crib-pause, /proc/<pid>/ns).
  std::string ipc_ns_path;
  std::string uts_ns_path;
  std::string user_ns_path;  // the pinned user namespace; empty: the host's
  std::string cgroup_path;
  std::string pod_dir;  // hostname, hosts, resolv.conf and shm/ live here
  std::string config_bytes;
};

struct PodFilter {
  std::string id;  // exact, or a unique prefix
  std::optional<PodState> state;
  std::map<std::string, std::string> labels;  // every one must match
};

}  // namespace crib::pod
