// Network namespaces pinned by a bind mount, as `ip netns add` does, so that a pod's network
// outlives its pause process and can always be torn down.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace crib::pod {

// Makes `dir` a shared mount point (bind-mounting it onto itself first if it is not a mount
// point), so that unmounting a pin there also unmounts its copies in mount namespaces created
// later; otherwise such a copy would keep the namespace alive.
absl::Status PrepareNetnsDir(const std::string& dir);

// Creates a new network namespace and pins it at `path` (an empty file bind-mounted onto
// /proc/thread-self/ns/net of a short-lived thread that unshared it; cribd's other threads stay
// in the host's namespace).
absl::Status CreatePinnedNetns(const std::string& path);

// Unmounts and deletes the pin; OK if it is already gone.
absl::Status RemovePinnedNetns(const std::string& path);

}  // namespace crib::pod
