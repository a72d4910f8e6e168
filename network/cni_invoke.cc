#include "network/cni_invoke.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/errors.h"
#include "common/spawn.h"
#include "common/unique_fd.h"
#include "network/cni_result.h"

extern char** environ;

namespace crib::network::cni {
namespace {

constexpr size_t kMaxOutput = 1 << 20;
// What of a plugin's stderr goes into an error message: its end, where the cause usually is.
constexpr size_t kMaxStderrInMessage = 2048;

struct Pipe {
  UniqueFd read, write;
};

// Moves `fd` to 3 or above, so that the dup2 calls onto the plugin's 0, 1 and 2 never clobber
// one another (cribd may run with a standard stream closed).
UniqueFd AboveStdio(int fd) {
  if (fd < 0 || fd > 2) return UniqueFd(fd);
  UniqueFd moved(::fcntl(fd, F_DUPFD_CLOEXEC, 3));
  ::close(fd);
  return moved;
}

absl::StatusOr<Pipe> MakePipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe");
  Pipe pipe{AboveStdio(fds[0]), AboveStdio(fds[1])};
  if (!pipe.read || !pipe.write) return ErrnoStatus(errno, "dup a pipe above stdio");
  return pipe;
}

// The plugin's environment: cribd's own (PATH matters: plugins run iptables and their IPAM
// plugin) without any CNI_* variable, then the call's.
std::vector<std::string> Environment(const PluginCall& call) {
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    if (!absl::StartsWith(*e, "CNI_")) env.emplace_back(*e);
  }
  env.push_back(absl::StrCat("CNI_COMMAND=", call.command));
  if (call.command != "VERSION") {
    env.push_back(absl::StrCat("CNI_CONTAINERID=", call.container_id));
    env.push_back(absl::StrCat("CNI_NETNS=", call.netns));
    env.push_back(absl::StrCat("CNI_IFNAME=", call.ifname));
    env.push_back(absl::StrCat("CNI_ARGS=", call.args));
  }
  env.push_back(absl::StrCat("CNI_PATH=", call.path));
  return env;
}

void Append(std::string& out, const char* data, size_t n) {
  if (out.size() < kMaxOutput) out.append(data, std::min(n, kMaxOutput - out.size()));
}

std::string DescribeExit(const PluginOutput& output) {
  return output.exit_code < 0 ? "was killed by a signal"
                              : absl::StrCat("exited with status ", output.exit_code);
}

// write(2) to the plugin's stdin, whose reader may be gone, without a SIGPIPE whatever the
// process's disposition (cribd ignores it, a test binary may not): the signal is blocked in
// this thread around the write, and one the write raised is consumed.
ssize_t WriteWithoutSigpipe(int fd, absl::string_view data) {
  sigset_t sigpipe, old;
  sigemptyset(&sigpipe);
  sigaddset(&sigpipe, SIGPIPE);
  sigset_t pending;
  sigpending(&pending);
  const bool was_pending = sigismember(&pending, SIGPIPE) == 1;
  pthread_sigmask(SIG_BLOCK, &sigpipe, &old);
  const ssize_t n = ::write(fd, data.data(), data.size());
  const int saved_errno = errno;
  if (n < 0 && saved_errno == EPIPE && !was_pending) {
    const timespec zero = {0, 0};
    while (::sigtimedwait(&sigpipe, nullptr, &zero) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  errno = saved_errno;
  return n;
}

absl::string_view StderrTail(absl::string_view text) {
  text = absl::StripAsciiWhitespace(text);
  if (text.size() > kMaxStderrInMessage) text = text.substr(text.size() - kMaxStderrInMessage);
  return text;
}

}  // namespace

absl::StatusOr<std::string> FindPlugin(absl::string_view type,
                                       const std::vector<std::string>& dirs) {
  for (const std::string& dir : dirs) {
    const std::string path = absl::StrCat(dir, "/", type);
    struct stat st;
    if (::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        ::access(path.c_str(), X_OK) == 0) {
      return path;
    }
  }
  return absl::NotFoundError(
      absl::StrCat("cni plugin ", type, " not found in ", absl::StrJoin(dirs, ", ")));
}

absl::StatusOr<PluginOutput> RunPlugin(const PluginCall& call) {
  const std::string what = absl::StrCat("cni plugin ", call.type, " ", call.command);
  absl::StatusOr<Pipe> in = MakePipe(), out = MakePipe(), err = MakePipe();
  for (const absl::StatusOr<Pipe>* p : {&in, &out, &err}) {
    if (!p->ok()) return Annotate(p->status(), what);
  }

  // A group of its own, so that a timeout kills the plugin's children too.
  absl::StatusOr<pid_t> spawned =
      Spawn({.path = call.executable,
             .args = {call.executable},
             .env = Environment(call),
             .fds = {{0, in->read.get()}, {1, out->write.get()}, {2, err->write.get()}},
             .group = SpawnOptions::Group::kNewProcessGroup});
  in->read.Reset();
  out->write.Reset();
  err->write.Reset();
  if (!spawned.ok()) return Annotate(spawned.status(), what);
  const pid_t pid = *spawned;

  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  ::fcntl(in->write.get(), F_SETFL, O_NONBLOCK);
  PluginOutput output;
  absl::string_view pending = call.stdin_data;
  if (pending.empty()) in->write.Reset();
  const absl::Time deadline = absl::Now() + call.timeout;
  bool exited = false, timed_out = false;
  // Reads until the plugin has exited and its pipes are drained. Its children may hold the
  // pipes open after it exited; what they write after that is not waited for.
  while (out->read || err->read) {
    std::vector<pollfd> fds;
    if (in->write) fds.push_back({in->write.get(), POLLOUT, 0});
    if (out->read) fds.push_back({out->read.get(), POLLIN, 0});
    if (err->read) fds.push_back({err->read.get(), POLLIN, 0});
    if (pidfd && !exited) fds.push_back({pidfd.get(), POLLIN, 0});
    const int64_t left = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (left <= 0) {
      timed_out = true;
      break;
    }
    const int timeout_ms = exited ? 0 : static_cast<int>(std::min<int64_t>(left, 1000));
    const int ready = ::poll(fds.data(), fds.size(), timeout_ms);
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) break;
    if (ready == 0) {
      if (exited) break;  // drained what the plugin wrote
      continue;
    }
    for (const pollfd& p : fds) {
      if (p.revents == 0) continue;
      if (p.fd == pidfd.get()) {
        exited = true;
      } else if (in->write && p.fd == in->write.get()) {
        const ssize_t n = WriteWithoutSigpipe(p.fd, pending);
        if (n > 0) pending.remove_prefix(static_cast<size_t>(n));
        // A plugin may exit without reading all of its stdin: EPIPE ends the writing.
        if (pending.empty() || (n < 0 && errno != EAGAIN && errno != EINTR)) in->write.Reset();
      } else {
        UniqueFd& fd = p.fd == out->read.get() ? out->read : err->read;
        std::string& sink = p.fd == out->read.get() ? output.stdout_data : output.stderr_data;
        char buf[16384];
        const ssize_t n = ::read(p.fd, buf, sizeof buf);
        if (n > 0) {
          Append(sink, buf, static_cast<size_t>(n));
        } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
          fd.Reset();
        }
      }
    }
  }
  if (timed_out) ::kill(-pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) {
    return absl::DeadlineExceededError(absl::StrCat(
        what, ": timed out after ", absl::FormatDuration(call.timeout), " and was killed",
        output.stderr_data.empty() ? "" : ": ", StderrTail(output.stderr_data)));
  }
  output.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return output;
}

absl::StatusOr<nlohmann::json> InvokePlugin(const PluginCall& call) {
  const std::string what = absl::StrCat("cni plugin ", call.type, " ", call.command);
  absl::StatusOr<PluginOutput> output = RunPlugin(call);
  if (!output.ok()) return output.status();
  if (output->exit_code != 0) {
    PluginError error;
    if (!ParseError(output->stdout_data, &error)) {
      error.msg = absl::StrCat(DescribeExit(*output), " without an error result");
      const absl::string_view printed = absl::StripAsciiWhitespace(output->stdout_data);
      if (!printed.empty()) absl::StrAppend(&error.msg, " (stdout: ", StderrTail(printed), ")");
    }
    return ErrorStatus(what, error, StderrTail(output->stderr_data));
  }
  const absl::string_view printed = absl::StripAsciiWhitespace(output->stdout_data);
  if (printed.empty()) return nlohmann::json();
  nlohmann::json result = nlohmann::json::parse(printed.begin(), printed.end(), nullptr, false);
  if (result.is_discarded() || !result.is_object()) {
    return absl::InternalError(
        absl::StrCat(what, ": succeeded but printed no JSON object: ", StderrTail(printed)));
  }
  return result;
}

}  // namespace crib::network::cni
