// Small file-system helpers whose failures are ErrnoStatus (common/errors.h). Writes that others
// may read while they happen go through a temporary file, fsync and rename, so a reader or a crash
// sees either the old content or the new, never a torn file.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace crib {

// mkdir -p with `mode` for the directories it creates.
absl::Status MakeDirs(const std::string& path, mode_t mode = 0755);

absl::StatusOr<std::string> ReadFile(const std::string& path);

// Writes all of `data` to `fd`; `what` names the file in the error.
absl::Status WriteAll(int fd, absl::string_view data, absl::string_view what);

// The names in a directory (not "." or ".."); empty when it does not exist.
std::vector<std::string> ListDirectory(const std::string& dir);

// Marks `dir` (made if missing) as the top of directory hierarchies (FS_TOPDIR_FL) for the
// file systems that have the flag (ext2/3/4): the directories made in it are spread over the
// block groups instead of packed beside it. For directories where big trees are made and
// deleted (snapshots): on an ext4 without a journal, in a block group where many were, making
// an inode cost 0.3-0.6 ms here against 10-20 us in a fresh group. Choosing that group costs
// ext4 a scan of the groups (~0.4 ms here per directory made in a top directory): not for
// directories whose trees are small. False when the file system has no such flag (tmpfs, xfs,
// btrfs...): nothing to do there.
absl::StatusOr<bool> MarkTopDirectory(const std::string& dir, mode_t mode = 0700);

// Whether a write must survive a crash of the machine (fsync), or only be whole when seen:
// runtime files in the state directory, which a reboot removes anyway, need no fsync.
enum class Durability { kDurable, kVolatile };

// Writes `content` to `path` atomically (temp file in the same directory, rename); durable
// writes fsync the file before and the directory after the rename.
absl::Status WriteFileAtomic(const std::string& path, absl::string_view content, mode_t mode = 0644,
                             Durability durability = Durability::kDurable);

}  // namespace crib
