// A pod's user namespace (CRI userns_options mode POD, Kubernetes' hostUsers: false): the
// mappings' rules, the namespace made with them and pinned like the others, together with the
// network, ipc and uts namespaces it owns, and what the kernel must offer for it.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/unique_fd.h"
#include "pod/sandbox.h"

namespace crib::pod {

// The user namespace options of a pod: mode NODE, or mode POD with mappings that the kernel
// takes and that give the pod a root (container id 0 mapped), uids and gids of the same shape
// (the same container ranges). Anything else is InvalidArgument naming the field.
absl::Status ValidateUserNamespace(const NamespaceOptions& ns);

// The text of /proc/<pid>/uid_map for `mappings`: "container host length" lines.
std::string MapText(const std::vector<IdMapping>& mappings);

// The host id of `container_id`, or -1 when it is not mapped.
int64_t HostIdOf(const std::vector<IdMapping>& mappings, uint32_t container_id);

struct UsernsPins {
  std::string user_path;  // where the new user namespace is pinned
  std::string net_path;   // ... and the network, ipc and uts namespaces it owns
  std::string ipc_path;
  std::string uts_path;
  std::vector<IdMapping> uid_mappings;
  std::vector<IdMapping> gid_mappings;
  std::string hostname;              // set in the new uts namespace
  std::vector<std::string> sysctls;  // key=value, written inside the namespaces
};

// Makes the user namespace with its mappings and, inside it, the network, ipc and uts
// namespaces (so that the pod's root may configure them, mount sysfs and mqueue), sets the
// hostname and sysctls there, and pins all four. A short-lived child process does it (a user
// namespace cannot be entered by a thread of a multi-threaded process). All or nothing: on an
// error no pin is left. A sysctl the kernel does not know, or a value it refuses, is
// InvalidArgument naming the sysctl.
absl::Status PinUserNamespace(const UsernsPins& pins);

// A detached copy (open_tree) of the mount at `path` under `dir_fd` (an empty path: `dir_fd`
// itself), id-mapped with the mappings of the user namespace `userns_fd`; errors name `what`.
// The one way cribd makes id-mapped mounts (crib-monitor, without absl, has its own).
absl::StatusOr<UniqueFd> IdmappedCopy(int dir_fd, const std::string& path, int userns_fd,
                                      const std::string& what);

// Whether pods may have user namespaces here: the kernel makes id-mapped mounts of the file
// system of `root_dir` (the image layers and the pods' files) and of tmpfs (/dev/shm). Probed
// once; `reason` says what is missing when not.
struct UsernsSupport {
  bool supported = false;
  std::string reason;
};
const UsernsSupport& UserNamespaceSupport(const std::string& root_dir);

}  // namespace crib::pod
