// Restarts, crashes and faults through a real cribd: kill -9 with pods and containers
// running, a kill at every step of the multi-step RPCs (CRIB_TEST_FAILPOINT=<step>:crash),
// client deadlines shorter than the work, a full disk, concurrent clients, and many
// create/remove cycles. After each, the machine is scanned for anything orphaned: processes,
// mounts, network namespaces, veths, cgroups, nftables rules, IP allocations and files under
// the root and state directories.
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "support/cri_fixture.h"
#include "support/machine.h"

namespace crib::testing {
namespace {

using ::testing::HasSubstr;

// Everything crib can leave on the machine, counted (or listed, where a count would hide a
// swap). The content store and snapshots are compared apart: images stay unless removed.
struct MachineState {
  int processes = 0;  // crib-pause and crib-monitor of this test
  int mounts = 0;     // below the test's directory, the netns directory's own mount aside
  int pins = 0, pod_dirs = 0, bundles = 0, layers = 0;
  int cgroups = 0;
  int veths = 0;
  int nft_pod_rules = 0;
  int ip_allocations = 0;
  int pods = 0, containers = 0;
  bool operator==(const MachineState&) const = default;
};

std::string DescribeState(const MachineState& m) {
  return absl::StrCat("processes ", m.processes, ", mounts ", m.mounts, ", pins ",
                      m.pins, ", pod dirs ", m.pod_dirs, ", bundles ", m.bundles, ", layers ",
                      m.layers, ", cgroups ", m.cgroups, ", veths ", m.veths, ", nft pod rules ",
                      m.nft_pod_rules, ", ip allocations ", m.ip_allocations, ", pods ", m.pods,
                      ", containers ", m.containers);
}

class RecoveryTest : public CriFixture {
 protected:
  void TearDown() override {
    ::unsetenv("CRIB_TEST_FAILPOINT");
    CriFixture::TearDown();
  }

  // Restarts cribd, with CRIB_TEST_FAILPOINT=`failpoint` when it is not empty.
  void Restart(const std::string& failpoint = "") {
    if (cribd_ != nullptr) cribd_->SignalAndWait(SIGTERM);
    cribd_.reset();
    if (failpoint.empty()) {
      ::unsetenv("CRIB_TEST_FAILPOINT");
    } else {
      ::setenv("CRIB_TEST_FAILPOINT", failpoint.c_str(), 1);
    }
    ASSERT_TRUE(Start());
    ::unsetenv("CRIB_TEST_FAILPOINT");
  }

  // Waits for a crashed cribd to be gone, then starts a clean one.
  void RestartAfterCrash() {
    for (int i = 0; i < 500 && ::kill(cribd_->pid(), 0) == 0 && !Exited(cribd_->pid()); ++i) {
      absl::SleepFor(absl::Milliseconds(10));
    }
    cribd_->SignalAndWait(SIGKILL);  // reaps it (it is dead already, or dies now)
    cribd_.reset();
    ASSERT_TRUE(Start());
  }

  // Scan() once it equals `want`, or after 10 s: a stopped pod's veth pair is deleted in the
  // background, and its removal leaves it to that.
  MachineState Settled(const MachineState& want) {
    MachineState now;
    WaitFor([&] { return (now = Scan()) == want; });
    return now;
  }

  MachineState Scan() {
    MachineState m;
    for (pid_t pid : ProcessesWith("crib-")) {
      const std::string cmdline = Slurp(absl::StrCat("/proc/", pid, "/cmdline"));
      const std::string cgroup = Slurp(absl::StrCat("/proc/", pid, "/cgroup"));
      if (absl::StrContains(cmdline, dir_.path()) || absl::StrContains(cgroup, cgroup_parent_)) {
        if (absl::StrContains(cmdline, "crib-pause") ||
            absl::StrContains(cmdline, "crib-monitor")) {
          ++m.processes;
        }
      }
    }
    for (const std::string& mount : MountsUnder(dir_.path())) {
      if (!IsPinDir(options_.state_dir, mount)) ++m.mounts;
    }
    m.pins = PinsIn(options_.state_dir);
    m.pod_dirs = EntriesIn(options_.state_dir + "/pods");
    m.bundles = EntriesIn(options_.state_dir + "/containers");
    m.layers = EntriesIn(options_.root_dir + "/containers");
    m.cgroups = CgroupTree(cgroup_parent_);
    const std::string links = Sh("ip -o link show master " + bridge_).second;
    for (absl::string_view line : absl::StrSplit(links, '\n', absl::SkipEmpty())) {
      if (absl::StrContains(line, ": crib")) ++m.veths;
    }
    const std::string rules = Sh("nft list table inet " + table_).second;
    for (size_t at = rules.find("\"pod:"); at != std::string::npos;
         at = rules.find("\"pod:", at + 1)) {
      ++m.nft_pod_rules;
    }
    const auto [rc, count] = Sh(absl::StrCat("sqlite3 ", options_.root_dir,
                                             "/metadata.db 'select count(*) from ip_allocations'"));
    (void)absl::SimpleAtoi(absl::StripAsciiWhitespace(count), &m.ip_allocations);
    m.pods = static_cast<int>(ListPods().size());
    m.containers = static_cast<int>(List().size());
    return m;
  }

  // Removes every pod (and so every container), as kubelet would after a restart.
  void RemoveEverything() {
    for (const cri::Container& c : List()) EXPECT_THAT(RemoveContainer(c.id()), GrpcOk());
    for (const cri::PodSandbox& pod : ListPods()) {
      EXPECT_THAT(StopPod(pod.id()), GrpcOk());
      EXPECT_THAT(RemovePod(pod.id()), GrpcOk());
    }
  }

  // A pod on crib's bridge with one running container.
  std::pair<std::string, std::string> PodWithContainer(const std::string& name) {
    const std::string pod = RunPod(PodConfig(name, /*host_network=*/false));
    const std::string id = RunContainer(pod, Config(name, {"sleep", "100000"}));
    return {pod, id};
  }
};

TEST_F(RecoveryTest, KillNineWithTenPodsKeepsEveryStateIdIpAndLog) {
  const MachineState empty = Scan();
  struct Seen {
    std::string pod, container, ip, log;
  };
  std::vector<Seen> seen;
  for (int i = 0; i < 10; ++i) {
    auto [pod, id] = PodWithContainer(absl::StrCat("p", i));
    cri::PodSandboxStatusRequest request;
    request.set_pod_sandbox_id(pod);
    cri::PodSandboxStatusResponse response;
    ASSERT_THAT(runtime_->PodSandboxStatus(ContextWithDeadline().get(), request, &response),
                GrpcOk());
    seen.push_back({pod, id, response.status().network().ip(), Status(id).status().log_path()});
  }
  const MachineState running = Scan();
  cribd_->SignalAndWait(SIGKILL);
  cribd_.reset();
  ASSERT_TRUE(Start());
  EXPECT_THAT(cribd_->Log(), HasSubstr("recovered in"));
  EXPECT_THAT(cribd_->Log(), HasSubstr("10 pods (0 no longer ready), 10 containers"));
  EXPECT_EQ(Settled(running), running) << DescribeState(Scan());
  for (const Seen& s : seen) {
    cri::PodSandboxStatusRequest request;
    request.set_pod_sandbox_id(s.pod);
    cri::PodSandboxStatusResponse response;
    ASSERT_THAT(runtime_->PodSandboxStatus(ContextWithDeadline().get(), request, &response),
                GrpcOk());
    EXPECT_EQ(response.status().state(), cri::SANDBOX_READY);
    EXPECT_EQ(response.status().network().ip(), s.ip);
    cri::ContainerStatus status = Status(s.container).status();
    EXPECT_EQ(status.state(), cri::CONTAINER_RUNNING);
    EXPECT_EQ(status.log_path(), s.log);
    cri::ExecSyncResponse exec;
    ASSERT_THAT(Exec(s.container, {"echo", "still", "here"}, &exec), GrpcOk());
    EXPECT_EQ(exec.stdout(), "still here\n");
  }
  for (const Seen& s : seen) {
    ASSERT_THAT(StopContainer(s.container, 1), GrpcOk());
    EXPECT_EQ(Status(s.container).status().state(), cri::CONTAINER_EXITED);
  }
  RemoveEverything();
  EXPECT_EQ(Settled(empty), empty) << DescribeState(Scan());
}

TEST_F(RecoveryTest, MonitorGoneMeansExitedUnknownAndPauseGoneMeansNotReady) {
  auto [pod, id] = PodWithContainer("gone");
  const int monitor = std::atoi(
      Slurp(absl::StrCat(options_.state_dir, "/containers/", id, "/monitor.pid")).c_str());
  ASSERT_GT(monitor, 0);
  cribd_->SignalAndWait(SIGKILL);
  cribd_.reset();
  ASSERT_EQ(::kill(monitor, SIGKILL), 0);
  for (pid_t pid : ProcessesWith(pod)) {
    if (absl::StrContains(Slurp(absl::StrCat("/proc/", pid, "/cmdline")), "crib-pause")) {
      ::kill(pid, SIGKILL);
    }
  }
  absl::SleepFor(absl::Milliseconds(200));
  ASSERT_TRUE(Start());
  cri::ContainerStatus status = Status(id).status();
  EXPECT_EQ(status.state(), cri::CONTAINER_EXITED);
  EXPECT_EQ(status.reason(), "Unknown");
  cri::PodSandboxStatusRequest request;
  request.set_pod_sandbox_id(pod);
  cri::PodSandboxStatusResponse response;
  ASSERT_THAT(runtime_->PodSandboxStatus(ContextWithDeadline().get(), request, &response),
              GrpcOk());
  EXPECT_EQ(response.status().state(), cri::SANDBOX_NOTREADY);
  // Without its monitor, what was left of the container is gone too.
  EXPECT_EQ(Slurp(CgroupDir("pids", absl::StrCat(cgroup_parent_, "/", pod, "/", id)) +
                  "/cgroup.procs"),
            "");
  RemoveEverything();
}

// Each step of RunPodSandbox, CreateContainer, StartContainer, RemoveContainer,
// RemovePodSandbox and PullImage in turn: cribd is killed right after it, started again, and
// the whole sequence then works and leaves nothing behind. A step with "/lean" runs the
// sequence with a pod that shares no process namespace (no crib-pause), as kubelet's are; one
// with "/runc" with a pod of runtime handler runc (Debian's), whose state must go too; one with
// "/userns" with a pod in a user namespace of its own (its pin and id-mapped layers too).
class CrashAtStepTest : public RecoveryTest, public ::testing::WithParamInterface<std::string> {
 protected:
  void SetUp() override {
    if (absl::EndsWith(GetParam(), "/runc")) {
      extra_config_ = absl::StrCat("[runtimes.runc]\npath = \"",
                                   OciRuntimePath("runc", CRIB_SOURCE_DIR), "\"\n");
    }
    RecoveryTest::SetUp();
  }
};

TEST_P(CrashAtStepTest, RestartFinishesOrUndoesAndLeavesNothing) {
  const MachineState empty = Scan();
  const std::vector<std::string> param = absl::StrSplit(GetParam(), '/');
  const std::string step = param[0];
  const bool lean = param.size() > 1 && param[1] == "lean";
  const bool runc = param.size() > 1 && param[1] == "runc";
  const bool userns = param.size() > 1 && param[1] == "userns";
  Restart(step + ":crash");
  // The sequence, until cribd dies at the armed step.
  auto sequence = [&]() -> bool {
    if (!Pull("layers:latest").ok()) return false;
    cri::RunPodSandboxRequest run;
    *run.mutable_config() = PodConfig("crash", /*host_network=*/false);
    if (lean) {
      run.mutable_config()
          ->mutable_linux()
          ->mutable_security_context()
          ->mutable_namespace_options()
          ->set_pid(cri::CONTAINER);
    }
    if (runc) run.set_runtime_handler("runc");
    if (userns) {
      cri::UserNamespace* user = run.mutable_config()
                                     ->mutable_linux()
                                     ->mutable_security_context()
                                     ->mutable_namespace_options()
                                     ->mutable_userns_options();
      user->set_mode(cri::POD);
      for (cri::IDMapping* m : {user->add_uids(), user->add_gids()}) {
        m->set_host_id(4 << 20);
        m->set_length(65536);
      }
    }
    cri::RunPodSandboxResponse ran;
    if (!runtime_->RunPodSandbox(ContextWithDeadline(absl::Seconds(30)).get(), run, &ran).ok()) {
      return false;
    }
    pod_configs_[ran.pod_sandbox_id()] = run.config();
    std::string id;
    if (!Create(ran.pod_sandbox_id(), Config("c", {"sleep", "100000"}, "layers:latest"), &id)
             .ok() ||
        !StartContainer(id).ok() || !RemoveContainer(id).ok()) {
      return false;
    }
    return StopPod(ran.pod_sandbox_id()).ok() && RemovePod(ran.pod_sandbox_id()).ok();
  };
  EXPECT_FALSE(sequence()) << "cribd did not stop at " << step;
  EXPECT_THAT(cribd_->Log(), HasSubstr(absl::StrCat("failpoint ", step, ": killing cribd")));
  RestartAfterCrash();
  // Recovery undid an interrupted create or run, finished an interrupted removal, and recorded
  // an interrupted start, before any client call.
  const MachineState recovered = Scan();
  if (absl::StartsWith(step, "pod.") || absl::StartsWith(step, "image.")) {
    EXPECT_EQ(recovered, empty) << DescribeState(recovered) << "\n" << cribd_->Log();
  } else if (absl::StartsWith(step, "container.create") ||
             absl::StartsWith(step, "container.remove")) {
    EXPECT_EQ(recovered.pods, 1) << DescribeState(recovered);
    EXPECT_EQ(recovered.containers, 0) << DescribeState(recovered);
    EXPECT_EQ(recovered.bundles, 0) << DescribeState(recovered);
    EXPECT_EQ(recovered.layers, 0) << DescribeState(recovered);
    EXPECT_EQ(recovered.processes, 1) << DescribeState(recovered);  // the pause process
  } else {
    const std::vector<cri::Container> containers = List();
    ASSERT_EQ(containers.size(), 1u);
    EXPECT_EQ(containers[0].state(), step == "container.start.before_start"
                                         ? cri::CONTAINER_CREATED
                                         : cri::CONTAINER_RUNNING);
    if (step == "container.start.before_start") {
      EXPECT_THAT(StartContainer(containers[0].id()), GrpcOk());
    }
    EXPECT_EQ(Status(containers[0].id()).status().state(), cri::CONTAINER_RUNNING);
  }
  if (absl::StartsWith(step, "image.")) {
    cri::ListImagesResponse images;
    ASSERT_THAT(
        cribd_->Image()->ListImages(ContextWithDeadline().get(), cri::ListImagesRequest(), &images),
        GrpcOk());
    EXPECT_EQ(images.images_size(), 1);  // busybox, pulled before the crash
  }
  // Then what the client knows of is cleaned up, as kubelet would, and the whole sequence
  // runs again from scratch.
  RemoveEverything();
  EXPECT_EQ(Settled(empty), empty) << DescribeState(Scan()) << "\n" << cribd_->Log();
  EXPECT_TRUE(sequence()) << cribd_->Log();
  EXPECT_EQ(Settled(empty), empty) << DescribeState(Scan());
  // Nothing of the image is half there: it can be removed whole and the store is empty.
  cri::RemoveImageRequest remove;
  remove.mutable_image()->set_image(Ref("layers:latest"));
  cri::RemoveImageResponse removed;
  ASSERT_THAT(cribd_->Image()->RemoveImage(ContextWithDeadline().get(), remove, &removed),
              GrpcOk());
  remove.mutable_image()->set_image(Ref("busybox:latest"));
  ASSERT_THAT(cribd_->Image()->RemoveImage(ContextWithDeadline().get(), remove, &removed),
              GrpcOk());
  EXPECT_EQ(EntriesIn(options_.root_dir + "/snapshots"), 0);
  EXPECT_EQ(EntriesIn(options_.root_dir + "/content/blobs/sha256"), 0);
  // runc's own state of the containers is gone with them.
  if (runc) {
    EXPECT_EQ(EntriesIn(options_.state_dir + "/runtimes/runc"), 0);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Steps, CrashAtStepTest,
    ::testing::Values(
        "image.pull.after_resolve", "image.pull.after_layer", "image.pull.before_record",
        "pod.run.after_reserve", "pod.run.after_netns", "pod.run.after_pins", "pod.run.after_files",
        "pod.run.after_shm", "pod.run.after_network_start", "pod.run.after_cgroup",
        "pod.run.after_pause", "pod.run.after_network", "pod.run.after_pause_ready",
        "pod.run.after_pins/lean", "pod.run.after_cgroup/lean", "pod.run.after_network/lean",
        "pod.remove.after_stop/lean", "pod.remove.after_netns/lean",
        "container.create.after_reserve", "container.create.after_cgroup_start",
        "container.create.after_rootfs", "container.create.after_spec",
        "container.create.after_monitor", "container.start.before_start",
        "container.start.after_start", "container.remove.after_mark", "container.remove.after_stop",
        "container.remove.after_unmount", "pod.remove.after_mark", "pod.remove.after_stop",
        "pod.remove.after_containers", "pod.remove.after_netns", "pod.remove.after_cgroup",
        "container.create.after_spec/runc", "container.create.after_monitor/runc",
        "container.start.before_start/runc", "container.start.after_start/runc",
        "container.remove.after_stop/runc", "pod.remove.after_containers/runc",
        "pod.run.after_userns/userns", "pod.run.after_files/userns",
        "container.create.after_rootfs/userns", "container.create.after_monitor/userns",
        "container.start.after_start/userns", "container.remove.after_unmount/userns",
        "pod.remove.after_netns/userns"),
    [](const ::testing::TestParamInfo<std::string>& info) {
      std::string name = info.param;
      for (char& c : name) {
        if (c == '.' || c == '/') c = '_';
      }
      return name;
    });

// RemoveContainer moves the bundle and the writable layer into the trash, which a thread
// empties; what a crash left there is deleted after the next start.
TEST_F(RecoveryTest, TheTrashIsEmptiedInTheBackgroundAndAfterACrash) {
  const std::string state_trash = options_.state_dir + "/trash";
  const std::string root_trash = options_.root_dir + "/trash";
  auto wait_empty = [](const std::string& dir) {
    for (int i = 0; i < 3000 && EntriesIn(dir) != 0; ++i) absl::SleepFor(absl::Milliseconds(10));
    return EntriesIn(dir);
  };
  auto [pod, id] = PodWithContainer("trash");
  ASSERT_THAT(StopContainer(id), GrpcOk());
  ASSERT_THAT(RemoveContainer(id), GrpcOk());
  EXPECT_FALSE(std::filesystem::exists(options_.state_dir + "/containers/" + id));
  EXPECT_FALSE(std::filesystem::exists(options_.root_dir + "/containers/" + id));
  EXPECT_EQ(wait_empty(state_trash), 0);
  EXPECT_EQ(wait_empty(root_trash), 0);

  // A crash between the rename and the deletion: trees left in both trash directories.
  cribd_->SignalAndWait(SIGKILL);
  cribd_.reset();
  for (const std::string& dir : {state_trash, root_trash}) {
    std::filesystem::create_directories(dir + "/left.1/upper/work");
    std::ofstream(dir + "/left.1/upper/file") << "x";
  }
  ASSERT_TRUE(Start());
  EXPECT_EQ(wait_empty(state_trash), 0);
  EXPECT_EQ(wait_empty(root_trash), 0);
  RemoveEverything();
}

TEST_F(RecoveryTest, RunPodSandboxRetriedAfterItsDeadlineGetsTheSamePod) {
  Restart("pod.run.after_pause:sleep=2s");
  cri::RunPodSandboxRequest run;
  *run.mutable_config() = PodConfig("slow", /*host_network=*/false);
  cri::RunPodSandboxResponse first;
  grpc::Status status =
      runtime_->RunPodSandbox(ContextWithDeadline(absl::Milliseconds(500)).get(), run, &first);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  cri::RunPodSandboxResponse second;
  ASSERT_THAT(runtime_->RunPodSandbox(ContextWithDeadline(absl::Seconds(30)).get(), run, &second),
              GrpcOk());
  EXPECT_EQ(second.pod_sandbox_id().size(), 64u);
  ASSERT_EQ(ListPods().size(), 1u);
  EXPECT_EQ(ListPods()[0].id(), second.pod_sandbox_id());
  cri::RunPodSandboxResponse third;
  ASSERT_THAT(runtime_->RunPodSandbox(ContextWithDeadline(absl::Seconds(30)).get(), run, &third),
              GrpcOk());
  EXPECT_EQ(third.pod_sandbox_id(), second.pod_sandbox_id());
  EXPECT_EQ(ListPods().size(), 1u);
}

// A root directory on a small tmpfs: a pull that does not fit and a container that fills its
// writable layer give clear errors, and every existing record survives.
TEST_F(RecoveryTest, FullDiskGivesClearErrorsAndLosesNoRecord) {
  cribd_->SignalAndWait(SIGTERM);
  cribd_.reset();
  std::filesystem::remove_all(options_.root_dir);
  std::filesystem::create_directories(options_.root_dir);
  ASSERT_EQ(::mount("tmpfs", options_.root_dir.c_str(), "tmpfs", 0, "size=12m"), 0);
  ASSERT_TRUE(Start());
  ASSERT_THAT(Pull("busybox:latest"), GrpcOk());
  auto [pod, id] = PodWithContainer("full");
  const MachineState before = Scan();
  // busybox (2 MB unpacked) fits; "tenmb" (10 MB that does not compress, twice: the blob and
  // its snapshot) does not.
  grpc::Status pulled = Pull("tenmb:latest");
  EXPECT_EQ(pulled.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << pulled.error_message();
  EXPECT_THAT(pulled.error_message(), HasSubstr("no space left on device"));
  cri::ExecSyncResponse exec;
  ASSERT_THAT(Exec(id, {"sh", "-c", "dd if=/dev/zero of=/fill bs=1M count=64"}, &exec), GrpcOk());
  EXPECT_NE(exec.exit_code(), 0);
  EXPECT_THAT(exec.stderr(), HasSubstr("No space left on device"));
  EXPECT_EQ(Settled(before), before) << DescribeState(Scan());
  ASSERT_THAT(Exec(id, {"rm", "/fill"}, &exec), GrpcOk());
  // A restart on the full-then-freed disk finds everything again.
  cribd_->SignalAndWait(SIGKILL);
  cribd_.reset();
  ASSERT_TRUE(Start());
  EXPECT_EQ(Settled(before), before) << DescribeState(Scan());
  EXPECT_EQ(Status(id).status().state(), cri::CONTAINER_RUNNING);
  RemoveEverything();
  cribd_->SignalAndWait(SIGTERM);
  cribd_.reset();
  ::umount2(options_.root_dir.c_str(), MNT_DETACH);
}

// Eight clients at once running pods and containers, exec'ing, stopping and removing them;
// every call succeeds or fails only as the CRI allows, and nothing is left.
TEST_F(RecoveryTest, EightConcurrentClients) {
  const MachineState empty = Scan();
  const absl::Duration run_for = absl::Seconds(std::getenv("CRIB_LONG_TESTS") ? 180 : 45);
  const absl::Time end = absl::Now() + run_for;
  std::atomic<int> rounds = 0, failures = 0;
  std::mutex failure_mu;
  std::vector<std::string> failure_texts;
  auto fail = [&](const std::string& what, const grpc::Status& s) {
    ++failures;
    std::lock_guard<std::mutex> lock(failure_mu);
    if (failure_texts.size() < 5) failure_texts.push_back(what + ": " + s.error_message());
  };
  auto client = [&](int n) {
    auto stub = cribd_->Runtime();
    std::mt19937 random(n);
    for (int round = 0; absl::Now() < end; ++round) {
      cri::RunPodSandboxRequest run;
      *run.mutable_config() = PodConfig(absl::StrCat("c", n, "-", round), random() % 2 == 0);
      cri::RunPodSandboxResponse ran;
      grpc::Status s = stub->RunPodSandbox(ContextWithDeadline(absl::Seconds(60)).get(), run, &ran);
      if (!s.ok()) {
        fail("RunPodSandbox", s);
        continue;
      }
      cri::CreateContainerRequest create;
      create.set_pod_sandbox_id(ran.pod_sandbox_id());
      *create.mutable_config() = Config("c", {"sleep", "100000"});
      *create.mutable_sandbox_config() = run.config();
      cri::CreateContainerResponse created;
      s = stub->CreateContainer(ContextWithDeadline(absl::Seconds(60)).get(), create, &created);
      if (!s.ok()) fail("CreateContainer", s);
      cri::StartContainerRequest start;
      start.set_container_id(created.container_id());
      cri::StartContainerResponse started;
      if (s.ok()) {
        s = stub->StartContainer(ContextWithDeadline(absl::Seconds(60)).get(), start, &started);
        if (!s.ok()) fail("StartContainer", s);
      }
      for (int e = 0; s.ok() && e < 3; ++e) {
        cri::ExecSyncRequest exec;
        exec.set_container_id(created.container_id());
        exec.add_cmd("true");
        cri::ExecSyncResponse out;
        grpc::Status x = stub->ExecSync(ContextWithDeadline(absl::Seconds(60)).get(), exec, &out);
        if (!x.ok() || out.exit_code() != 0) fail("ExecSync", x);
      }
      if (random() % 2 == 0 && s.ok()) {
        cri::StopContainerRequest stop;
        stop.set_container_id(created.container_id());
        cri::StopContainerResponse stopped;
        grpc::Status x =
            stub->StopContainer(ContextWithDeadline(absl::Seconds(60)).get(), stop, &stopped);
        if (!x.ok()) fail("StopContainer", x);
      }
      s = ::crib::testing::StopPod(*stub, ran.pod_sandbox_id());
      if (!s.ok()) fail("StopPodSandbox", s);
      s = ::crib::testing::RemovePod(*stub, ran.pod_sandbox_id());
      if (!s.ok()) fail("RemovePodSandbox", s);
      ++rounds;
    }
  };
  std::vector<std::thread> clients;
  for (int n = 0; n < 8; ++n) clients.emplace_back(client, n);
  for (std::thread& t : clients) t.join();
  EXPECT_EQ(failures.load(), 0) << absl::StrJoin(failure_texts, "\n");
  EXPECT_GT(rounds.load(), 8);
  std::printf("%d rounds of pod + container + 3 execs in %s by 8 clients\n", rounds.load(),
              absl::FormatDuration(run_for).c_str());
  EXPECT_EQ(Settled(empty), empty) << DescribeState(Scan());
}

int RssKib(pid_t pid) {
  for (absl::string_view line :
       absl::StrSplit(Slurp(absl::StrCat("/proc/", pid, "/status")), '\n')) {
    if (absl::ConsumePrefix(&line, "VmRSS:")) {
      int kib = 0;
      (void)absl::SimpleAtoi(absl::StripSuffix(absl::StripAsciiWhitespace(line), " kB"), &kib);
      return kib;
    }
  }
  return 0;
}

// Pod and container create/remove cycles leave the machine as they found it, cribd's memory
// included (after a warm-up, growth stays within a small bound).
TEST_F(RecoveryTest, ThousandCreateRemoveCyclesLeaveTheMachineAsFound) {
  const MachineState empty = Scan();
  const int cycles = 1000;
  auto cycle = [&](int i) {
    const std::string pod = RunPod(PodConfig(absl::StrCat("cycle", i), i % 4 == 0 ? false : true));
    const std::string id = RunContainer(pod, Config("c", {"sleep", "100000"}));
    ASSERT_THAT(RemoveContainer(id), GrpcOk());
    ASSERT_THAT(StopPod(pod), GrpcOk());
    ASSERT_THAT(RemovePod(pod), GrpcOk());
  };
  for (int i = 0; i < 50; ++i) ASSERT_NO_FATAL_FAILURE(cycle(i));
  const int warm_rss = RssKib(cribd_->pid());
  for (int i = 50; i < cycles; ++i) ASSERT_NO_FATAL_FAILURE(cycle(i));
  const int rss = RssKib(cribd_->pid());
  std::printf("cribd RSS after 50 cycles %d KiB, after %d cycles %d KiB\n", warm_rss, cycles, rss);
  EXPECT_LT(rss - warm_rss, 8 * 1024);
  EXPECT_EQ(Settled(empty), empty) << DescribeState(Scan());
}

}  // namespace
}  // namespace crib::testing
