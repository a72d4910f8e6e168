// Work that a call hands off instead of waiting for it: a thread of its own runs `work` on each
// item added, one after the other, in order. The thread starts with the first item; the
// destructor finishes what is queued before it returns. Items queued when the process dies
// are lost: their owner must find them again (a removal finished, a directory swept).
#pragma once

#include <deque>
#include <functional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace crib {

class WorkQueue {
 public:
  explicit WorkQueue(std::function<void(const std::string&)> work) : work_(std::move(work)) {}
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;
  ~WorkQueue();

  void Add(std::string item);

 private:
  void Loop();

  const std::function<void(const std::string&)> work_;
  absl::Mutex mutex_;
  std::deque<std::string> queue_ ABSL_GUARDED_BY(mutex_);
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  std::thread thread_;
};

}  // namespace crib
