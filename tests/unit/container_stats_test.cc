// The stats room's pure parts: /proc/net/dev parsing and reading it from inside a namespace,
// the background writable-layer sampler on real directories (its numbers, its bound per tick,
// forgetting removed layers), and the metric descriptors' consistency.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/files.h"
#include "container/layer_usage.h"
#include "container/stats.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pod/netns_stats.h"
#include "support/status_matchers.h"
#include "support/temp_dir.h"

namespace crib {
namespace {

using ::crib::testing::IsOk;
using ::crib::testing::StatusIs;
using ::crib::testing::TempDir;
using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;

constexpr char kNetDev[] =
    "Inter-|   Receive                                                |  Transmit\n"
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs "
    "drop fifo colls carrier compressed\n"
    "    lo:     840      10    0    0    0     0          0         0      840      10    0 "
    "   0    0     0       0          0\n"
    "  eth0: 1234567    890    2    3    0     0          0         0   76543     321    4 "
    "   5    0     0       0          0\n"
    "  net1:       1       2    0    0    0     0          0         0        3       4    0 "
    "   0    0     0       0          0\n";

TEST(NetDev, ParsesEveryInterfaceButLoopback) {
  absl::StatusOr<std::vector<pod::InterfaceCounters>> parsed = pod::ParseNetDev(kNetDev);
  ASSERT_THAT(parsed, IsOk());
  ASSERT_EQ(parsed->size(), 2u);
  const pod::InterfaceCounters& eth0 = (*parsed)[0];
  EXPECT_EQ(eth0.name, "eth0");
  EXPECT_EQ(eth0.rx_bytes, 1234567u);
  EXPECT_EQ(eth0.rx_packets, 890u);
  EXPECT_EQ(eth0.rx_errors, 2u);
  EXPECT_EQ(eth0.rx_dropped, 3u);
  EXPECT_EQ(eth0.tx_bytes, 76543u);
  EXPECT_EQ(eth0.tx_packets, 321u);
  EXPECT_EQ(eth0.tx_errors, 4u);
  EXPECT_EQ(eth0.tx_dropped, 5u);
  EXPECT_EQ((*parsed)[1].name, "net1");
  EXPECT_EQ((*parsed)[1].tx_packets, 4u);
}

TEST(NetDev, RejectsTruncatedLines) {
  const std::string text = absl::StrCat("h1\nh2\n  eth0: 1 2 3\n");
  EXPECT_THAT(pod::ParseNetDev(text),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("eth0 has 3 fields")));
  EXPECT_THAT(pod::ParseNetDev("h1\nh2\n  eth0 1 2 3\n"),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("no ':'")));
}

// This process's own namespace, joined by the reader thread, shows what /proc/self/net/dev
// shows; a path that is not a namespace is an error for that path alone.
TEST(NetDev, ReadsANamespaceFromItsPath) {
  std::vector<absl::StatusOr<std::vector<pod::InterfaceCounters>>> results =
      pod::ReadNetnsCounters({"/proc/self/ns/net", "/nonexistent/netns", "/proc/self/ns/net"});
  ASSERT_EQ(results.size(), 3u);
  ASSERT_THAT(results[0], IsOk());
  EXPECT_THAT(results[1], StatusIs(absl::StatusCode::kNotFound, HasSubstr("/nonexistent")));
  ASSERT_THAT(results[2], IsOk());
  absl::StatusOr<std::string> text = ReadFile("/proc/self/net/dev");
  ASSERT_THAT(text, IsOk());
  absl::StatusOr<std::vector<pod::InterfaceCounters>> direct = pod::ParseNetDev(*text);
  ASSERT_THAT(direct, IsOk());
  std::vector<std::string> names, direct_names;
  for (const auto& i : *results[0]) names.push_back(i.name);
  for (const auto& i : *direct) direct_names.push_back(i.name);
  EXPECT_EQ(names, direct_names);
}

void WriteBytes(const std::string& path, size_t bytes) {
  std::ofstream out(path, std::ios::binary);
  std::string chunk(1 << 16, 'x');
  for (size_t done = 0; done < bytes; done += chunk.size()) {
    out.write(chunk.data(), static_cast<std::streamsize>(std::min(chunk.size(), bytes - done)));
  }
}

// Polls until the sampler has a value for `id`, at most `limit`.
std::optional<container::LayerUsage> WaitFor(container::LayerUsageSampler& sampler,
                                             const std::string& id, const std::string& dir,
                                             absl::Duration limit = absl::Seconds(10)) {
  const absl::Time deadline = absl::Now() + limit;
  while (absl::Now() < deadline) {
    if (auto usage = sampler.Get(id, dir)) return usage;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return std::nullopt;
}

TEST(LayerUsageSampler, MeasuresBytesAndInodesWithHardLinksOnce) {
  TempDir dir;
  const std::string upper = dir.path() + "/upper";
  std::filesystem::create_directories(upper + "/a/b");
  WriteBytes(upper + "/a/b/big", 3 << 20);
  WriteBytes(upper + "/small", 100);
  ASSERT_EQ(::link((upper + "/small").c_str(), (upper + "/a/hardlink").c_str()), 0);
  ASSERT_EQ(::symlink("small", (upper + "/link").c_str()), 0);
  ::sync();
  container::LayerUsageSampler sampler(
      [] { return std::vector<std::pair<std::string, std::string>>{}; });
  EXPECT_EQ(sampler.Get("c1", upper), std::nullopt) << "nothing measured before it is asked";
  std::optional<container::LayerUsage> usage = WaitFor(sampler, "c1", upper);
  ASSERT_TRUE(usage.has_value());
  // upper, a, a/b, a/b/big, small (= a/hardlink), link.
  EXPECT_EQ(usage->inodes, 6u);
  EXPECT_GE(usage->bytes, 3u << 20);
  EXPECT_LT(usage->bytes, (3u << 20) + (1u << 20));
  EXPECT_GT(usage->timestamp_ns, 0);
}

TEST(LayerUsageSampler, DoesABoundedAmountOfWorkPerTick) {
  TempDir dir;
  const std::string upper = dir.path() + "/upper";
  std::filesystem::create_directories(upper);
  for (int i = 0; i < 100; ++i) WriteBytes(absl::StrCat(upper, "/f", i), 10);
  container::LayerUsageSampler::Options options;
  options.tick = absl::Milliseconds(200);
  options.entries_per_tick = 10;
  container::LayerUsageSampler sampler(
      [] { return std::vector<std::pair<std::string, std::string>>{}; }, options);
  const absl::Time start = absl::Now();
  std::optional<container::LayerUsage> usage = WaitFor(sampler, "c1", upper);
  const absl::Duration took = absl::Now() - start;
  ASSERT_TRUE(usage.has_value());
  EXPECT_EQ(usage->inodes, 101u);
  // 100 entries at 10 per tick: at least 9 pauses of one tick between the slices.
  EXPECT_GE(took, absl::Milliseconds(9 * 200)) << took;
}

TEST(LayerUsageSampler, RefreshesListedLayersAndForgetsRemovedOnes) {
  TempDir dir;
  const std::string upper = dir.path() + "/upper";
  std::filesystem::create_directories(upper);
  absl::Mutex mu;
  std::vector<std::pair<std::string, std::string>> listed = {{"c1", upper}};
  container::LayerUsageSampler::Options options;
  options.refresh = absl::Milliseconds(300);
  container::LayerUsageSampler sampler(
      [&] {
        absl::MutexLock lock(&mu);
        return listed;
      },
      options);
  std::optional<container::LayerUsage> first = WaitFor(sampler, "c1", upper);
  ASSERT_TRUE(first.has_value());
  // Grows by 2 MiB: a later refresh sees it without anyone asking for a new walk.
  WriteBytes(upper + "/grown", 2 << 20);
  ::sync();
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  std::optional<container::LayerUsage> later;
  while (absl::Now() < deadline) {
    later = sampler.Get("c1", upper);
    if (later.has_value() && later->bytes >= first->bytes + (2u << 20)) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_TRUE(later.has_value());
  EXPECT_GE(later->bytes, first->bytes + (2u << 20));
  EXPECT_GT(later->timestamp_ns, first->timestamp_ns);
  {
    absl::MutexLock lock(&mu);
    listed.clear();
  }
  std::filesystem::remove_all(upper);
  // Forgotten at the next refresh; asking again queues a walk that finds nothing to open.
  absl::SleepFor(absl::Milliseconds(800));
  EXPECT_EQ(sampler.Get("c1", upper), std::nullopt);
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(sampler.Get("c1", upper), std::nullopt);
}

TEST(MetricDescriptors, UniqueNamesWithBaseLabelsFirst) {
  std::set<std::string> names;
  for (const container::MetricDescriptor& d : container::StatsService::MetricDescriptors()) {
    EXPECT_TRUE(names.insert(d.name).second) << d.name;
    EXPECT_FALSE(d.help.empty()) << d.name;
    ASSERT_GE(d.label_keys.size(), 5u) << d.name;
    EXPECT_THAT(std::vector<std::string>(d.label_keys.begin(), d.label_keys.begin() + 5),
                ElementsAre("pod", "namespace", "container", "id", "image"))
        << d.name;
  }
  for (const char* must :
       {"container_cpu_usage_seconds_total", "container_memory_working_set_bytes",
        "container_memory_rss", "container_network_receive_bytes_total", "container_fs_usage_bytes",
        "container_processes"}) {
    EXPECT_TRUE(names.contains(must)) << must;
  }
}

}  // namespace
}  // namespace crib
