// The one way cribd starts a helper process (crib-monitor, crib-pause, CNI plugins,
// apparmor_parser): posix_spawn, so that the multi-threaded daemon never forks, with one
// policy for what the child inherits. cribd blocks SIGTERM and SIGINT for its signal thread
// and ignores SIGPIPE; a helper starts with no signal blocked and every signal at its default
// action. Of cribd's fds it gets only those it is given; the standard streams it is not given
// are /dev/null. Also here: where the helper binaries are.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace crib {

struct SpawnOptions {
  // Every member has an initializer, so that callers may name only the members they set.
  std::string path{};               // the executable
  std::vector<std::string> args{};  // argv, argv[0] included
  // The environment; unset: cribd's own.
  std::optional<std::vector<std::string>> env{};
  // The child's fds, as (fd in the child, fd of cribd). Any fd of cribd may be given, also
  // one that is another entry's target.
  std::vector<std::pair<int, int>> fds{};
  std::string cwd{};  // empty: cribd's
  // A process group of its own (a timeout kills the helper's children too), or a session of
  // its own (it outlives cribd and no signal to cribd's group or session reaches it).
  enum class Group { kInherit, kNewProcessGroup, kNewSession };
  Group group = Group::kInherit;
};

// Starts the process; the caller reaps it.
absl::StatusOr<pid_t> Spawn(const SpawnOptions& options);

// Where helper `name` is: in `helper_dir`, or beside cribd's own executable when it is empty
// (so that a build tree runs as it is).
absl::StatusOr<std::string> HelperPath(const std::string& helper_dir, absl::string_view name);

}  // namespace crib
