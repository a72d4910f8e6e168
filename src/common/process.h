// Knowing whether a recorded process still runs, across cribd restarts and pid reuse: a pid
// is only taken for the same process when its start time (field 22 of /proc/<pid>/stat)
// matches the one recorded with it.
#pragma once

#include <sys/types.h>

#include <cstdint>

#include "absl/status/statusor.h"

namespace crib {

// Field 22 of /proc/<pid>/stat; NotFound if there is no such process or it is a zombie.
absl::StatusOr<uint64_t> ProcessStartTime(pid_t pid);

// True while the process `pid` started at `start_time` runs.
bool IsProcessAlive(pid_t pid, uint64_t start_time);

}  // namespace crib
