// cribd's resident memory: fewer malloc arenas than glibc gives a process with many threads (8
// per core, each holding its own free pages); after a burst of calls, and once a minute under
// steady calls, the heap's free pages given back to the kernel and the pages of code and
// read-only data taken out of the page tables, so that what stays resident is what the calls
// of the moment use (a burst leaves the heap at its peak, and start-up, pulls and creations
// leave every page of code they touched mapped, otherwise).
#pragma once

#include <cstddef>
#include <cstdint>

namespace crib::heap {

// Caps glibc's malloc arenas at `arenas` unless MALLOC_ARENA_MAX is set. Before any thread.
void LimitArenas(int arenas);

// A served call ended (from any thread; lock-free).
void NoteActivity();

// Takes out of this process's page tables the resident pages of each private, read-only file
// mapping that holds no page of its own (code and read-only data of the binary and its
// libraries; not relocated data made read-only after the relocations, nor a page a debugger
// wrote a breakpoint into). The pages stay in the page cache: the next touch maps them again
// (a minor fault) from the same file. Returns the KiB that were resident in those mappings.
size_t DropFileMappedPages();

// Called at a steady pace (about once a second) from one thread: gives back the heap's free
// pages (malloc_trim) and drops the file-mapped pages (DropFileMappedPages) when there was
// activity since the last trim and none since the previous call, or when there was activity
// in `busy_ticks` calls since the last trim (calls that never pause, as kubelet's each second).
// Returns whether it trimmed.
class IdleTrimmer {
 public:
  explicit IdleTrimmer(int busy_ticks = 60) : busy_ticks_(busy_ticks) {}

  bool Tick();

 private:
  int busy_ticks_;
  int busy_since_trim_ = 0;  // calls of Tick that saw activity since the last trim
  uint64_t seen_ = 0;        // the activity count at the previous Tick
  uint64_t trimmed_ = 0;     // the activity count at the last trim
};

}  // namespace crib::heap
