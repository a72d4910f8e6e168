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
  std::vector<std::string> cgroup_join;  // files it writes "0" into before it reports (JoinFiles)
};

struct PauseProcess {
  pid_t pid = 0;
  uint64_t start_time = 0;
};

// A crib-pause started and not heard from yet: RunPodSandbox sets up the pod's network while
// it joins the namespaces and the cgroup. Destroying one that was not awaited kills it and
// whatever it started.
class PendingPause {
 public:
  PendingPause() = default;
  PendingPause(PendingPause&& other) noexcept;
  PendingPause& operator=(PendingPause&& other) noexcept;
  ~PendingPause();

  bool started() const { return pid_ > 0; }

 private:
  friend absl::StatusOr<PendingPause> LaunchPause(const std::string&, const PauseOptions&);
  friend absl::StatusOr<PauseProcess> AwaitPause(PendingPause& pending);
  pid_t pid_ = 0;  // the process cribd spawned, which forks the pause process and exits
  int report_fd_ = -1;
};

// Starts `executable`; it reports on a pipe that AwaitPause reads.
absl::StatusOr<PendingPause> LaunchPause(const std::string& executable,
                                         const PauseOptions& options);

// Waits for the report of `pending` (which is then spent): the pause process once it is
// ready, or the error it reported ("crib-pause: sethostname x: invalid argument").
absl::StatusOr<PauseProcess> AwaitPause(PendingPause& pending);

// LaunchPause, then AwaitPause.
absl::StatusOr<PauseProcess> StartPause(const std::string& executable, const PauseOptions& options);

// True while `process` runs (a zombie or a reused pid counts as gone).
bool IsAlive(const PauseProcess& process);

// SIGTERM, then SIGKILL after `grace`; OK if the process is already gone.
absl::Status StopPause(const PauseProcess& process, absl::Duration grace);

}  // namespace crib::pod
