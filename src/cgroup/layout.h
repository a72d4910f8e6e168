// Which cgroup hierarchies this machine mounts and which controllers they offer. Pure
// detection: this file creates, moves and limits nothing.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "cgroup/cgroup_files.h"

namespace crib::cgroup {

enum class Mode {
  kLegacy,   // v1 only
  kHybrid,   // v1 controllers, plus a v2 hierarchy (usually at <root>/unified)
  kUnified,  // v2 only
};

struct Layout {
  Mode mode = Mode::kLegacy;
  std::string root;                   // /sys/fs/cgroup
  std::string unified_path;           // the v2 mount, if any
  std::set<std::string> controllers;  // usable for resource control (v1 mounted ones, or v2's)
  // The huge page sizes the kernel offers, named as the hugetlb files name them ("2MB", "1GB").
  std::set<std::string> hugepage_sizes;
  // The hierarchies crib's cgroups live in (UsableHierarchies), read once: a cgroup named on
  // this layout (CgroupFiles::Init) needs no new look at the mount table.
  std::vector<Hierarchy> hierarchies;
};

absl::string_view ModeName(Mode mode);

// Reads the layout under `root` (normally /sys/fs/cgroup) from the mount table
// (MountedHierarchies) and the huge page sizes under `hugepages` (normally
// /sys/kernel/mm/hugepages).
absl::StatusOr<Layout> DetectLayout(const std::string& root = "/sys/fs/cgroup",
                                    const std::string& hugepages = "/sys/kernel/mm/hugepages");

// Where the hierarchy that holds `controller` is mounted: the v2 mount on a unified machine,
// else the v1 hierarchy with it; "" when none has it.
std::string ControllerMount(const Layout& layout, absl::string_view controller);

// The name of a huge page size of `kib` KiB in hugetlb's files: 2048 -> "2MB", 1048576 -> "1GB".
std::string HugepageSizeName(uint64_t kib);

// The one rule for limits of a controller the machine does not offer: crib leaves them
// unapplied (as runc does with an unmounted v1 controller), except where that would be unsafe
// (see UnappliedLimits' callers). Returns why `controller`'s limits cannot be applied in this
// layout, or "" when they can.
std::string MissingController(const Layout& layout, absl::string_view controller);

// The controllers among those crib limits (cpu, cpuset, memory, pids, hugetlb) that this
// layout lacks, each with the reason, for Status and the logs.
std::vector<std::string> UnappliedLimits(const Layout& layout);

}  // namespace crib::cgroup
