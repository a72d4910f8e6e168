#include "container/events.h"

#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/logging.h"
#include "common/process.h"
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

ExitWatcher::ExitWatcher(std::function<bool(const std::string&)> on_exit)
    : on_exit_(std::move(on_exit)), max_monitors_(ShareOfOpenFiles(4, 65536)) {}

ExitWatcher::~ExitWatcher() {
  if (thread_.joinable()) {
    const uint64_t one = 1;
    (void)!::write(stop_.get(), &one, sizeof(one));
    thread_.join();
  }
}

absl::Status ExitWatcher::Start() {
  epoll_.Reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_) return ErrnoStatus(errno, "epoll_create1 for container exits");
  inotify_.Reset(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!inotify_) return ErrnoStatus(errno, "inotify_init1 for container exits");
  stop_.Reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop_) return ErrnoStatus(errno, "eventfd");
  for (auto [fd, token] : {std::pair{inotify_.get(), kInotifyToken}, {stop_.get(), kStopToken}}) {
    struct epoll_event event = {};
    event.events = EPOLLIN;
    event.data.u64 = token;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &event) != 0) {
      return ErrnoStatus(errno, "epoll_ctl for container exits");
    }
  }
  thread_ = std::thread([this] { Loop(); });
  return absl::OkStatus();
}

absl::Status ExitWatcher::Watch(const std::string& container_id, const std::string& bundle) {
  const int wd = ::inotify_add_watch(inotify_.get(), bundle.c_str(), IN_MOVED_TO | IN_ONLYDIR);
  if (wd < 0) return ErrnoStatus(errno, absl::StrCat("watch ", bundle, " for the exit file"));
  absl::MutexLock lock(&mu_);
  ids_[wd] = container_id;
  watches_[container_id].wd = wd;
  return absl::OkStatus();
}

void ExitWatcher::WatchMonitor(const std::string& container_id, const std::string& bundle,
                               pid_t pid, uint64_t start_time) {
  {
    absl::MutexLock lock(&mu_);
    if (monitors_.size() >= max_monitors_) return;  // looked at by the lists instead
  }
  UniqueFd pidfd = OpenProcessFd(pid, start_time);
  if (!pidfd) return;
  const std::string exit_file = absl::StrCat(bundle, "/", runtime::kExitFile);
  absl::MutexLock lock(&mu_);
  auto it = watches_.find(container_id);
  if (it == watches_.end() || it->second.pidfd) return;
  // With the file's watch in place: a file there now came before it and was not seen.
  if (::access(exit_file.c_str(), F_OK) == 0 || errno != ENOENT) return;
  const uint64_t token = next_token_++;
  struct epoll_event event = {};
  event.events = EPOLLIN;
  event.data.u64 = token;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, pidfd.get(), &event) != 0) {
    spdlog::debug("container {}: watch crib-monitor {}: {}", container_id.substr(0, 12), pid,
                  std::strerror(errno));
    return;
  }
  it->second.pidfd = std::move(pidfd);
  it->second.token = token;
  monitors_[token] = container_id;
}

void ExitWatcher::ForgetMonitor(Watched& watched) {
  if (!watched.pidfd) return;
  (void)::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, watched.pidfd.get(), nullptr);
  watched.pidfd.Reset();
  monitors_.erase(watched.token);
}

void ExitWatcher::Unwatch(const std::string& container_id) {
  absl::MutexLock lock(&mu_);
  auto it = watches_.find(container_id);
  if (it == watches_.end()) return;
  if (it->second.wd >= 0) {
    ::inotify_rm_watch(inotify_.get(), it->second.wd);
    ids_.erase(it->second.wd);
  }
  ForgetMonitor(it->second);
  watches_.erase(it);
}

bool ExitWatcher::Quiet() const {
  // In this order: events read before the poll were read with busy_ set, and busy_ is cleared
  // only once they are handled.
  struct pollfd ready = {epoll_.get(), POLLIN, 0};
  if (::poll(&ready, 1, 0) != 0) return false;
  absl::MutexLock lock(&mu_);
  return !busy_;
}

bool ExitWatcher::Watching(const std::string& container_id) const {
  absl::MutexLock lock(&mu_);
  auto it = watches_.find(container_id);
  return it != watches_.end() && it->second.pidfd.valid();
}

void ExitWatcher::Loop() {
  alignas(struct inotify_event) char buf[16 * 1024];
  for (;;) {
    struct epoll_event events[64];
    const int n = ::epoll_wait(epoll_.get(), events, 64, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      spdlog::error("events: wait for container exits: {}", std::strerror(errno));
      return;
    }
    std::vector<std::string> exited;
    {
      absl::MutexLock lock(&mu_);
      busy_ = true;
      for (int i = 0; i < n; ++i) {
        const uint64_t token = events[i].data.u64;
        if (token == kStopToken) return;
        if (token != kInotifyToken) {  // a monitor is gone
          auto it = monitors_.find(token);
          if (it == monitors_.end()) continue;
          const std::string id = it->second;
          exited.push_back(id);
          if (auto w = watches_.find(id); w != watches_.end()) ForgetMonitor(w->second);
          continue;
        }
        for (;;) {
          const ssize_t got = ::read(inotify_.get(), buf, sizeof(buf));
          if (got <= 0) break;  // EAGAIN: all read
          for (ssize_t at = 0; at < got;) {
            const auto* e = reinterpret_cast<const struct inotify_event*>(buf + at);
            at += static_cast<ssize_t>(sizeof(struct inotify_event) + e->len);
            if ((e->mask & IN_Q_OVERFLOW) != 0) {
              // Exits were lost: no record is taken as it is any more; the lists look.
              spdlog::warn("events: the exit watch overflowed; lists look at every container");
              for (auto& [id, watched] : watches_) ForgetMonitor(watched);
              continue;
            }
            if (e->len == 0 || std::strcmp(e->name, runtime::kExitFile) != 0) continue;
            auto it = ids_.find(e->wd);
            if (it != ids_.end()) exited.push_back(it->second);
          }
        }
      }
    }
    std::vector<std::string> unrecorded;
    for (const std::string& id : exited) {
      if (!on_exit_(id)) unrecorded.push_back(id);
    }
    absl::MutexLock lock(&mu_);
    for (const std::string& id : unrecorded) {
      // The record still says it runs: the lists look at it until one records the exit.
      if (auto it = watches_.find(id); it != watches_.end()) ForgetMonitor(it->second);
    }
    busy_ = false;
  }
}

}  // namespace crib::container
