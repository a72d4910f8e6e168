// The mount-point layer: a small overlay lower directory, above an image's snapshots, that holds
// the mount points every container mounts on (crib's /proc, /dev, /sys and the pod's /etc
// files) where the image lacks them. Without it each container's init makes them in its
// writable layer: an inode each, and the image's /etc copied up for the files. With it the
// writable layer stays empty until the container writes.
//
// The layer changes nothing a container sees but the entries it adds, which the init would
// have made (empty directories 0755, empty files 0644, root's): a directory it must hold to
// reach a file (/etc) is given the image's own mode, owner and times, and a mount point whose
// way passes through anything but a directory in the image (a symlink, a file) makes no layer
// at all: the init resolves such paths as before.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace crib::image {

struct MountPoint {
  std::string path;  // absolute, without "." or ".." ("/etc/hosts")
  bool file = false;
};

// What the merged view of `layers` (overlay lower directories, top first, with overlayfs'
// whiteouts and opaque directories) lacks of `points`, made in `dir` (an empty directory).
// False when nothing had to be made, or when a point's way is not a directory in the image:
// then `dir` must not be used.
absl::StatusOr<bool> MakeMountPointLayer(const std::vector<std::string>& layers,
                                         const std::vector<MountPoint>& points,
                                         const std::string& dir);

}  // namespace crib::image
