// Whether this machine offers what crib's launcher needs: overlayfs, cgroup controllers for
// cpu, memory and pids, and writable root and state directories. Reads the machine only.
#pragma once

#include "common/condition.h"
#include "config/config.h"

namespace crib::runtime {

// The RuntimeReady condition of the CRI Status RPC. Its message also names the cgroup limits
// this machine cannot apply (cgroup::UnappliedLimits), which crib leaves out of containers.
Readiness CheckRuntimeReady(const Config& config);

// Whether the kernel makes read-only mounts recursively (mount_setattr, Linux 5.12).
bool SupportsRecursiveReadOnly();

}  // namespace crib::runtime
