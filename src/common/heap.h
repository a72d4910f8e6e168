// cribd's heap: fewer malloc arenas than glibc gives a process with many threads (8 per core,
// each holding its own free pages), and the free pages given back to the kernel once the
// calls have stopped (a burst of calls leaves the heap at its peak otherwise).
#pragma once

#include <cstdint>

namespace crib::heap {

// Caps glibc's malloc arenas at `arenas` unless MALLOC_ARENA_MAX is set. Before any thread.
void LimitArenas(int arenas);

// A served call ended (from any thread; lock-free).
void NoteActivity();

// Called at a steady pace (about once a second) from one thread: returns the heap's free
// pages to the kernel (malloc_trim) when there was activity since the last trim and none since
// the previous call. Returns whether it trimmed.
class IdleTrimmer {
 public:
  bool Tick();

 private:
  uint64_t seen_ = 0;     // the activity count at the previous Tick
  uint64_t trimmed_ = 0;  // the activity count at the last trim
};

}  // namespace crib::heap
