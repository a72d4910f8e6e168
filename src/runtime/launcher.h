// cribd's side of the launcher: turns a bundle (<state>/containers/<id>/ with config.json)
// into a parked container under its own crib-monitor, and drives it through the monitor's
// socket (start, kill, log reopen, resize), reads its exit file, runs exec'd processes in it
// and removes what it left. cribd is multi-threaded: this code only posix_spawns.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "runtime/spec.h"

namespace crib::runtime {

struct CreatedContainer {
  int monitor_pid = 0;
  int init_pid = 0;
  std::vector<std::string> warnings;  // e.g. an oom_score_adj the kernel refused
};

struct ExitInfo {
  int exit_code = 0;  // 128 + signal when killed by a signal
  int signal = 0;
  bool oom_killed = false;
  absl::Time started_at = absl::UnixEpoch();  // epoch when it never started
  absl::Time finished_at = absl::UnixEpoch();
};

enum class ContainerState { kCreated, kRunning, kExited };

struct ContainerStatus {
  ContainerState state = ContainerState::kExited;
  int init_pid = 0;
  std::optional<ExitInfo> exit;  // set when exited
};

struct ExecResult {
  int exit_code = 0;  // 128 + signal when killed by a signal
  std::string stdout_data;
  std::string stderr_data;
};

struct ExecOptions {
  std::vector<std::string> args;                  // empty: the spec's args
  absl::Duration timeout = absl::ZeroDuration();  // zero: none
  size_t max_output = 16 << 20;                   // per stream; the rest is dropped
};

// crib-monitor beside the running executable (cribd and crib-monitor share a directory in
// the build tree and when installed).
std::string MonitorPathBesideSelf();

class Launcher {
 public:
  // `monitor_path`: the crib-monitor executable.
  explicit Launcher(std::string monitor_path) : monitor_path_(std::move(monitor_path)) {}

  // Parses <bundle>/config.json, writes its digest for the monitor, spawns the monitor and
  // returns once the container's init is parked before its exec (or its set-up failed, in
  // which case nothing of it is left).
  absl::StatusOr<CreatedContainer> Create(absl::string_view id, const std::string& bundle,
                                          const std::string& log_path) const;

  // Releases the parked init; returns once the exec succeeded or failed.
  absl::Status Start(const std::string& bundle) const;
  // Signals the init; OK when the container has already exited.
  absl::Status Kill(const std::string& bundle, int signal) const;
  absl::Status ReopenLog(const std::string& bundle) const;
  // Signals every process of the container's cgroup: for a container whose monitor is gone.
  absl::Status KillCgroup(const std::string& bundle, int signal) const;
  // Writes `resources` to the live cgroup (UpdateContainerResources).
  absl::Status UpdateResources(const std::string& bundle, const Resources& resources) const;
  absl::Status Resize(const std::string& bundle, int rows, int cols) const;

  absl::StatusOr<ContainerStatus> Status(const std::string& bundle) const;
  // The exit file; NotFound while the container has not exited.
  static absl::StatusOr<ExitInfo> ReadExitFile(const std::string& bundle);
  // Waits until the exit file exists.
  absl::StatusOr<ExitInfo> WaitExit(const std::string& bundle, absl::Duration timeout) const;

  // A new process in the container's namespaces and cgroup with its user, capabilities,
  // no_new_privs and seccomp. A timeout kills it and is DeadlineExceeded.
  absl::StatusOr<ExecResult> Exec(const std::string& bundle, const ExecOptions& options) const;

  // Kills whatever still runs, removes the cgroup and the files the launcher and the
  // monitor wrote in the bundle (config.json and the bundle directory stay). Idempotent.
  absl::Status Remove(const std::string& bundle) const;

 private:
  absl::StatusOr<std::string> Request(const std::string& bundle, absl::string_view request,
                                      absl::Duration timeout) const;

  std::string monitor_path_;
  // Compiled seccomp programs by profile: compiling the default profile takes tens of ms.
  mutable std::mutex seccomp_mu_;
  mutable std::map<std::string, std::string> seccomp_programs_;
};

}  // namespace crib::runtime
