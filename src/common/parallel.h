// Work over many independent items spread over the machine's cores for the length of one call:
// the calling thread and up to kMaxHelpers short-lived threads take the items in small batches
// from a shared counter.
#pragma once

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <system_error>
#include <thread>
#include <vector>

namespace crib {

inline constexpr size_t kMaxHelpers = 3;

// The CPUs this thread may run on (its affinity mask), at least 1.
inline size_t UsableCpus() {
  cpu_set_t set;
  if (::sched_getaffinity(0, sizeof(set), &set) != 0) return 1;
  return std::max(1, CPU_COUNT(&set));
}

// Calls `fn(i)` once for each i in [0, n). Helper threads join the calling thread when there
// are at least 2 * `per_thread` items: one for each further `per_thread` items, up to the
// usable CPUs less one and kMaxHelpers (a helper that cannot be started leaves its share to
// the others). `fn` must be safe to call from several threads at once for different i.
// Returns when every call has returned.
template <typename Fn>
void ParallelFor(size_t n, size_t per_thread, const Fn& fn) {
  const size_t wanted = n / std::max<size_t>(1, per_thread);  // the calling thread included
  const size_t helpers = wanted > 1 ? std::min({kMaxHelpers, UsableCpus() - 1, wanted - 1}) : 0;
  if (helpers == 0) {
    for (size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  constexpr size_t kBatch = 8;
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (;;) {
      const size_t first = next.fetch_add(kBatch, std::memory_order_relaxed);
      if (first >= n) return;
      const size_t last = std::min(n, first + kBatch);
      for (size_t i = first; i < last; ++i) fn(i);
    }
  };
  std::vector<std::thread> threads;
  threads.reserve(helpers);
  for (size_t t = 0; t < helpers; ++t) {
    try {
      threads.emplace_back(work);
    } catch (const std::system_error&) {
      break;
    }
  }
  work();
  for (std::thread& thread : threads) thread.join();
}

}  // namespace crib
