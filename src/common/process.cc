#include "common/process.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/files.h"

namespace crib {

absl::StatusOr<uint64_t> ProcessStartTime(pid_t pid) {
  // One read into the stack: the list calls this once per running container.
  char path[32];
  std::snprintf(path, sizeof(path), "/proc/%d/stat", static_cast<int>(pid));
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::NotFoundError(absl::StrCat("no process ", pid));
  char buf[1024];
  ssize_t n;
  do {
    n = ::read(fd, buf, sizeof(buf));
  } while (n < 0 && errno == EINTR);
  ::close(fd);
  if (n <= 0) return absl::NotFoundError(absl::StrCat("no process ", pid));
  const absl::string_view stat(buf, static_cast<size_t>(n));
  // The command name (field 2) may hold spaces and parentheses: fields start after the last ')'.
  const size_t close = stat.rfind(')');
  if (close == absl::string_view::npos || close + 2 > stat.size()) {
    return absl::InternalError(absl::StrCat("bad /proc/", pid, "/stat"));
  }
  // From field 3 (state) on, field 22 (the start time) is the 20th.
  absl::string_view rest = stat.substr(close + 2);
  const char state = rest.empty() ? '\0' : rest[0];
  for (int field = 3; field < 22; ++field) {
    const size_t space = rest.find(' ');
    if (space == absl::string_view::npos) {
      return absl::InternalError(absl::StrCat("bad /proc/", pid, "/stat"));
    }
    rest.remove_prefix(space + 1);
  }
  uint64_t start = 0;
  if (!absl::SimpleAtoi(rest.substr(0, rest.find(' ')), &start)) {
    return absl::InternalError(absl::StrCat("bad /proc/", pid, "/stat"));
  }
  if (state == 'Z' || state == 'X') {
    return absl::NotFoundError(absl::StrCat("process ", pid, " has exited"));
  }
  return start;
}

bool IsProcessAlive(pid_t pid, uint64_t start_time) {
  if (pid <= 0) return false;
  absl::StatusOr<uint64_t> start = ProcessStartTime(pid);
  return start.ok() && *start == start_time;
}

UniqueFd OpenProcessFd(pid_t pid, uint64_t start_time) {
  if (pid <= 0) return UniqueFd();
  UniqueFd fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!fd || !IsProcessAlive(pid, start_time)) return UniqueFd();
  return fd;
}

size_t ShareOfOpenFiles(size_t divisor, size_t cap) {
  struct rlimit limit;
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  if (limit.rlim_cur == RLIM_INFINITY) return cap;
  return std::min<size_t>(cap, limit.rlim_cur / divisor);
}

std::vector<std::pair<pid_t, std::string>> ProcessesWithFlag(absl::string_view executable,
                                                             absl::string_view flag) {
  std::vector<std::pair<pid_t, std::string>> out;
  for (const std::string& name : ListDirectory("/proc")) {
    pid_t pid = 0;
    if (!absl::SimpleAtoi(name, &pid)) continue;
    absl::StatusOr<std::string> cmdline = ReadFile(absl::StrCat("/proc/", pid, "/cmdline"));
    if (!cmdline.ok()) continue;
    std::vector<absl::string_view> args = absl::StrSplit(*cmdline, '\0');
    if (args.empty() || !absl::EndsWith(args[0], executable)) continue;
    if (!ProcessStartTime(pid).ok()) continue;  // a zombie
    for (size_t i = 0; i + 1 < args.size(); ++i) {
      if (args[i] == flag) out.emplace_back(pid, std::string(args[i + 1]));
    }
  }
  return out;
}

}  // namespace crib
