// Container lifecycle events for GetContainerEvents (kubelet's evented PLEG): created,
// started, stopped and deleted, published by the container room as they happen (stopped is
// driven by the monitors' exit files, seen through inotify, not by polling). Any number of
// subscribers; each has a bounded queue, and one that falls behind is dropped (its stream ends
// and the client relists), so a slow subscriber never blocks the runtime.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/unique_fd.h"

namespace crib::container {

struct ContainerEvent {
  enum class Type { kCreated = 0, kStarted = 1, kStopped = 2, kDeleted = 3 };
  Type type = Type::kCreated;
  std::string container_id;
  std::string pod_id;
  int64_t at_ns = 0;
};

class EventHub {
 public:
  class Subscription {
   public:
    ~Subscription();
    Subscription(const Subscription&) = delete;
    Subscription& operator=(const Subscription&) = delete;

    // The next event, waiting up to `timeout`. False on a timeout; `dropped()` tells whether
    // the subscription fell behind and was dropped (then no more events come).
    bool Next(ContainerEvent* event, absl::Duration timeout);
    bool dropped() const;

   private:
    friend class EventHub;
    Subscription(EventHub* hub, size_t capacity) : hub_(hub), capacity_(capacity) {}

    EventHub* hub_;
    const size_t capacity_;
    mutable absl::Mutex mu_;
    std::deque<ContainerEvent> queue_ ABSL_GUARDED_BY(mu_);
    bool dropped_ ABSL_GUARDED_BY(mu_) = false;
  };

  EventHub() = default;
  EventHub(const EventHub&) = delete;
  EventHub& operator=(const EventHub&) = delete;

  std::unique_ptr<Subscription> Subscribe(size_t capacity = 4096) ABSL_LOCKS_EXCLUDED(mu_);
  // Never blocks on a subscriber.
  void Publish(const ContainerEvent& event) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Unsubscribe(Subscription* subscription) ABSL_LOCKS_EXCLUDED(mu_);

  absl::Mutex mu_;
  std::vector<Subscription*> subscriptions_ ABSL_GUARDED_BY(mu_);
};

// Tells when a container's monitor writes its exit file: one inotify instance with a watch
// per bundle directory (the file is renamed into place, so IN_MOVED_TO), read by a thread of
// its own that calls `on_exit(container id)`.
class ExitWatcher {
 public:
  explicit ExitWatcher(std::function<void(const std::string& container_id)> on_exit);
  ~ExitWatcher();
  ExitWatcher(const ExitWatcher&) = delete;
  ExitWatcher& operator=(const ExitWatcher&) = delete;

  absl::Status Start();
  absl::Status Watch(const std::string& container_id, const std::string& bundle)
      ABSL_LOCKS_EXCLUDED(mu_);
  void Unwatch(const std::string& container_id) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Loop();

  std::function<void(const std::string&)> on_exit_;
  UniqueFd inotify_;
  UniqueFd stop_;  // an eventfd that ends the loop
  std::thread thread_;
  absl::Mutex mu_;
  absl::flat_hash_map<int, std::string> ids_ ABSL_GUARDED_BY(mu_);      // watch -> container
  absl::flat_hash_map<std::string, int> watches_ ABSL_GUARDED_BY(mu_);  // container -> watch
};

}  // namespace crib::container
