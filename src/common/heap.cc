#include "common/heap.h"

#include <malloc.h>
#include <sys/mman.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>

namespace crib::heap {
namespace {

std::atomic<uint64_t> activity{0};

// A mapping of /proc/self/smaps as far as DropFileMappedPages needs it.
struct Mapping {
  unsigned long start = 0;
  unsigned long end = 0;
  bool candidate = false;  // private, read-only, of a file
  size_t rss_kib = 0;
  bool own_pages = true;  // until its Anonymous line says none
};

// "55d0c0a00000-55d0c0b00000 r-xp 00001000 08:01 1234   /usr/lib/x.so": a mapping's first line
// (the lines of its fields start with a capital: "Rss:", "Anonymous:").
bool ParseMappingLine(const char* line, Mapping* mapping) {
  char perms[5] = {};
  int name_at = 0;
  if (std::sscanf(line, "%lx-%lx %4s %*s %*s %*s %n", &mapping->start, &mapping->end, perms,
                  &name_at) != 3) {
    return false;
  }
  mapping->candidate =
      perms[0] == 'r' && perms[1] == '-' && perms[3] == 'p' && name_at > 0 && line[name_at] == '/';
  mapping->rss_kib = 0;
  mapping->own_pages = true;
  return true;
}

size_t Drop(const Mapping& mapping) {
  if (!mapping.candidate || mapping.own_pages || mapping.rss_kib == 0) return 0;
  if (::madvise(reinterpret_cast<void*>(mapping.start), mapping.end - mapping.start,
                MADV_DONTNEED) != 0) {
    return 0;
  }
  return mapping.rss_kib;
}

}  // namespace

void LimitArenas(int arenas) {
  if (std::getenv("MALLOC_ARENA_MAX") != nullptr) return;
  ::mallopt(M_ARENA_MAX, arenas);
}

void NoteActivity() { activity.fetch_add(1, std::memory_order_relaxed); }

size_t DropFileMappedPages() {
  std::FILE* smaps = std::fopen("/proc/self/smaps", "re");
  if (smaps == nullptr) return 0;
  size_t dropped = 0;
  Mapping mapping;
  bool have = false;
  char* line = nullptr;
  size_t capacity = 0;
  while (::getline(&line, &capacity, smaps) > 0) {
    if (line[0] >= 'A' && line[0] <= 'Z') {
      if (!have || !mapping.candidate) continue;
      size_t kib = 0;
      if (std::sscanf(line, "Rss: %zu kB", &kib) == 1) {
        mapping.rss_kib = kib;
      } else if (std::sscanf(line, "Anonymous: %zu kB", &kib) == 1) {
        mapping.own_pages = kib != 0;
      }
      continue;
    }
    if (have) dropped += Drop(mapping);
    have = ParseMappingLine(line, &mapping);
  }
  if (have) dropped += Drop(mapping);
  std::free(line);
  std::fclose(smaps);
  return dropped;
}

bool IdleTrimmer::Tick() {
  const uint64_t now = activity.load(std::memory_order_relaxed);
  const bool quiet = now == seen_;
  seen_ = now;
  if (now == trimmed_) return false;  // nothing since the last trim
  if (!quiet && ++busy_since_trim_ < busy_ticks_) return false;
  trimmed_ = now;
  busy_since_trim_ = 0;
  ::malloc_trim(0);
  DropFileMappedPages();
  return true;
}

}  // namespace crib::heap
