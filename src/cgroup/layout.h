// Which cgroup hierarchies this machine mounts and which controllers they offer. Pure
// detection: this file creates, moves and limits nothing.
#pragma once

#include <set>
#include <string>

#include "absl/status/statusor.h"

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
};

absl::string_view ModeName(Mode mode);

// Reads the layout under `root` (normally /sys/fs/cgroup).
absl::StatusOr<Layout> DetectLayout(const std::string& root = "/sys/fs/cgroup");

}  // namespace crib::cgroup
