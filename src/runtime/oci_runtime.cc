#include "runtime/oci_runtime.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "runtime/monitor/protocol.h"

namespace crib::runtime {

std::string RuntimeFileText(const OciRuntime& runtime) {
  std::string text = "handler " + runtime.handler + "\nid " + runtime.id + "\ntimeout_ms " +
                     std::to_string(runtime.timeout_ms) + "\n";
  for (const std::string& arg : runtime.argv) text += "arg " + arg + "\n";
  return text;
}

bool ParseRuntimeFile(std::string_view text, OciRuntime* runtime, std::string* error) {
  *runtime = OciRuntime();
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (line.empty()) continue;
    const size_t space = line.find(' ');
    const std::string_view key = line.substr(0, space);
    const std::string value(space == std::string_view::npos ? "" : line.substr(space + 1));
    if (key == "handler") {
      runtime->handler = value;
    } else if (key == "id") {
      runtime->id = value;
    } else if (key == "timeout_ms") {
      runtime->timeout_ms = std::atol(value.c_str());
    } else if (key == "arg") {
      runtime->argv.push_back(value);
    } else {
      *error = "runtime file: unknown line \"" + std::string(line) + "\"";
      return false;
    }
  }
  if (runtime->argv.empty() || runtime->id.empty() || runtime->timeout_ms <= 0) {
    *error = "runtime file: it names no executable, id or timeout";
    return false;
  }
  return true;
}

std::vector<std::string> RuntimeCommand(const OciRuntime& runtime, const std::string& bundle,
                                        const std::vector<std::string>& command) {
  std::vector<std::string> args = runtime.argv;
  args.insert(args.end(), {"--log", bundle + "/" + kRuntimeLog, "--log-format", "json"});
  args.insert(args.end(), command.begin(), command.end());
  return args;
}

namespace {

long long MonotonicMillis() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

void ReadInto(int fd, std::string* said) {
  char buf[4096];
  ssize_t r;
  while (said->size() < 65536 && (r = ::read(fd, buf, sizeof(buf))) > 0) said->append(buf, r);
}

}  // namespace

int AwaitRuntime(int pid, long timeout_ms, int stderr_fd, std::string* said) {
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  bool timed_out = false;
  const long long deadline = MonotonicMillis() + timeout_ms;
  while (pidfd >= 0) {
    struct pollfd p[2] = {{pidfd, POLLIN, 0}, {stderr_fd, POLLIN, 0}};
    const long long left = deadline - MonotonicMillis();
    if (left <= 0) {
      timed_out = true;
      ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
      break;
    }
    int n = ::poll(p, stderr_fd >= 0 ? 2 : 1, static_cast<int>(left));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || p[0].revents != 0) break;
    if (stderr_fd >= 0 && p[1].revents != 0) {
      char buf[4096];
      ssize_t r = ::read(stderr_fd, buf, sizeof(buf));
      if (r <= 0) {
        stderr_fd = -1;
      } else if (said->size() < 65536) {
        said->append(buf, r);
      }
    }
  }
  if (pidfd >= 0) ::close(pidfd);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) return -1;
  if (stderr_fd >= 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
    // What is left in the pipe (a descendant may hold its write end: never block on it).
    ::fcntl(stderr_fd, F_SETFL, ::fcntl(stderr_fd, F_GETFL) | O_NONBLOCK);
    ReadInto(stderr_fd, said);
  }
  return status;
}

std::string RuntimeFailure(const std::string& what, const OciRuntime& runtime, int wait_status,
                           std::string_view log, size_t log_offset, std::string_view said) {
  if (wait_status == -1) {
    return what + ": no answer in " + std::to_string(runtime.timeout_ms) + " ms, killed";
  }
  std::string why = LastRuntimeError(log, log_offset);
  if (why.empty()) why = LastRuntimeError(said);
  return what + " failed" +
         (WIFSIGNALED(wait_status)
              ? " (signal " + std::to_string(WTERMSIG(wait_status)) + ")"
              : " (exit code " + std::to_string(WEXITSTATUS(wait_status)) + ")") +
         (why.empty() ? std::string() : ": " + why);
}

std::string LastRuntimeError(std::string_view text, size_t offset) {
  std::string last;
  size_t pos = offset < text.size() ? offset : text.size();
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    nlohmann::json j = nlohmann::json::parse(line.begin(), line.end(), nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      // Not JSON (a runtime that ignores --log-format): the line as it is.
      if (!line.empty()) last = std::string(line);
      continue;
    }
    const auto level = j.find("level");
    const auto msg = j.find("msg");
    if (level == j.end() || msg == j.end() || !level->is_string() || !msg->is_string()) continue;
    const std::string l = level->get<std::string>();
    if (l == "error" || l == "fatal" || l == "panic") last = msg->get<std::string>();
  }
  return last;
}

}  // namespace crib::runtime
