// The systemd cgroup driver against a real systemd: the whole binary runs inside one
// tests/systemd/systemd_lab.py lab (a systemd of its own as pid 1, with its bus), with a cribd
// of each test's own started there with cgroup_driver = "systemd", and the test registry on
// the lab's loopback. What is checked is what systemd says (units, their state and
// properties, through the bus and systemctl) and what the kernel has (the cgroup files and
// the processes' cgroups), before and after each call.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "absl/algorithm/container.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "cgroup/systemd_bus.h"
#include "common/files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "support/cri_fixture.h"
#include "support/machine.h"

namespace crib::testing {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

class SystemdDriverTest : public CriFixture {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<cgroup::SystemdBus>> bus = cgroup::SystemdBus::Connect();
    ASSERT_THAT(bus.status(), IsOk()) << "this binary runs inside tests/systemd/systemd_lab.py";
    bus_ = std::move(*bus);
    // Top-level keys before the sections a derived fixture adds.
    extra_config_ = "cgroup_driver = \"systemd\"\n" + extra_config_;
    CriFixture::SetUp();
  }

  void TearDown() override {
    CriFixture::TearDown();
    // Whatever a failed test left in systemd.
    for (const std::string& unit : OwnUnits()) (void)bus_->StopUnit(unit);
  }

  // A pod on the host's network, below `parent` (a slice; "" for crib's own).
  std::string RunPodIn(const std::string& name, const std::string& parent) {
    cri::PodSandboxConfig config = PodConfig(name);
    config.mutable_linux()->set_cgroup_parent(parent);
    return RunPod(config);
  }

  // systemd's units that crib makes (crib-*.scope, crib-*.slice, *-crib_*.slice).
  std::vector<std::string> OwnUnits() {
    std::vector<std::string> out;
    for (const char* pattern : {"crib-*.scope", "*crib[-_]*.slice"}) {
      absl::StatusOr<std::vector<std::pair<std::string, std::string>>> units =
          bus_->ListUnits(pattern);
      EXPECT_THAT(units.status(), IsOk());
      if (!units.ok()) continue;
      for (const auto& [name, description] : *units) out.push_back(name);
    }
    return out;
  }

  std::string State(const std::string& unit) {
    absl::StatusOr<std::string> state = bus_->ActiveState(unit);
    return state.ok() ? *state : std::string(state.status().message());
  }

  // `systemctl show -p <property> --value <unit>`.
  static std::string Property(const std::string& unit, const std::string& property) {
    auto [code, out] = Sh(absl::StrCat("systemctl show -p ", property, " --value ", unit));
    return std::string(absl::StripAsciiWhitespace(out));
  }

  // Polls until `unit` is no longer loaded; false if it still is after 10 s.
  bool WaitGone(const std::string& unit) {
    for (int i = 0; i < 1000; ++i) {
      absl::StatusOr<bool> has = bus_->HasUnit(unit);
      if (has.ok() && !*has) return true;
      absl::SleepFor(absl::Milliseconds(10));
    }
    return false;
  }

  // The cgroup of `pid` in the hierarchy of `controller` (v1), or its v2 cgroup.
  static std::string CgroupOf(pid_t pid, const std::string& controller) {
    for (absl::string_view line :
         absl::StrSplit(Slurp(absl::StrCat("/proc/", pid, "/cgroup")), '\n')) {
      std::vector<std::string> parts = absl::StrSplit(line, absl::MaxSplits(':', 2));
      if (parts.size() != 3) continue;
      if (CgroupV2() ? parts[0] == "0"
                     : absl::c_linear_search(absl::StrSplit(parts[1], ','), controller)) {
        return parts[2];
      }
    }
    return "";
  }

  // The "pid" of a verbose status's info: a container's init, a pod's crib-pause.
  template <typename Response>
  static pid_t PidOf(const Response& status) {
    if (status.info().count("info") == 0) return 0;
    const nlohmann::json info = nlohmann::json::parse(status.info().at("info"), nullptr, false);
    return info.is_object() && info.contains("pid") ? info["pid"].get<pid_t>() : 0;
  }

  // The hierarchies in which the cgroup `path` exists.
  static std::vector<std::string> HierarchiesWith(const std::string& path) {
    std::vector<std::string> out;
    for (const std::string& h : Hierarchies()) {
      if (std::filesystem::is_directory(h + path)) out.push_back(h);
    }
    return out;
  }

  std::unique_ptr<cgroup::SystemdBus> bus_;
};

TEST_F(SystemdDriverTest, PodsAndContainersRunInUnitsThatCarryTheirLimits) {
  cri::RuntimeConfigRequest config_request;
  cri::RuntimeConfigResponse config;
  ASSERT_THAT(runtime_->RuntimeConfig(ContextWithDeadline().get(), config_request, &config),
              GrpcOk());
  EXPECT_EQ(config.linux().cgroup_driver(), cri::CgroupDriver::SYSTEMD);

  const std::string pod = RunPodIn("units", "");
  ASSERT_FALSE(pod.empty());
  const std::string slice = absl::StrCat("crib-", pod, ".slice");
  const std::string pod_cgroup = absl::StrCat("/crib.slice/", slice);
  EXPECT_EQ(State(slice), "active");
  EXPECT_EQ(State(absl::StrCat("crib-", pod, ".scope")), "active");
  cri::PodSandboxStatusRequest pod_request;
  pod_request.set_pod_sandbox_id(pod);
  pod_request.set_verbose(true);
  cri::PodSandboxStatusResponse pod_status;
  ASSERT_THAT(runtime_->PodSandboxStatus(ContextWithDeadline().get(), pod_request, &pod_status),
              GrpcOk());
  const pid_t pause = PidOf(pod_status);
  ASSERT_GT(pause, 0);
  EXPECT_EQ(CgroupOf(pause, "memory"), absl::StrCat(pod_cgroup, "/crib-", pod, ".scope"));

  cri::ContainerConfig top = Config("top", {"sleep", "3600"});
  top.mutable_linux()->mutable_resources()->set_memory_limit_in_bytes(64 << 20);
  top.mutable_linux()->mutable_resources()->set_cpu_quota(50000);
  top.mutable_linux()->mutable_resources()->set_cpu_period(100000);
  top.mutable_linux()->mutable_resources()->set_cpu_shares(512);
  const std::string id = RunContainer(pod, top);
  ASSERT_FALSE(id.empty());
  const std::string scope = absl::StrCat("crib-", id, ".scope");
  const std::string cgroup = absl::StrCat(pod_cgroup, "/", scope);
  EXPECT_EQ(State(scope), "active");
  EXPECT_EQ(Property(scope, "Delegate"), "yes");
  EXPECT_EQ(Property(scope, "Slice"), slice);
  const pid_t init = PidOf(Status(id, true));
  ASSERT_GT(init, 0);
  for (const char* controller : {"memory", "cpu", "pids", "cpuset"}) {
    EXPECT_EQ(CgroupOf(init, controller), cgroup) << controller;
  }
  // systemd holds the limits (what it would apply again on a reload), and so do the files.
  EXPECT_EQ(Property(scope, CgroupV2() ? "MemoryMax" : "MemoryLimit"), "67108864");
  EXPECT_EQ(Property(scope, "CPUQuotaPerSecUSec"), "500ms");
  EXPECT_EQ(CgroupMemoryLimit(cgroup), "67108864");
  EXPECT_EQ(CgroupCpuQuota(cgroup), "50000");
  EXPECT_EQ(CgroupCpuShares(cgroup, 512), "512");

  // An exec joins the scope.
  cri::ExecSyncResponse exec;
  ASSERT_THAT(Exec(id, {"cat", "/proc/self/cgroup"}, &exec), GrpcOk());
  EXPECT_THAT(exec.stdout(), HasSubstr(scope)) << exec.stdout();

  // Update: the unit's property and the file.
  ASSERT_THAT(UpdateMemoryLimit(id, 96 << 20), GrpcOk());
  EXPECT_EQ(Property(scope, CgroupV2() ? "MemoryMax" : "MemoryLimit"), "100663296");
  EXPECT_EQ(CgroupMemoryLimit(cgroup), "100663296");

  // The unit's own reload keeps the limits and the device rules (v1: systemd writes the
  // devices files again from the unit's properties).
  ASSERT_EQ(Sh("systemctl daemon-reload").first, 0);
  EXPECT_EQ(CgroupMemoryLimit(cgroup), "100663296");
  if (!CgroupV2()) {
    const std::string devices = Slurp(CgroupDir("devices", cgroup) + "/devices.list");
    EXPECT_THAT(devices, Not(HasSubstr("a *:* rwm"))) << devices;
    EXPECT_THAT(devices, HasSubstr("c 1:3 rwm")) << devices;  // /dev/null
  }

  // Stop: the scope goes with its last process; remove leaves nothing behind.
  ASSERT_THAT(StopContainer(id), GrpcOk());
  EXPECT_TRUE(WaitGone(scope));
  ASSERT_THAT(RemoveContainer(id), GrpcOk());
  EXPECT_THAT(HierarchiesWith(cgroup), IsEmpty());
  ASSERT_THAT(RemovePod(pod), GrpcOk());
  EXPECT_TRUE(WaitGone(slice));
  EXPECT_THAT(OwnUnits(), IsEmpty());
  EXPECT_EQ(CgroupTree("/crib.slice"), 0);
}

TEST_F(SystemdDriverTest, KubeletSlicesAreParentsAndCgroupfsPathsAreRefused) {
  const std::string parent = "kubepods-burstable-pod0a1b2c3d_e4f5.slice";
  // As kubelet sends it: the slice's cgroup path.
  const std::string pod =
      RunPodIn("kubelet", absl::StrCat("/kubepods.slice/kubepods-burstable.slice/", parent));
  ASSERT_FALSE(pod.empty());
  const std::string slice =
      absl::StrCat("kubepods-burstable-pod0a1b2c3d_e4f5-crib_", pod, ".slice");
  EXPECT_EQ(State(slice), "active");
  EXPECT_EQ(Property(slice, "Slice"), parent);
  const std::string id = RunContainer(pod, Config("c", {"sleep", "3600"}));
  ASSERT_FALSE(id.empty());
  const pid_t init = PidOf(Status(id, true));
  EXPECT_EQ(CgroupOf(init, "memory"), absl::StrCat("/kubepods.slice/kubepods-burstable.slice/",
                                                   parent, "/", slice, "/crib-", id, ".scope"));
  ASSERT_THAT(RemovePod(pod), GrpcOk());
  EXPECT_TRUE(WaitGone(slice));
  // As others send it: the bare slice name.
  const std::string named = RunPodIn("named", parent);
  ASSERT_FALSE(named.empty());
  EXPECT_EQ(State(absl::StrCat("kubepods-burstable-pod0a1b2c3d_e4f5-crib_", named, ".slice")),
            "active");
  ASSERT_THAT(RemovePod(named), GrpcOk());
  EXPECT_THAT(OwnUnits(), IsEmpty());

  // The other driver's form, and slice names systemd would not take.
  for (const std::string bad : {"/kubepods/burstable/pod1", "kubepods--x.slice", "kubepods",
                                "/system.slice/kubepods-x.slice"}) {
    cri::RunPodSandboxRequest request;
    *request.mutable_config() = PodConfig("bad");
    request.mutable_config()->mutable_linux()->set_cgroup_parent(bad);
    cri::RunPodSandboxResponse response;
    grpc::Status status = runtime_->RunPodSandbox(ContextWithDeadline().get(), request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << bad;
    EXPECT_THAT(status.error_message(), HasSubstr(bad));
  }
  EXPECT_THAT(ListPods(), IsEmpty());
  EXPECT_THAT(OwnUnits(), IsEmpty());
}

TEST_F(SystemdDriverTest, OomKillsAreSeenThoughSystemdRemovesTheScope) {
  const std::string pod = RunPodIn("oom", "");
  cri::ContainerConfig hog = Config("hog", {"sh", "-c", "dd if=/dev/zero of=/dev/null bs=256M"});
  hog.mutable_linux()->mutable_resources()->set_memory_limit_in_bytes(32 << 20);
  cri::ContainerStatus status;
  RunToExit(pod, hog, &status);
  EXPECT_EQ(status.exit_code(), 137);
  EXPECT_EQ(status.reason(), "OOMKilled");
  EXPECT_TRUE(WaitGone(absl::StrCat("crib-", status.id(), ".scope")));
  cri::ContainerStatus plain;
  RunToExit(pod, Config("three", {"sh", "-c", "exit 3"}), &plain);
  EXPECT_EQ(plain.exit_code(), 3);
  EXPECT_EQ(plain.reason(), "Error");
}

TEST_F(SystemdDriverTest, FailedCallsLeaveNoUnit) {
  const std::string pod = RunPodIn("undo", "");
  for (const char* step : {"monitor", "watch"}) {
    ::setenv("CRIB_TEST_FAILPOINT", absl::StrCat("container.create.after_", step).c_str(), 1);
    cribd_.reset();
    ASSERT_TRUE(Start());
    ::unsetenv("CRIB_TEST_FAILPOINT");
    std::string id;
    grpc::Status status = Create(pod, Config("c", {"sleep", "3600"}), &id);
    EXPECT_FALSE(status.ok()) << step;
    std::vector<std::string> units = OwnUnits();
    EXPECT_EQ(units.size(), 2u) << step << ": " << absl::StrJoin(units, ", ");  // the pod's
    // Below the pod's slice, only the pause's scope (with no cgroup below it).
    const std::string pod_slice = absl::StrCat("/crib.slice/crib-", pod, ".slice");
    EXPECT_EQ(
        CgroupTree(pod_slice),
        static_cast<int>(HierarchiesWith(absl::StrCat(pod_slice, "/crib-", pod, ".scope")).size()))
        << step;
  }
  for (const char* step : {"cgroup", "pause", "pause_ready", "place_pause"}) {
    ::setenv("CRIB_TEST_FAILPOINT", absl::StrCat("pod.run.after_", step).c_str(), 1);
    cribd_.reset();
    ASSERT_TRUE(Start());
    ::unsetenv("CRIB_TEST_FAILPOINT");
    cri::RunPodSandboxRequest request;
    *request.mutable_config() = PodConfig(absl::StrCat("fail-", step));
    request.mutable_config()->mutable_linux()->set_cgroup_parent("");
    cri::RunPodSandboxResponse response;
    grpc::Status status = runtime_->RunPodSandbox(ContextWithDeadline().get(), request, &response);
    EXPECT_FALSE(status.ok()) << step;
    EXPECT_EQ(ListPods().size(), 1u) << step;
    EXPECT_EQ(OwnUnits().size(), 2u) << step << ": " << absl::StrJoin(OwnUnits(), ", ");
  }
  cribd_.reset();
  ASSERT_TRUE(Start());
  ASSERT_THAT(RemovePod(pod), GrpcOk());
  EXPECT_TRUE(WaitGone(absl::StrCat("crib-", pod, ".slice")));
  EXPECT_THAT(OwnUnits(), IsEmpty());
}

TEST_F(SystemdDriverTest, RecoveryKeepsLiveScopesStopsOrphansAndSurvivesReexec) {
  const std::string pod = RunPodIn("recover", "");
  const std::string id = RunContainer(pod, Config("c", {"sleep", "3600"}));
  ASSERT_FALSE(id.empty());
  const std::string scope = absl::StrCat("crib-", id, ".scope");

  // An orphan of this cribd (its description names the state dir) and one of another.
  auto start_orphan = [&](const std::string& name, const std::string& owner) -> pid_t {
    pid_t pid = ::fork();
    if (pid == 0) {
      ::execl("/bin/sleep", "sleep", "3600", nullptr);
      _exit(127);
    }
    absl::Status s = bus_->StartTransientUnit(
        name, {{"Description", absl::StrCat("crib scope ", name, " [", owner, "]")},
               {"PIDs", std::vector<uint32_t>{static_cast<uint32_t>(pid)}}});
    EXPECT_THAT(s, IsOk());
    return pid;
  };
  const std::string orphan = absl::StrCat("crib-", std::string(64, 'a'), ".scope");
  const std::string foreign = absl::StrCat("crib-", std::string(64, 'b'), ".scope");
  const pid_t orphan_pid = start_orphan(orphan, options_.state_dir);
  const pid_t foreign_pid = start_orphan(foreign, "/somewhere/else");

  ASSERT_EQ(cribd_->SignalAndWait(SIGKILL), SIGKILL);
  cribd_.reset();
  // systemd itself re-executed: the scopes stay, with their processes.
  ASSERT_EQ(Sh("systemctl daemon-reexec").first, 0);
  for (int i = 0; i < 500 && State(scope) != "active"; ++i) absl::SleepFor(absl::Milliseconds(10));
  EXPECT_EQ(State(scope), "active");
  ASSERT_TRUE(Start());
  EXPECT_TRUE(WaitGone(orphan));
  int wstatus = 0;
  EXPECT_EQ(::waitpid(orphan_pid, &wstatus, 0), orphan_pid);
  EXPECT_EQ(State(foreign), "active");
  EXPECT_EQ(State(scope), "active");
  EXPECT_EQ(State(absl::StrCat("crib-", pod, ".slice")), "active");
  cri::ExecSyncResponse exec;
  ASSERT_THAT(Exec(id, {"true"}, &exec), GrpcOk());
  EXPECT_EQ(exec.exit_code(), 0);

  ASSERT_THAT(bus_->StopUnit(foreign), IsOk());
  EXPECT_EQ(::waitpid(foreign_pid, &wstatus, 0), foreign_pid);
  ASSERT_THAT(RemovePod(pod), GrpcOk());
  EXPECT_THAT(OwnUnits(), IsEmpty());
}

// Runtime handlers with the systemd driver: runc and crun, run with --systemd-cgroup, have
// systemd start each container's scope (crib-<id>.scope in the pod's slice, where crib's own
// launcher puts it), and crib reads its cgroup there: limits, updates, stats, OOM kills,
// recovery after kill -9, and nothing left after the removal.
class SystemdHandlerTest : public SystemdDriverTest,
                           public ::testing::WithParamInterface<std::string> {
 protected:
  void SetUp() override {
    const std::string path = OciRuntimePath(GetParam(), CRIB_SOURCE_DIR);
    ASSERT_EQ(::access(path.c_str(), X_OK), 0) << path << " is not installed";
    extra_config_ = absl::StrCat("[runtimes.", GetParam(), "]\npath = \"", path, "\"\n");
    SystemdDriverTest::SetUp();
  }

  std::string HandlerPod(const std::string& name, const std::string& parent) {
    cri::PodSandboxConfig config = PodConfig(name);
    config.mutable_linux()->set_cgroup_parent(parent);
    return RunPod(config, GetParam());
  }

  // The runtime's own state of container `id`.
  std::string RuntimeState(const std::string& id) const {
    return absl::StrCat(options_.state_dir, "/runtimes/", GetParam(), "/", id);
  }
};

TEST_P(SystemdHandlerTest, ContainersRunInScopesTheRuntimeHasSystemdStart) {
  const std::string parent = "kubepods-burstable-pod5e6f.slice";
  const std::string pod =
      HandlerPod("handler", absl::StrCat("/kubepods.slice/kubepods-burstable.slice/", parent));
  ASSERT_FALSE(pod.empty());
  const std::string slice = absl::StrCat("kubepods-burstable-pod5e6f-crib_", pod, ".slice");
  const std::string pod_cgroup =
      absl::StrCat("/kubepods.slice/kubepods-burstable.slice/", parent, "/", slice);
  EXPECT_EQ(State(slice), "active");

  cri::ContainerConfig top = Config("top", {"sleep", "3600"});
  top.mutable_linux()->mutable_resources()->set_memory_limit_in_bytes(64 << 20);
  top.mutable_linux()->mutable_resources()->set_cpu_quota(50000);
  top.mutable_linux()->mutable_resources()->set_cpu_period(100000);
  const std::string id = RunContainer(pod, top);
  ASSERT_FALSE(id.empty()) << cribd_->Log();
  EXPECT_TRUE(std::filesystem::exists(RuntimeState(id))) << RuntimeState(id);
  const std::string scope = absl::StrCat("crib-", id, ".scope");
  const std::string cgroup = absl::StrCat(pod_cgroup, "/", scope);
  EXPECT_EQ(State(scope), "active");
  EXPECT_EQ(Property(scope, "Slice"), slice);
  // On v1 runc's scope has the devices controller from its start (delegated to it): runc
  // sends its device rules only after the init's mounts, and systemd would meanwhile remove the
  // scope's devices cgroup under the init whenever it realized the pod's units again. (crun
  // sends its rules when it starts the scope.)
  if (!CgroupV2() && GetParam() == "runc") {
    const std::vector<std::string> delegated =
        absl::StrSplit(Property(scope, "DelegateControllers"), ' ');
    EXPECT_THAT(delegated, Contains("devices"));
  }
  const pid_t init = PidOf(Status(id, true));
  ASSERT_GT(init, 0);
  // In the scope, or in a cgroup of the runtime's below it (crun: "<scope>/container").
  const std::string own = CgroupOf(init, "memory");
  EXPECT_TRUE(own == cgroup || absl::StartsWith(own, cgroup + "/")) << own;
  for (const char* controller : {"cpu", "pids"}) {
    EXPECT_EQ(CgroupOf(init, controller), own) << controller;
  }
  EXPECT_EQ(CgroupMemoryLimit(own), "67108864");
  EXPECT_EQ(CgroupCpuQuota(own), "50000");
  cri::ExecSyncResponse exec;
  ASSERT_THAT(Exec(id, {"cat", "/proc/self/cgroup"}, &exec), GrpcOk());
  EXPECT_THAT(exec.stdout(), HasSubstr(scope)) << exec.stdout();

  // The runtime's update reaches the scope's cgroup; stats are read from it.
  ASSERT_THAT(UpdateMemoryLimit(id, 96 << 20), GrpcOk());
  EXPECT_EQ(CgroupMemoryLimit(own), "100663296");
  cri::ContainerStatsRequest stats_request;
  stats_request.set_container_id(id);
  cri::ContainerStatsResponse stats;
  ASSERT_THAT(runtime_->ContainerStats(ContextWithDeadline().get(), stats_request, &stats),
              GrpcOk());
  EXPECT_GT(stats.stats().memory().usage_bytes().value(), 0u);
  EXPECT_GT(stats.stats().cpu().usage_core_nano_seconds().value(), 0u);

  // A privileged container (all devices: the runtime gives systemd no device rules) runs and
  // execs in its scope.
  cri::ContainerConfig privileged = Config("privileged", {"sleep", "3600"});
  privileged.mutable_linux()->mutable_security_context()->set_privileged(true);
  cri::PodSandboxConfig privileged_config = PodConfig("privileged", /*host_network=*/false);
  privileged_config.mutable_linux()->mutable_security_context()->set_privileged(true);
  privileged_config.mutable_linux()->set_cgroup_parent("");
  const std::string privileged_pod = RunPod(privileged_config, GetParam());
  ASSERT_FALSE(privileged_pod.empty());
  const std::string root = RunContainer(privileged_pod, privileged);
  ASSERT_FALSE(root.empty()) << cribd_->Log();
  // runc asks systemd for the devices controller (every char and block device allowed), so
  // that systemd keeps the scope's devices cgroup that its execs enter.
  if (GetParam() == "runc") {
    EXPECT_EQ(Property(absl::StrCat("crib-", root, ".scope"), "DevicePolicy"), "strict");
  }
  // Other scopes starting in the slice make systemd realize it again.
  std::vector<std::string> others;
  for (int i = 0; i < 3; ++i) {
    others.push_back(RunContainer(pod, Config(absl::StrCat("other", i), {"sleep", "3600"})));
  }
  for (int i = 0; i < 5; ++i) {
    ASSERT_THAT(Exec(root, {"cat", "/proc/self/cgroup"}, &exec), GrpcOk()) << cribd_->Log();
    EXPECT_THAT(exec.stdout(), HasSubstr(absl::StrCat("crib-", root, ".scope"))) << exec.stdout();
  }
  ASSERT_THAT(RemoveContainer(root), GrpcOk());
  for (const std::string& other : others) ASSERT_THAT(RemoveContainer(other), GrpcOk());
  ASSERT_THAT(RemovePod(privileged_pod), GrpcOk());

  // kill -9 of cribd: the container and its scope stay; the new cribd execs into it, stops it
  // (the scope goes with its last process) and removes it.
  ASSERT_EQ(cribd_->SignalAndWait(SIGKILL), SIGKILL);
  cribd_.reset();
  ASSERT_TRUE(Start());
  EXPECT_EQ(State(scope), "active");
  ASSERT_THAT(Exec(id, {"true"}, &exec), GrpcOk());
  EXPECT_EQ(exec.exit_code(), 0);
  ASSERT_THAT(StopContainer(id), GrpcOk());
  EXPECT_TRUE(WaitGone(scope));
  ASSERT_THAT(RemoveContainer(id), GrpcOk());
  EXPECT_THAT(HierarchiesWith(cgroup), IsEmpty());
  EXPECT_FALSE(std::filesystem::exists(RuntimeState(id)));

  // An OOM kill in the runtime's scope is seen.
  cri::ContainerConfig hog = Config("hog", {"sh", "-c", "dd if=/dev/zero of=/dev/null bs=256M"});
  hog.mutable_linux()->mutable_resources()->set_memory_limit_in_bytes(32 << 20);
  cri::ContainerStatus status;
  RunToExit(pod, hog, &status);
  EXPECT_EQ(status.exit_code(), 137);
  EXPECT_EQ(status.reason(), "OOMKilled");
  ASSERT_THAT(RemoveContainer(status.id()), GrpcOk());
  EXPECT_TRUE(WaitGone(absl::StrCat("crib-", status.id(), ".scope")));

  // A container whose create fails leaves no scope, cgroup or runtime state.
  grpc::Status missing = Create(pod, Config("missing", {"/no/such/binary"}));
  EXPECT_FALSE(missing.ok());
  EXPECT_THAT(missing.error_message(), HasSubstr(GetParam()));
  // Below the pod's slice, only the pause's scope (with no cgroup below it).
  EXPECT_EQ(
      CgroupTree(pod_cgroup),
      static_cast<int>(HierarchiesWith(absl::StrCat(pod_cgroup, "/crib-", pod, ".scope")).size()));

  ASSERT_THAT(RemovePod(pod), GrpcOk());
  EXPECT_TRUE(WaitGone(slice));
  EXPECT_THAT(OwnUnits(), IsEmpty());
  EXPECT_THAT(HierarchiesWith(pod_cgroup), IsEmpty());
}

// cribd killed in the middle of a create, a start or a removal of a runtime's container: the
// restarted cribd undoes or finishes it, and neither the runtime's scope nor its state is left.
TEST_P(SystemdHandlerTest, ACrashMidCallLeavesNoScopeOrRuntimeState) {
  const std::string pod = HandlerPod("crash", "");
  ASSERT_FALSE(pod.empty());
  const std::string pause_scope = absl::StrCat("crib-", pod, ".scope");
  const std::string runtime_root = absl::StrCat(options_.state_dir, "/runtimes/", GetParam());
  auto container_scopes = [&] {
    std::vector<std::string> out;
    absl::StatusOr<std::vector<std::pair<std::string, std::string>>> units =
        bus_->ListUnits("crib-*.scope");
    EXPECT_THAT(units.status(), IsOk());
    if (!units.ok()) return out;
    for (const auto& [name, description] : *units) {
      if (name != pause_scope) out.push_back(name);
    }
    return out;
  };
  for (const char* step : {"container.create.after_monitor", "container.start.after_start",
                           "container.remove.after_stop"}) {
    SCOPED_TRACE(step);
    std::string id;
    if (!absl::StartsWith(step, "container.create")) {
      if (absl::StartsWith(step, "container.remove")) {
        id = RunContainer(pod, Config("c", {"sleep", "3600"}));
      } else {
        ASSERT_THAT(Create(pod, Config("c", {"sleep", "3600"}), &id), GrpcOk());
      }
      ASSERT_FALSE(id.empty());
    }
    cribd_.reset();
    ::setenv("CRIB_TEST_FAILPOINT", absl::StrCat(step, ":crash").c_str(), 1);
    ASSERT_TRUE(Start());
    ::unsetenv("CRIB_TEST_FAILPOINT");
    grpc::Status status = absl::StartsWith(step, "container.create")
                              ? Create(pod, Config("c", {"sleep", "3600"}), &id)
                          : absl::StartsWith(step, "container.start") ? StartContainer(id)
                                                                      : RemoveContainer(id);
    EXPECT_FALSE(status.ok());
    EXPECT_THAT(cribd_->Log(), HasSubstr(absl::StrCat("failpoint ", step, ": killing cribd")));
    cribd_->SignalAndWait(SIGKILL);  // reaps it (dead already: the call failed with it)
    cribd_.reset();
    ASSERT_TRUE(Start());
    if (absl::StartsWith(step, "container.start")) {
      // The start was recorded late: the container runs in its scope; removed, nothing stays.
      EXPECT_EQ(Status(id).status().state(), cri::CONTAINER_RUNNING);
      EXPECT_THAT(container_scopes(), ::testing::ElementsAre(absl::StrCat("crib-", id, ".scope")));
      ASSERT_THAT(RemoveContainer(id), GrpcOk());
    }
    EXPECT_THAT(List(), IsEmpty());
    for (int i = 0; i < 500 && !container_scopes().empty(); ++i) {
      absl::SleepFor(absl::Milliseconds(10));
    }
    EXPECT_THAT(container_scopes(), IsEmpty());
    EXPECT_THAT(ListDirectory(runtime_root), IsEmpty());
    EXPECT_EQ(State(pause_scope), "active");
  }
  // And the whole sequence runs again.
  const std::string id = RunContainer(pod, Config("again", {"sleep", "3600"}));
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(State(absl::StrCat("crib-", id, ".scope")), "active");
  ASSERT_THAT(RemovePod(pod), GrpcOk());
  EXPECT_THAT(OwnUnits(), IsEmpty());
}

INSTANTIATE_TEST_SUITE_P(Handlers, SystemdHandlerTest, ::testing::Values("runc", "crun"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace crib::testing
