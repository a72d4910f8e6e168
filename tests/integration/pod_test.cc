// Pod sandboxes through a real cribd on its socket, checked on the machine: the pause process
// and its namespaces, the pod cgroup and its limits, the files, /dev/shm, stop and remove
// leaving nothing, rollback after a failure at each step, concurrency and a cribd restart.
#include <dirent.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "support/cri_calls.h"
#include "support/cribd_process.h"
#include "support/machine.h"
#include "support/pod_fixture.h"
#include "support/status_matchers.h"

namespace crib::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

ino_t Inode(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

void WaitExited(pid_t pid) {
  for (int i = 0; i < 500 && !Exited(pid); ++i) absl::SleepFor(absl::Milliseconds(10));
}

class PodTest : public PodFixture {
 protected:
  PodTest() : PodFixture("crib-test") {}

  void SetUp() override {
    // A bridge, nftables table and pod CIDR of this test's own.
    options_.config_text = absl::StrCat("[network]\nbridge = \"", bridge_, "\"\nnft_table = \"",
                                        table_, "\"\npod_cidr = \"", subnet_, "0/24\"\n");
    ASSERT_TRUE(Start());
  }

  void TearDown() override {
    ::unsetenv("CRIB_TEST_FAILPOINT");
    RemoveWhatPodsLeft();
    Sh("ip link del " + bridge_);
    Sh("nft delete table inet " + table_);
  }

  grpc::Status Status(const std::string& id, cri::PodSandboxStatusResponse* response,
                      bool verbose = false) {
    cri::PodSandboxStatusRequest request;
    request.set_pod_sandbox_id(id);
    request.set_verbose(verbose);
    return runtime_->PodSandboxStatus(ContextWithDeadline().get(), request, response);
  }

  pid_t PausePid(const std::string& id) {
    cri::PodSandboxStatusResponse response;
    EXPECT_TRUE(Status(id, &response, true).ok());
    const nlohmann::json info = nlohmann::json::parse(response.info().at("info"));
    const pid_t pid = info["pid"].get<pid_t>();
    return pid;
  }

  // Everything a pod can leave behind, counted.
  struct Leftovers {
    size_t pauses, mounts;
    int cgroups, pod_dirs, pins, records, veths, allocations;
    bool operator==(const Leftovers&) const = default;
  };
  Leftovers Count() {
    Leftovers l;
    l.pauses = PauseProcesses(options_.state_dir).size();
    // The netns directory's own shared bind mount is set up once and stays, as `ip netns` does.
    l.mounts = 0;
    for (const std::string& m : MountsUnder(dir_.path())) {
      if (!IsPinDir(options_.state_dir, m)) ++l.mounts;
    }
    l.cgroups = CgroupsUnder(cgroup_parent_);
    l.pod_dirs = EntriesIn(options_.state_dir + "/pods");
    l.pins = PinsIn(options_.state_dir);
    l.records = static_cast<int>(List().size());
    l.veths = Veths();
    l.allocations = Allocations();
    return l;
  }
  // Count() once it equals `want`, or after 10 s: a stopped pod's veth pair is deleted in the
  // background, and its removal leaves it to that.
  Leftovers Settled(const Leftovers& want) {
    Leftovers now{};
    WaitFor([&] { return (now = Count()) == want; });
    return now;
  }
  static std::string Describe(const Leftovers& l) {
    return absl::StrCat("pauses ", l.pauses, ", mounts ", l.mounts, ", cgroups ", l.cgroups,
                        ", pod dirs ", l.pod_dirs, ", pins ", l.pins, ", records ",
                        l.records, ", veths ", l.veths, ", ip allocations ", l.allocations);
  }

  // Veths on this test's bridge, and its pod address allocations.
  int Veths() {
    const std::string out = Sh("ip -o link show master " + bridge_).second;
    return out.empty() || absl::StrContains(out, "does not exist")
               ? 0
               : static_cast<int>(
                     std::vector<std::string>(absl::StrSplit(out, '\n', absl::SkipEmpty())).size());
  }
  // The links on the bridge that are up.
  int VethsUp() {
    const std::string out = Sh("ip -o link show master " + bridge_ + " up").second;
    return static_cast<int>(
        std::vector<std::string>(absl::StrSplit(out, '\n', absl::SkipEmpty())).size());
  }
  int Allocations() {
    const auto [rc, out] = Sh(absl::StrCat("sqlite3 ", options_.root_dir,
                                           "/metadata.db 'select count(*) from ip_allocations'"));
    int n = -1;
    return rc == 0 && absl::SimpleAtoi(absl::StripAsciiWhitespace(out), &n) ? n : -1;
  }
  int Rules(const std::string& id) {
    const std::string listing = Sh("nft list table inet " + table_).second;
    int count = 0;
    for (size_t at = listing.find("pod:" + id); at != std::string::npos;
         at = listing.find("pod:" + id, at + 1)) {
      ++count;
    }
    return count;
  }

  const std::string bridge_ = absl::StrCat("cp", pid_);
  const std::string table_ = absl::StrCat("crib_p", pid_);
  const std::string subnet_ = absl::StrCat("10.", 150 + pid_ % 50, ".", (pid_ / 50) % 256, ".");
};

TEST_F(PodTest, HostNetworkPodIsReadyWithItsPauseCgroupFilesAndShm) {
  const Leftovers before = Count();
  cri::RunPodSandboxRequest request = HostPod("web");
  cri::PodSandboxConfig* config = request.mutable_config();
  config->set_hostname("ignored-for-host-network");
  config->mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_pid(
      cri::POD);
  (*config->mutable_linux()->mutable_sysctls())["kernel.shmmni"] = "2345";
  (*config->mutable_annotations())["note"] = "kept";
  cri::LinuxContainerResources* resources = config->mutable_linux()->mutable_resources();
  resources->set_cpu_shares(256);
  resources->set_cpu_quota(40000);
  resources->set_cpu_period(100000);
  resources->set_memory_limit_in_bytes(96 << 20);
  resources->set_cpuset_cpus("0");
  config->mutable_linux()->mutable_overhead()->set_memory_limit_in_bytes(32 << 20);
  config->mutable_linux()->mutable_overhead()->set_cpu_shares(256);
  const std::string id = RunOk(request);
  ASSERT_EQ(id.size(), 64u);
  EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos);

  cri::PodSandboxStatusResponse response;
  ASSERT_TRUE(Status(id, &response, true).ok());
  const cri::PodSandboxStatus& status = response.status();
  EXPECT_EQ(status.id(), id);
  EXPECT_EQ(status.state(), cri::SANDBOX_READY);
  EXPECT_EQ(status.metadata().name(), "web");
  EXPECT_EQ(status.network().ip(), "") << "host-network pods get no IP";
  EXPECT_EQ(status.linux().namespaces().options().network(), cri::NODE);
  EXPECT_EQ(status.linux().namespaces().options().pid(), cri::POD);
  EXPECT_EQ(status.labels().at("app"), "web");
  EXPECT_EQ(status.annotations().at("note"), "kept");
  EXPECT_GT(status.created_at(), 0);
  const nlohmann::json info = nlohmann::json::parse(response.info().at("info"));
  EXPECT_EQ(info["config"]["metadata"]["name"], "web");
  EXPECT_EQ(info["netNamespacePath"], "");

  // The pause process: host netns, its own ipc, uts and pid namespaces, pid 1 in the latter.
  const pid_t pid = PausePid(id);
  const std::string proc = absl::StrCat("/proc/", pid);
  EXPECT_EQ(Inode(proc + "/ns/net"), Inode("/proc/self/ns/net"));
  // The host's uts namespace goes with the host's network, as containerd does it.
  EXPECT_EQ(Inode(proc + "/ns/uts"), Inode("/proc/self/ns/uts"));
  for (const char* ns : {"ipc", "pid"}) {
    EXPECT_NE(Inode(absl::StrCat(proc, "/ns/", ns)), Inode(absl::StrCat("/proc/self/ns/", ns)))
        << ns;
  }
  EXPECT_THAT(Slurp(proc + "/status"), HasSubstr(absl::StrCat("NSpid:\t", pid, "\t1")));
  // The ipc sysctl is seen inside, not on the host.
  const std::string shmmni = [&] {
    std::string out;
    std::thread([&] {
      const int fd = ::open((proc + "/ns/ipc").c_str(), O_RDONLY | O_CLOEXEC);
      if (fd >= 0 && ::setns(fd, CLONE_NEWIPC) == 0) out = Slurp("/proc/sys/kernel/shmmni");
      if (fd >= 0) ::close(fd);
    }).join();
    return out;
  }();
  EXPECT_EQ(shmmni, "2345");
  EXPECT_NE(Slurp("/proc/sys/kernel/shmmni"), "2345");

  // The pod cgroup, with resources plus overhead, holds the pause process.
  const std::string cg = absl::StrCat(cgroup_parent_, "/", id);
  EXPECT_EQ(CgroupCpuShares(cg, 512), "512");
  EXPECT_EQ(CgroupCpuQuota(cg), "40000");
  EXPECT_EQ(CgroupCpuPeriod(cg), "100000");
  EXPECT_EQ(CgroupMemoryLimit(cg), absl::StrCat(128 << 20));
  EXPECT_EQ(Slurp(CgroupDir("cpuset", cg) + "/cpuset.cpus"), "0");
  // On v2 the pause process has a leaf of its own below the pod's cgroup.
  EXPECT_THAT(Slurp(CgroupDir("memory", CgroupV2() ? cg + "/pause" : cg) + "/cgroup.procs"),
              HasSubstr(absl::StrCat(pid)));
  EXPECT_THAT(Slurp(proc + "/cgroup"),
              HasSubstr(CgroupV2() ? absl::StrCat("0::", cg) : absl::StrCat(":memory:", cg)));

  // Files: the host's hostname, hosts and resolv.conf for a host-network pod.
  const std::string pod_dir = absl::StrCat(options_.state_dir, "/pods/", id);
  EXPECT_EQ(Slurp(pod_dir + "/hostname"), Slurp("/proc/sys/kernel/hostname"));
  EXPECT_EQ(Slurp(pod_dir + "/resolv.conf"), Slurp("/etc/resolv.conf"));
  EXPECT_EQ(Slurp(pod_dir + "/hosts"), Slurp("/etc/hosts"));
  // /dev/shm: a 64 MiB tmpfs.
  bool shm_found = false;
  for (absl::string_view line : absl::StrSplit(Slurp("/proc/mounts"), '\n')) {
    if (absl::StartsWith(line, absl::StrCat("shm ", pod_dir, "/shm tmpfs "))) {
      shm_found = true;
      EXPECT_THAT(std::string(line), HasSubstr("size=65536k"));
      EXPECT_THAT(std::string(line), HasSubstr("nosuid,nodev,noexec"));
    }
  }
  EXPECT_TRUE(shm_found) << Slurp("/proc/mounts");

  // Stop: the pause is gone, the record stays NOTREADY; twice is fine.
  ASSERT_TRUE(Stop(id).ok());
  EXPECT_FALSE(PauseProcesses().contains(pid));
  ASSERT_TRUE(Status(id, &response).ok());
  EXPECT_EQ(response.status().state(), cri::SANDBOX_NOTREADY);
  EXPECT_TRUE(Stop(id).ok());
  ASSERT_EQ(List().size(), 1u);

  // Remove: nothing left; twice, and of an unknown id, is fine. So is a Stop of the removed
  // pod (kubelet retries stops; the CRI makes them idempotent), but not its status.
  ASSERT_TRUE(Remove(id).ok());
  EXPECT_TRUE(Remove(id).ok());
  EXPECT_TRUE(Remove(std::string(64, 'a')).ok());
  EXPECT_EQ(Status(id, &response).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(Stop(id).ok());
  EXPECT_TRUE(Stop(std::string(64, 'a')).ok());
  const Leftovers after = Settled(before);
  EXPECT_EQ(after, before) << Describe(before) << " vs " << Describe(after);
}

// cgroup_parent in the config: where the pods that name no parent go, and what cribd's
// recovery sweeps; a value in the other driver's form stops cribd at start, naming the key.
TEST_F(PodTest, TheConfiguredCgroupParentTakesPodsThatNameNone) {
  cribd_.reset();
  const std::string parent = absl::StrCat(cgroup_parent_, "/default");
  const std::string network = *options_.config_text;
  options_.config_text = absl::StrCat("cgroup_parent = \"", parent, "\"\n", network);
  ASSERT_TRUE(Start());
  cri::RunPodSandboxRequest request = HostPod("default-parent");
  request.mutable_config()->mutable_linux()->clear_cgroup_parent();
  cri::RunPodSandboxResponse response;
  ASSERT_TRUE(runtime_->RunPodSandbox(ContextWithDeadline().get(), request, &response).ok())
      << cribd_->Log();
  const std::string id = response.pod_sandbox_id();
  const std::string cg = absl::StrCat(parent, "/", id);
  EXPECT_THAT(Slurp(absl::StrCat("/proc/", PausePid(id), "/cgroup")),
              HasSubstr(CgroupV2() ? absl::StrCat("0::", cg) : absl::StrCat(":memory:", cg)));
  // An orphan below the configured parent (as a crash would leave it) goes at the next start.
  const std::string orphan = absl::StrCat(parent, "/", std::string(64, 'c'));
  ASSERT_EQ(::mkdir(CgroupDir("memory", orphan).c_str(), 0755), 0);
  cribd_.reset();
  ASSERT_TRUE(Start());
  EXPECT_FALSE(std::filesystem::exists(CgroupDir("memory", orphan)));
  EXPECT_TRUE(std::filesystem::exists(CgroupDir("memory", cg))) << "a live pod's stays";
  ASSERT_TRUE(Remove(id).ok());
  EXPECT_FALSE(std::filesystem::exists(CgroupDir("memory", cg)));
  cribd_.reset();

  CribdOptions wrong = options_;
  wrong.config_text = absl::StrCat("cgroup_parent = \"kubepods.slice\"\n", network);
  auto [code, log] = CribdProcess::RunToExit(wrong);
  EXPECT_NE(code, 0);
  EXPECT_THAT(log, HasSubstr("cgroup_parent: cgroup parent \"kubepods.slice\" is a systemd slice"));
  options_.config_text = network;
  ASSERT_TRUE(Start());
}

TEST_F(PodTest, SecondPodWithTheSameMetadataIsAlreadyExistsNamingTheHolder) {
  const std::string id = RunOk(HostPod("dup"));
  // The same metadata with another config is another pod: refused, naming the holder.
  cri::RunPodSandboxRequest other = HostPod("dup");
  (*other.mutable_config()->mutable_labels())["another"] = "config";
  std::string second;
  const grpc::Status status = Run(other, &second);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_THAT(status.error_message(), HasSubstr(id));
  EXPECT_EQ(List().size(), 1u);
  // The very same request again (kubelet retrying after its deadline) is the same pod.
  EXPECT_EQ(RunOk(HostPod("dup")), id);
  EXPECT_EQ(List().size(), 1u);
  // Another attempt is another pod.
  cri::RunPodSandboxRequest next = HostPod("dup");
  next.mutable_config()->mutable_metadata()->set_attempt(1);
  const std::string id2 = RunOk(next);
  EXPECT_NE(id2, id);
  EXPECT_TRUE(Remove(id).ok());
  EXPECT_TRUE(Remove(id2).ok());
}

TEST_F(PodTest, InvalidRequestsAreInvalidArgumentAndLeaveNothing) {
  const Leftovers before = Count();
  struct Case {
    std::string what;
    std::function<void(cri::RunPodSandboxRequest&)> change;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"no name", [](auto& r) { r.mutable_config()->mutable_metadata()->clear_name(); }, "name"},
      {"no namespace", [](auto& r) { r.mutable_config()->mutable_metadata()->clear_namespace_(); },
       "namespace"},
      {"no uid", [](auto& r) { r.mutable_config()->mutable_metadata()->clear_uid(); }, "uid"},
      {"handler", [](auto& r) { r.set_runtime_handler("runc"); }, "runtime handler \"runc\""},
      {"global sysctl",
       [](auto& r) {
         (*r.mutable_config()->mutable_linux()->mutable_sysctls())["kernel.panic"] = "1";
       },
       "kernel.panic"},
      {"net sysctl with host network",
       [](auto& r) {
         (*r.mutable_config()->mutable_linux()->mutable_sysctls())["net.ipv4.ip_forward"] = "1";
       },
       "net.ipv4.ip_forward"},
      {"bad port",
       [](auto& r) { r.mutable_config()->add_port_mappings()->set_container_port(70000); }, "port"},
      // crib runs with the cgroupfs driver here: a systemd slice, a relative path and a path
      // that climbs out are refused, never taken literally.
      {"slice parent with the cgroupfs driver",
       [](auto& r) {
         r.mutable_config()->mutable_linux()->set_cgroup_parent("kubepods-besteffort.slice");
       },
       "cgroup_driver \"cgroupfs\""},
      {"relative cgroup parent",
       [](auto& r) { r.mutable_config()->mutable_linux()->set_cgroup_parent("kubepods/pod1"); },
       "not an absolute path"},
      {"cgroup parent climbing out",
       [](auto& r) {
         r.mutable_config()->mutable_linux()->set_cgroup_parent("/kubepods/../../escape");
       },
       "\"..\" component"},
  };
  for (const Case& c : cases) {
    cri::RunPodSandboxRequest request = HostPod("bad");
    c.change(request);
    const grpc::Status status = Run(request, nullptr);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.what;
    EXPECT_THAT(status.error_message(), HasSubstr(c.message)) << c.what;
  }
  EXPECT_EQ(Settled(before), before);
}

TEST_F(PodTest, KilledPauseMakesThePodNotReadyAndRemovable) {
  const std::string id = RunOk(HostPod("killed"));
  const pid_t pid = PausePid(id);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  cri::PodSandboxStatusResponse response;
  WaitExited(pid);
  ASSERT_TRUE(Status(id, &response).ok());
  EXPECT_EQ(response.status().state(), cri::SANDBOX_NOTREADY);
  EXPECT_TRUE(Remove(id).ok());
  EXPECT_EQ(CgroupsUnder(cgroup_parent_), 0);
}

TEST_F(PodTest, ListFiltersByIdPrefixStateAndLabels) {
  const std::string a = RunOk(HostPod("alpha"));
  const std::string b = RunOk(HostPod("beta"));
  ASSERT_TRUE(Stop(b).ok());
  EXPECT_EQ(List().size(), 2u);
  cri::PodSandboxFilter filter;
  filter.set_id(a.substr(0, 8));
  std::vector<cri::PodSandbox> items = List(&filter);
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].id(), a);
  EXPECT_EQ(items[0].metadata().name(), "alpha");
  filter.Clear();
  filter.mutable_state()->set_state(cri::SANDBOX_NOTREADY);
  items = List(&filter);
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].id(), b);
  filter.Clear();
  (*filter.mutable_label_selector())["app"] = "alpha";
  items = List(&filter);
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].id(), a);
  (*filter.mutable_label_selector())["app"] = "gamma";
  EXPECT_TRUE(List(&filter).empty());
  // Status takes a unique prefix too.
  cri::PodSandboxStatusResponse response;
  ASSERT_TRUE(Status(a.substr(0, 10), &response).ok());
  EXPECT_EQ(response.status().id(), a);
  EXPECT_TRUE(Remove(a).ok());
  EXPECT_TRUE(Remove(b).ok());
}

TEST_F(PodTest, FailureAfterEachStepLeavesNothingBehind) {
  const Leftovers before = Count();
  const std::vector<std::pair<std::string, std::string>> steps = {
      {"reserve", "reserve name"},
      {"netns", "create network namespace"},
      {"pins", "create ipc and uts namespaces"},
      // The network is being set up on its thread when a later step fails: the undo waits
      // for it and takes it down.
      {"network_start", "start setting up the network"},
      {"cgroup", "create cgroup"},
      {"pause", "start crib-pause"},  // started, not heard from
      {"dir", "make the pod directory"},
      {"files", "write pod files"},
      {"shm", "mount shm"},
      {"network", "set up network"},
      {"hosts", "hosts file"},
      {"pause_ready", "start crib-pause"},  // its report read
      {"record", "record pod"}};
  for (const auto& [step, words] : steps) {
    cribd_.reset();
    ::setenv("CRIB_TEST_FAILPOINT", absl::StrCat("pod.run.after_", step).c_str(), 1);
    ASSERT_TRUE(Start());
    ::unsetenv("CRIB_TEST_FAILPOINT");
    // A pod that shares its process namespace (with crib-pause), and, but for the pause step,
    // one that does not.
    for (const cri::NamespaceMode pid : {cri::POD, cri::CONTAINER}) {
      if (pid == cri::CONTAINER && absl::StartsWith(step, "pause")) continue;
      const grpc::Status status =
          Run(WithPid(NetnsPod(absl::StrCat("fail-", step, "-", pid)), pid), nullptr);
      EXPECT_FALSE(status.ok()) << step << ", pid mode " << pid;
      EXPECT_THAT(status.error_message(), HasSubstr(words)) << step << ", pid mode " << pid;
      const Leftovers after = Settled(before);
      EXPECT_EQ(after, before) << step << ", pid mode " << pid << ": " << Describe(before)
                               << " vs " << Describe(after) << "\n"
                               << cribd_->Log();
    }
  }
}

TEST_F(PodTest, TwentyPodsCreatedAndRemovedConcurrentlyLeaveNothing) {
  const Leftovers before = Count();
  constexpr int kPods = 20;
  std::vector<std::string> ids(kPods);
  std::vector<std::thread> threads;
  std::atomic<int> failures = 0;
  for (int i = 0; i < kPods; ++i) {
    threads.emplace_back([&, i] {
      std::string id;
      auto stub = cribd_->Runtime();
      cri::RunPodSandboxResponse response;
      grpc::Status s = stub->RunPodSandbox(ContextWithDeadline(absl::Seconds(60)).get(),
                                           HostPod(absl::StrCat("many-", i)), &response);
      if (!s.ok()) ++failures;
      ids[i] = response.pod_sandbox_id();
    });
  }
  for (std::thread& t : threads) t.join();
  threads.clear();
  ASSERT_EQ(failures, 0) << cribd_->Log();
  EXPECT_EQ(PauseProcesses(options_.state_dir).size(), before.pauses + kPods);
  for (const cri::PodSandbox& pod : List()) EXPECT_EQ(pod.state(), cri::SANDBOX_READY);
  for (int i = 0; i < kPods; ++i) {
    threads.emplace_back([&, i] {
      auto stub = cribd_->Runtime();
      if (!StopPod(*stub, ids[i]).ok()) ++failures;
      if (!RemovePod(*stub, ids[i]).ok()) ++failures;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures, 0) << cribd_->Log();
  EXPECT_EQ(Settled(before), before);
}

TEST_F(PodTest, PodsSurviveACribdKillAndStayRemovable) {
  const Leftovers before = Count();
  const std::string a = RunOk(HostPod("survivor"));
  const std::string b = RunOk(HostPod("victim"));
  const pid_t pid_a = PausePid(a);
  const pid_t pid_b = PausePid(b);
  cribd_->SignalAndWait(SIGKILL);
  cribd_.reset();
  ASSERT_TRUE(PauseProcesses().contains(pid_a));
  ::kill(pid_b, SIGKILL);  // dies while cribd is away
  WaitExited(pid_b);
  ASSERT_TRUE(Start());
  cri::PodSandboxStatusResponse response;
  ASSERT_TRUE(Status(a, &response).ok());
  EXPECT_EQ(response.status().state(), cri::SANDBOX_READY);
  EXPECT_EQ(PausePid(a), pid_a);
  ASSERT_TRUE(Status(b, &response).ok());
  EXPECT_EQ(response.status().state(), cri::SANDBOX_NOTREADY);
  EXPECT_TRUE(Remove(a).ok());
  EXPECT_TRUE(Remove(b).ok());
  EXPECT_FALSE(PauseProcesses().contains(pid_a));
  EXPECT_EQ(Settled(before), before);
}

// Two cribds with state dirs of their own share the machine: the start-up of one (its orphan
// scan) leaves the other's pause processes and cgroups alone.
TEST_F(PodTest, AnotherCribdStartingLeavesThisOnesPodsAlone) {
  const std::string a = RunOk(HostPod("neighbour"));
  const pid_t pid_a = PausePid(a);
  TempDir other_dir;
  CribdOptions other = CribdProcess::OptionsIn(other_dir.path());
  absl::StatusOr<std::unique_ptr<CribdProcess>> second = CribdProcess::Start(other);
  ASSERT_THAT(second, IsOk());
  second->reset();
  EXPECT_TRUE(PauseProcesses().contains(pid_a));
  cri::PodSandboxStatusResponse response;
  ASSERT_TRUE(Status(a, &response).ok());
  EXPECT_EQ(response.status().state(), cri::SANDBOX_READY);
  EXPECT_TRUE(Remove(a).ok());
}

// kubelet's UpdateRuntimeConfig sets the pod CIDR that new pods take their address from.
TEST_F(PodTest, UpdateRuntimeConfigMovesNewPodsToTheNewCidr) {
  const std::string other = absl::StrCat("10.", 150 + (pid_ + 7) % 50, ".", (pid_ / 50) % 256, ".");
  cri::UpdateRuntimeConfigRequest request;
  request.mutable_runtime_config()->mutable_network_config()->set_pod_cidr(other + "0/24");
  cri::UpdateRuntimeConfigResponse response;
  ASSERT_TRUE(runtime_->UpdateRuntimeConfig(ContextWithDeadline().get(), request, &response).ok());
  const std::string id = RunOk(NetnsPod("moved"));
  cri::PodSandboxStatusResponse status;
  ASSERT_TRUE(Status(id, &status).ok());
  EXPECT_TRUE(absl::StartsWith(status.status().network().ip(), other))
      << status.status().network().ip() << " is not in " << other << "0/24";
  request.mutable_runtime_config()->mutable_network_config()->set_pod_cidr("not a cidr");
  EXPECT_EQ(
      runtime_->UpdateRuntimeConfig(ContextWithDeadline().get(), request, &response).error_code(),
      grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(Stop(id).ok());
  EXPECT_TRUE(Remove(id).ok());
}

TEST_F(PodTest, NetnsPodHasItsAddressHostnameSysctlsAndFiles) {
  cri::RunPodSandboxRequest request = NetnsPod("net");
  cri::PodSandboxConfig* config = request.mutable_config();
  config->set_hostname("pod-net");
  (*config->mutable_linux()->mutable_sysctls())["net.ipv4.ping_group_range"] = "0 1000";
  (*config->mutable_linux()->mutable_sysctls())["kernel.shmmni"] = "3456";
  config->mutable_dns_config()->add_servers("10.96.0.10");
  config->mutable_dns_config()->add_searches("default.svc.cluster.local");
  config->mutable_dns_config()->add_options("ndots:5");
  const std::string id = RunOk(request);
  cri::PodSandboxStatusResponse response;
  ASSERT_TRUE(Status(id, &response, true).ok());
  const std::string ip = response.status().network().ip();
  EXPECT_TRUE(absl::StartsWith(ip, subnet_)) << ip;
  EXPECT_EQ(response.status().linux().namespaces().options().network(), cri::POD);
  const std::string netns = absl::StrCat(options_.state_dir, "/netns/", id);
  const nlohmann::json info = nlohmann::json::parse(response.info().at("info"));
  EXPECT_EQ(info["netNamespacePath"], netns);

  // The pin: a mount of a network namespace.
  EXPECT_THAT(Sh("cat /proc/mounts").second, HasSubstr(absl::StrCat(" ", netns, " nsfs ")));
  // Its eth0 has the reported address.
  const auto [rc, addr] = Sh(absl::StrCat("nsenter --net=", netns, " ip -4 -o addr show eth0"));
  EXPECT_EQ(rc, 0) << addr;
  EXPECT_THAT(addr, HasSubstr(absl::StrCat("inet ", ip, "/")));
  // The pause process is inside it, with its own uts, ipc and pid namespaces.
  const pid_t pid = PausePid(id);
  const std::string proc = absl::StrCat("/proc/", pid);
  EXPECT_EQ(Inode(proc + "/ns/net"), Inode(netns));
  for (const char* ns : {"uts", "ipc", "pid"}) {
    EXPECT_NE(Inode(absl::StrCat(proc, "/ns/", ns)), Inode(absl::StrCat("/proc/self/ns/", ns)))
        << ns;
  }
  // Hostname and sysctls, seen from inside.
  EXPECT_EQ(Sh(absl::StrCat("nsenter --uts=", proc, "/ns/uts hostname")).second, "pod-net\n");
  EXPECT_EQ(
      Sh(absl::StrCat("nsenter --net=", netns, " cat /proc/sys/net/ipv4/ping_group_range")).second,
      "0\t1000\n");
  EXPECT_EQ(Sh(absl::StrCat("nsenter --ipc=", proc, "/ns/ipc cat /proc/sys/kernel/shmmni")).second,
            "3456\n");
  // The files.
  const std::string pod_dir = absl::StrCat(options_.state_dir, "/pods/", id);
  EXPECT_EQ(Slurp(pod_dir + "/hostname"), "pod-net");
  EXPECT_THAT(Slurp(pod_dir + "/hosts"), HasSubstr("127.0.0.1\tlocalhost"));
  EXPECT_THAT(Slurp(pod_dir + "/hosts"), HasSubstr(absl::StrCat(ip, "\tpod-net")));
  EXPECT_EQ(Slurp(pod_dir + "/resolv.conf"),
            "search default.svc.cluster.local\nnameserver 10.96.0.10\noptions ndots:5");
  EXPECT_TRUE(Remove(id).ok());
  EXPECT_THAT(Sh("cat /proc/mounts").second, Not(HasSubstr(netns)));
  EXPECT_FALSE(std::filesystem::exists(netns));
}

// kubelet's pods share no process namespace unless shareProcessNamespace is set: such a pod runs
// no process; its network, ipc and uts namespaces are pinned, with the hostname and sysctls set
// in them, and a restart of cribd finds it ready as long as its pins are there.
TEST_F(PodTest, APodThatSharesNoProcessNamespaceRunsNoProcessAndKeepsItsNamespacesPinned) {
  const Leftovers before = Count();
  cri::RunPodSandboxRequest request = WithPid(NetnsPod("lean"), cri::CONTAINER);
  cri::PodSandboxConfig* config = request.mutable_config();
  config->set_hostname("pod-lean");
  (*config->mutable_linux()->mutable_sysctls())["net.ipv4.ping_group_range"] = "0 2000";
  (*config->mutable_linux()->mutable_sysctls())["kernel.shmmni"] = "4567";
  const std::string id = RunOk(request);
  EXPECT_EQ(PauseProcesses(options_.state_dir).size(), before.pauses) << "no crib-pause";
  cri::PodSandboxStatusResponse response;
  ASSERT_TRUE(Status(id, &response, true).ok());
  EXPECT_EQ(response.status().state(), cri::SANDBOX_READY);
  EXPECT_EQ(response.status().linux().namespaces().options().pid(), cri::CONTAINER);
  const nlohmann::json info = nlohmann::json::parse(response.info().at("info"));
  EXPECT_EQ(info["pid"], 0);
  const std::string netns = absl::StrCat(options_.state_dir, "/netns/", id);
  const std::string ipcns = absl::StrCat(options_.state_dir, "/ipcns/", id);
  const std::string utsns = absl::StrCat(options_.state_dir, "/utsns/", id);
  EXPECT_EQ(info["netNamespacePath"], netns);
  EXPECT_EQ(info["ipcNamespacePath"], ipcns);
  EXPECT_EQ(info["utsNamespacePath"], utsns);
  const std::string mounts = Sh("cat /proc/mounts").second;
  for (const std::string& pin : {netns, ipcns, utsns}) {
    EXPECT_THAT(mounts, HasSubstr(absl::StrCat(" ", pin, " nsfs "))) << pin;
  }
  EXPECT_NE(Inode(ipcns), Inode("/proc/self/ns/ipc"));
  EXPECT_NE(Inode(utsns), Inode("/proc/self/ns/uts"));
  // Hostname and sysctls, seen from inside.
  EXPECT_EQ(Sh(absl::StrCat("nsenter --uts=", utsns, " hostname")).second, "pod-lean\n");
  EXPECT_EQ(Sh(absl::StrCat("nsenter --ipc=", ipcns, " cat /proc/sys/kernel/shmmni")).second,
            "4567\n");
  EXPECT_EQ(
      Sh(absl::StrCat("nsenter --net=", netns, " cat /proc/sys/net/ipv4/ping_group_range")).second,
      "0\t2000\n");
  // Its cgroup is there, for its containers, with no process in it.
  const std::string cg = absl::StrCat(cgroup_parent_, "/", id);
  EXPECT_EQ(Slurp(CgroupDir("memory", cg) + "/cgroup.procs"), "");

  // A host-network pod with its own ipc namespace: only that is pinned.
  const std::string host = RunOk(WithPid(HostPod("lean-host"), cri::CONTAINER));
  ASSERT_TRUE(Status(host, &response, true).ok());
  EXPECT_EQ(response.status().state(), cri::SANDBOX_READY);
  const nlohmann::json host_info = nlohmann::json::parse(response.info().at("info"));
  EXPECT_EQ(host_info["utsNamespacePath"], "");
  const std::string host_ipcns = absl::StrCat(options_.state_dir, "/ipcns/", host);
  EXPECT_EQ(host_info["ipcNamespacePath"], host_ipcns);
  EXPECT_EQ(PauseProcesses(options_.state_dir).size(), before.pauses);

  // cribd killed: both are ready when it is back. Then one's pin goes while cribd is away (as
  // a reboot takes them all): that pod is not ready after the next start.
  cribd_->SignalAndWait(SIGKILL);
  cribd_.reset();
  ASSERT_TRUE(Start());
  for (const std::string& pod : {id, host}) {
    ASSERT_TRUE(Status(pod, &response).ok());
    EXPECT_EQ(response.status().state(), cri::SANDBOX_READY) << pod;
  }
  cribd_->SignalAndWait(SIGKILL);
  cribd_.reset();
  ASSERT_EQ(::umount2(host_ipcns.c_str(), MNT_DETACH), 0);
  ASSERT_TRUE(Start());
  ASSERT_TRUE(Status(id, &response).ok());
  EXPECT_EQ(response.status().state(), cri::SANDBOX_READY);
  ASSERT_TRUE(Status(host, &response).ok());
  EXPECT_EQ(response.status().state(), cri::SANDBOX_NOTREADY);

  // Stop: not ready, the pins stay for the containers' removal; Remove takes everything.
  ASSERT_TRUE(Stop(id).ok());
  ASSERT_TRUE(Status(id, &response).ok());
  EXPECT_EQ(response.status().state(), cri::SANDBOX_NOTREADY);
  EXPECT_THAT(Sh("cat /proc/mounts").second, HasSubstr(absl::StrCat(" ", utsns, " nsfs ")));
  ASSERT_TRUE(Remove(id).ok());
  ASSERT_TRUE(Remove(host).ok());
  for (const std::string& pin : {netns, ipcns, utsns, host_ipcns}) {
    EXPECT_FALSE(std::filesystem::exists(pin)) << pin;
  }
  const Leftovers after = Settled(before);
  EXPECT_EQ(after, before) << Describe(before) << " vs " << Describe(after);
}

TEST_F(PodTest, TwoPodsPingEachOtherAndTheBridge) {
  const std::string a = RunOk(NetnsPod("ping-a"));
  const std::string b = RunOk(NetnsPod("ping-b"));
  cri::PodSandboxStatusResponse sa, sb;
  ASSERT_TRUE(Status(a, &sa).ok());
  ASSERT_TRUE(Status(b, &sb).ok());
  const std::string netns_a = absl::StrCat(options_.state_dir, "/netns/", a);
  const std::string netns_b = absl::StrCat(options_.state_dir, "/netns/", b);
  auto ping = [](const std::string& netns, const std::string& ip) {
    return Sh(absl::StrCat("nsenter --net=", netns, " ping -c 1 -W 3 ", ip));
  };
  auto [rc, out] = ping(netns_a, sb.status().network().ip());
  EXPECT_EQ(rc, 0) << out;
  std::tie(rc, out) = ping(netns_b, sa.status().network().ip());
  EXPECT_EQ(rc, 0) << out;
  std::tie(rc, out) = ping(netns_a, subnet_ + "1");
  EXPECT_EQ(rc, 0) << "the bridge address: " << out;
  EXPECT_TRUE(Remove(a).ok());
  EXPECT_TRUE(Remove(b).ok());
}

TEST_F(PodTest, HostPortReachesThePodFromLoopbackAndFromAnotherNetns) {
  const uint16_t host_port = FreePort();
  cri::RunPodSandboxRequest request = NetnsPod("web-port");
  cri::PortMapping* port = request.mutable_config()->add_port_mappings();
  port->set_protocol(cri::TCP);
  port->set_container_port(8080);
  port->set_host_port(host_port);
  const std::string server = RunOk(request);
  const std::string client = RunOk(NetnsPod("client"));
  EXPECT_GT(Rules(server), 0);
  const std::string server_netns = absl::StrCat(options_.state_dir, "/netns/", server);
  const std::string client_netns = absl::StrCat(options_.state_dir, "/netns/", client);
  Background listener(
      {"nsenter", absl::StrCat("--net=", server_netns), "python3", "-c", kPongServer});
  ASSERT_GT(listener.pid(), 0);
  auto [rc, out] = Sh(absl::StrCat("python3 -c \"", kPongClient, "\" 127.0.0.1 ", host_port));
  EXPECT_EQ(rc, 0) << out;
  EXPECT_THAT(out, HasSubstr("pong from"));
  std::tie(rc, out) = Sh(absl::StrCat("nsenter --net=", client_netns, " python3 -c \"", kPongClient,
                                      "\" ", subnet_, "1 ", host_port));
  EXPECT_EQ(rc, 0) << out;
  EXPECT_THAT(out, HasSubstr("pong from"));
  EXPECT_TRUE(Remove(server).ok());
  EXPECT_TRUE(Remove(client).ok());
}

TEST_F(PodTest, StopAndRemoveLeaveNoVethRuleAllocationOrNetns) {
  const Leftovers before = Count();
  const int veths = Veths();
  const int allocations = Allocations();
  cri::RunPodSandboxRequest request = NetnsPod("tidy");
  cri::PortMapping* port = request.mutable_config()->add_port_mappings();
  port->set_container_port(80);
  port->set_host_port(FreePort());
  const std::string id = RunOk(request);
  EXPECT_EQ(Veths(), veths + 1);
  EXPECT_EQ(Allocations(), allocations + 1);
  EXPECT_GT(Rules(id), 0);
  const int up = VethsUp();
  ASSERT_TRUE(Stop(id).ok());
  // The host end is down at once; the pair's deletion (about 20 ms in the kernel) finishes in
  // the background.
  EXPECT_EQ(VethsUp(), up - 1);
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (Veths() != veths && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
  EXPECT_EQ(Veths(), veths);
  EXPECT_EQ(Allocations(), allocations);
  EXPECT_EQ(Rules(id), 0);
  cri::PodSandboxStatusResponse response;
  ASSERT_TRUE(Status(id, &response).ok());
  EXPECT_EQ(response.status().state(), cri::SANDBOX_NOTREADY);
  EXPECT_EQ(response.status().network().ip(), "");
  EXPECT_TRUE(Stop(id).ok());
  ASSERT_TRUE(Remove(id).ok());
  EXPECT_EQ(Settled(before), before) << Describe(Count());
}

}  // namespace
}  // namespace crib::testing
