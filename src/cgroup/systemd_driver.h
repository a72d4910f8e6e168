// The systemd cgroup driver: systemd makes and removes the cgroups, crib asks it for units.
//
// A pod gets a transient slice of its own below the parent kubelet names (or below crib.slice):
// kubelet's "kubepods-burstable-pod<uid>.slice" holds "kubepods-burstable-pod<uid>-crib_<pod
// id>.slice". crib-pause runs in the transient scope crib-<pod id>.scope in that slice, and each
// container in crib-<container id>.scope (Delegate=yes), so systemd knows every process crib
// starts. The limits go to systemd as unit properties (what systemd would otherwise reset when
// it reloads); what systemd cannot express (hugetlb, v1 swap, v2 unified keys, device rules it
// has no form for) is written to the unit's cgroup files afterwards, as runc does, by the same
// cgroupfs code the cgroupfs driver uses.
//
// The cgroup path of such a unit (what crib records, reads stats from and writes files into) is
// where systemd puts it: the slice's expansion plus the unit's name, so a path whose last part
// ends in .slice or .scope tells crib that systemd owns it.
#pragma once

#include <sys/types.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "cgroup/cgroupfs.h"
#include "cgroup/resources.h"
#include "cgroup/systemd_bus.h"

namespace crib::cgroup {

// The slice crib makes for pod `pod_id` below `parent` (a slice's name or cgroup path, as
// SliceOfParent reads it, or "" for crib's own).
absl::StatusOr<std::string> PodSliceName(absl::string_view parent, absl::string_view pod_id);
// The scope of a container, or of a pod's crib-pause (named by the pod's id).
std::string ScopeName(absl::string_view id);
// Whether systemd owns the cgroup at `path` (its last part is a slice or a scope).
bool IsSystemdPath(absl::string_view path);
// The unit whose cgroup is `path` (its last part).
std::string UnitOfPath(absl::string_view path);
// The id in a unit name crib made (crib-<id>.scope, crib-<id>.slice, <...>-crib_<id>.slice);
// "" for any other name.
std::string IdOfUnit(absl::string_view unit);

// The unit properties that carry `resources` (v2: `unified`; v1 otherwise). Only what systemd
// applies on this hierarchy: the rest is for the cgroup files.
std::vector<UnitProperty> ResourceProperties(const Resources& resources, bool unified);
// A cpuset list ("0-3,8") as systemd's bit mask (AllowedCPUs); InvalidArgument if malformed.
absl::StatusOr<Bytes> CpuMask(absl::string_view list);

// SIGKILLs every process in the cgroup tree at `group` (a unit's ControlGroup) in systemd's
// hierarchy, until none is left (for a second at most).
void KillTree(const std::string& group);

// One connection to systemd, shared by the pod and container services; reconnects when the
// bus went away (dbus or systemd restarted).
class Systemd {
 public:
  // Names this cribd (its state directory) in the units' descriptions, so that the units of
  // another cribd on the same systemd are told apart.
  void SetOwner(std::string owner);
  // The slice `name` with `properties` (its parent follows from its name).
  absl::Status StartSlice(const std::string& name, std::vector<UnitProperty> properties);
  // The scope `name` in `slice`, holding `pid`.
  absl::Status StartScope(const std::string& name, const std::string& slice, pid_t pid,
                          std::vector<UnitProperty> properties);
  // Changes a running unit's properties (at run time).
  absl::Status Set(const std::string& name, const std::vector<UnitProperty>& properties);
  // Stops the unit (killing what is left in it) and forgets it if it failed; OK when there is
  // no such unit.
  absl::Status Stop(const std::string& name);
  // The loaded units of this cribd whose names match `pattern`.
  absl::StatusOr<std::vector<std::string>> ListOwn(const std::string& pattern);
  // systemd's major version (252 for "252.38-1~deb12u1"), asked once and kept.
  absl::StatusOr<int> MajorVersion();

 private:
  // Runs `call` on the bus, connecting first if need be, and once more on a new connection
  // when the old one had closed.
  template <typename F>
  auto WithBus(F call) -> decltype(call(std::declval<SystemdBus&>()));

  std::string Description(absl::string_view what, absl::string_view name) const;

  std::mutex mu_;
  std::shared_ptr<SystemdBus> bus_;
  std::string owner_;
  int major_version_ = 0;  // 0 until asked
};

// The process-wide connection (made on first use).
Systemd& SharedSystemd();

}  // namespace crib::cgroup
