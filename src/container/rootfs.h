// The container's root file system: an overlay of the image's layer snapshots (read-only
// lower directories, top first) under a per-container upper and work directory, mounted on
// the bundle's rootfs in cribd's (the host's) mount namespace; and reading files inside it
// without following its symlinks out of it.
//
// mount(2) takes its options in one page, which images with many layers overflow. Three ways
// to mount, chosen in this order: the options in one page when they fit; the new mount API
// with one "lowerdir+" per layer (Linux 6.8+); relative short names (symlinks 0, 1, ...) made
// in a scratch directory and resolved from a thread that chdir()s there after unshare(CLONE_FS)
// (cribd is multi-threaded: a process-wide chdir is never an option).
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace crib::container {

enum class OverlayMethod { kAuto, kOnePage, kAppendLayers, kShortNames };

struct OverlayMount {
  std::vector<std::string> lower_dirs;  // top first, as overlayfs wants them
  std::string upper_dir;
  std::string work_dir;
  std::string target;
  std::string scratch_dir;  // for kShortNames: where the short names go (removed after)
  bool readonly = false;    // no upper dir: the lower layers only (image volumes)
  // A user namespace file (a pod's pin): the lower layers are mounted id-mapped with its
  // mappings, so that an image's root-owned files read as root inside it. The id-mapped copies
  // are mounted under `idmap_dir` for as long as the overlay mount takes (it keeps private
  // copies of its layers), and gone after.
  std::string idmap_userns;
  std::string idmap_dir;
};

absl::Status MountOverlay(const OverlayMount& mount, OverlayMethod method = OverlayMethod::kAuto);

// Unmounts `target` (lazily when busy); OK when nothing is mounted there.
absl::Status Unmount(const std::string& target);

// Reads `path` (absolute inside the container) under `root` with openat2 RESOLVE_IN_ROOT, so
// an image's symlinks resolve inside the image. NotFound when it does not exist; at most
// `max_bytes` are read (a bigger file is FailedPrecondition).
absl::StatusOr<std::string> ReadFileInRoot(const std::string& root, absl::string_view path,
                                           size_t max_bytes = 16 << 20);

}  // namespace crib::container
