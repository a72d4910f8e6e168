// Container lifecycle events for GetContainerEvents (kubelet's evented PLEG): created,
// started, stopped and deleted, published by the container room as they happen (stopped is
// driven by the monitors' exit files, seen through inotify, not by polling). Any number of
// subscribers; each has a bounded queue, and one that falls behind is dropped (its stream ends
// and the client relists), so a slow subscriber never blocks the runtime.
#pragma once

#include <sys/types.h>

#include <cstddef>
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

// Tells when a container ends: its monitor renames the exit file into the bundle (one inotify
// watch per bundle directory, IN_MOVED_TO) or the monitor itself is gone (a pidfd of it, for
// a monitor killed before it could write the file). A thread of its own waits for both and
// calls `on_exit(container id)`, which records the exit and returns whether it did.
//
// It also tells the lists which records they may take as they are: a container watched both
// ways since a moment its exit file did not exist (`Watching`) has not ended without
// `on_exit` being called for it, as long as nothing waits to be read (`Quiet`).
class ExitWatcher {
 public:
  explicit ExitWatcher(std::function<bool(const std::string& container_id)> on_exit);
  ~ExitWatcher();
  ExitWatcher(const ExitWatcher&) = delete;
  ExitWatcher& operator=(const ExitWatcher&) = delete;

  absl::Status Start();
  // The exit file's watch.
  absl::Status Watch(const std::string& container_id, const std::string& bundle)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The monitor's, once the container is recorded: `Watching(container_id)` from then on if
  // the exit file's watch is in place, the monitor (pid and start time) still runs and the
  // exit file is not there yet. Best effort: a container not watched this way is looked at
  // by each list (a kernel without pidfd_open, or a quarter of the descriptor limit in use).
  void WatchMonitor(const std::string& container_id, const std::string& bundle, pid_t pid,
                    uint64_t start_time) ABSL_LOCKS_EXCLUDED(mu_);
  void Unwatch(const std::string& container_id) ABSL_LOCKS_EXCLUDED(mu_);

  // True when every exit the kernel has told of so far has gone through `on_exit`: nothing
  // waits to be read and no `on_exit` call is under way. A list asks before it reads the
  // records; what ends later is the next list's news.
  bool Quiet() const ABSL_LOCKS_EXCLUDED(mu_);
  // The container's record shows its end without anyone looking at its files (see above).
  bool Watching(const std::string& container_id) const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Watched {
    int wd = -1;         // the bundle's inotify watch
    UniqueFd pidfd;      // the monitor's, in the epoll set; invalid when not (or no longer) there
    uint64_t token = 0;  // the pidfd's epoll data
  };

  void Loop();
  void ForgetMonitor(Watched& watched) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  std::function<bool(const std::string&)> on_exit_;
  // pidfds held at most: a quarter of the descriptors (the stats keep an eighth for cgroups)
  const size_t max_monitors_;
  UniqueFd epoll_;
  UniqueFd inotify_;
  UniqueFd stop_;  // an eventfd that ends the loop
  std::thread thread_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<int, std::string> ids_ ABSL_GUARDED_BY(mu_);            // watch -> container
  absl::flat_hash_map<uint64_t, std::string> monitors_ ABSL_GUARDED_BY(mu_);  // token -> container
  absl::flat_hash_map<std::string, Watched> watches_ ABSL_GUARDED_BY(mu_);
  uint64_t next_token_ ABSL_GUARDED_BY(mu_) = kFirstMonitorToken;
  bool busy_ ABSL_GUARDED_BY(mu_) = false;  // events read and not yet all handled

  static constexpr uint64_t kInotifyToken = 0, kStopToken = 1, kFirstMonitorToken = 2;
};

}  // namespace crib::container
