// Compiling linux.seccomp into a BPF program with libseccomp, before the container init runs:
// the init then only hands the finished program to the kernel (no allocation after clone).
// Part of crib-monitor: plain C++, no absl.
#pragma once

#include <linux/filter.h>

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/spec.h"

namespace crib::runtime {

struct SeccompProgram {
  std::vector<sock_filter> filter;
  unsigned int flags = 0;  // SECCOMP_FILTER_FLAG_*
};

bool CompileSeccomp(const Seccomp& seccomp, SeccompProgram* program, std::string* error);

// The bundle's precompiled program (written by cribd, which compiles each distinct profile
// once): `seccomp.bpf`, raw sock_filter instructions. False if absent or malformed.
inline constexpr char kSeccompProgramFile[] = "seccomp.bpf";
bool ReadCompiledSeccomp(const std::string& path, const Seccomp& seccomp, SeccompProgram* program);

// Loads a compiled program into the calling process; returns 0 or the errno.
// Async-signal-safe.
int LoadSeccomp(const SeccompProgram& program);

}  // namespace crib::runtime
