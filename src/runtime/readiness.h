// Whether this machine offers what crib's launcher needs: overlayfs, cgroup controllers for
// cpu, memory and pids, and writable root and state directories. Reads the machine only.
#pragma once

#include "common/condition.h"
#include "config/config.h"

namespace crib::runtime {

// The RuntimeReady condition of the CRI Status RPC.
Readiness CheckRuntimeReady(const Config& config);

}  // namespace crib::runtime
