#include "pod/pause_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/errors.h"
#include "common/files.h"
#include "common/process.h"
#include "common/spawn.h"
#include "common/status_macros.h"
#include "common/unique_fd.h"
#include "pod/pause/protocol.h"

namespace crib::pod {
namespace {

constexpr int kReportTimeoutMs = 10000;

std::string DescribeWait(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exited with status ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return absl::StrCat("was killed by signal ", WTERMSIG(status));
  return "stopped";
}

UniqueFd PidFd(pid_t pid) { return UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0))); }

// Waits until the process behind `pidfd` has exited, for at most `timeout`.
bool WaitExit(const UniqueFd& pidfd, absl::Duration timeout) {
  struct pollfd pfd = {pidfd.get(), POLLIN, 0};
  const int ms = static_cast<int>(absl::ToInt64Milliseconds(timeout));
  int r;
  do {
    r = ::poll(&pfd, 1, ms);
  } while (r < 0 && errno == EINTR);
  return r > 0;
}

}  // namespace

PendingPause::PendingPause(PendingPause&& other) noexcept
    : pid_(std::exchange(other.pid_, 0)), report_fd_(std::exchange(other.report_fd_, -1)) {}

PendingPause& PendingPause::operator=(PendingPause&& other) noexcept {
  if (this != &other) {
    PendingPause gone(std::move(*this));
    pid_ = std::exchange(other.pid_, 0);
    report_fd_ = std::exchange(other.report_fd_, -1);
  }
  return *this;
}

PendingPause::~PendingPause() {
  if (pid_ <= 0) return;
  // Its report names the pause process it forked, if it got that far.
  absl::StatusOr<PauseProcess> process = AwaitPause(*this);
  if (process.ok()) (void)StopPause(*process, absl::ZeroDuration());
}

absl::StatusOr<PendingPause> LaunchPause(const std::string& executable,
                                         const PauseOptions& options) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe for crib-pause's report");
  UniqueFd read_end(fds[0]);
  UniqueFd write_end(fds[1]);

  std::vector<std::string> args = {executable};
  if (!options.netns_path.empty()) args.insert(args.end(), {"--netns", options.netns_path});
  if (!options.ipc_ns_path.empty()) args.insert(args.end(), {"--ipcns", options.ipc_ns_path});
  if (!options.uts_ns_path.empty()) args.insert(args.end(), {"--utsns", options.uts_ns_path});
  if (!options.user_ns_path.empty()) {
    args.insert(args.end(), {"--userns", options.user_ns_path});
  }
  if (options.new_pid) args.push_back("--pid");
  if (!options.pod_dir.empty()) args.insert(args.end(), {"--pod", options.pod_dir});
  for (const std::string& p : options.cgroup_join) args.insert(args.end(), {"--cgroup-join", p});
  absl::StatusOr<pid_t> spawned = Spawn({.path = executable,
                                         .args = std::move(args),
                                         .fds = {{CRIB_PAUSE_REPORT_FD, write_end.get()}}});
  if (!spawned.ok()) return spawned.status();
  PendingPause pending;
  pending.pid_ = *spawned;
  pending.report_fd_ = read_end.Release();
  return pending;
}

absl::StatusOr<PauseProcess> AwaitPause(PendingPause& pending) {
  if (pending.pid_ <= 0) return absl::FailedPreconditionError("no crib-pause was started");
  const pid_t pid = std::exchange(pending.pid_, 0);
  UniqueFd read_end(std::exchange(pending.report_fd_, -1));
  crib_pause_report report;
  std::memset(&report, 0, sizeof(report));
  size_t got = 0;
  absl::Status failure;
  while (got < sizeof(report)) {
    struct pollfd pfd = {read_end.get(), POLLIN, 0};
    const int r = ::poll(&pfd, 1, kReportTimeoutMs);
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) {
      ::kill(pid, SIGKILL);
      failure = absl::DeadlineExceededError("crib-pause did not report within 10s");
      break;
    }
    const ssize_t n =
        ::read(read_end.get(), reinterpret_cast<char*>(&report) + got, sizeof(report) - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!failure.ok()) return failure;
  if (got < sizeof(report)) {
    return absl::InternalError(
        absl::StrCat("crib-pause ", DescribeWait(status), " before reporting"));
  }
  if (report.code != 0) {
    report.message[sizeof(report.message) - 1] = '\0';
    const std::string message = absl::StrCat("crib-pause: ", report.message);
    if (report.code == EINVAL) return absl::InvalidArgumentError(message);
    if (report.code == ENOENT) return absl::NotFoundError(message);
    return absl::InternalError(message);
  }
  PauseProcess process;
  process.pid = report.pid;
  absl::StatusOr<uint64_t> start = ProcessStartTime(process.pid);
  if (!start.ok()) {
    return absl::InternalError(absl::StrCat("crib-pause reported ready as pid ", process.pid,
                                            " but that process is gone"));
  }
  process.start_time = *start;
  return process;
}

absl::StatusOr<PauseProcess> StartPause(const std::string& executable,
                                        const PauseOptions& options) {
  ASSIGN_OR_RETURN(PendingPause pending, LaunchPause(executable, options));
  return AwaitPause(pending);
}

bool IsAlive(const PauseProcess& process) {
  return IsProcessAlive(process.pid, process.start_time);
}

absl::Status StopPause(const PauseProcess& process, absl::Duration grace) {
  if (process.pid <= 0) return absl::OkStatus();
  UniqueFd pidfd = PidFd(process.pid);
  if (!pidfd) {
    if (errno == ESRCH) return absl::OkStatus();
    return ErrnoStatus(errno, absl::StrCat("pidfd_open ", process.pid));
  }
  // Checked after pidfd_open, so the signals below cannot reach a process that reused the pid.
  if (!IsAlive(process)) return absl::OkStatus();
  for (int sig : {SIGTERM, SIGKILL}) {
    if (::syscall(SYS_pidfd_send_signal, pidfd.get(), sig, nullptr, 0) != 0) {
      if (errno == ESRCH) return absl::OkStatus();
      return ErrnoStatus(errno, absl::StrCat("signal pause process ", process.pid));
    }
    if (WaitExit(pidfd, sig == SIGTERM ? grace : absl::Seconds(10))) return absl::OkStatus();
  }
  return absl::DeadlineExceededError(
      absl::StrCat("pause process ", process.pid, " did not exit after SIGKILL"));
}

}  // namespace crib::pod
