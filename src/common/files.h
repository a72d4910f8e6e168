// Small file-system helpers with errno-carrying statuses. Writes that others may read while
// they happen go through a temporary file, fsync and rename, so a reader or a crash sees
// either the old content or the new, never a torn file.
#pragma once

#include <sys/types.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace crib {

// mkdir -p with `mode` for the directories it creates.
absl::Status MakeDirs(const std::string& path, mode_t mode = 0755);

absl::StatusOr<std::string> ReadFile(const std::string& path);

// Writes `content` to `path` atomically (temp file in the same directory, fsync, rename,
// fsync of the directory).
absl::Status WriteFileAtomic(const std::string& path, absl::string_view content,
                             mode_t mode = 0644);

}  // namespace crib
