// The device cgroup rules on cgroup v2, where there is no devices controller: the rules become
// a BPF_PROG_TYPE_CGROUP_DEVICE program attached to the container's cgroup. Part of
// crib-monitor and of cribd's launcher: plain C++, no absl.
#pragma once

#include <linux/bpf.h>

#include <string>
#include <vector>

#include "cgroup/resources.h"

namespace crib::cgroup {

// The program for `rules`, read as cgroup v1 reads them: the last rule that matches a request
// decides, nothing matching denies. An allow rule matches a request whose access it covers
// entirely, a deny rule one whose access it touches at all, so "deny w" also refuses "rw".
std::vector<bpf_insn> DeviceFilterProgram(const std::vector<DeviceRule>& rules);

// True when `rules` end up allowing every device (a trailing "allow a rwm"): no program needed.
bool AllowsEveryDevice(const std::vector<DeviceRule>& rules);

// Loads the program for `rules` and attaches it to the cgroup v2 directory `cgroup_dir`, then
// detaches the programs that were attached there before, so that applying again replaces the
// filter rather than stacking another. Programs of the ancestors still apply (the kernel allows
// a request only if all of them do). Returns false with `error` set.
bool AttachDeviceFilter(const std::string& cgroup_dir, const std::vector<DeviceRule>& rules,
                        std::string* error);

// The ids of the device programs attached to `cgroup_dir` itself (empty if none or on error).
std::vector<uint32_t> AttachedDeviceFilters(const std::string& cgroup_dir);

}  // namespace crib::cgroup
