// Knowing whether a recorded process still runs, across cribd restarts and pid reuse: a pid
// is only taken for the same process when its start time (field 22 of /proc/<pid>/stat)
// matches the one recorded with it.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/unique_fd.h"

namespace crib {

// Field 22 of /proc/<pid>/stat; NotFound if there is no such process or it is a zombie.
absl::StatusOr<uint64_t> ProcessStartTime(pid_t pid);

// True while the process `pid` started at `start_time` runs.
bool IsProcessAlive(pid_t pid, uint64_t start_time);

// A pidfd (pidfd_open) of the process `pid` started at `start_time`, checked after it was
// opened, so that it cannot name a later process that reused the pid; an invalid fd when that
// process is gone or the kernel has no pidfd_open (before 5.3).
UniqueFd OpenProcessFd(pid_t pid, uint64_t start_time);

// A share of the descriptors this process may open: its soft RLIMIT_NOFILE divided by
// `divisor`, at most `cap` (also when unlimited); 0 when the limit cannot be read. For the
// caches that keep a descriptor per container, so that they leave room for everything else.
size_t ShareOfOpenFiles(size_t divisor, size_t cap);

// Running processes whose argv[0] ends with `executable` and whose command line has
// `flag` followed by a value: (pid, value), for finding crib's helpers again by what they
// serve ("crib-monitor", "--bundle").
std::vector<std::pair<pid_t, std::string>> ProcessesWithFlag(absl::string_view executable,
                                                             absl::string_view flag);

}  // namespace crib
