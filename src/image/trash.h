// Directories a removal no longer needs, deleted off the caller's path. RemoveContainer renames
// a container's bundle and writable layer, and an image's removal its snapshots, into the trash
// directory of their file system (one rename each, where deleting their trees takes a
// millisecond or more) and a thread of its own deletes them. What a crash left in a trash
// directory is deleted after the next start.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/work_queue.h"

namespace crib::image {

class Trash {
 public:
  Trash();

  // The trash directory of a root or state directory, on its file system: "<dir>/trash".
  static std::string DirOf(absl::string_view dir);

  // Makes `dir` (a trash directory) if missing and queues what it holds.
  absl::Status AddDir(const std::string& dir);

  // Moves `path` into `dir` (a trash directory on the same file system, see AddDir) and queues
  // it; when the rename fails, deletes `path` here. OK if `path` does not exist; `found`, if
  // given, says whether it did.
  absl::Status Discard(const std::string& path, const std::string& dir, bool* found = nullptr);

 private:
  std::atomic<uint64_t> counter_{0};  // makes the names in the trash unique
  WorkQueue deleter_;                 // last: its destructor deletes what is queued, first
};

}  // namespace crib::image
