// Directories a removal no longer needs, deleted off the caller's path. RemoveContainer renames
// a container's bundle and writable layer into the trash directory of their file system (one
// rename each, where deleting their trees takes a millisecond or two) and a thread of its own
// deletes them. What a crash left in a trash directory is deleted after the next start.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace crib::container {

class Trash {
 public:
  Trash() = default;
  Trash(const Trash&) = delete;
  Trash& operator=(const Trash&) = delete;
  // Deletes what is still queued, then returns.
  ~Trash();

  // Makes `dir` (a trash directory) if missing and queues what it holds.
  absl::Status AddDir(const std::string& dir);

  // Moves `path` into `dir` (a trash directory on the same file system, see AddDir) and queues
  // it; when the rename fails, deletes `path` here. OK if `path` does not exist.
  absl::Status Discard(const std::string& path, const std::string& dir);

 private:
  void Enqueue(std::string path);
  void Loop();

  absl::Mutex mutex_;
  std::deque<std::string> queue_ ABSL_GUARDED_BY(mutex_);
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  uint64_t counter_ ABSL_GUARDED_BY(mutex_) = 0;
  std::thread thread_;  // started by the first Enqueue
};

}  // namespace crib::container
