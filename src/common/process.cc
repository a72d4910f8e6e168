#include "common/process.h"

#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/files.h"

namespace crib {

absl::StatusOr<uint64_t> ProcessStartTime(pid_t pid) {
  absl::StatusOr<std::string> stat = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
  if (!stat.ok()) return absl::NotFoundError(absl::StrCat("no process ", pid));
  // The command name (field 2) may hold spaces and parentheses: fields start after the last ')'.
  const size_t close = stat->rfind(')');
  if (close == std::string::npos || close + 2 > stat->size()) {
    return absl::InternalError(absl::StrCat("bad /proc/", pid, "/stat"));
  }
  std::vector<absl::string_view> fields =
      absl::StrSplit(absl::string_view(*stat).substr(close + 2), ' ');
  // fields[0] is field 3 (state), so field 22 is fields[19].
  uint64_t start = 0;
  if (fields.size() < 20 || !absl::SimpleAtoi(fields[19], &start)) {
    return absl::InternalError(absl::StrCat("bad /proc/", pid, "/stat"));
  }
  if (fields[0] == "Z" || fields[0] == "X") {
    return absl::NotFoundError(absl::StrCat("process ", pid, " has exited"));
  }
  return start;
}

bool IsProcessAlive(pid_t pid, uint64_t start_time) {
  if (pid <= 0) return false;
  absl::StatusOr<uint64_t> start = ProcessStartTime(pid);
  return start.ok() && *start == start_time;
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
