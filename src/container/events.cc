#include "container/events.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/logging.h"
#include "runtime/monitor/protocol.h"

namespace crib::container {

EventHub::Subscription::~Subscription() { hub_->Unsubscribe(this); }

bool EventHub::Subscription::Next(ContainerEvent* event, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return !queue_.empty() || dropped_; };
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  if (queue_.empty()) return false;
  *event = std::move(queue_.front());
  queue_.pop_front();
  return true;
}

bool EventHub::Subscription::dropped() const {
  absl::MutexLock lock(&mu_);
  return dropped_ && queue_.empty();
}

std::unique_ptr<EventHub::Subscription> EventHub::Subscribe(size_t capacity) {
  std::unique_ptr<Subscription> subscription(new Subscription(this, capacity));
  absl::MutexLock lock(&mu_);
  subscriptions_.push_back(subscription.get());
  return subscription;
}

void EventHub::Unsubscribe(Subscription* subscription) {
  absl::MutexLock lock(&mu_);
  subscriptions_.erase(std::remove(subscriptions_.begin(), subscriptions_.end(), subscription),
                       subscriptions_.end());
}

void EventHub::Publish(const ContainerEvent& event) {
  absl::MutexLock lock(&mu_);
  for (Subscription* s : subscriptions_) {
    absl::MutexLock queue_lock(&s->mu_);
    if (s->dropped_) continue;
    if (s->queue_.size() >= s->capacity_) {
      // Behind by a whole queue: it ends, and its client relists.
      s->dropped_ = true;
      spdlog::warn("events: a GetContainerEvents subscriber fell {} events behind; dropped",
                   s->capacity_);
      continue;
    }
    s->queue_.push_back(event);
  }
}

ExitWatcher::ExitWatcher(std::function<void(const std::string&)> on_exit)
    : on_exit_(std::move(on_exit)) {}

ExitWatcher::~ExitWatcher() {
  if (thread_.joinable()) {
    const uint64_t one = 1;
    (void)!::write(stop_.get(), &one, sizeof(one));
    thread_.join();
  }
}

absl::Status ExitWatcher::Start() {
  inotify_.Reset(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!inotify_) return ErrnoStatus(errno, "inotify_init1 for container exits");
  stop_.Reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop_) return ErrnoStatus(errno, "eventfd");
  thread_ = std::thread([this] { Loop(); });
  return absl::OkStatus();
}

absl::Status ExitWatcher::Watch(const std::string& container_id, const std::string& bundle) {
  const int wd = ::inotify_add_watch(inotify_.get(), bundle.c_str(), IN_MOVED_TO | IN_ONLYDIR);
  if (wd < 0) return ErrnoStatus(errno, absl::StrCat("watch ", bundle, " for the exit file"));
  absl::MutexLock lock(&mu_);
  ids_[wd] = container_id;
  watches_[container_id] = wd;
  return absl::OkStatus();
}

void ExitWatcher::Unwatch(const std::string& container_id) {
  absl::MutexLock lock(&mu_);
  auto it = watches_.find(container_id);
  if (it == watches_.end()) return;
  ::inotify_rm_watch(inotify_.get(), it->second);
  ids_.erase(it->second);
  watches_.erase(it);
}

void ExitWatcher::Loop() {
  alignas(struct inotify_event) char buf[16 * 1024];
  for (;;) {
    struct pollfd fds[2] = {{inotify_.get(), POLLIN, 0}, {stop_.get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      spdlog::error("events: poll the exit watch: {}", std::strerror(errno));
      return;
    }
    if (fds[1].revents != 0) return;
    const ssize_t n = ::read(inotify_.get(), buf, sizeof(buf));
    if (n <= 0) continue;
    std::vector<std::string> exited;
    {
      absl::MutexLock lock(&mu_);
      for (ssize_t at = 0; at < n;) {
        const auto* e = reinterpret_cast<const struct inotify_event*>(buf + at);
        at += static_cast<ssize_t>(sizeof(struct inotify_event) + e->len);
        if (e->len == 0 || std::strcmp(e->name, runtime::kExitFile) != 0) continue;
        auto it = ids_.find(e->wd);
        if (it != ids_.end()) exited.push_back(it->second);
      }
    }
    for (const std::string& id : exited) on_exit_(id);
  }
}

}  // namespace crib::container
