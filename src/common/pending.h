// Work handed to a thread of its own while the caller goes on with steps that do not need it
// (RunPodSandbox's network, CreateContainer's cgroup): Start runs it there (or at once, here,
// when no thread can be started), Join waits for it and gives its outcome. The destructor
// waits too, so an undo that joins it may run after the caller's steps have returned.
#pragma once

#include <functional>
#include <system_error>
#include <thread>
#include <utility>

namespace crib {

template <typename T>
class Pending {
 public:
  Pending() = default;
  Pending(const Pending&) = delete;
  Pending& operator=(const Pending&) = delete;
  ~Pending() { Wait(); }

  // Once at most.
  void Start(std::function<T()> work) {
    work_ = std::move(work);
    started_ = true;
    try {
      thread_ = std::thread([this] { result_ = work_(); });
    } catch (const std::system_error&) {
      result_ = work_();
    }
  }
  bool started() const { return started_; }
  // The work's outcome, once it has finished; T's default before Start.
  const T& Join() {
    Wait();
    return result_;
  }

 private:
  void Wait() {
    if (thread_.joinable()) thread_.join();
  }

  std::function<T()> work_;
  T result_{};
  bool started_ = false;
  std::thread thread_;
};

}  // namespace crib
