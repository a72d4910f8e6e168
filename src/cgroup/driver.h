// The cgroup driver: who makes, limits and removes the cgroups of pods and containers. The pod
// and container rooms ask the driver and never which driver it is.
//
// - cgroupfs (driver.cc): crib makes the directories itself, below kubelet's parent path or
//   crib's own /crib; a process joins its cgroup by writing its pid to cgroup.procs before it
//   runs anything of its own.
// - systemd (systemd_driver.cc): systemd makes them as units (a pod's slice, a scope per
//   process) at crib's request; crib hands each process to systemd, which starts its scope with
//   it, and writes afterwards only what unit properties cannot say.
//
// Paths are absolute within the cgroup tree ("/crib/<pod id>", "/kubepods.slice/.../crib-<id>
// .scope"), the same in every hierarchy.
#pragma once

#include <sys/types.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "cgroup/cgroup_files.h"
#include "cgroup/layout.h"
#include "cgroup/resources.h"

namespace crib::cgroup {

// The cgroup parent of pods that name none, with the cgroupfs driver and no cgroup_parent set.
inline constexpr char kCribCgroupParent[] = "/crib";

class Driver {
 public:
  virtual ~Driver() = default;

  // "cgroupfs" or "systemd", for messages.
  virtual absl::string_view Name() const = 0;

  // The cgroup of pod `pod_id` below `parent` (kubelet's cgroup_parent; "" for crib's own).
  // InvalidArgument naming the parent when it is not in this driver's form.
  virtual absl::StatusOr<std::string> PodPath(absl::string_view parent,
                                              absl::string_view pod_id) const = 0;
  // The cgroup crib-pause runs in (it may be the pod's own).
  virtual std::string PausePath(absl::string_view pod_path, absl::string_view pod_id) const = 0;
  // A container's cgroup, below its pod's.
  virtual std::string ContainerPath(absl::string_view pod_path, absl::string_view id) const = 0;

  // Makes the pod's cgroup with `resources` (a controller the machine lacks is left alone:
  // kubelet limits its own parent too), and crib-pause's when it is a cgroup of its own that
  // crib-pause joins by itself. RemovePod is the undo.
  virtual absl::Status CreatePod(const std::string& pod_path, const std::string& pause_path,
                                 const Resources& resources) = 0;
  // Kills what is left in the pod's and crib-pause's cgroups and removes them; OK when they
  // are gone already.
  virtual absl::Status RemovePod(const std::string& pod_path, const std::string& pause_path) = 0;

  // The files a new single-threaded process writes "0" into to join the cgroup at `path`
  // before it runs anything (cgroupfs; CgroupFiles::SelfJoinFiles), or none when the driver
  // places it (Places).
  virtual std::vector<std::string> JoinFiles(const std::string& path) const = 0;
  // Whether processes are handed to Place instead of joining by themselves.
  virtual bool Places() const = 0;
  // Makes the cgroup at `path` ahead of a process that will join it by itself (cgroupfs: its
  // directories, without limits: the process's creator writes them and finds the directories
  // made), so that the making overlaps with other work. Nothing when the driver places
  // processes. Remove is the undo.
  virtual absl::Status Prepare(const std::string& path) = 0;
  // Puts the process `pid`, which waits for it, into the cgroup at `path` with `resources`
  // (systemd: the scope is started with it). Remove is the undo.
  virtual absl::Status Place(const std::string& path, pid_t pid, const Resources& resources) = 0;

  // New limits for the cgroup at `path` (a pod's or a container's).
  virtual absl::Status Update(const std::string& path, const Resources& resources,
                              Missing missing) = 0;
  // Kills what is left in the cgroup at `path` and removes it; OK when it is gone already.
  virtual absl::Status Remove(const std::string& path) = 0;

  // Start-up recovery: removes the pod cgroups (and units) this cribd made whose pod or
  // container id is not in `keep`. Returns how many it removed.
  virtual absl::StatusOr<int> RemoveOrphans(const std::set<std::string>& keep) = 0;
};

// The cgroupfs driver on `layout`; pods that name no parent go below `default_parent` (an
// absolute path; "" for kCribCgroupParent).
std::unique_ptr<Driver> MakeCgroupfsDriver(const Layout& layout,
                                           const std::string& default_parent = "");
// The systemd driver on `layout`; pods that name no parent go below `default_parent` (a slice;
// "" for crib.slice). Its units' descriptions name `owner` (cribd's state directory), so that
// the units of another cribd on the same systemd are told apart.
std::unique_ptr<Driver> MakeSystemdDriver(const Layout& layout, const std::string& owner,
                                          const std::string& default_parent = "");
// The one or the other; InvalidArgument when `default_parent` is not in the driver's form.
absl::StatusOr<std::unique_ptr<Driver>> MakeDriver(bool systemd, const Layout& layout,
                                                   const std::string& owner,
                                                   const std::string& default_parent);

}  // namespace crib::cgroup
