// The defaults a CRI runtime applies when the request is silent: the capability set,
// masked and read-only paths, the standard mounts, and the RuntimeDefault seccomp profile
// (equivalent in effect to containerd's). Pure data and spec builders: no syscalls here.
#pragma once

#include <string>
#include <vector>

#include "runtime/spec.h"

namespace crib::runtime {

// containerd's default capabilities (the bounding, effective and permitted sets).
std::vector<std::string> DefaultCapabilities();

// Every capability this build knows, for privileged containers and "ALL".
std::vector<std::string> AllCapabilities();

std::vector<std::string> DefaultMaskedPaths();
std::vector<std::string> DefaultReadonlyPaths();

// /proc, /dev (tmpfs), /dev/pts, /dev/shm, /dev/mqueue and /sys read-only, as containerd's
// default spec lists them.
std::vector<Mount> DefaultMounts();

// The RuntimeDefault profile for a process whose bounding set is `capabilities`: the common
// allowlist plus what those capabilities unlock (mount with CAP_SYS_ADMIN, ptrace with
// CAP_SYS_PTRACE, ...). Everything else fails with EPERM.
Seccomp RuntimeDefaultSeccomp(const std::vector<std::string>& capabilities);

// Sets bounding, effective and permitted to `caps` (inheritable and ambient empty).
void SetCapabilities(const std::vector<std::string>& caps, Process* process);

}  // namespace crib::runtime
