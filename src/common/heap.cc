#include "common/heap.h"

#include <malloc.h>

#include <atomic>
#include <cstdlib>

namespace crib::heap {
namespace {

std::atomic<uint64_t> activity{0};

}  // namespace

void LimitArenas(int arenas) {
  if (std::getenv("MALLOC_ARENA_MAX") != nullptr) return;
  ::mallopt(M_ARENA_MAX, arenas);
}

void NoteActivity() { activity.fetch_add(1, std::memory_order_relaxed); }

bool IdleTrimmer::Tick() {
  const uint64_t now = activity.load(std::memory_order_relaxed);
  const bool quiet = now == seen_;
  seen_ = now;
  if (!quiet || now == trimmed_) return false;
  trimmed_ = now;
  ::malloc_trim(0);
  return true;
}

}  // namespace crib::heap
