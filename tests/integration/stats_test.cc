// Stats, metrics, the streaming list RPCs and in-place pod resize through a real cribd on its
// socket, with containers from a real registry on loopback, checked against the machine: cgroup
// files read back directly, a ping from inside a pod's network namespace to the bridge, files
// written into a container's rootfs, and the Prometheus endpoint parsed by a real parser.
#include <netinet/in.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "support/cri_fixture.h"
#include "support/cribd_process.h"
#include "support/machine.h"
#include "support/registry.h"
#include "support/status_matchers.h"

namespace crib::testing {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAreArray;

bool Unified() { return std::filesystem::exists("/sys/fs/cgroup/cgroup.controllers"); }

uint64_t Number(const std::string& text) {
  uint64_t v = 0;
  EXPECT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &v)) << "\"" << text << "\"";
  return v;
}

// The cgroup's cumulative CPU time and memory usage, read from its files (v1 or v2).
uint64_t CgroupCpuNs(const std::string& path) {
  if (!Unified()) return Number(Slurp("/sys/fs/cgroup/cpuacct" + path + "/cpuacct.usage"));
  for (absl::string_view line :
       absl::StrSplit(Slurp("/sys/fs/cgroup" + path + "/cpu.stat"), '\n')) {
    if (absl::ConsumePrefix(&line, "usage_usec ")) return Number(std::string(line)) * 1000;
  }
  return 0;
}

uint64_t CgroupMemoryUsage(const std::string& path) {
  return Unified() ? Number(Slurp("/sys/fs/cgroup" + path + "/memory.current"))
                   : Number(Slurp("/sys/fs/cgroup/memory" + path + "/memory.usage_in_bytes"));
}

std::string CgroupFile(const std::string& v1_controller, const std::string& path,
                       const std::string& file) {
  return Unified() ? absl::StrCat("/sys/fs/cgroup", path, "/", file)
                   : absl::StrCat("/sys/fs/cgroup/", v1_controller, path, "/", file);
}

// An HTTP/1.1 request to 127.0.0.1:port; returns the whole response.
std::string HttpRequest(int port, const std::string& request) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    const timeval timeout{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
    char buf[65536];
    for (ssize_t n; (n = ::recv(fd, buf, sizeof(buf), 0)) > 0;) response.append(buf, n);
  }
  ::close(fd);
  return response;
}

class StatsTest : public CriFixture {
 protected:
  void SetUp() override {
    CriFixture::SetUp();
    if (cribd_ != nullptr) image_ = cribd_->Image();
  }

  std::string Ref() const { return CriFixture::Ref("busybox:latest"); }

  // Pods labelled app=<name>, containers labelled name=<name>, for the filters.
  cri::PodSandboxConfig PodConfig(const std::string& name, bool host_network = true) {
    cri::PodSandboxConfig config = CriFixture::PodConfig(name, host_network);
    (*config.mutable_labels())["app"] = name;
    return config;
  }
  cri::ContainerConfig Config(const std::string& name, std::vector<std::string> command) {
    cri::ContainerConfig config = CriFixture::Config(name, std::move(command));
    (*config.mutable_labels())["name"] = name;
    return config;
  }
  std::string Create(const std::string& pod, const cri::ContainerConfig& config) {
    return CreateOk(pod, config);
  }
  std::string Run(const std::string& pod, const cri::ContainerConfig& config) {
    return RunContainer(pod, config);
  }
  cri::ExecSyncResponse Exec(const std::string& id, std::vector<std::string> cmd) {
    cri::ExecSyncResponse response;
    EXPECT_THAT(CriFixture::Exec(id, std::move(cmd), &response, 60), GrpcOk());
    return response;
  }

  std::string CgroupOf(const std::string& pod, const std::string& container = "") {
    return container.empty() ? absl::StrCat(cgroup_parent_, "/", pod)
                             : absl::StrCat(cgroup_parent_, "/", pod, "/", container);
  }

  cri::ContainerStats Stats(const std::string& id) {
    cri::ContainerStatsRequest request;
    request.set_container_id(id);
    cri::ContainerStatsResponse response;
    EXPECT_THAT(runtime_->ContainerStats(ContextWithDeadline().get(), request, &response),
                GrpcOk());
    return response.stats();
  }

  std::vector<cri::ContainerStats> ListStats(const cri::ContainerStatsFilter& filter = {}) {
    cri::ListContainerStatsRequest request;
    *request.mutable_filter() = filter;
    cri::ListContainerStatsResponse response;
    EXPECT_THAT(runtime_->ListContainerStats(ContextWithDeadline().get(), request, &response),
                GrpcOk());
    return {response.stats().begin(), response.stats().end()};
  }

  cri::PodSandboxStats PodStats(const std::string& id) {
    cri::PodSandboxStatsRequest request;
    request.set_pod_sandbox_id(id);
    cri::PodSandboxStatsResponse response;
    EXPECT_THAT(runtime_->PodSandboxStats(ContextWithDeadline().get(), request, &response),
                GrpcOk());
    return response.stats();
  }

  // Stats until `done` holds for them, at most `limit`.
  // `read()` again every 200 ms until `done` holds of it, at most `limit`; the last reading.
  template <typename Read, typename Done>
  static auto ReadUntil(Read read, Done done, absl::Duration limit = absl::Seconds(30)) {
    const absl::Time deadline = absl::Now() + limit;
    auto s = read();
    while (!done(s) && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(200));
      s = read();
    }
    return s;
  }

  cri::ContainerStats StatsUntil(const std::string& id,
                                 const std::function<bool(const cri::ContainerStats&)>& done,
                                 absl::Duration limit = absl::Seconds(30)) {
    return ReadUntil([&] { return Stats(id); }, done, limit);
  }

  // The pod's stats once `done` holds (the kernel folds a child's memory counters into its
  // parent's lazily, so the pod's numbers may trail its containers' for a moment).
  cri::PodSandboxStats PodStatsUntil(const std::string& id,
                                     const std::function<bool(const cri::PodSandboxStats&)>& done,
                                     absl::Duration limit = absl::Seconds(30)) {
    return ReadUntil([&] { return PodStats(id); }, done, limit);
  }

  std::unique_ptr<cri::ImageService::Stub> image_;
};

TEST_F(StatsTest, BusyContainerCpuRisesIdleOneStaysNearZero) {
  const std::string pod = RunPod(PodConfig("cpu"));
  const std::string busy = Run(pod, Config("busy", {"sh", "-c", "while :; do :; done"}));
  const std::string idle = Run(pod, Config("idle", {"sleep", "3600"}));
  cri::ContainerStatsFilter filter;
  filter.set_pod_sandbox_id(pod);
  const uint64_t cpu0 = CgroupCpuNs(CgroupOf(pod, busy));
  const absl::Time t0 = absl::Now();
  std::vector<cri::ContainerStats> first = ListStats(filter);
  ASSERT_EQ(first.size(), 2u);
  absl::SleepFor(absl::Seconds(3));
  // The RPC's cumulative time lies between two direct reads of the cgroup file around it.
  const uint64_t before = CgroupCpuNs(CgroupOf(pod, busy));
  std::map<std::string, cri::ContainerStats> by_name;
  for (const cri::ContainerStats& s : ListStats(filter))
    by_name[s.attributes().metadata().name()] = s;
  const uint64_t after = CgroupCpuNs(CgroupOf(pod, busy));
  const absl::Time t1 = absl::Now();
  ASSERT_EQ(by_name.size(), 2u);
  const cri::ContainerStats& b = by_name["busy"];
  const cri::ContainerStats& i = by_name["idle"];
  EXPECT_EQ(b.attributes().id(), busy);
  EXPECT_EQ(b.attributes().labels().at("name"), "busy");
  EXPECT_GE(b.cpu().usage_core_nano_seconds().value(), before);
  EXPECT_LE(b.cpu().usage_core_nano_seconds().value(), after);
  ASSERT_TRUE(b.cpu().has_usage_nano_cores()) << "a previous sample exists";
  // The rate over the same 3 s, from the cgroup file: within 15% (the windows' ends differ by
  // an RPC's latency). A shell loop gets a tenth of a core even on a loaded 2-core machine.
  const double expected = static_cast<double>(after - cpu0) / absl::ToDoubleSeconds(t1 - t0);
  EXPECT_GT(b.cpu().usage_nano_cores().value(), 100'000'000u);
  EXPECT_NEAR(static_cast<double>(b.cpu().usage_nano_cores().value()), expected, 0.15 * expected);
  EXPECT_LT(b.cpu().usage_nano_cores().value(), 2'100'000'000u);
  ASSERT_TRUE(i.cpu().has_usage_nano_cores());
  EXPECT_LT(i.cpu().usage_nano_cores().value(), 20'000'000u) << "2% of a core";
  EXPECT_GT(b.cpu().timestamp(), first[0].cpu().timestamp());
  // The single-container RPC reports the same container; the pod sums its containers.
  EXPECT_EQ(Stats(busy).attributes().id(), busy);
  const cri::PodSandboxStats ps = PodStats(pod);
  EXPECT_GE(ps.linux().cpu().usage_core_nano_seconds().value(), after);
  EXPECT_EQ(ps.linux().containers_size(), 2);
  EXPECT_GE(ps.linux().process().process_count().value(), 3u) << "pause, busy, idle";
  EXPECT_FALSE(ps.linux().has_network()) << "a host-network pod has no network of its own";
}

// The limits are read when a container's cgroup is first opened for the stats, and again
// once UpdateContainerResources has changed them: the next call reports the new one.
TEST_F(StatsTest, ALimitUpdatedByUpdateContainerResourcesShowsInTheNextStats) {
  const std::string pod = RunPod(PodConfig("limits"));
  cri::ContainerConfig config = Config("limited", {"sleep", "3600"});
  config.mutable_linux()->mutable_resources()->set_memory_limit_in_bytes(256 << 20);
  const std::string id = Run(pod, config);
  auto available_and_working_set = [&](const cri::ContainerStats& s) {
    EXPECT_TRUE(s.memory().has_available_bytes()) << "the container has a limit";
    return s.memory().available_bytes().value() + s.memory().working_set_bytes().value();
  };
  EXPECT_EQ(available_and_working_set(Stats(id)), 256u << 20);
  ASSERT_THAT(UpdateMemoryLimit(id, 128 << 20), GrpcOk());
  EXPECT_EQ(available_and_working_set(Stats(id)), 128u << 20);
  cri::ContainerStatsFilter filter;
  filter.set_id(id);
  const std::vector<cri::ContainerStats> listed = ListStats(filter);
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(available_and_working_set(listed[0]), 128u << 20);
  ASSERT_THAT(UpdateMemoryLimit(id, 192 << 20), GrpcOk());
  const std::vector<cri::ContainerStats> all = ListStats();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(available_and_working_set(all[0]), 192u << 20);
}

TEST_F(StatsTest, AllocatingFiftyMegabytesShowsInTheWorkingSet) {
  const std::string pod = RunPod(PodConfig("mem"));
  // busybox awk keeps a 50 MB string (anonymous memory) while its child sleeps.
  cri::ContainerConfig hog =
      Config("hog", {"awk", "BEGIN { s = sprintf(\"%50000000s\", \"\"); system(\"sleep 3600\") }"});
  hog.mutable_linux()->mutable_resources()->set_memory_limit_in_bytes(256 << 20);
  const std::string hog_id = Run(pod, hog);
  const std::string idle_id = Run(pod, Config("idle", {"sleep", "3600"}));
  // Both numbers are awaited: awk may still be filling its string when the working set, which
  // counts file pages too, already passes 50 MB.
  const cri::ContainerStats s = StatsUntil(hog_id, [](const cri::ContainerStats& s) {
    return s.memory().working_set_bytes().value() >= 50'000'000 &&
           s.memory().rss_bytes().value() >= 50'000'000;
  });
  const uint64_t usage = CgroupMemoryUsage(CgroupOf(pod, hog_id));
  const cri::MemoryUsage& m = s.memory();
  EXPECT_GE(m.working_set_bytes().value(), 50'000'000u);
  EXPECT_LT(m.working_set_bytes().value(), 200'000'000u);
  EXPECT_GE(m.rss_bytes().value(), 50'000'000u) << "anonymous memory";
  EXPECT_LE(m.working_set_bytes().value(), m.usage_bytes().value());
  EXPECT_NEAR(static_cast<double>(m.usage_bytes().value()), static_cast<double>(usage), 8e6);
  ASSERT_TRUE(m.has_available_bytes()) << "the container has a limit";
  EXPECT_EQ(m.available_bytes().value(), (256u << 20) - m.working_set_bytes().value());
  EXPECT_GT(m.page_faults().value(), 12'000u) << "50 MB of 4 KiB pages, touched";
  const cri::MemoryUsage idle = Stats(idle_id).memory();
  EXPECT_LT(idle.working_set_bytes().value(), 10'000'000u);
  EXPECT_FALSE(idle.has_available_bytes()) << "no limit: no available bytes";
  // The pod's cgroup holds its containers: the hog's anonymous 50 MB are in its numbers too
  // (file pages may move between the active and inactive lists from one read to the next, so
  // the two working sets are not compared with each other).
  const cri::MemoryUsage pod_memory =
      PodStatsUntil(pod,
                    [](const cri::PodSandboxStats& s) {
                      return s.linux().memory().rss_bytes().value() >= 50'000'000 &&
                             s.linux().memory().working_set_bytes().value() >= 50'000'000;
                    })
          .linux()
          .memory();
  EXPECT_GE(pod_memory.rss_bytes().value(), 50'000'000u);
  EXPECT_GE(pod_memory.working_set_bytes().value(), 50'000'000u);
}

TEST_F(StatsTest, WritingTenMegabytesShowsInTheWritableLayer) {
  const std::string pod = RunPod(PodConfig("disk"));
  const std::string id = Run(pod, Config("writer", {"sleep", "3600"}));
  // A new container gets a value within a few seconds.
  const cri::ContainerStats first = StatsUntil(
      id, [](const cri::ContainerStats& s) { return s.has_writable_layer(); }, absl::Seconds(5));
  ASSERT_TRUE(first.has_writable_layer());
  cri::ImageFsInfoResponse fs;
  ASSERT_THAT(image_->ImageFsInfo(ContextWithDeadline().get(), {}, &fs), GrpcOk());
  ASSERT_EQ(fs.container_filesystems_size(), 1);
  EXPECT_EQ(first.writable_layer().fs_id().mountpoint(),
            fs.container_filesystems(0).fs_id().mountpoint());
  EXPECT_GT(first.writable_layer().timestamp(), 0);
  const uint64_t bytes0 = first.writable_layer().used_bytes().value();
  const uint64_t inodes0 = first.writable_layer().inodes_used().value();
  EXPECT_LT(bytes0, 1u << 20);
  EXPECT_EQ(Exec(id, {"sh", "-c", "dd if=/dev/zero of=/ten bs=1M count=10 && sync"}).exit_code(),
            0);
  // The sampler measures every layer again within its refresh period (10 s).
  const cri::ContainerStats later = StatsUntil(id, [&](const cri::ContainerStats& s) {
    return s.writable_layer().used_bytes().value() >= bytes0 + (10u << 20);
  });
  EXPECT_GE(later.writable_layer().used_bytes().value(), bytes0 + (10u << 20));
  EXPECT_LT(later.writable_layer().used_bytes().value(), bytes0 + (12u << 20));
  EXPECT_EQ(later.writable_layer().inodes_used().value(), inodes0 + 1);
  // ImageFsInfo's container file system is the sum of the layers' last measurements: this
  // container's alone here.
  cri::ImageFsInfoResponse fs_later;
  ASSERT_THAT(image_->ImageFsInfo(ContextWithDeadline().get(), {}, &fs_later), GrpcOk());
  ASSERT_EQ(fs_later.container_filesystems_size(), 1);
  EXPECT_GE(fs_later.container_filesystems(0).used_bytes().value(),
            later.writable_layer().used_bytes().value());
  EXPECT_GE(fs_later.container_filesystems(0).inodes_used().value(),
            later.writable_layer().inodes_used().value());
  // The number is the upper dir's, as du counts it.
  const auto [rc, du] =
      Sh(absl::StrCat("du -s -B1 ", options_.root_dir, "/containers/", id, "/upper | cut -f1"));
  ASSERT_EQ(rc, 0) << du;
  EXPECT_NEAR(static_cast<double>(Number(du)),
              static_cast<double>(later.writable_layer().used_bytes().value()), 64 * 1024);
}

TEST_F(StatsTest, PodNetworkCountersGrowAfterAPing) {
  const std::string pod = RunPod(PodConfig("net", /*host_network=*/false));
  Run(pod, Config("app", {"sleep", "3600"}));
  const cri::PodSandboxStats before = PodStats(pod);
  ASSERT_TRUE(before.linux().has_network());
  const cri::NetworkInterfaceUsage& eth0 = before.linux().network().default_interface();
  ASSERT_EQ(eth0.name(), "eth0");
  ASSERT_EQ(before.linux().network().interfaces_size(), 1) << "eth0, lo left out";
  const std::string netns = absl::StrCat(options_.state_dir, "/netns/", pod);
  // Five pings of 1000 bytes to the bridge, from inside the pod's namespace.
  const auto [rc, out] =
      Sh(absl::StrCat("nsenter --net=", netns, " ping -c 5 -i 0.2 -s 1000 -W 2 ", subnet_, "1"));
  ASSERT_EQ(rc, 0) << out;
  const cri::PodSandboxStats after = PodStats(pod);
  const cri::NetworkInterfaceUsage& eth0_after = after.linux().network().default_interface();
  EXPECT_GE(eth0_after.tx_bytes().value(), eth0.tx_bytes().value() + 5 * 1000);
  EXPECT_GE(eth0_after.rx_bytes().value(), eth0.rx_bytes().value() + 5 * 1000);
  EXPECT_EQ(eth0_after.rx_errors().value(), 0u);
  EXPECT_EQ(eth0_after.tx_errors().value(), 0u);
  EXPECT_GT(after.linux().network().timestamp(), before.linux().network().timestamp());
  // Read back from inside: the kernel's counters are at least what the RPC reported.
  const auto [rc2, dev] = Sh(absl::StrCat("nsenter --net=", netns, " cat /proc/net/dev"));
  ASSERT_EQ(rc2, 0);
  for (absl::string_view line : absl::StrSplit(dev, '\n')) {
    if (!absl::StrContains(line, "eth0:")) continue;
    std::vector<absl::string_view> f =
        absl::StrSplit(line.substr(line.find(':') + 1), ' ', absl::SkipEmpty());
    ASSERT_GE(f.size(), 16u);
    EXPECT_GE(Number(std::string(f[0])), eth0_after.rx_bytes().value());
    EXPECT_GE(Number(std::string(f[8])), eth0_after.tx_bytes().value());
    EXPECT_LT(Number(std::string(f[8])), eth0_after.tx_bytes().value() + 2000);
  }
  // The metrics carry the same counters per interface.
  cri::ListPodSandboxMetricsResponse metrics;
  ASSERT_THAT(runtime_->ListPodSandboxMetrics(ContextWithDeadline().get(), {}, &metrics), GrpcOk());
  ASSERT_EQ(metrics.pod_metrics_size(), 1);
  bool found = false;
  for (const cri::Metric& m : metrics.pod_metrics(0).metrics()) {
    if (m.name() != "container_network_transmit_bytes_total") continue;
    found = true;
    EXPECT_EQ(m.label_values(5), "eth0");
    EXPECT_GE(m.value().value(), eth0_after.tx_bytes().value());
  }
  EXPECT_TRUE(found);
}

TEST_F(StatsTest, MetricDescriptorsDescribeEveryPodSandboxMetric) {
  const std::string pod = RunPod(PodConfig("metrics", /*host_network=*/false));
  const std::string id = Run(pod, Config("app", {"sleep", "3600"}));
  cri::ListMetricDescriptorsResponse descriptors;
  ASSERT_THAT(runtime_->ListMetricDescriptors(ContextWithDeadline().get(), {}, &descriptors),
              GrpcOk());
  std::map<std::string, int> label_count;
  for (const cri::MetricDescriptor& d : descriptors.descriptors()) {
    label_count[d.name()] = d.label_keys_size();
  }
  EXPECT_TRUE(label_count.contains("container_cpu_usage_seconds_total"));
  EXPECT_TRUE(label_count.contains("container_memory_working_set_bytes"));
  // Wait for the writable layer's first measurement, so that its metric is there too.
  StatsUntil(id, [](const cri::ContainerStats& s) { return s.has_writable_layer(); });
  cri::ListPodSandboxMetricsResponse response;
  ASSERT_THAT(runtime_->ListPodSandboxMetrics(ContextWithDeadline().get(), {}, &response),
              GrpcOk());
  ASSERT_EQ(response.pod_metrics_size(), 1);
  const cri::PodSandboxMetrics& pm = response.pod_metrics(0);
  EXPECT_EQ(pm.pod_sandbox_id(), pod);
  ASSERT_EQ(pm.container_metrics_size(), 1);
  EXPECT_EQ(pm.container_metrics(0).container_id(), id);
  std::set<std::string> names;
  auto check = [&](const cri::Metric& m) {
    ASSERT_TRUE(label_count.contains(m.name())) << m.name();
    EXPECT_EQ(m.label_values_size(), label_count[m.name()]) << m.name();
    EXPECT_GT(m.timestamp(), 0);
    names.insert(m.name());
  };
  for (const cri::Metric& m : pm.metrics()) {
    check(m);
    EXPECT_EQ(m.label_values(0), "metrics");
    EXPECT_EQ(m.label_values(1), "default");
    EXPECT_EQ(m.label_values(3), pod);
  }
  uint64_t working_set = 0;
  for (const cri::Metric& m : pm.container_metrics(0).metrics()) {
    check(m);
    EXPECT_EQ(m.label_values(2), "app");
    EXPECT_EQ(m.label_values(3), id);
    EXPECT_EQ(m.label_values(4), Ref());
    if (m.name() == "container_memory_working_set_bytes") working_set = m.value().value();
    if (m.name() == "container_cpu_usage_seconds_total") {
      EXPECT_EQ(m.metric_type(), cri::COUNTER);
    }
  }
  for (const char* must :
       {"container_cpu_usage_seconds_total", "container_memory_working_set_bytes",
        "container_memory_rss", "container_processes", "container_fs_usage_bytes",
        "container_network_receive_bytes_total", "container_start_time_seconds"}) {
    EXPECT_TRUE(names.contains(must)) << must;
  }
  EXPECT_GT(working_set, 0u);
  EXPECT_LT(working_set, 20'000'000u);
}

// The descriptors cribd holds open on the directories of `cgroup` (any controller's): it keeps
// a running container's open between stats calls and must close them once the container goes
// (an open directory keeps a removed cgroup's kernel structures alive).
int OpenDirsOf(pid_t cribd, const std::string& cgroup) {
  int count = 0;
  std::error_code error;
  for (const auto& entry :
       std::filesystem::directory_iterator(absl::StrCat("/proc/", cribd, "/fd"), error)) {
    std::error_code link_error;
    const std::string target = std::filesystem::read_symlink(entry.path(), link_error).string();
    if (link_error || !absl::StartsWith(target, "/sys/fs/cgroup")) continue;
    absl::string_view path = target;
    absl::ConsumeSuffix(&path, " (deleted)");
    if (absl::EndsWith(path, cgroup)) ++count;
  }
  return count;
}

TEST_F(StatsTest, KeepsACgroupOpenWhileItsContainerRunsAndClosesItWhenItGoes) {
  const std::string pod = RunPod(PodConfig("kept"));
  const std::string a = Run(pod, Config("a", {"sleep", "3600"}));
  const std::string b = Run(pod, Config("b", {"sleep", "3600"}));
  const pid_t cribd = cribd_->pid();
  std::vector<cri::ContainerStats> all = ListStats();
  ASSERT_EQ(all.size(), 2u);
  for (const cri::ContainerStats& s : all) EXPECT_TRUE(s.has_memory()) << s.attributes().id();
  EXPECT_GT(OpenDirsOf(cribd, CgroupOf(pod, a)), 0);
  EXPECT_GT(OpenDirsOf(cribd, CgroupOf(pod, b)), 0);
  const uint64_t cpu_before = Stats(b).cpu().usage_core_nano_seconds().value();

  // Removed while cribd holds its directories: the removal still takes the cgroup away, and
  // the next list lets go of it.
  ASSERT_THAT(StopContainer(a), GrpcOk());
  ASSERT_THAT(RemoveContainer(a), GrpcOk());
  EXPECT_FALSE(std::filesystem::exists(CgroupFile("memory", CgroupOf(pod, a), "")));
  all = ListStats();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].attributes().id(), b);
  EXPECT_EQ(OpenDirsOf(cribd, CgroupOf(pod, a)), 0);
  EXPECT_GT(OpenDirsOf(cribd, CgroupOf(pod, b)), 0);
  Exec(b, {"sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"});
  const uint64_t cpu_after =
      StatsUntil(b,
                 [&](const cri::ContainerStats& s) {
                   return s.cpu().usage_core_nano_seconds().value() > cpu_before;
                 })
          .cpu()
          .usage_core_nano_seconds()
          .value();
  EXPECT_GT(cpu_after, cpu_before) << "read through the kept directories: fresh values";

  // Without another stats call: the writable-layer sampler's next refresh (every 10 s) lets
  // go of it.
  ASSERT_THAT(StopContainer(b), GrpcOk());
  ASSERT_THAT(RemoveContainer(b), GrpcOk());
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (OpenDirsOf(cribd, CgroupOf(pod, b)) > 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(200));
  }
  EXPECT_EQ(OpenDirsOf(cribd, CgroupOf(pod, b)), 0);
}

TEST_F(StatsTest, FiltersUnknownIdsAndPodsThatAreNotReady) {
  const std::string a = RunPod(PodConfig("a"));
  const std::string b = RunPod(PodConfig("b"));
  const std::string ca = Run(a, Config("ca", {"sleep", "3600"}));
  const std::string cb = Create(b, Config("cb", {"sleep", "3600"}));  // created, not started
  cri::ContainerStatsFilter filter;
  filter.set_pod_sandbox_id(a);
  std::vector<cri::ContainerStats> only_a = ListStats(filter);
  ASSERT_EQ(only_a.size(), 1u);
  EXPECT_EQ(only_a[0].attributes().id(), ca);
  filter.Clear();
  (*filter.mutable_label_selector())["name"] = "cb";
  std::vector<cri::ContainerStats> by_label = ListStats(filter);
  ASSERT_EQ(by_label.size(), 1u);
  EXPECT_EQ(by_label[0].attributes().id(), cb);
  EXPECT_TRUE(by_label[0].has_memory()) << "a created container has its cgroup already";
  filter.Clear();
  filter.set_id(ca.substr(0, 12));
  EXPECT_EQ(ListStats(filter).size(), 1u) << "an id prefix";
  EXPECT_EQ(ListStats().size(), 2u);

  cri::ContainerStatsRequest unknown;
  unknown.set_container_id("0123456789ab");
  cri::ContainerStatsResponse unknown_response;
  EXPECT_EQ(runtime_->ContainerStats(ContextWithDeadline().get(), unknown, &unknown_response)
                .error_code(),
            grpc::StatusCode::NOT_FOUND);

  ASSERT_THAT(StopPod(b), GrpcOk());
  cri::ListPodSandboxStatsRequest list;
  cri::ListPodSandboxStatsResponse all;
  ASSERT_THAT(runtime_->ListPodSandboxStats(ContextWithDeadline().get(), list, &all), GrpcOk());
  ASSERT_EQ(all.stats_size(), 1) << "ready pods only";
  EXPECT_EQ(all.stats(0).attributes().id(), a);
  EXPECT_EQ(all.stats(0).attributes().labels().at("app"), "a");
  EXPECT_EQ(all.stats(0).attributes().metadata().name(), "a");
  (*list.mutable_filter()->mutable_label_selector())["app"] = "nobody";
  all.Clear();
  ASSERT_THAT(runtime_->ListPodSandboxStats(ContextWithDeadline().get(), list, &all), GrpcOk());
  EXPECT_EQ(all.stats_size(), 0);
  cri::PodSandboxStatsRequest one;
  one.set_pod_sandbox_id(b);
  cri::PodSandboxStatsResponse one_response;
  EXPECT_EQ(runtime_->PodSandboxStats(ContextWithDeadline().get(), one, &one_response).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  // The stopped pod's container has exited: attributes and its layer, no usage.
  cri::ContainerStats exited = Stats(cb);
  EXPECT_EQ(exited.attributes().id(), cb);
  EXPECT_FALSE(exited.has_cpu());
  EXPECT_FALSE(exited.has_memory());
}

// Reads a whole server stream; every response must carry at least one item.
template <typename Response, typename Item>
std::vector<Item> ReadStream(std::unique_ptr<grpc::ClientReader<Response>> reader,
                             const google::protobuf::RepeatedPtrField<Item>& (Response::*field)()
                                 const,
                             int* responses) {
  std::vector<Item> items;
  Response r;
  *responses = 0;
  while (reader->Read(&r)) {
    ++*responses;
    EXPECT_GT(((r).*field)().size(), 0) << "an empty batch";
    items.insert(items.end(), ((r).*field)().begin(), ((r).*field)().end());
  }
  grpc::Status status = reader->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
  return items;
}

TEST_F(StatsTest, StreamingListsSendEveryItemOnceInBatches) {
  const std::string pod = RunPod(PodConfig("stream"));
  const std::string other = RunPod(PodConfig("other"));
  // Four containers with 400 KB annotations: more than one 1 MiB batch.
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) {
    cri::ContainerConfig config = Config(absl::StrCat("c", i), {"sleep", "3600"});
    (*config.mutable_annotations())["bulk"] = std::string(400 << 10, 'a' + i);
    ids.push_back(Create(pod, config));
  }
  ids.push_back(Run(other, Config("small", {"sleep", "3600"})));

  int responses = 0;
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    std::vector<cri::Container> got =
        ReadStream(runtime_->StreamContainers(&context, {}),
                   &cri::StreamContainersResponse::containers, &responses);
    std::vector<std::string> got_ids;
    for (const cri::Container& c : got) got_ids.push_back(c.id());
    EXPECT_THAT(got_ids, UnorderedElementsAreArray(ids)) << "each exactly once";
    EXPECT_GE(responses, 2) << "1.6 MB of containers in batches below 1 MiB";
  }
  {
    grpc::ClientContext context;
    cri::StreamContainerStatsRequest request;
    request.mutable_filter()->set_pod_sandbox_id(pod);
    std::vector<cri::ContainerStats> got =
        ReadStream(runtime_->StreamContainerStats(&context, request),
                   &cri::StreamContainerStatsResponse::container_stats, &responses);
    std::vector<std::string> got_ids;
    for (const cri::ContainerStats& s : got) got_ids.push_back(s.attributes().id());
    EXPECT_THAT(got_ids,
                UnorderedElementsAreArray(std::vector<std::string>(ids.begin(), ids.begin() + 4)));
    EXPECT_GE(responses, 2);
  }
  {
    grpc::ClientContext context;
    std::vector<cri::PodSandbox> got =
        ReadStream(runtime_->StreamPodSandboxes(&context, {}),
                   &cri::StreamPodSandboxesResponse::pod_sandboxes, &responses);
    std::vector<std::string> got_ids;
    for (const cri::PodSandbox& p : got) got_ids.push_back(p.id());
    EXPECT_THAT(got_ids, UnorderedElementsAreArray({pod, other}));
    EXPECT_EQ(responses, 1);
  }
  {
    grpc::ClientContext context;
    std::vector<cri::PodSandboxStats> got =
        ReadStream(runtime_->StreamPodSandboxStats(&context, {}),
                   &cri::StreamPodSandboxStatsResponse::pod_sandbox_stats, &responses);
    std::vector<std::string> got_ids;
    for (const cri::PodSandboxStats& p : got) got_ids.push_back(p.attributes().id());
    EXPECT_THAT(got_ids, UnorderedElementsAreArray({pod, other}));
  }
  {
    grpc::ClientContext context;
    std::vector<cri::PodSandboxMetrics> got =
        ReadStream(runtime_->StreamPodSandboxMetrics(&context, {}),
                   &cri::StreamPodSandboxMetricsResponse::pod_sandbox_metrics, &responses);
    EXPECT_EQ(got.size(), 2u);
  }
  {
    grpc::ClientContext context;
    std::vector<cri::Image> got = ReadStream(image_->StreamImages(&context, {}),
                                             &cri::StreamImagesResponse::images, &responses);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_THAT(got[0].repo_tags(), Contains(Ref()));
  }
  {
    // A filter that matches nothing: no response at all, then EOF.
    grpc::ClientContext context;
    cri::StreamPodSandboxesRequest request;
    (*request.mutable_filter()->mutable_label_selector())["app"] = "nobody";
    std::vector<cri::PodSandbox> got =
        ReadStream(runtime_->StreamPodSandboxes(&context, request),
                   &cri::StreamPodSandboxesResponse::pod_sandboxes, &responses);
    EXPECT_TRUE(got.empty());
    EXPECT_EQ(responses, 0);
  }
}

TEST_F(StatsTest, UpdatePodSandboxResourcesReachesThePodCgroup) {
  const std::string pod = RunPod(PodConfig("resize"));
  const std::string cgroup = CgroupOf(pod);
  cri::UpdatePodSandboxResourcesRequest request;
  request.set_pod_sandbox_id(pod);
  request.mutable_resources()->set_cpu_shares(512);
  request.mutable_resources()->set_cpu_period(100000);
  request.mutable_resources()->set_cpu_quota(50000);
  request.mutable_resources()->set_memory_limit_in_bytes(300 << 20);
  request.mutable_overhead()->set_memory_limit_in_bytes(20 << 20);
  cri::UpdatePodSandboxResourcesResponse response;
  ASSERT_THAT(runtime_->UpdatePodSandboxResources(ContextWithDeadline().get(), request, &response),
              GrpcOk());
  if (Unified()) {
    EXPECT_EQ(Slurp(CgroupFile("", cgroup, "memory.max")), absl::StrCat(320 << 20));
    EXPECT_EQ(Slurp(CgroupFile("", cgroup, "cpu.max")), "50000 100000");
  } else {
    EXPECT_EQ(Slurp(CgroupFile("memory", cgroup, "memory.limit_in_bytes")),
              absl::StrCat(320 << 20));
    EXPECT_EQ(Slurp(CgroupFile("cpu", cgroup, "cpu.shares")), "512");
    EXPECT_EQ(Slurp(CgroupFile("cpu", cgroup, "cpu.cfs_quota_us")), "50000");
    EXPECT_EQ(Slurp(CgroupFile("cpu", cgroup, "cpu.cfs_period_us")), "100000");
  }
  // The pod's config reports the new resources.
  cri::PodSandboxStatusRequest status_request;
  status_request.set_pod_sandbox_id(pod);
  status_request.set_verbose(true);
  cri::PodSandboxStatusResponse status;
  ASSERT_THAT(runtime_->PodSandboxStatus(ContextWithDeadline().get(), status_request, &status),
              GrpcOk());
  const nlohmann::json info = nlohmann::json::parse(status.info().at("info"));
  EXPECT_EQ(info["config"]["linux"]["resources"]["memoryLimitInBytes"], absl::StrCat(300 << 20));
  // The pod's stats see the limit: available = limit - working set.
  const cri::PodSandboxStats ps = PodStats(pod);
  EXPECT_EQ(ps.linux().memory().available_bytes().value(),
            (320u << 20) - ps.linux().memory().working_set_bytes().value());

  request.set_pod_sandbox_id("0123456789ab");
  EXPECT_EQ(runtime_->UpdatePodSandboxResources(ContextWithDeadline().get(), request, &response)
                .error_code(),
            grpc::StatusCode::NOT_FOUND);
}

class StatsMetricsEndpointTest : public StatsTest {
 protected:
  void SetUp() override {
    port_ = FreeLoopbackPort();
    extra_config_ = absl::StrCat("metrics_address = \"127.0.0.1:", port_, "\"\n");
    StatsTest::SetUp();
  }
  int port_ = 0;
};

TEST_F(StatsMetricsEndpointTest, MetricsEndpointParsesAsPrometheusText) {
  const std::string pod = RunPod(PodConfig("prom"));
  Run(pod, Config("app", {"sleep", "3600"}));
  cri::ContainerStatusRequest missing;
  missing.set_container_id("0123456789ab");
  cri::ContainerStatusResponse missing_response;
  EXPECT_EQ(runtime_->ContainerStatus(ContextWithDeadline().get(), missing, &missing_response)
                .error_code(),
            grpc::StatusCode::NOT_FOUND);

  const std::string response = HttpRequest(port_, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_THAT(response, ::testing::StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(response, HasSubstr("Content-Type: text/plain; version=0.0.4"));
  const std::string body = response.substr(response.find("\r\n\r\n") + 4);
  const std::string file = dir_.path() + "/metrics.txt";
  {
    std::ofstream out(file);
    out << body;
  }
  // Debian's prometheus_client (python3-prometheus-client, for Debian's own python3) parses
  // it; every family and sample comes back as JSON.
  constexpr char kParse[] = R"(
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for f in text_string_to_metric_families(open(sys.argv[1]).read()):
    out[f.name] = {"type": f.type, "samples": [[s.name, s.labels, s.value] for s in f.samples]}
print(json.dumps(out))
)";
  {
    std::ofstream out(dir_.path() + "/parse.py");
    out << kParse;
  }
  const auto [rc, parsed_text] =
      Sh(absl::StrCat("/usr/bin/python3 ", dir_.path(), "/parse.py ", file));
  ASSERT_EQ(rc, 0) << parsed_text << "\n" << body;
  const nlohmann::json parsed = nlohmann::json::parse(parsed_text);
  // The parser names a counter's family without its _total; samples keep their full names.
  auto value = [&](const std::string& family, const std::string& sample,
                   const std::map<std::string, std::string>& labels) -> double {
    if (!parsed.contains(family)) return -1;
    for (const auto& s : parsed[family]["samples"]) {
      if (s[0] != sample) continue;
      bool match = true;
      for (const auto& [k, v] : labels) match = match && s[1].value(k, "") == v;
      if (match) return s[2].get<double>();
    }
    return -1;
  };
  EXPECT_EQ(parsed["cribd_grpc_request_duration_seconds"]["type"], "histogram");
  EXPECT_GE(value("cribd_grpc_request_duration_seconds",
                  "cribd_grpc_request_duration_seconds_count", {{"method", "RunPodSandbox"}}),
            1);
  EXPECT_EQ(parsed["cribd_grpc_request_errors"]["type"], "counter");
  EXPECT_EQ(value("cribd_grpc_request_errors", "cribd_grpc_request_errors_total",
                  {{"method", "ContainerStatus"}, {"code", "NOT_FOUND"}}),
            1);
  EXPECT_EQ(parsed["cribd_pod_sandboxes"]["type"], "gauge");
  EXPECT_EQ(value("cribd_pod_sandboxes", "cribd_pod_sandboxes", {{"state", "ready"}}), 1);
  EXPECT_EQ(value("cribd_containers", "cribd_containers", {{"state", "running"}}), 1);
  EXPECT_EQ(value("cribd_containers", "cribd_containers", {{"state", "exited"}}), 0);
  EXPECT_GT(value("cribd_image_pull_bytes", "cribd_image_pull_bytes_total", {}), 100000);
  EXPECT_EQ(value("cribd_image_pull_duration_seconds", "cribd_image_pull_duration_seconds_count",
                  {{"result", "ok"}}),
            1);

  EXPECT_THAT(HttpRequest(port_, "GET /other HTTP/1.1\r\n\r\n"),
              ::testing::StartsWith("HTTP/1.1 404 "));
  EXPECT_THAT(HttpRequest(port_, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
              ::testing::StartsWith("HTTP/1.1 405 "));
  const std::string head = HttpRequest(port_, "HEAD /metrics HTTP/1.1\r\n\r\n");
  EXPECT_THAT(head, ::testing::StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(head, ::testing::EndsWith("\r\n\r\n")) << "no body for HEAD";
}

}  // namespace
}  // namespace crib::testing
