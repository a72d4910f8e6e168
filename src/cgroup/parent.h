// The cgroup parent a pod sandbox names (LinuxPodSandboxConfig.cgroup_parent), read by the
// cgroup driver's rules. kubelet with the cgroupfs driver sends a path in the cgroup tree
// ("/kubepods/burstable/pod<uid>"); with the systemd driver the cgroup path of a slice
// ("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice": systemd places
// a slice under the slices its dash-separated prefixes name), which others send as the bare
// slice name; containerd also takes "<slice>:<prefix>:<name>" for a
// container's own cgroup. A parent in the other driver's form is refused: taken literally it
// would make cgroups that neither kubelet nor systemd knows.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace crib::cgroup {

// The cgroup path of a systemd slice, as systemd places it: "a-b-c.slice" is
// /a.slice/a-b.slice/a-b-c.slice, "-.slice" (the root slice) is /. InvalidArgument for a name
// systemd would not accept as a slice.
absl::StatusOr<std::string> ExpandSlice(absl::string_view slice);

// containerd's systemd form of a cgroup path, "<slice>:<prefix>:<name>": the unit is
// <prefix>-<name>.scope in <slice> (an empty slice is system.slice).
struct SystemdPath {
  std::string slice;
  std::string prefix;
  std::string name;
};
absl::StatusOr<SystemdPath> ParseSystemdPath(absl::string_view path);

// The slice a pod's `parent` names under the systemd driver: kubelet sends the slice's cgroup
// path ("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice", its
// cgroup manager's Name), a user may send the bare name ("kubepods-burstable-pod<uid>.slice");
// "" stays "" (crib's own). InvalidArgument for a cgroupfs path or a path that is not where
// systemd places its last slice.
absl::StatusOr<std::string> SliceOfParent(absl::string_view parent);

// Whether a pod's `parent` fits the driver (`systemd`: a slice name; cgroupfs: an absolute path
// without "." or ".." components). Empty is always fine: crib's own parent. InvalidArgument
// naming the parent and the driver otherwise.
absl::Status CheckCgroupParent(absl::string_view parent, bool systemd);

}  // namespace crib::cgroup
