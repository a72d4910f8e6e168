#include "common/work_queue.h"

namespace crib {

WorkQueue::~WorkQueue() {
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void WorkQueue::Add(std::string item) {
  absl::MutexLock lock(&mutex_);
  queue_.push_back(std::move(item));
  if (!thread_.joinable()) thread_ = std::thread([this] { Loop(); });
}

void WorkQueue::Loop() {
  while (true) {
    std::string item;
    {
      absl::MutexLock lock(&mutex_);
      auto ready = [this]()
                       ABSL_SHARED_LOCKS_REQUIRED(mutex_) { return stopping_ || !queue_.empty(); };
      mutex_.Await(absl::Condition(&ready));
      if (queue_.empty()) return;  // stopping, with nothing left
      item = std::move(queue_.front());
      queue_.pop_front();
    }
    work_(item);
  }
}

}  // namespace crib
