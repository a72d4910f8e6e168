#include "runtime/launcher.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/errors.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "common/unique_fd.h"
#include "runtime/monitor/cgroups.h"
#include "runtime/monitor/error_text.h"
#include "runtime/monitor/protocol.h"
#include "runtime/monitor/seccomp_filter.h"
#include "runtime/monitor/socket_address.h"
#include "runtime/spec.h"
#include "runtime/spec_json.h"

extern char** environ;

namespace crib::runtime {
namespace {

std::string BundleFile(const std::string& bundle, const char* name) {
  return absl::StrCat(bundle, "/", name);
}

absl::Time FromNanos(int64_t nanos) { return absl::FromUnixNanos(nanos); }

// posix_spawn with `fds` (target fd -> source fd) and a session of its own; the caller's
// threads and fds stay untouched (every other fd of cribd is close-on-exec).
absl::StatusOr<pid_t> Spawn(const std::string& path, const std::vector<std::string>& args,
                            const std::vector<std::pair<int, int>>& fds, bool setsid) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  absl::Cleanup destroy_actions = [&] { posix_spawn_file_actions_destroy(&actions); };
  for (const auto& [target, source] : fds) {
    posix_spawn_file_actions_adddup2(&actions, source, target);
  }
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  absl::Cleanup destroy_attr = [&] { posix_spawnattr_destroy(&attr); };
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if (setsid) flags |= POSIX_SPAWN_SETSID;
  posix_spawnattr_setflags(&attr, flags);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid;
  int err = posix_spawn(&pid, path.c_str(), &actions, &attr, argv.data(), environ);
  if (err != 0) return ErrnoStatus(err, absl::StrCat("spawn ", path));
  return pid;
}

// Reads from `fd` until EOF or a newline, within `timeout`.
absl::StatusOr<std::string> ReadLine(int fd, absl::Duration timeout, absl::string_view what) {
  std::string line;
  absl::Time deadline = absl::Now() + timeout;
  while (line.find('\n') == std::string::npos) {
    int ms = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
    if (ms <= 0) return absl::DeadlineExceededError(absl::StrCat(what, ": no answer in time"));
    struct pollfd p = {fd, POLLIN, 0};
    int n = ::poll(&p, 1, ms);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, absl::StrCat(what, ": poll"));
    if (n == 0) continue;
    char buf[512];
    ssize_t r = ::read(fd, buf, sizeof(buf));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return ErrnoStatus(errno, absl::StrCat(what, ": read"));
    if (r == 0) break;
    line.append(buf, r);
  }
  return line.substr(0, line.find('\n'));
}

absl::Status MakePipe(UniqueFd* r, UniqueFd* w) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe");
  r->Reset(p[0]);
  w->Reset(p[1]);
  return absl::OkStatus();
}

absl::StatusOr<Spec> ReadDigest(const std::string& bundle) {
  ASSIGN_OR_RETURN(std::string text, ReadFile(BundleFile(bundle, kSpecDigestFile)));
  Spec spec;
  std::string error;
  if (!DecodeSpec(text, &spec, &error)) return absl::InternalError(error);
  return spec;
}

absl::Status RemoveCgroup(const Spec& spec) {
  if (spec.linux_spec.cgroups_path.empty()) return absl::OkStatus();
  ContainerCgroup cgroup;
  std::string error;
  if (!cgroup.Init(spec.linux_spec.cgroups_path, &error) || !cgroup.Remove(&error)) {
    return absl::InternalError(error);
  }
  return absl::OkStatus();
}

void RemoveRuntimeFiles(const std::string& bundle) {
  for (const char* name : {kMonitorSocket, kMonitorPidFile, kInitPidFile, kExitFile, "exit.tmp",
                           kSpecDigestFile, kMonitorLog, kSeccompProgramFile}) {
    ::unlink(BundleFile(bundle, name).c_str());
  }
}

}  // namespace

std::string MonitorPathBesideSelf() {
  char self[4096];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return "crib-monitor";
  std::string path(self, n);
  return path.substr(0, path.rfind('/') + 1) + "crib-monitor";
}

absl::StatusOr<CreatedContainer> Launcher::Create(absl::string_view id, const std::string& bundle,
                                                  const std::string& log_path) const {
  auto annotate = [&](const absl::Status& s) {
    return Annotate(s, absl::StrCat("create container ", id));
  };
  absl::StatusOr<std::string> json = ReadFile(BundleFile(bundle, "config.json"));
  if (!json.ok()) return annotate(json.status());
  absl::StatusOr<Spec> spec = ParseSpecJson(*json);
  if (!spec.ok()) return annotate(spec.status());
  if (absl::Status s = WriteFileAtomic(BundleFile(bundle, kSpecDigestFile), EncodeSpec(*spec), 0644,
                                       Durability::kVolatile);
      !s.ok()) {
    return annotate(s);
  }
  absl::Cleanup undo = [&] {
    (void)RemoveCgroup(*spec);
    RemoveRuntimeFiles(bundle);
  };
  if (spec->linux_spec.seccomp) {
    Spec profile_only;
    profile_only.linux_spec.seccomp = spec->linux_spec.seccomp;
    std::string key = EncodeSpec(profile_only);
    std::string program;
    {
      std::lock_guard<std::mutex> lock(seccomp_mu_);
      auto it = seccomp_programs_.find(key);
      if (it != seccomp_programs_.end()) program = it->second;
    }
    if (program.empty()) {
      SeccompProgram compiled;
      std::string error;
      if (!CompileSeccomp(*spec->linux_spec.seccomp, &compiled, &error)) {
        return annotate(absl::InvalidArgumentError(error));
      }
      program.assign(reinterpret_cast<const char*>(compiled.filter.data()),
                     compiled.filter.size() * sizeof(sock_filter));
      std::lock_guard<std::mutex> lock(seccomp_mu_);
      seccomp_programs_[key] = program;
    }
    if (absl::Status s = WriteFileAtomic(BundleFile(bundle, kSeccompProgramFile), program, 0644,
                                         Durability::kVolatile);
        !s.ok()) {
      return annotate(s);
    }
  }

  UniqueFd status_r, status_w;
  if (absl::Status s = MakePipe(&status_r, &status_w); !s.ok()) return annotate(s);
  UniqueFd null_fd(::open("/dev/null", O_RDWR | O_CLOEXEC));
  UniqueFd log_fd(::open(BundleFile(bundle, kMonitorLog).c_str(),
                         O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  if (!null_fd || !log_fd) return annotate(ErrnoStatus(errno, "open the monitor's stdio"));
  std::vector<std::string> args = {monitor_path_, "create", "--bundle",
                                   bundle,        "--id",   std::string(id)};
  if (!log_path.empty()) {
    args.push_back("--log");
    args.push_back(log_path);
  }
  absl::StatusOr<pid_t> pid = Spawn(monitor_path_, args,
                                    {{0, null_fd.get()},
                                     {1, null_fd.get()},
                                     {2, log_fd.get()},
                                     {kMonitorStatusFd, status_w.get()}},
                                    /*setsid=*/true);
  if (!pid.ok()) return annotate(pid.status());
  status_w.Reset();
  absl::StatusOr<std::string> line =
      ReadLine(status_r.get(), absl::Seconds(60), "wait for crib-monitor");
  int wstatus;
  while (::waitpid(*pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  if (!line.ok()) return annotate(line.status());
  std::vector<std::string> words = absl::StrSplit(*line, ' ');
  if (words[0] == "error") {
    return annotate(absl::FailedPreconditionError(line->substr(6)));
  }
  CreatedContainer created;
  uint32_t warnings = 0;
  if (words.size() != 4 || words[0] != "ready" ||
      !absl::SimpleAtoi(words[1], &created.monitor_pid) ||
      !absl::SimpleAtoi(words[2], &created.init_pid) || !absl::SimpleAtoi(words[3], &warnings)) {
    return annotate(absl::InternalError(
        absl::StrCat("crib-monitor: expected \"ready <pids>\", received \"", *line, "\"")));
  }
  if (warnings & 1) {
    created.warnings.push_back("oom_score_adj not applied: lowering it needs CAP_SYS_RESOURCE");
  }
  std::move(undo).Cancel();
  return created;
}

absl::StatusOr<std::string> Launcher::Request(const std::string& bundle, absl::string_view request,
                                              absl::Duration timeout) const {
  std::string path = BundleFile(bundle, kMonitorSocket);
  struct sockaddr_un addr;
  UniqueFd dir;
  if (int err = MakeSocketAddress(path, &addr, &dir)) {
    // A bundle directory that is gone means the monitor is gone with it.
    if (err == ENOENT)
      return absl::NotFoundError(absl::StrCat("monitor socket ", path, " is gone"));
    return ErrnoStatus(err, absl::StrCat("monitor socket address ", path));
  }
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return ErrnoStatus(errno, "socket");
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    int err = errno;
    if (err == ENOENT || err == ECONNREFUSED) {
      return absl::NotFoundError(absl::StrCat("connect to monitor ", path, ": ", ErrorText(err)));
    }
    return ErrnoStatus(err, absl::StrCat("connect to monitor ", path));
  }
  std::string line = absl::StrCat(request, "\n");
  if (::send(fd.get(), line.data(), line.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(line.size())) {
    return ErrnoStatus(errno, absl::StrCat("send to monitor ", path));
  }
  absl::StatusOr<std::string> reply_or =
      ReadLine(fd.get(), timeout, absl::StrCat("monitor ", path));
  if (!reply_or.ok()) return reply_or.status();
  const std::string& reply = *reply_or;
  absl::string_view reply_view = reply;
  if (absl::StartsWith(reply, "ok")) return reply.size() > 3 ? reply.substr(3) : std::string();
  if (absl::ConsumePrefix(&reply_view, "error ")) {
    return absl::FailedPreconditionError(reply_view);
  }
  return absl::InternalError(absl::StrCat("monitor ", path, ": unexpected reply \"", reply, "\""));
}

absl::Status Launcher::Start(const std::string& bundle) const {
  absl::StatusOr<std::string> reply = Request(bundle, "start", absl::Seconds(60));
  if (!reply.ok()) return Annotate(reply.status(), "start container");
  return absl::OkStatus();
}

absl::Status Launcher::Kill(const std::string& bundle, int signal) const {
  if (ReadExitFile(bundle).ok()) return absl::OkStatus();
  absl::StatusOr<std::string> reply =
      Request(bundle, absl::StrCat("kill ", signal), absl::Seconds(10));
  if (!reply.ok() && ReadExitFile(bundle).ok()) return absl::OkStatus();  // exited meanwhile
  if (!reply.ok()) return Annotate(reply.status(), "kill container");
  return absl::OkStatus();
}

absl::Status Launcher::ReopenLog(const std::string& bundle) const {
  absl::StatusOr<std::string> reply = Request(bundle, "reopen-log", absl::Seconds(10));
  if (!reply.ok()) return Annotate(reply.status(), "reopen container log");
  return absl::OkStatus();
}

absl::Status Launcher::KillCgroup(const std::string& bundle, int signal) const {
  ASSIGN_OR_RETURN(Spec spec, ReadDigest(bundle));
  if (spec.linux_spec.cgroups_path.empty()) return absl::OkStatus();
  ContainerCgroup cgroup;
  std::string error;
  if (!cgroup.Init(spec.linux_spec.cgroups_path, &error)) return absl::InternalError(error);
  for (int pid : cgroup.Pids()) ::kill(pid, signal);
  return absl::OkStatus();
}

absl::Status Launcher::UpdateResources(const std::string& bundle,
                                       const Resources& resources) const {
  ASSIGN_OR_RETURN(Spec spec, ReadDigest(bundle));
  if (spec.linux_spec.cgroups_path.empty()) {
    return absl::FailedPreconditionError("update resources: the container has no cgroup");
  }
  ContainerCgroup cgroup;
  std::string error;
  if (!cgroup.Init(spec.linux_spec.cgroups_path, &error) || !cgroup.Apply(resources, &error)) {
    return absl::FailedPreconditionError(absl::StrCat("update resources: ", error));
  }
  return absl::OkStatus();
}

absl::Status Launcher::Resize(const std::string& bundle, int rows, int cols) const {
  absl::StatusOr<std::string> reply =
      Request(bundle, absl::StrCat("resize ", rows, " ", cols), absl::Seconds(10));
  if (!reply.ok()) return Annotate(reply.status(), "resize container terminal");
  return absl::OkStatus();
}

absl::StatusOr<ExitInfo> Launcher::ReadExitFile(const std::string& bundle) {
  ASSIGN_OR_RETURN(std::string text, ReadFile(BundleFile(bundle, kExitFile)));
  ExitInfo info;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(line, absl::MaxSplits(' ', 1));
    int64_t v = 0;
    if (!absl::SimpleAtoi(kv.second, &v)) {
      return absl::InternalError(
          absl::StrCat("exit file of ", bundle, ": bad line \"", line, "\""));
    }
    if (kv.first == "exit_code") info.exit_code = static_cast<int>(v);
    if (kv.first == "signal") info.signal = static_cast<int>(v);
    if (kv.first == "oom_killed") info.oom_killed = v != 0;
    if (kv.first == "started_at") info.started_at = FromNanos(v);
    if (kv.first == "finished_at") info.finished_at = FromNanos(v);
  }
  return info;
}

absl::StatusOr<ContainerStatus> Launcher::Status(const std::string& bundle) const {
  ContainerStatus status;
  if (absl::StatusOr<ExitInfo> exit = ReadExitFile(bundle); exit.ok()) {
    status.state = ContainerState::kExited;
    status.exit = *exit;
    return status;
  }
  absl::StatusOr<std::string> reply = Request(bundle, "state", absl::Seconds(10));
  if (!reply.ok()) {
    // The monitor may have finished between the two reads.
    if (absl::StatusOr<ExitInfo> exit = ReadExitFile(bundle); exit.ok()) {
      status.exit = *exit;
      return status;
    }
    return Annotate(reply.status(), "container state");
  }
  std::vector<std::string> words = absl::StrSplit(*reply, ' ');
  if (words.size() != 2 || !absl::SimpleAtoi(words[1], &status.init_pid)) {
    return absl::InternalError(absl::StrCat("container state: unexpected \"", *reply, "\""));
  }
  status.state = words[0] == "created"   ? ContainerState::kCreated
                 : words[0] == "running" ? ContainerState::kRunning
                                         : ContainerState::kExited;
  if (status.state == ContainerState::kExited) {
    // The monitor writes the file right after; a short wait keeps the answer complete.
    absl::StatusOr<ExitInfo> exit = WaitExit(bundle, absl::Seconds(2));
    if (exit.ok()) status.exit = *exit;
  }
  return status;
}

absl::StatusOr<ExitInfo> Launcher::WaitExit(const std::string& bundle,
                                            absl::Duration timeout) const {
  absl::Time deadline = absl::Now() + timeout;
  while (true) {
    absl::StatusOr<ExitInfo> exit = ReadExitFile(bundle);
    if (exit.ok() || !absl::IsNotFound(exit.status())) return exit;
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "container in ", bundle, " has not exited after ", absl::FormatDuration(timeout)));
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
}

absl::StatusOr<ExecResult> Launcher::Exec(const std::string& bundle,
                                          const ExecOptions& options) const {
  auto annotate = [&](const absl::Status& s) { return Annotate(s, "exec in container"); };
  ASSIGN_OR_RETURN(ContainerStatus status, Status(bundle));
  if (status.state != ContainerState::kRunning) {
    return absl::FailedPreconditionError("exec in container: the container is not running");
  }
  UniqueFd out_r, out_w, err_r, err_w, st_r, st_w;
  RETURN_IF_ERROR(annotate(MakePipe(&out_r, &out_w)));
  RETURN_IF_ERROR(annotate(MakePipe(&err_r, &err_w)));
  RETURN_IF_ERROR(annotate(MakePipe(&st_r, &st_w)));
  UniqueFd null_fd(::open("/dev/null", O_RDWR | O_CLOEXEC));
  std::vector<std::string> args = {monitor_path_, "exec",  "--bundle",
                                   bundle,        "--pid", absl::StrCat(status.init_pid)};
  if (options.timeout > absl::ZeroDuration()) {
    args.push_back("--timeout-ms");
    args.push_back(absl::StrCat(std::max<int64_t>(1, absl::ToInt64Milliseconds(options.timeout))));
  }
  if (!options.args.empty()) {
    args.push_back("--");
    args.insert(args.end(), options.args.begin(), options.args.end());
  }
  absl::StatusOr<pid_t> pid = Spawn(
      monitor_path_, args,
      {{0, null_fd.get()}, {1, out_w.get()}, {2, err_w.get()}, {kMonitorStatusFd, st_w.get()}},
      /*setsid=*/false);
  if (!pid.ok()) return annotate(pid.status());
  out_w.Reset();
  err_w.Reset();
  st_w.Reset();
  ExecResult result;
  std::string status_line;
  bool helper_done = false;
  absl::Time drain_deadline = absl::InfiniteFuture();
  // A helper that hangs past the timeout (it enforces it itself) is killed.
  absl::Time hard_deadline = options.timeout > absl::ZeroDuration()
                                 ? absl::Now() + options.timeout + absl::Seconds(10)
                                 : absl::InfiniteFuture();
  while (out_r || err_r || !helper_done) {
    std::vector<struct pollfd> fds;
    for (int fd : {out_r.get(), err_r.get(), helper_done ? -1 : st_r.get()}) {
      if (fd >= 0) fds.push_back({fd, POLLIN, 0});
    }
    absl::Time deadline = std::min(drain_deadline, hard_deadline);
    int ms = deadline == absl::InfiniteFuture()
                 ? -1
                 : static_cast<int>(
                       std::max<int64_t>(0, absl::ToInt64Milliseconds(deadline - absl::Now())));
    int n = ::poll(fds.data(), fds.size(), ms);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) {
      if (absl::Now() >= hard_deadline && !helper_done) ::kill(*pid, SIGKILL);
      if (absl::Now() >= drain_deadline) break;  // a descendant holds the pipes
      continue;
    }
    for (const auto& p : fds) {
      if (p.revents == 0) continue;
      char buf[65536];
      ssize_t r = ::read(p.fd, buf, sizeof(buf));
      if (r < 0 && errno == EINTR) continue;
      if (p.fd == st_r.get()) {
        if (r > 0) {
          status_line.append(buf, r);
        } else {
          helper_done = true;
          drain_deadline = absl::Now() + absl::Milliseconds(200);
        }
        continue;
      }
      std::string& out = p.fd == out_r.get() ? result.stdout_data : result.stderr_data;
      if (r > 0) {
        size_t room = options.max_output > out.size() ? options.max_output - out.size() : 0;
        out.append(buf, std::min<size_t>(room, r));
      } else {
        (p.fd == out_r.get() ? out_r : err_r).Reset();
      }
    }
  }
  int wstatus;
  while (::waitpid(*pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  status_line = status_line.substr(0, status_line.find('\n'));
  if (status_line == "timeout") {
    return absl::DeadlineExceededError(absl::StrCat("exec in container: timed out after ",
                                                    absl::FormatDuration(options.timeout),
                                                    ", the process was killed"));
  }
  std::vector<std::string> words = absl::StrSplit(status_line, absl::MaxSplits(' ', 1));
  int v = 0;
  if (words.size() == 2 && words[0] == "error") {
    return absl::FailedPreconditionError(absl::StrCat("exec in container: ", words[1]));
  }
  if (words.size() != 2 || !absl::SimpleAtoi(words[1], &v)) {
    return absl::InternalError(absl::StrCat(
        "exec in container: the exec helper ended without a result (\"", status_line, "\")"));
  }
  result.exit_code = words[0] == "signal" ? 128 + v : v;
  return result;
}

absl::Status Launcher::Remove(const std::string& bundle) const {
  absl::StatusOr<Spec> spec = ReadDigest(bundle);
  if (!spec.ok()) {
    if (absl::IsNotFound(spec.status())) return absl::OkStatus();  // removed already
    return Annotate(spec.status(), "remove container");
  }
  if (!ReadExitFile(bundle).ok()) {
    absl::Status killed = Kill(bundle, SIGKILL);
    if (killed.ok()) {
      // The monitor records the exit; if it is gone, the cgroup's removal kills the rest.
      (void)WaitExit(bundle, absl::Seconds(10));
    }
  }
  RETURN_IF_ERROR(Annotate(RemoveCgroup(*spec), "remove container"));
  RemoveRuntimeFiles(bundle);
  return absl::OkStatus();
}

}  // namespace crib::runtime
