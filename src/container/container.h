// Containers as the container room sees them: what CreateContainer asks for and what
// ContainerStatus and ListContainers report, in plain values. The server translates CRI
// messages to and from these; nothing here knows protobuf or gRPC (the CRI config travels as
// opaque serialized bytes, kept for the verbose status).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "pod/sandbox.h"

namespace crib::container {

// CRI's MountPropagation values.
enum class Propagation { kPrivate = 0, kHostToContainer = 1, kBidirectional = 2 };

struct MountSpec {
  std::string container_path;
  std::string host_path;  // as requested; the mount uses its resolved form
  bool readonly = false;
  bool recursive_readonly = false;
  bool selinux_relabel = false;
  Propagation propagation = Propagation::kPrivate;
  std::string image;  // an image volume: the image's root file system, read-only
  std::string image_sub_path;
  // CRI's uidMappings and gidMappings: an id-mapped mount. Only the mappings of the pod's user
  // namespace are accepted; without them a CRI mount is a plain bind mount.
  std::vector<pod::IdMapping> uid_mappings;
  std::vector<pod::IdMapping> gid_mappings;
  bool operator==(const MountSpec&) const = default;
};

struct DeviceSpec {
  std::string container_path;
  std::string host_path;
  std::string permissions;  // "rwm" or a subset; empty means "rwm"
};

struct HugepageLimit {
  std::string page_size;  // "2MB", "1GB"
  uint64_t limit = 0;
  bool operator==(const HugepageLimit&) const = default;
};

// CRI's LinuxContainerResources; zero or empty leaves a limit unset.
struct Resources {
  int64_t cpu_period = 0;
  int64_t cpu_quota = 0;
  int64_t cpu_shares = 0;
  int64_t memory_limit = 0;
  int64_t oom_score_adj = 0;
  std::string cpuset_cpus;
  std::string cpuset_mems;
  std::vector<HugepageLimit> hugepage_limits;
  std::map<std::string, std::string> unified;
  int64_t memory_swap_limit = 0;
  bool operator==(const Resources&) const = default;
};

// CRI's SecurityProfile.
struct SecurityProfile {
  enum class Type { kRuntimeDefault = 0, kUnconfined = 1, kLocalhost = 2 };
  Type type = Type::kRuntimeDefault;
  std::string localhost_ref;
};

enum class SupplementalGroupsPolicy { kMerge = 0, kStrict = 1 };

struct SecurityContext {
  std::vector<std::string> add_capabilities;
  std::vector<std::string> drop_capabilities;
  std::vector<std::string> add_ambient_capabilities;
  bool privileged = false;
  pod::NamespaceMode pid_mode = pod::NamespaceMode::kContainer;
  std::string target_id;  // the container whose pid namespace TARGET joins
  // The container's userns_options, when it has them (kubelet sends the pod's): they must be
  // the pod's.
  std::optional<pod::NamespaceOptions> user_namespace;
  std::optional<int64_t> run_as_user;
  std::optional<int64_t> run_as_group;
  std::string run_as_username;
  bool readonly_rootfs = false;
  std::vector<int64_t> supplemental_groups;
  SupplementalGroupsPolicy supplemental_groups_policy = SupplementalGroupsPolicy::kMerge;
  bool no_new_privs = false;
  // Empty: the defaults (containerd's lists); privileged containers get none.
  std::vector<std::string> masked_paths;
  std::vector<std::string> readonly_paths;
  std::optional<SecurityProfile> seccomp;  // unset: the deprecated path below decides
  std::string seccomp_profile_path;        // "", "unconfined", "runtime/default", "localhost/..."
  std::optional<SecurityProfile> apparmor;
  std::string apparmor_profile;
};

struct ContainerSpec {
  std::string pod_id;
  std::string name;
  uint32_t attempt = 0;
  std::string image;  // ImageSpec.image: an id, a tag or a digest reference
  std::vector<std::string> command;
  std::vector<std::string> args;
  std::string working_dir;
  std::vector<std::pair<std::string, std::string>> envs;
  std::vector<MountSpec> mounts;
  std::vector<DeviceSpec> devices;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  std::string log_path;  // relative to the pod's log directory
  bool stdin = false;
  bool stdin_once = false;
  bool tty = false;
  Resources resources;
  SecurityContext security;
  int stop_signal = 0;       // 0: the image's StopSignal, else SIGTERM
  std::string config_bytes;  // the CRI ContainerConfig, serialized, kept for Status
};

// CRI's ContainerState values.
enum class ContainerState { kCreated = 0, kRunning = 1, kExited = 2, kUnknown = 3 };

struct UserIds {
  int64_t uid = 0;
  int64_t gid = 0;
  std::vector<int64_t> supplemental_groups;
  bool operator==(const UserIds&) const = default;
};

struct Container {
  std::string id;
  std::string pod_id;
  std::string name;
  uint32_t attempt = 0;
  ContainerState state = ContainerState::kUnknown;
  int64_t created_at_ns = 0;
  int64_t started_at_ns = 0;
  int64_t finished_at_ns = 0;
  int32_t exit_code = 0;
  std::string reason;     // Completed, Error, OOMKilled, StartError, Unknown
  std::string message;    // the termination message
  std::string image;      // a repo tag of the image, else what the request named
  std::string image_ref;  // a repo digest, else the image id
  std::string image_id;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  std::vector<MountSpec> mounts;
  std::string log_path;  // absolute; empty when the pod has no log directory
  Resources resources;
  UserIds user;
  int stop_signal = 0;  // the signal StopContainer sends first
  pid_t pid = 0;        // the container's init on the host, 0 when it does not run
  std::string bundle;   // <state_dir>/containers/<id>
  std::string config_bytes;
  std::string spec_json;  // only from Get(verbose): the OCI spec given to the launcher
};

struct ContainerFilter {
  std::string id;  // exact, or a unique prefix
  std::string pod_id;
  std::optional<ContainerState> state;
  std::map<std::string, std::string> labels;  // every one must match
};

struct ExecSyncResult {
  int exit_code = 0;
  std::string stdout_data;
  std::string stderr_data;
};

}  // namespace crib::container
