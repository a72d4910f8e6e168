// Starting crib-pause, the process of a pod that shares its process namespace, from cribd
// (posix_spawn: cribd is multi-threaded), and knowing whether a recorded pause process still
// lives, across cribd restarts and pid reuse.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace crib::pod {

struct PauseOptions {
  // The pod's pinned namespaces it joins; empty: it stays in the host's.
  std::string netns_path;
  std::string ipc_ns_path;
  std::string uts_ns_path;
  std::string user_ns_path;  // joined last: the pid namespace is then the pod's user's
  bool new_pid = true;  // a pid namespace of which it is pid 1
  std::string pod_dir;  // <state_dir>/pods/<id> on its command line: the pod and its cribd
  std::vector<std::string> cgroup_procs;  // cgroup.procs files it is put into before it reports
};

struct PauseProcess {
  pid_t pid = 0;
  uint64_t start_time = 0;
};

// Starts `executable` and waits for its report: the pause process once it is ready, or the
// error it reported ("crib-pause: sethostname x: invalid argument").
absl::StatusOr<PauseProcess> StartPause(const std::string& executable, const PauseOptions& options);

// True while `process` runs (a zombie or a reused pid counts as gone).
bool IsAlive(const PauseProcess& process);

// SIGTERM, then SIGKILL after `grace`; OK if the process is already gone.
absl::Status StopPause(const PauseProcess& process, absl::Duration grace);

}  // namespace crib::pod
