// Resource usage of one cgroup, read from its files: CPU time, memory (with the working set
// kubelet evicts by), swap, processes and, on v2, pressure stall information. Plain functions
// over directories, so that they read fixture files as well as the live tree; nothing here
// remembers a previous sample (rates are the caller's business) or decides which cgroup to read.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "cgroup/layout.h"
#include "common/unique_fd.h"

namespace crib::cgroup {

struct CpuStats {
  uint64_t usage_ns = 0;  // cumulative, all cores
  uint64_t user_ns = 0;
  uint64_t system_ns = 0;
  uint64_t periods = 0;  // CFS enforcement periods, and those throttled
  uint64_t throttled_periods = 0;
  uint64_t throttled_ns = 0;
};

struct MemoryStats {
  uint64_t usage = 0;
  std::optional<uint64_t> limit;  // unset when unlimited
  uint64_t working_set = 0;       // usage minus inactive file pages, never below zero
  uint64_t rss = 0;               // anonymous memory and swap cache
  uint64_t cache = 0;
  uint64_t mapped_file = 0;
  uint64_t active_file = 0;
  uint64_t inactive_file = 0;
  uint64_t page_faults = 0;
  uint64_t major_page_faults = 0;
  uint64_t max_usage = 0;  // v1 only
  uint64_t failcnt = 0;    // v1 only
  uint64_t kernel = 0;
  uint64_t oom_kills = 0;
  std::optional<uint64_t> swap_usage;  // unset when the kernel accounts no swap
  std::optional<uint64_t> swap_limit;  // unset when unlimited
};

struct PsiData {
  uint64_t total_ns = 0;
  double avg10 = 0, avg60 = 0, avg300 = 0;
};

struct Psi {
  std::optional<PsiData> some;
  std::optional<PsiData> full;
};

struct CgroupStats {
  CpuStats cpu;
  MemoryStats memory;
  uint64_t pids = 0;
  std::optional<uint64_t> pids_limit;              // unset when unlimited
  std::optional<Psi> cpu_psi, memory_psi, io_psi;  // v2 only
};

// Memory above this counts as unlimited: v1 reports PAGE_COUNTER_MAX rounded to pages, not
// INT64_MAX (cAdvisor's and containerd's threshold).
inline constexpr uint64_t kUnlimitedMemory = uint64_t{1} << 62;

// "key value" lines (memory.stat, cpu.stat, memory.oom_control); values that are not numbers
// are skipped.
absl::flat_hash_map<std::string, uint64_t> ParseFlatKeyed(absl::string_view text);

// One pressure file: "some avg10=0.00 avg60=0.00 avg300=0.00 total=123" (total in
// microseconds, returned in nanoseconds), and an optional "full" line.
absl::StatusOr<Psi> ParsePsi(absl::string_view text);

// A limit file: a number, or "max" (v2) for none. v1's near-INT64_MAX values are numbers here;
// callers compare with kUnlimitedMemory.
absl::StatusOr<std::optional<uint64_t>> ParseLimit(absl::string_view text);

// What to read. kCri: only what a CRI ContainerStats carries (CPU time; memory usage, limit,
// working set, rss, page faults; swap; pressure), a third of the files on v1: ListContainerStats
// reads every container's. kAll: everything above (metrics, pod stats).
enum class StatsDetail { kAll, kCri };

// The v1 directories of one cgroup, one per controller; an empty one is not read.
struct V1Dirs {
  std::string cpuacct;
  std::string cpu;
  std::string memory;
  std::string pids;
};

// Reads a v1 cgroup. NotFound when its cpuacct or memory directory does not exist.
// `clock_ticks` is USER_HZ, the unit of cpuacct.stat.
absl::StatusOr<CgroupStats> ReadStatsV1(const V1Dirs& dirs, uint64_t clock_ticks,
                                        StatsDetail detail = StatsDetail::kAll);

// Reads a v2 cgroup directory. NotFound when it does not exist.
absl::StatusOr<CgroupStats> ReadStatsV2(const std::string& dir,
                                        StatsDetail detail = StatsDetail::kAll);

// The directories of one cgroup that a kCri read opens its files in (v1: cpuacct and memory;
// v2: the cgroup's own), opened once by StatsReader::Open and kept by the caller between reads:
// a read then opens its files relative to them instead of walking the cgroup's path again (on
// v1 the two walks are ~12 us of a container's ~60). An open directory keeps a removed cgroup's
// kernel structures alive until it is closed: whoever keeps one closes it once the cgroup is
// gone (a read of a removed cgroup is NotFound).
//
// Its memory and swap limits are read once, when it is opened: they change only when the
// cgroup's owner sets them, and the owner opens it again then (the CRI's stats read every
// container's limit, two of the six files a v1 read would open otherwise).
class OpenedCgroup {
 public:
  // v1: memory.limit_in_bytes and memory.memsw.limit_in_bytes (memory and swap together);
  // v2: memory.max and memory.swap.max. Unset when unlimited or absent.
  struct Limits {
    std::optional<uint64_t> memory;
    std::optional<uint64_t> swap_file;
    bool swap_accounting = false;  // the swap files exist (v1: memsw, v2: memory.swap.*)
  };

 private:
  friend class StatsReader;
  std::string first_path_;  // v1: cpuacct; v2: the cgroup
  std::string memory_path_;
  UniqueFd first_, memory_;
  Limits limits_;
};

// Whether the machine has swap space now (SwapTotal of /proc/meminfo is not 0; true when that
// cannot be read).
bool MachineSwaps();

// Reads the cgroup at `path` (as the pod and container rooms name it, "/crib/<pod>/<ctr>")
// in this machine's layout: v2 on a unified machine, the v1 controllers otherwise.
class StatsReader {
 public:
  explicit StatsReader(Layout layout);
  absl::StatusOr<CgroupStats> Read(const std::string& path,
                                   StatsDetail detail = StatsDetail::kAll) const;

  // Opens what a kCri read of `path` needs and reads its limits; NotFound when the cgroup
  // does not exist.
  absl::StatusOr<std::unique_ptr<OpenedCgroup>> Open(const std::string& path) const;
  // A kCri read through the directories Open opened (NotFound once the cgroup is removed).
  // Without `machine_swaps` (MachineSwaps()), no page of it can be in swap: its swap usage
  // is 0 without a read.
  absl::StatusOr<CgroupStats> ReadOpened(const OpenedCgroup& cgroup, bool machine_swaps) const;

 private:
  absl::StatusOr<V1Dirs> V1DirsOf(const std::string& path) const;
  std::string UnifiedDirOf(const std::string& path) const;

  Layout layout_;
  uint64_t clock_ticks_;
};

}  // namespace crib::cgroup
