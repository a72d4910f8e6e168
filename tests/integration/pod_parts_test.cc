// The pod room's kernel-facing parts on their own, checked on the machine: pinned network, ipc
// and uts namespaces with the hostname and sysctls seen from inside, crib-pause in them with
// its own pid namespace, the cgroupfs driver's files. (pod_test drives the same parts through cribd.)
#include <fcntl.h>
#include <linux/magic.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "cgroup/cgroup_files.h"
#include "cgroup/cgroupfs.h"
#include "common/files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pod/pause_process.h"
#include "pod/pins.h"
#include "support/cribd_process.h"
#include "support/machine.h"
#include "support/status_matchers.h"

namespace crib::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

std::string PausePath() {
  const std::string cribd = CRIBD_PATH;
  return absl::StrCat(cribd.substr(0, cribd.rfind('/')), "/crib-pause");
}

std::string Slurp(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path);
  return text.ok() ? std::string(absl::StripAsciiWhitespace(*text))
                   : "<" + std::string(text.status().message()) + ">";
}

ino_t Inode(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

bool MountedAt(const std::string& path) {
  return absl::StrContains(Slurp("/proc/mounts"), absl::StrCat(" ", path, " "));
}

// Reads `file` from inside the namespace `ns_path` (of type `nstype`), on a thread of its own.
std::string ReadInside(const std::string& ns_path, int nstype, const std::string& file) {
  std::string out;
  std::thread reader([&] {
    const int fd = ::open(ns_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || ::setns(fd, nstype) != 0) {
      out = absl::StrCat("<setns ", ns_path, ": ", std::strerror(errno), ">");
      return;
    }
    ::close(fd);
    out = Slurp(file);
  });
  reader.join();
  return out;
}

class PodPartsTest : public ::testing::Test {
 protected:
  void TearDown() override {
    for (pid_t pid : pids_) ::kill(pid, SIGKILL);
    for (const std::string& pin : {netns_, ipcns_, utsns_}) {
      if (!pin.empty()) (void)pod::RemovePin(pin);
    }
    ::umount2(pin_dir_.c_str(), MNT_DETACH);
  }

  // Pins for a pod named `name`: a new network namespace, and the paths of its ipc and uts
  // pins, which `pins_` names with that network namespace.
  void PinNetns(const std::string& name) {
    ASSERT_THAT(pod::PreparePinDir(pin_dir_), IsOk());
    netns_ = absl::StrCat(pin_dir_, "/", name, "-net");
    ipcns_ = absl::StrCat(pin_dir_, "/", name, "-ipc");
    utsns_ = absl::StrCat(pin_dir_, "/", name, "-uts");
    ASSERT_THAT(pod::CreatePinnedNetns(netns_), IsOk());
    pins_ = {.netns_path = netns_, .ipc_path = ipcns_, .uts_path = utsns_, .hostname = "",
             .sysctls = {}};
  }

  TempDir dir_;
  std::string pin_dir_ = absl::StrCat(dir_.path(), "/pins");
  std::string netns_, ipcns_, utsns_;
  pod::IpcUtsPins pins_;
  std::vector<pid_t> pids_;
};

// The standby's namespace, made ahead on a thread of its own, is pinned as one made on the
// spot: a new network namespace each time, never the host's (nor the calling thread's).
TEST_F(PodPartsTest, NetnsMadeAheadIsPinnedAsANewNamespace) {
  ASSERT_THAT(pod::PreparePinDir(pin_dir_), IsOk());
  const ino_t host_net = Inode("/proc/self/ns/net");
  pod::NetnsStandby standby;
  EXPECT_FALSE(standby.Ready()) << "nothing is made before it is asked for";
  // None ready: made on the spot.
  const std::string first = absl::StrCat(pin_dir_, "/first");
  ASSERT_THAT(standby.CreatePinned(first), IsOk());
  standby.MakeNext();
  ASSERT_TRUE(WaitFor([&] { return standby.Ready(); }));
  const std::string second = absl::StrCat(pin_dir_, "/second");
  ASSERT_THAT(standby.CreatePinned(second), IsOk());
  EXPECT_FALSE(standby.Ready()) << "handed out once";
  for (const std::string& pin : {first, second}) {
    EXPECT_TRUE(pod::IsPinned(pin)) << pin;
    EXPECT_NE(Inode(pin), host_net) << pin;
  }
  EXPECT_NE(Inode(first), Inode(second));
  EXPECT_EQ(Inode("/proc/self/ns/net"), host_net);
  // A path taken already: refused, and nothing is left at the other pins.
  standby.MakeNext();
  ASSERT_TRUE(WaitFor([&] { return standby.Ready(); }));
  EXPECT_THAT(standby.CreatePinned(second),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr(second)));
  for (const std::string& pin : {first, second}) ASSERT_THAT(pod::RemovePin(pin), IsOk());
  // One being made when the standby goes: it waits for it.
  standby.MakeNext();
}

TEST_F(PodPartsTest, PinnedNetnsIsAMountedNetworkNamespaceAndGoesAwayWhole) {
  ASSERT_THAT(pod::PreparePinDir(pin_dir_), IsOk());
  EXPECT_TRUE(MountedAt(pin_dir_));
  netns_ = absl::StrCat(pin_dir_, "/pod1");
  const ino_t host_net = Inode("/proc/self/ns/net");
  EXPECT_FALSE(pod::IsPinned(netns_));
  ASSERT_THAT(pod::CreatePinnedNetns(netns_), IsOk());
  EXPECT_TRUE(MountedAt(netns_));
  EXPECT_TRUE(pod::IsPinned(netns_));
  struct statfs fs;
  ASSERT_EQ(::statfs(netns_.c_str(), &fs), 0);
  EXPECT_EQ(fs.f_type, static_cast<decltype(fs.f_type)>(NSFS_MAGIC));
  EXPECT_NE(Inode(netns_), Inode("/proc/self/ns/net")) << "a new namespace, not the host's";
  // The pinning thread moved only itself: this thread is still in the host's namespace.
  EXPECT_EQ(Inode("/proc/self/ns/net"), host_net);
  EXPECT_THAT(pod::CreatePinnedNetns(netns_),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr(netns_)));

  ASSERT_THAT(pod::RemovePin(netns_), IsOk());
  EXPECT_FALSE(MountedAt(netns_));
  EXPECT_FALSE(pod::IsPinned(netns_));
  EXPECT_FALSE(std::filesystem::exists(netns_));
  EXPECT_THAT(pod::RemovePin(netns_), IsOk()) << "idempotent";
}

TEST_F(PodPartsTest, IpcAndUtsPinsHoldTheHostnameAndSysctlsWithNoProcess) {
  PinNetns("pod2");
  pod::IpcUtsPins pins = pins_;
  pins.hostname = "pod-two";
  pins.sysctls = {"net.ipv4.ip_forward=1", "kernel.shmmni=1234",
                  "net.ipv4.ping_group_range=0 1000", "net/ipv4/conf/lo/forwarding=1"};
  const std::string host_hostname = Slurp("/proc/sys/kernel/hostname");
  const std::string host_shmmni = Slurp("/proc/sys/kernel/shmmni");
  const ino_t host_ipc = Inode("/proc/self/ns/ipc");
  const ino_t host_uts = Inode("/proc/self/ns/uts");
  ASSERT_THAT(pod::PinIpcAndUts(pins), IsOk());
  for (const std::string& pin : {ipcns_, utsns_}) {
    EXPECT_TRUE(pod::IsPinned(pin)) << pin;
    EXPECT_TRUE(MountedAt(pin)) << pin;
  }
  EXPECT_NE(Inode(ipcns_), host_ipc);
  EXPECT_NE(Inode(utsns_), host_uts);
  EXPECT_EQ(Inode("/proc/self/ns/ipc"), host_ipc) << "only the pinning thread moved";
  EXPECT_EQ(Inode("/proc/self/ns/uts"), host_uts);
  // No process holds them: what was set lives in the pinned namespaces.
  EXPECT_EQ(ReadInside(utsns_, CLONE_NEWUTS, "/proc/sys/kernel/hostname"), "pod-two");
  EXPECT_EQ(ReadInside(ipcns_, CLONE_NEWIPC, "/proc/sys/kernel/shmmni"), "1234");
  EXPECT_EQ(ReadInside(netns_, CLONE_NEWNET, "/proc/sys/net/ipv4/ip_forward"), "1");
  EXPECT_EQ(ReadInside(netns_, CLONE_NEWNET, "/proc/sys/net/ipv4/ping_group_range"), "0\t1000");
  EXPECT_EQ(ReadInside(netns_, CLONE_NEWNET, "/proc/sys/net/ipv4/conf/lo/forwarding"), "1");
  // ... and none of it leaked to the host.
  EXPECT_EQ(Slurp("/proc/sys/kernel/shmmni"), host_shmmni);
  EXPECT_EQ(Slurp("/proc/sys/kernel/hostname"), host_hostname);

  for (const std::string& pin : {ipcns_, utsns_}) {
    ASSERT_THAT(pod::RemovePin(pin), IsOk());
    EXPECT_FALSE(std::filesystem::exists(pin));
  }
}

TEST_F(PodPartsTest, ABadSysctlLeavesNoPinAndNamesTheSysctl) {
  PinNetns("pod3");
  pod::IpcUtsPins pins = pins_;
  pins.sysctls = {"kernel.shmmni=1234", "net.no_such_key=1"};
  EXPECT_THAT(pod::PinIpcAndUts(pins),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("sysctl net.no_such_key: this kernel has no "
                                 "/proc/sys/net/no_such_key")));
  pins.sysctls = {"net.ipv4.ip_forward=seven"};
  EXPECT_THAT(pod::PinIpcAndUts(pins), StatusIs(absl::StatusCode::kInvalidArgument,
                                                HasSubstr("sysctl net.ipv4.ip_forward: write")));
  for (const std::string& pin : {ipcns_, utsns_}) {
    EXPECT_FALSE(std::filesystem::exists(pin)) << pin;
    EXPECT_FALSE(MountedAt(pin)) << pin;
  }
  EXPECT_TRUE(pod::IsPinned(netns_)) << "the network namespace is not the pins' to remove";
  // No namespace of the pod's own: a sysctl would be the host's.
  const std::string host_shmmni = Slurp("/proc/sys/kernel/shmmni");
  EXPECT_THAT(pod::PinIpcAndUts({.netns_path = "",
                                 .ipc_path = "",
                                 .uts_path = "",
                                 .hostname = "",
                                 .sysctls = {"kernel.shmmni=1234"}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("kernel.shmmni")));
  EXPECT_EQ(Slurp("/proc/sys/kernel/shmmni"), host_shmmni);
}

TEST_F(PodPartsTest, PauseJoinsThePinsAndIsPidOneOfItsOwnPidNamespace) {
  PinNetns("pod4");
  pod::IpcUtsPins pins = pins_;
  pins.hostname = "pod-four";
  ASSERT_THAT(pod::PinIpcAndUts(pins), IsOk());
  pod::PauseOptions options;
  options.netns_path = netns_;
  options.ipc_ns_path = ipcns_;
  options.uts_ns_path = utsns_;
  absl::StatusOr<pod::PauseProcess> pause = pod::StartPause(PausePath(), options);
  ASSERT_THAT(pause, IsOk());
  pids_.push_back(pause->pid);
  const std::string proc = absl::StrCat("/proc/", pause->pid);
  EXPECT_TRUE(pod::IsAlive(*pause));
  EXPECT_EQ(Inode(proc + "/ns/net"), Inode(netns_));
  EXPECT_EQ(Inode(proc + "/ns/ipc"), Inode(ipcns_));
  EXPECT_EQ(Inode(proc + "/ns/uts"), Inode(utsns_));
  EXPECT_NE(Inode(proc + "/ns/pid"), Inode("/proc/self/ns/pid"));
  // pid 1 of its own pid namespace.
  EXPECT_THAT(Slurp(proc + "/status"), HasSubstr(absl::StrCat("NSpid:\t", pause->pid, "\t1\n")));
  EXPECT_EQ(Slurp(proc + "/comm"), "crib-pause");

  ASSERT_THAT(pod::StopPause(*pause, absl::Seconds(2)), IsOk());
  EXPECT_FALSE(pod::IsAlive(*pause));
  EXPECT_THAT(pod::StopPause(*pause, absl::Seconds(2)), IsOk()) << "idempotent";
  EXPECT_TRUE(pod::IsPinned(utsns_)) << "the pins outlive crib-pause";
  EXPECT_EQ(ReadInside(utsns_, CLONE_NEWUTS, "/proc/sys/kernel/hostname"), "pod-four");
}

// The pids of live processes whose command line names `word`.
std::vector<pid_t> ProcessesNaming(const std::string& word) {
  std::vector<pid_t> found;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    int pid = 0;
    if (!absl::SimpleAtoi(entry.path().filename().string(), &pid)) continue;
    std::ifstream in(entry.path() / "cmdline");
    const std::string cmdline((std::istreambuf_iterator<char>(in)), {});
    if (cmdline.find(word) != std::string::npos) found.push_back(pid);
  }
  return found;
}

// RunPodSandbox starts crib-pause and reads its report later; an error in between drops it.
TEST_F(PodPartsTest, ALaunchedPauseIsAwaitedOrStoppedWhenDropped) {
  PinNetns("pod5");
  ASSERT_THAT(pod::PinIpcAndUts(pins_), IsOk());
  pod::PauseOptions options;
  options.netns_path = netns_;
  options.ipc_ns_path = ipcns_;
  options.uts_ns_path = utsns_;
  options.pod_dir = absl::StrCat(dir_.path(), "/awaited");
  absl::StatusOr<pod::PendingPause> pending = pod::LaunchPause(PausePath(), options);
  ASSERT_THAT(pending, IsOk());
  EXPECT_TRUE(pending->started());
  absl::StatusOr<pod::PauseProcess> pause = pod::AwaitPause(*pending);
  ASSERT_THAT(pause, IsOk());
  pids_.push_back(pause->pid);
  EXPECT_FALSE(pending->started()) << "spent";
  EXPECT_THAT(pod::AwaitPause(*pending),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no crib-pause")));
  EXPECT_EQ(Inode(absl::StrCat("/proc/", pause->pid, "/ns/net")), Inode(netns_));
  EXPECT_THAT(ProcessesNaming(options.pod_dir), ElementsAre(pause->pid));
  ASSERT_THAT(pod::StopPause(*pause, absl::Seconds(2)), IsOk());

  options.pod_dir = absl::StrCat(dir_.path(), "/dropped");
  {
    absl::StatusOr<pod::PendingPause> dropped = pod::LaunchPause(PausePath(), options);
    ASSERT_THAT(dropped, IsOk());
    // Seen once before the drop, so that it has something to stop: a scan of /proc can miss
    // crib-pause while its first process exits (a zombie's command line reads empty) after
    // forking the pause process, so one empty scan proves nothing.
    bool seen = false;
    for (const absl::Time deadline = absl::Now() + absl::Seconds(10);
         !(seen = !ProcessesNaming(options.pod_dir).empty()) && absl::Now() < deadline;) {
      absl::SleepFor(absl::Milliseconds(2));
    }
    EXPECT_TRUE(seen) << "no process names " << options.pod_dir;
  }
  EXPECT_THAT(ProcessesNaming(options.pod_dir), IsEmpty())
      << "neither crib-pause's first process nor the pause process it forked";
}

TEST_F(PodPartsTest, PauseReportsItsFailureWithTheStep) {
  pod::PauseOptions options;
  options.netns_path = absl::StrCat(dir_.path(), "/no-such-netns");
  EXPECT_THAT(pod::StartPause(PausePath(), options),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr(absl::StrCat("open network namespace ", options.netns_path,
                                              ": no such file or directory"))));
  options.netns_path.clear();
  options.ipc_ns_path = absl::StrCat(dir_.path(), "/no-such-ipcns");
  EXPECT_THAT(pod::StartPause(PausePath(), options),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr(absl::StrCat("open ipc namespace ", options.ipc_ns_path))));
  // A file that is no namespace.
  options.ipc_ns_path = absl::StrCat(dir_.path(), "/plain");
  ASSERT_TRUE(std::ofstream(options.ipc_ns_path).good());
  EXPECT_THAT(pod::StartPause(PausePath(), options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr(absl::StrCat("setns ", options.ipc_ns_path))));
}

TEST_F(PodPartsTest, PauseLinksNothingOfCribd) {
  const std::string out = absl::StrCat(dir_.path(), "/readelf.txt");
  ASSERT_EQ(std::system(absl::StrCat("readelf -d ", PausePath(), " > ", out, " 2>&1").c_str()), 0);
  const std::string dynamic = Slurp(out);
  for (const char* lib : {"grpc", "protobuf", "spdlog", "absl", "stdc++", "sqlite"}) {
    EXPECT_THAT(dynamic, ::testing::Not(HasSubstr(lib))) << dynamic;
  }
}

TEST(CgroupfsTest, CreatesAppliesAddsAndRemovesOnV1) {
  absl::StatusOr<cgroup::Layout> layout = cgroup::DetectLayout();
  ASSERT_THAT(layout, IsOk());
  const std::string parent = absl::StrCat("/crib-test-cg-", ::getpid());
  cgroup::Cgroup cg(*layout, absl::StrCat(parent, "/pod"));
  cgroup::Cgroup parent_cg(*layout, parent);
  absl::Cleanup cleanup = [&] {
    (void)cg.Remove();
    (void)parent_cg.Remove();
  };
  ASSERT_THAT(cg.Create(), IsOk());
  EXPECT_TRUE(cg.Exists());
  cgroup::Resources r;
  r.cpu_shares = 512;
  r.cpu_quota = 50000;
  r.cpu_period = 100000;
  r.memory_limit = 64 << 20;
  r.cpuset_cpus = "0";
  ASSERT_THAT(cg.Apply(r, cgroup::Missing::kSkip), IsOk());
  if (layout->mode != cgroup::Mode::kUnified) {
    const std::string root = layout->root;
    EXPECT_EQ(Slurp(absl::StrCat(root, "/cpu", parent, "/pod/cpu.shares")), "512");
    EXPECT_EQ(Slurp(absl::StrCat(root, "/cpu", parent, "/pod/cpu.cfs_quota_us")), "50000");
    EXPECT_EQ(Slurp(absl::StrCat(root, "/memory", parent, "/pod/memory.limit_in_bytes")),
              absl::StrCat(64 << 20));
    EXPECT_EQ(Slurp(absl::StrCat(root, "/cpuset", parent, "/pod/cpuset.cpus")), "0");
  }
  // A process moved in shows the cgroup in /proc/<pid>/cgroup.
  const pid_t child = ::fork();
  if (child == 0) {
    ::pause();
    ::_exit(0);
  }
  ASSERT_GT(child, 0);
  ASSERT_THAT(cg.AddProcess(child), IsOk());
  EXPECT_THAT(Slurp(absl::StrCat("/proc/", child, "/cgroup")),
              HasSubstr(absl::StrCat(parent, "/pod")));
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  ASSERT_THAT(cg.Remove(), IsOk());
  EXPECT_FALSE(cg.Exists());
  EXPECT_THAT(cg.Remove(), IsOk()) << "idempotent";
}

// A process that keeps forking: frozen, its counter stands still and its children are held
// too; thawed, it goes on; a kill of the cgroup (what a removal does) leaves nothing running.
TEST(CgroupfsTest, FreezeHoldsAForkingTreeAndAKillReachesAllOfIt) {
  const std::string path = absl::StrCat("/crib-test-freeze-", ::getpid());
  cgroup::CgroupFiles files;
  std::string error;
  ASSERT_TRUE(files.Init(path, &error)) << error;
  ASSERT_TRUE(files.Create(&error)) << error;
  absl::Cleanup cleanup = [&] { files.Remove(&error); };
  // One counter that every process of the tree adds to (atomics that are lock-free work across
  // processes on shared memory).
  void* shared =
      ::mmap(nullptr, sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(shared, MAP_FAILED);
  static_assert(std::atomic<uint64_t>::is_always_lock_free);
  auto* counter = new (shared) std::atomic<uint64_t>(0);
  const std::vector<std::string> procs = files.ProcsFiles();
  const pid_t child = ::fork();
  if (child == 0) {
    for (const std::string& file : procs) {
      const int fd = ::open(file.c_str(), O_WRONLY);
      if (fd < 0 || ::write(fd, "0", 1) != 1) ::_exit(2);
      ::close(fd);
    }
    for (uint64_t n = 0, kids = 0;; ++n) {
      counter->fetch_add(1);
      if (n % 100000 == 0 && kids < 8) {
        ++kids;
        if (::fork() == 0) {
          for (;;) counter->fetch_add(1);
        }
      }
    }
  }
  ASSERT_GT(child, 0);
  auto members = [&] {
    std::vector<pid_t> pids;
    for (absl::string_view line : absl::StrSplit(Slurp(procs.front()), '\n', absl::SkipEmpty())) {
      pid_t pid = 0;
      if (absl::SimpleAtoi(line, &pid)) pids.push_back(pid);
    }
    return pids;
  };
  for (int i = 0; i < 5000 && members().size() < 9; ++i) ::usleep(1000);
  const std::vector<pid_t> tree = members();
  ASSERT_EQ(tree.size(), 9u) << "the process and its 8 children";

  ASSERT_TRUE(files.Freeze(true, &error)) << error;
  const uint64_t frozen_at = counter->load();
  ::usleep(50'000);
  EXPECT_EQ(counter->load(), frozen_at) << "nothing in the cgroup runs while it is frozen";
  ASSERT_TRUE(files.Freeze(false, &error)) << error;
  for (int i = 0; i < 5000 && counter->load() == frozen_at; ++i) ::usleep(1000);
  EXPECT_GT(counter->load(), frozen_at) << "thawed, it runs again";

  files.Kill(SIGKILL);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  for (int i = 0; i < 5000 && files.HasProcesses(); ++i) ::usleep(1000);
  EXPECT_FALSE(files.HasProcesses());
  ASSERT_TRUE(files.Remove(&error)) << error;
  EXPECT_FALSE(files.Exists());
  ::munmap(shared, sizeof(uint64_t));
}

TEST(CgroupfsTest, SharesToWeightMatchesRunc) {
  EXPECT_EQ(cgroup::SharesToWeight(2), 1u);
  EXPECT_EQ(cgroup::SharesToWeight(1024), 39u);
  EXPECT_EQ(cgroup::SharesToWeight(262144), 10000u);
}

}  // namespace
}  // namespace crib::testing
