// The cgroup usage readers on fixture directories written as the kernel writes its files (v1:
// cpuacct, cpu, memory, pids; v2: one directory), and their parsers on edge cases.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cgroup/stats.h"
#include "common/files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "support/status_matchers.h"
#include "support/temp_dir.h"

namespace crib::cgroup {
namespace {

using ::crib::testing::IsOk;
using ::crib::testing::StatusIs;
using ::crib::testing::TempDir;
using ::testing::Optional;

void Write(const std::string& dir, const std::string& file, const std::string& text) {
  std::filesystem::create_directories(dir);
  ASSERT_THAT(WriteFileAtomic(absl::StrCat(dir, "/", file), text), IsOk());
}

// A v1 leaf cgroup: 2.5 s of CPU, 100 MiB used of which 30 MiB inactive file, a 256 MiB limit.
V1Dirs MakeV1(const std::string& root, bool with_swap) {
  V1Dirs d{root + "/cpuacct", root + "/cpu", root + "/memory", root + "/pids"};
  Write(d.cpuacct, "cpuacct.usage", "2500000000\n");
  Write(d.cpuacct, "cpuacct.stat", "user 150\nsystem 80\n");
  Write(d.cpu, "cpu.stat",
        "nr_periods 10\nnr_throttled 3\nthrottled_time 4000000\nnr_bursts 0\nburst_time 0\n");
  Write(d.memory, "memory.usage_in_bytes", "104857600\n");
  Write(d.memory, "memory.limit_in_bytes", "268435456\n");
  Write(d.memory, "memory.max_usage_in_bytes", "120000000\n");
  Write(d.memory, "memory.failcnt", "7\n");
  Write(d.memory, "memory.kmem.usage_in_bytes", "2000000\n");
  Write(d.memory, "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n");
  // The per-cgroup values differ from the totals to prove that the totals are read.
  Write(d.memory, "memory.stat",
        "cache 1\nrss 2\nmapped_file 3\npgfault 4\npgmajfault 5\ninactive_file 6\n"
        "active_file 7\nhierarchical_memory_limit 268435456\n"
        "total_cache 41943040\ntotal_rss 62914560\ntotal_rss_huge 0\ntotal_mapped_file 1048576\n"
        "total_pgfault 12345\ntotal_pgmajfault 67\ntotal_inactive_file 31457280\n"
        "total_active_file 10485760\ntotal_unevictable 0\n");
  if (with_swap) {
    Write(d.memory, "memory.memsw.usage_in_bytes", "110100480\n");  // 5 MiB of swap
    Write(d.memory, "memory.memsw.limit_in_bytes", "536870912\n");  // 256 MiB swap limit
  }
  Write(d.pids, "pids.current", "4\n");
  Write(d.pids, "pids.max", "max\n");
  return d;
}

TEST(CgroupStatsV1, ReadsCpuMemoryPidsFromAFixture) {
  TempDir dir;
  absl::StatusOr<CgroupStats> s = ReadStatsV1(MakeV1(dir.path(), /*with_swap=*/false), 100);
  ASSERT_THAT(s, IsOk());
  EXPECT_EQ(s->cpu.usage_ns, 2'500'000'000u);
  EXPECT_EQ(s->cpu.user_ns, 1'500'000'000u);  // 150 ticks of 10 ms
  EXPECT_EQ(s->cpu.system_ns, 800'000'000u);
  EXPECT_EQ(s->cpu.periods, 10u);
  EXPECT_EQ(s->cpu.throttled_periods, 3u);
  EXPECT_EQ(s->cpu.throttled_ns, 4'000'000u);
  const MemoryStats& m = s->memory;
  EXPECT_EQ(m.usage, 104857600u);
  EXPECT_THAT(m.limit, Optional(268435456u));
  EXPECT_EQ(m.working_set, 104857600u - 31457280u);  // usage - total_inactive_file
  EXPECT_EQ(m.inactive_file, 31457280u);
  EXPECT_EQ(m.active_file, 10485760u);
  EXPECT_EQ(m.rss, 62914560u);
  EXPECT_EQ(m.cache, 41943040u);
  EXPECT_EQ(m.mapped_file, 1048576u);
  EXPECT_EQ(m.page_faults, 12345u);
  EXPECT_EQ(m.major_page_faults, 67u);
  EXPECT_EQ(m.max_usage, 120000000u);
  EXPECT_EQ(m.failcnt, 7u);
  EXPECT_EQ(m.kernel, 2000000u);
  EXPECT_EQ(m.oom_kills, 2u);
  EXPECT_EQ(m.swap_usage, std::nullopt) << "no memsw files: no swap accounting";
  EXPECT_EQ(s->pids, 4u);
  EXPECT_EQ(s->pids_limit, std::nullopt);
  EXPECT_EQ(s->cpu_psi, std::nullopt);
}

// What a CRI ContainerStats carries, and no more files read: the rest stays zero.
TEST(CgroupStatsV1, CriDetailReadsWhatContainerStatsCarries) {
  TempDir dir;
  absl::StatusOr<CgroupStats> s =
      ReadStatsV1(MakeV1(dir.path(), /*with_swap=*/true), 100, StatsDetail::kCri);
  ASSERT_THAT(s, IsOk());
  EXPECT_EQ(s->cpu.usage_ns, 2'500'000'000u);
  const MemoryStats& m = s->memory;
  EXPECT_EQ(m.usage, 104857600u);
  EXPECT_THAT(m.limit, Optional(268435456u));
  EXPECT_EQ(m.working_set, 104857600u - 31457280u);
  EXPECT_EQ(m.rss, 62914560u);
  EXPECT_EQ(m.page_faults, 12345u);
  EXPECT_EQ(m.major_page_faults, 67u);
  EXPECT_THAT(m.swap_usage, Optional(5u << 20));
  EXPECT_EQ(s->cpu.user_ns, 0u);
  EXPECT_EQ(s->cpu.throttled_periods, 0u);
  EXPECT_EQ(m.max_usage, 0u);
  EXPECT_EQ(m.failcnt, 0u);
  EXPECT_EQ(m.kernel, 0u);
  EXPECT_EQ(m.oom_kills, 0u);
  EXPECT_EQ(s->pids, 0u);
}

TEST(CgroupStatsV1, SwapFromMemswAndUnlimitedMemory) {
  TempDir dir;
  V1Dirs d = MakeV1(dir.path(), /*with_swap=*/true);
  absl::StatusOr<CgroupStats> s = ReadStatsV1(d, 100);
  ASSERT_THAT(s, IsOk());
  EXPECT_THAT(s->memory.swap_usage, Optional(5u << 20));
  EXPECT_THAT(s->memory.swap_limit, Optional(256u << 20));
  // The kernel's "no limit" is PAGE_COUNTER_MAX in pages, not INT64_MAX.
  Write(d.memory, "memory.limit_in_bytes", "9223372036854771712\n");
  Write(d.memory, "memory.memsw.limit_in_bytes", "9223372036854771712\n");
  Write(d.pids, "pids.max", "128\n");
  s = ReadStatsV1(d, 100);
  ASSERT_THAT(s, IsOk());
  EXPECT_EQ(s->memory.limit, std::nullopt);
  EXPECT_EQ(s->memory.swap_limit, std::nullopt);
  EXPECT_THAT(s->pids_limit, Optional(128u));
}

TEST(CgroupStatsV1, WorkingSetNeverBelowZero) {
  TempDir dir;
  V1Dirs d = MakeV1(dir.path(), false);
  Write(d.memory, "memory.usage_in_bytes", "1000\n");  // less than total_inactive_file
  absl::StatusOr<CgroupStats> s = ReadStatsV1(d, 100);
  ASSERT_THAT(s, IsOk());
  EXPECT_EQ(s->memory.working_set, 0u);
}

// A file longer than one read (4 KiB) is read to its end: the keys after it count.
TEST(CgroupStatsV1, AMemoryStatLongerThanOneReadIsReadWhole) {
  TempDir dir;
  V1Dirs d = MakeV1(dir.path(), false);
  std::string stat;
  for (int i = 0; stat.size() < 3 * 4096 + 100; ++i) absl::StrAppend(&stat, "padding_", i, " 0\n");
  absl::StrAppend(&stat, "total_rss 777\ntotal_inactive_file 1000\n");
  Write(d.memory, "memory.stat", stat);
  absl::StatusOr<CgroupStats> s = ReadStatsV1(d, 100, StatsDetail::kCri);
  ASSERT_THAT(s, IsOk());
  EXPECT_EQ(s->memory.rss, 777u);
  EXPECT_EQ(s->memory.working_set, 104857600u - 1000u);
}

TEST(CgroupStatsV1, AMissingCgroupIsNotFoundAndGarbageIsDataLoss) {
  TempDir dir;
  V1Dirs gone{dir.path() + "/a", dir.path() + "/b", dir.path() + "/c", dir.path() + "/d"};
  EXPECT_THAT(ReadStatsV1(gone, 100), StatusIs(absl::StatusCode::kNotFound, ::testing::_));
  V1Dirs d = MakeV1(dir.path(), false);
  Write(d.cpuacct, "cpuacct.usage", "lots\n");
  EXPECT_THAT(ReadStatsV1(d, 100),
              StatusIs(absl::StatusCode::kDataLoss, ::testing::HasSubstr("cpuacct.usage")));
}

// A v2 cgroup as Linux 6.x writes it.
std::string MakeV2(const std::string& root) {
  const std::string d = root + "/pod/ctr";
  Write(d, "cpu.stat",
        "usage_usec 3000000\nuser_usec 2000000\nsystem_usec 1000000\nnice_usec 0\n"
        "core_sched.force_idle_usec 0\nnr_periods 20\nnr_throttled 5\nthrottled_usec 600000\n"
        "nr_bursts 0\nburst_usec 0\n");
  Write(d, "memory.current", "52428800\n");
  Write(d, "memory.max", "max\n");
  Write(d, "memory.peak", "60000000\n");
  Write(d, "memory.stat",
        "anon 41943040\nfile 10485760\nkernel 1048576\nkernel_stack 16384\nsock 0\n"
        "shmem 0\nfile_mapped 524288\nfile_dirty 0\nactive_anon 41943040\ninactive_anon 0\n"
        "active_file 2097152\ninactive_file 8388608\nunevictable 0\npgfault 999\n"
        "pgmajfault 9\n");
  Write(d, "memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n");
  Write(d, "memory.swap.current", "4096\n");
  Write(d, "memory.swap.max", "1048576\n");
  Write(d, "pids.current", "3\n");
  Write(d, "pids.max", "100\n");
  Write(d, "cpu.pressure",
        "some avg10=1.50 avg60=0.75 avg300=0.10 total=12345\n"
        "full avg10=0.00 avg60=0.00 avg300=0.00 total=678\n");
  Write(d, "memory.pressure",
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
        "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
  Write(d, "io.pressure", "some avg10=0.00 avg60=0.00 avg300=0.00 total=5\n");
  return d;
}

TEST(CgroupStatsV2, ReadsCpuMemorySwapPidsAndPressure) {
  TempDir dir;
  absl::StatusOr<CgroupStats> s = ReadStatsV2(MakeV2(dir.path()));
  ASSERT_THAT(s, IsOk());
  EXPECT_EQ(s->cpu.usage_ns, 3'000'000'000u);
  EXPECT_EQ(s->cpu.user_ns, 2'000'000'000u);
  EXPECT_EQ(s->cpu.system_ns, 1'000'000'000u);
  EXPECT_EQ(s->cpu.periods, 20u);
  EXPECT_EQ(s->cpu.throttled_periods, 5u);
  EXPECT_EQ(s->cpu.throttled_ns, 600'000'000u);
  const MemoryStats& m = s->memory;
  EXPECT_EQ(m.usage, 52428800u);
  EXPECT_EQ(m.limit, std::nullopt);
  EXPECT_EQ(m.working_set, 52428800u - 8388608u);
  EXPECT_EQ(m.rss, 41943040u);  // anon
  EXPECT_EQ(m.cache, 10485760u);
  EXPECT_EQ(m.mapped_file, 524288u);
  EXPECT_EQ(m.kernel, 1048576u);
  EXPECT_EQ(m.page_faults, 999u);
  EXPECT_EQ(m.major_page_faults, 9u);
  EXPECT_EQ(m.max_usage, 60000000u);
  EXPECT_EQ(m.oom_kills, 1u);
  EXPECT_THAT(m.swap_usage, Optional(4096u));
  EXPECT_THAT(m.swap_limit, Optional(1048576u));
  EXPECT_EQ(s->pids, 3u);
  EXPECT_THAT(s->pids_limit, Optional(100u));
  ASSERT_TRUE(s->cpu_psi.has_value());
  ASSERT_TRUE(s->cpu_psi->some.has_value());
  EXPECT_EQ(s->cpu_psi->some->total_ns, 12'345'000u);  // microseconds in the file
  EXPECT_DOUBLE_EQ(s->cpu_psi->some->avg10, 1.5);
  EXPECT_DOUBLE_EQ(s->cpu_psi->some->avg60, 0.75);
  ASSERT_TRUE(s->cpu_psi->full.has_value());
  EXPECT_EQ(s->cpu_psi->full->total_ns, 678'000u);
  ASSERT_TRUE(s->io_psi.has_value());
  EXPECT_FALSE(s->io_psi->full.has_value());
  EXPECT_EQ(s->io_psi->some->total_ns, 5'000u);
}

TEST(CgroupStatsV2, CriDetailReadsWhatContainerStatsCarries) {
  TempDir dir;
  absl::StatusOr<CgroupStats> s = ReadStatsV2(MakeV2(dir.path()), StatsDetail::kCri);
  ASSERT_THAT(s, IsOk());
  EXPECT_EQ(s->cpu.usage_ns, 3'000'000'000u);
  EXPECT_EQ(s->memory.working_set, 52428800u - 8388608u);
  EXPECT_EQ(s->memory.rss, 41943040u);
  EXPECT_EQ(s->memory.page_faults, 999u);
  EXPECT_THAT(s->memory.swap_usage, Optional(4096u));
  ASSERT_TRUE(s->cpu_psi.has_value());
  ASSERT_TRUE(s->memory_psi.has_value());
  EXPECT_EQ(s->memory.max_usage, 0u);
  EXPECT_EQ(s->memory.oom_kills, 0u);
  EXPECT_EQ(s->pids, 0u);
  EXPECT_EQ(s->pids_limit, std::nullopt);
}

TEST(CgroupStatsV2, ALimitAndAMissingCgroup) {
  TempDir dir;
  const std::string d = MakeV2(dir.path());
  Write(d, "memory.max", "268435456\n");
  absl::StatusOr<CgroupStats> s = ReadStatsV2(d);
  ASSERT_THAT(s, IsOk());
  EXPECT_THAT(s->memory.limit, Optional(268435456u));
  EXPECT_THAT(ReadStatsV2(dir.path() + "/pod/gone"),
              StatusIs(absl::StatusCode::kNotFound, ::testing::HasSubstr("gone")));
}

TEST(CgroupStatsParsers, LimitsPsiAndFlatKeyed) {
  auto limit = [](absl::string_view text) {
    absl::StatusOr<std::optional<uint64_t>> parsed = ParseLimit(text);
    EXPECT_THAT(parsed, IsOk()) << text;
    return parsed.ok() ? *parsed : std::optional<uint64_t>(999);
  };
  EXPECT_EQ(limit("max\n"), std::nullopt);
  EXPECT_EQ(limit("-1"), std::nullopt);
  EXPECT_THAT(limit("42\n"), Optional(42u));
  EXPECT_THAT(ParseLimit("lots"), StatusIs(absl::StatusCode::kDataLoss, ::testing::_));
  EXPECT_THAT(ParsePsi("full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"),
              StatusIs(absl::StatusCode::kDataLoss, ::testing::HasSubstr("some")));
  EXPECT_THAT(ParsePsi("some avg10=x avg60=0.00 avg300=0.00 total=0\n"),
              StatusIs(absl::StatusCode::kDataLoss, ::testing::HasSubstr("avg10")));
  EXPECT_THAT(ParsePsi("some avg10=0.00 total=0\n"),
              StatusIs(absl::StatusCode::kDataLoss, ::testing::HasSubstr("lacks")));
  const auto keyed = ParseFlatKeyed("a 1\nb two\nc 3\n\nd\n");
  EXPECT_EQ(keyed.size(), 2u);
  EXPECT_EQ(keyed.at("a"), 1u);
  EXPECT_EQ(keyed.at("c"), 3u);
}

// The live tree: the root cgroup, which every hierarchy has, reads back through StatsReader.
TEST(CgroupStatsReader, ReadsTheRootCgroupOfThisMachine) {
  absl::StatusOr<Layout> layout = DetectLayout();
  ASSERT_THAT(layout, IsOk());
  absl::StatusOr<CgroupStats> s = StatsReader(*layout).Read("/");
  ASSERT_THAT(s, IsOk());
  EXPECT_GT(s->cpu.usage_ns, 0u);
  // v2's root has no memory.current; v1's root counts every page in use.
  if (layout->mode != Mode::kUnified) {
    EXPECT_GT(s->memory.usage, 0u);
  }
  EXPECT_THAT(StatsReader(*layout).Read("/crib-no-such-cgroup"),
              StatusIs(absl::StatusCode::kNotFound, ::testing::_));
}

// SwapTotal against the swap areas the kernel lists as in use.
TEST(CgroupStatsReader, MachineSwapsWhenASwapAreaIsInUse) {
  std::ifstream swaps("/proc/swaps");
  std::string line;
  int areas = -1;  // the header line
  while (std::getline(swaps, line)) {
    if (!line.empty()) ++areas;
  }
  ASSERT_GE(areas, 0) << "/proc/swaps has no header";
  EXPECT_EQ(MachineSwaps(), areas > 0);
}

// A cgroup of this machine read through its directories kept open, before and after it is
// removed: the kept directories must tell a removed cgroup as NotFound (the stats room closes
// them then), not read on as if it were there.
TEST(CgroupStatsReader, ReadsThroughKeptDirectoriesUntilTheCgroupIsRemoved) {
  absl::StatusOr<Layout> layout = DetectLayout();
  ASSERT_THAT(layout, IsOk());
  const std::string name = absl::StrCat("/crib-opened-test-", ::getpid());
  std::vector<std::string> dirs;
  if (layout->mode == Mode::kUnified) {
    dirs.push_back(layout->unified_path + name);
  } else {
    for (const char* controller : {"cpuacct", "memory"}) {
      const std::string mount = ControllerMount(*layout, controller);
      ASSERT_FALSE(mount.empty()) << controller;
      if (std::find(dirs.begin(), dirs.end(), mount + name) == dirs.end()) {
        dirs.push_back(mount + name);
      }
    }
  }
  auto remove = [&] {
    for (const std::string& dir : dirs) ::rmdir(dir.c_str());
  };
  for (const std::string& dir : dirs) ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0) << dir;

  const StatsReader reader(*layout);
  absl::StatusOr<std::unique_ptr<OpenedCgroup>> opened = reader.Open(name);
  if (!opened.ok()) remove();
  ASSERT_THAT(opened, IsOk());
  absl::StatusOr<CgroupStats> before = reader.ReadOpened(**opened, MachineSwaps());
  EXPECT_THAT(before, IsOk());
  // As if the machine had no swap: the swap usage is 0 without a read of it.
  absl::StatusOr<CgroupStats> swapless = reader.ReadOpened(**opened, /*machine_swaps=*/false);
  EXPECT_THAT(swapless, IsOk());
  absl::StatusOr<CgroupStats> by_path = reader.Read(name, StatsDetail::kCri);
  EXPECT_THAT(by_path, IsOk());
  if (before.ok() && swapless.ok() && by_path.ok()) {
    EXPECT_EQ(before->memory.limit, by_path->memory.limit);
    EXPECT_EQ(before->cpu.usage_ns, by_path->cpu.usage_ns) << "an empty cgroup uses no CPU";
    // An empty cgroup has nothing in swap; the swap fields are there with swap accounting.
    EXPECT_EQ(before->memory.swap_usage, by_path->memory.swap_usage);
    EXPECT_EQ(swapless->memory.swap_usage, by_path->memory.swap_usage);
    EXPECT_EQ(before->memory.swap_limit, by_path->memory.swap_limit);
    EXPECT_EQ(swapless->memory.swap_limit, by_path->memory.swap_limit);
  }

  remove();
  for (const std::string& dir : dirs) ASSERT_NE(::access(dir.c_str(), F_OK), 0) << dir;
  EXPECT_THAT(reader.ReadOpened(**opened, MachineSwaps()),
              StatusIs(absl::StatusCode::kNotFound, ::testing::_));
  EXPECT_THAT(reader.Open(name), StatusIs(absl::StatusCode::kNotFound, ::testing::_));
}

}  // namespace
}  // namespace crib::cgroup
