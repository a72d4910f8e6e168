// One cgroup for cribd: CgroupFiles (the one cgroup code cribd and crib-monitor share) with
// cribd's statuses. It creates the cgroup, applies limits, moves processes in, kills and
// removes; it decides nothing about where cgroups go (that is the driver's, driver.h).
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "cgroup/cgroup_files.h"
#include "cgroup/layout.h"

namespace crib::cgroup {

// One cgroup at `path` (absolute within the cgroup tree, e.g. /crib/<pod id>).
class Cgroup {
 public:
  // Names the cgroup in the layout's hierarchies without touching the file system (for Remove
  // after a restart).
  Cgroup(const Layout& layout, std::string path);

  const std::string& path() const { return path_; }

  // The directories of this cgroup: one per v1 hierarchy, or the one v2 directory.
  std::vector<std::string> Dirs() const;

  // Creates the cgroup and its missing parents in every hierarchy; an existing one is reused.
  // On v1, new cpuset levels inherit their parent's cpus and mems (the kernel leaves them empty,
  // which refuses every task); on v2 the usable controllers are enabled down to the parent.
  absl::Status Create();
  // Writes `resources` to the cgroup's files; `missing` says what a limit whose controller the
  // machine lacks does.
  absl::Status Apply(const Resources& resources, Missing missing);
  absl::Status AddProcess(pid_t pid);
  // The files a single-threaded process writes "0" into to join (CgroupFiles::SelfJoinFiles).
  std::vector<std::string> SelfJoinFiles() const;
  // Kills what is left in the cgroup and removes it (not its parents). OK when it does not
  // exist; retries briefly while the kernel still counts an exiting task.
  absl::Status Remove();
  // Whether the directory exists in any hierarchy.
  bool Exists() const;

 private:
  absl::Status Check(absl::string_view what) const;

  std::string path_;
  CgroupFiles files_;
  std::string init_error_;  // why the hierarchies could not be found, if they could not
};

}  // namespace crib::cgroup
