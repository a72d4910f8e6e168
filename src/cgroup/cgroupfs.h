// The cgroupfs driver: crib writes the cgroup file system itself, on v1 (one directory per
// mounted hierarchy) and on v2 (one directory in the unified tree). It creates a cgroup,
// applies resource limits, moves processes in and removes the cgroup; it decides nothing
// about where pods or containers go (the pod and container rooms pass the paths).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cgroup/layout.h"

namespace crib::cgroup {

// Limits in CRI's units (LinuxContainerResources); zero or empty leaves a limit unset.
struct Resources {
  int64_t cpu_shares = 0;
  int64_t cpu_quota = 0;   // microseconds per period
  int64_t cpu_period = 0;  // microseconds
  int64_t memory_limit = 0;
  std::string cpuset_cpus;
  std::string cpuset_mems;
};

// cpu.weight (v2, 1..10000) for v1 cpu.shares (2..262144), as runc converts it.
uint64_t SharesToWeight(uint64_t shares);

// One cgroup at `path` (absolute within the cgroup tree, e.g. /crib/<pod id>).
class Cgroup {
 public:
  // Names the cgroup without touching the file system (for Remove after a restart).
  Cgroup(const Layout& layout, std::string path);

  const std::string& path() const { return path_; }

  // The directories of this cgroup: one per v1 hierarchy, or the one v2 directory.
  std::vector<std::string> Dirs() const;

  // Creates the cgroup and its missing parents in every hierarchy; an existing one is reused.
  // On v1, new cpuset levels inherit their parent's cpus and mems (the kernel leaves them empty,
  // which refuses every task); on v2 the usable controllers are enabled down to the parent.
  absl::Status Create();
  absl::Status Apply(const Resources& resources);
  absl::Status AddProcess(pid_t pid);
  // The cgroup.procs files a process is written into to join.
  std::vector<std::string> ProcsFiles() const;
  // Signals every process of the cgroup (all hierarchies).
  void KillAll(int signal) const;
  // Removes the cgroup (not its parents). OK when it does not exist; retries briefly while the
  // kernel still counts an exiting task.
  absl::Status Remove();
  // Whether the directory exists in any hierarchy.
  bool Exists() const;

 private:
  std::string Dir(const std::string& hierarchy) const;
  absl::Status Write(const std::string& hierarchy, const std::string& file,
                     const std::string& value);

  Layout layout_;
  std::string path_;
  bool v2_ = false;
  // v1: hierarchy mount directories (distinct mounts among the usable controllers); v2: the
  // unified mount.
  std::vector<std::string> hierarchies_;
};

}  // namespace crib::cgroup
