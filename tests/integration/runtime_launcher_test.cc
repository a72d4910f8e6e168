// Real containers from a busybox root filesystem made here: the launcher parks the init,
// starts it, and crib-monitor logs, records the exit and answers kill and exec. Each test
// checks the machine (cgroup files, /proc, the log and exit files) and that nothing is left
// behind (mounts, cgroups, processes).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/files.h"
#include "common/unique_fd.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/defaults.h"
#include "runtime/launcher.h"
#include "runtime/spec.h"
#include "support/cribd_process.h"
#include "support/machine.h"
#include "support/status_matchers.h"

namespace crib::runtime {
namespace {

using ::crib::testing::ExitsWithin;
using ::crib::testing::IsOk;
using ::crib::testing::ProcStatusField;
using ::crib::testing::StatusIs;
using ::crib::testing::TempDir;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;

std::string Slurp(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path);
  return text.ok() ? *text : std::string();
}

std::string Shell(const std::string& command) {
  std::string out;
  FILE* p = ::popen(command.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  ::pclose(p);
  return out;
}

// Running (this machine's pid 1 may leave exited orphans as zombies: those count as dead).
bool Alive(int pid) {
  if (pid <= 0 || ::kill(pid, 0) != 0) return false;
  std::string stat = Slurp(absl::StrCat("/proc/", pid, "/stat"));
  size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z';
}

// The text of the log's records, without time stamps: "stdout F hello".
std::vector<std::string> LogRecords(const std::string& path) {
  std::vector<std::string> records;
  for (absl::string_view line : absl::StrSplit(Slurp(path), '\n', absl::SkipEmpty())) {
    records.emplace_back(line.substr(line.find(' ') + 1));
  }
  return records;
}

// A busybox root filesystem shared by the tests of this program (containers only read it,
// except /tmp, which each test keeps to its own names).
class RootfsEnvironment {
 public:
  static const std::string& Path() {
    // A function-local object, not a leaked one: its TempDir is removed when the test exits.
    static RootfsEnvironment env;
    return env.path_;
  }

 private:
  RootfsEnvironment() {
    path_ = dir_.path() + "/rootfs";
    for (const char* d : {"", "/bin", "/etc", "/proc", "/sys", "/dev", "/tmp", "/root", "/data"}) {
      std::filesystem::create_directories(path_ + d);
    }
    std::filesystem::copy_file("/bin/busybox", path_ + "/bin/busybox");
    Shell(absl::StrCat(path_, "/bin/busybox --install -s ", path_, "/bin"));
    // --install links to the running binary's host path; make them relative to the rootfs.
    for (const auto& entry : std::filesystem::directory_iterator(path_ + "/bin")) {
      if (entry.is_symlink()) {
        std::filesystem::remove(entry.path());
        std::filesystem::create_symlink("busybox", entry.path());
      }
    }
    ::chmod((path_ + "/tmp").c_str(), 01777);
    std::ofstream(path_ + "/etc/passwd") << "root:x:0:0:root:/root:/bin/sh\n"
                                         << "app:x:1000:1000:app:/tmp:/bin/sh\n";
    std::ofstream(path_ + "/etc/group") << "root:x:0:\nten:x:10:\ntwenty:x:20:\napp:x:1000:\n";
  }
  TempDir dir_;
  std::string path_;
};

class LauncherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> counter{0};
    id_ = absl::StrCat("t", ::getpid(), "-", counter++);
    bundle_ = dir_.path() + "/bundle";
    std::filesystem::create_directories(bundle_);
    log_ = dir_.path() + "/container.log";
    cgroup_path_ = absl::StrCat("/crib-test-", id_);
  }

  void TearDown() override {
    EXPECT_THAT(launcher_.Remove(bundle_), IsOk());
    // Nothing left behind: processes, cgroups, the spec (the mark of a removed container; the
    // monitor's other files go with the bundle, which the caller removes), mounts.
    // A monitor exits right after it has recorded the exit: wait for it, not a fixed time.
    for (int pid : pids_) EXPECT_TRUE(ExitsWithin(pid)) << "pid " << pid << " still runs";
    for (const char* hierarchy : {"memory", "cpu", "pids", "cpuset", "systemd"}) {
      std::string dir = absl::StrCat("/sys/fs/cgroup/", hierarchy, cgroup_path_);
      EXPECT_FALSE(std::filesystem::exists(dir)) << dir;
    }
    EXPECT_FALSE(std::filesystem::exists(bundle_ + "/config.json"));
    EXPECT_THAT(Slurp("/proc/self/mountinfo"), ::testing::Not(HasSubstr(dir_.path())));
  }

  Spec BaseSpec(std::vector<std::string> args) {
    Spec spec;
    spec.process.args = std::move(args);
    spec.process.env = {"PATH=/bin", "HOME=/root"};
    SetCapabilities(DefaultCapabilities(), &spec.process);
    spec.process.no_new_privileges = true;
    spec.root_path = RootfsEnvironment::Path();
    spec.hostname = "box";
    spec.mounts = DefaultMounts();
    spec.linux_spec.namespaces = {
        {"pid", ""}, {"mount", ""}, {"ipc", ""}, {"uts", ""}, {"network", ""}};
    spec.linux_spec.cgroups_path = cgroup_path_;
    spec.linux_spec.masked_paths = DefaultMaskedPaths();
    spec.linux_spec.readonly_paths = DefaultReadonlyPaths();
    return spec;
  }

  absl::StatusOr<CreatedContainer> Create(const Spec& spec, const CreateOptions& options = {}) {
    absl::StatusOr<CreatedContainer> created = launcher_.Create(id_, bundle_, spec, log_, options);
    if (created.ok()) {
      pids_.push_back(created->monitor_pid);
      pids_.push_back(created->init_pid);
    }
    return created;
  }

  // Creates, starts and waits for the exit.
  absl::StatusOr<ExitInfo> RunToExit(const Spec& spec) {
    absl::StatusOr<CreatedContainer> created = Create(spec);
    if (!created.ok()) return created.status();
    if (absl::Status s = launcher_.Start(bundle_); !s.ok()) return s;
    return launcher_.WaitExit(bundle_, absl::Seconds(20));
  }

  std::string Stdout() {
    std::string out;
    for (const auto& r : LogRecords(log_)) {
      if (absl::StartsWith(r, "stdout F ")) absl::StrAppend(&out, r.substr(9), "\n");
    }
    return out;
  }

  TempDir dir_;
  Launcher launcher_{CRIB_MONITOR_PATH};
  std::string id_, bundle_, log_, cgroup_path_;
  std::vector<int> pids_;
};

TEST_F(LauncherTest, EchoHelloAppearsInTheCriLog) {
  absl::StatusOr<ExitInfo> exit =
      RunToExit(BaseSpec({"sh", "-c", "echo hello; echo oops >&2; printf tail"}));
  ASSERT_THAT(exit.status(), IsOk());
  EXPECT_EQ(exit->exit_code, 0);
  std::string log = Slurp(log_);
  EXPECT_THAT(log,
              MatchesRegex("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{9}Z "
                           "stdout F hello\n(.|\n)*"));
  EXPECT_THAT(LogRecords(log_),
              ::testing::UnorderedElementsAre("stdout F hello", "stderr F oops", "stdout P tail"));
}

TEST_F(LauncherTest, LongLinesAreSplitIntoPartials) {
  absl::StatusOr<ExitInfo> exit =
      RunToExit(BaseSpec({"sh", "-c", "head -c 40000 /dev/zero | tr '\\0' a; echo; echo end"}));
  ASSERT_THAT(exit.status(), IsOk());
  std::vector<std::string> records = LogRecords(log_);
  ASSERT_EQ(records.size(), 4u);
  EXPECT_EQ(records[0], "stdout P " + std::string(16384, 'a'));
  EXPECT_EQ(records[1], "stdout P " + std::string(16384, 'a'));
  EXPECT_EQ(records[2], "stdout F " + std::string(40000 - 2 * 16384, 'a'));
  EXPECT_EQ(records[3], "stdout F end");
}

TEST_F(LauncherTest, ExitCodeInTheExitFile) {
  absl::StatusOr<ExitInfo> exit = RunToExit(BaseSpec({"sh", "-c", "exit 3"}));
  ASSERT_THAT(exit.status(), IsOk());
  EXPECT_EQ(exit->exit_code, 3);
  EXPECT_EQ(exit->signal, 0);
  EXPECT_FALSE(exit->oom_killed);
  EXPECT_GT(exit->started_at, absl::Now() - absl::Minutes(1));
  EXPECT_GE(exit->finished_at, exit->started_at);
  EXPECT_THAT(Slurp(bundle_ + "/exit"), HasSubstr("exit_code 3\n"));
}

// A cribd that starts again has a launcher that did not create the container: it finds the
// cgroup in the bundle's spec. TearDown checks that the cgroup and the spec are gone.
TEST_F(LauncherTest, RemoveByALauncherThatDidNotCreateItReadsTheSpec) {
  ASSERT_THAT(Create(BaseSpec({"sleep", "1000"})).status(), IsOk());
  ASSERT_THAT(launcher_.Start(bundle_), IsOk());
  const std::string memory_dir = absl::StrCat("/sys/fs/cgroup/memory", cgroup_path_);
  ASSERT_TRUE(std::filesystem::exists(memory_dir) ||
              std::filesystem::exists(absl::StrCat("/sys/fs/cgroup", cgroup_path_)));
  Launcher restarted(CRIB_MONITOR_PATH);
  std::string cgroup_path;
  ASSERT_THAT(restarted.Remove(bundle_, &cgroup_path), IsOk());
  EXPECT_EQ(cgroup_path, cgroup_path_);
  EXPECT_FALSE(std::filesystem::exists(memory_dir));
  EXPECT_FALSE(std::filesystem::exists(bundle_ + "/config.json"));
  // The first launcher's Remove (in TearDown) finds it removed already.
}

TEST_F(LauncherTest, SignalInTheExitFile) {
  ASSERT_THAT(Create(BaseSpec({"sleep", "1000"})).status(), IsOk());
  ASSERT_THAT(launcher_.Start(bundle_), IsOk());
  absl::StatusOr<ContainerStatus> status = launcher_.Status(bundle_);
  ASSERT_THAT(status.status(), IsOk());
  EXPECT_EQ(status->state, ContainerState::kRunning);
  ASSERT_THAT(launcher_.Kill(bundle_, SIGKILL), IsOk());
  absl::StatusOr<ExitInfo> exit = launcher_.WaitExit(bundle_, absl::Seconds(10));
  ASSERT_THAT(exit.status(), IsOk());
  EXPECT_EQ(exit->signal, SIGKILL);
  EXPECT_EQ(exit->exit_code, 137);
  EXPECT_THAT(launcher_.Kill(bundle_, SIGKILL), IsOk());  // idempotent
}

TEST_F(LauncherTest, KillWhileParked) {
  absl::StatusOr<CreatedContainer> created = Create(BaseSpec({"sleep", "1000"}));
  ASSERT_THAT(created.status(), IsOk());
  absl::StatusOr<ContainerStatus> status = launcher_.Status(bundle_);
  ASSERT_THAT(status.status(), IsOk());
  EXPECT_EQ(status->state, ContainerState::kCreated);
  // Parked before its exec: its command line is still the monitor's.
  EXPECT_THAT(Slurp(absl::StrCat("/proc/", created->init_pid, "/cmdline")),
              HasSubstr("crib-monitor"));
  ASSERT_THAT(launcher_.Kill(bundle_, SIGKILL), IsOk());
  absl::StatusOr<ExitInfo> exit = launcher_.WaitExit(bundle_, absl::Seconds(10));
  ASSERT_THAT(exit.status(), IsOk());
  EXPECT_EQ(exit->signal, SIGKILL);
  EXPECT_EQ(exit->started_at, absl::UnixEpoch());
}

TEST_F(LauncherTest, EnvCwdUserAndGroups) {
  Spec spec = BaseSpec({"sh", "-c", "echo $FOO; pwd; id; cat /proc/self/status | grep ^Groups"});
  spec.process.env.push_back("FOO=bar baz");
  spec.process.cwd = "/tmp";
  spec.process.user = {1000, 1000, {10, 20}};
  absl::StatusOr<ExitInfo> exit = RunToExit(spec);
  ASSERT_THAT(exit.status(), IsOk());
  EXPECT_EQ(exit->exit_code, 0) << Slurp(log_);
  EXPECT_EQ(Stdout(),
            "bar baz\n/tmp\nuid=1000(app) gid=1000(app) groups=10(ten),20(twenty)\n"
            "Groups:\t10 20 \n");
}

TEST_F(LauncherTest, ReadonlyRootRefusesWrites) {
  Spec spec = BaseSpec({"sh", "-c", "touch /newfile"});
  spec.root_readonly = true;
  absl::StatusOr<ExitInfo> exit = RunToExit(spec);
  ASSERT_THAT(exit.status(), IsOk());
  EXPECT_EQ(exit->exit_code, 1);
  EXPECT_THAT(Slurp(log_), HasSubstr("Read-only file system"));
  EXPECT_FALSE(std::filesystem::exists(RootfsEnvironment::Path() + "/newfile"));
}

TEST_F(LauncherTest, CapEffMatchesRequestedCapabilities) {
  Spec spec = BaseSpec({"sh", "-c", "grep -E '^Cap(Eff|Bnd|Prm)' /proc/self/status"});
  SetCapabilities({"CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"}, &spec.process);
  absl::StatusOr<ExitInfo> exit = RunToExit(spec);
  ASSERT_THAT(exit.status(), IsOk());
  // CAP_CHOWN is bit 0, CAP_KILL bit 5, CAP_NET_RAW bit 13.
  EXPECT_EQ(Stdout(),
            "CapPrm:\t0000000000002021\nCapEff:\t0000000000002021\nCapBnd:\t0000000000002021\n");
}

TEST_F(LauncherTest, DefaultCapabilitiesForANonRootUser) {
  Spec spec = BaseSpec({"sh", "-c", "grep -E '^Cap(Eff|Bnd)' /proc/self/status"});
  spec.process.user = {1000, 1000, {}};
  absl::StatusOr<ExitInfo> exit = RunToExit(spec);
  ASSERT_THAT(exit.status(), IsOk());
  // As with runc: a non-root user's exec clears the effective set (no ambient capabilities
  // were asked for); the bounding set is containerd's 14 capabilities.
  EXPECT_EQ(Stdout(), "CapEff:\t0000000000000000\nCapBnd:\t00000000a80425fb\n");
}

TEST_F(LauncherTest, RlimitsOomScoreSysctlsHostnameAndDevices) {
  Spec spec = BaseSpec({"sh", "-c",
                        "ulimit -n; cat /proc/self/oom_score_adj; hostname; "
                        "cat /proc/sys/kernel/domainname; stat -c '%t,%T %a %u' /dev/extra; "
                        "ls -d /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty "
                        "/dev/ptmx /dev/fd /dev/stdin | wc -l"});
  spec.process.rlimits = {{"RLIMIT_NOFILE", 1024, 512}};
  spec.process.oom_score_adj = 500;
  spec.linux_spec.sysctl = {{"kernel.domainname", "example"}};
  spec.linux_spec.devices = {{"/dev/extra", "c", 1, 3, 0600, 1000, 1000}};
  absl::StatusOr<ExitInfo> exit = RunToExit(spec);
  ASSERT_THAT(exit.status(), IsOk());
  EXPECT_EQ(Stdout(), "512\n500\nbox\nexample\n1,3 600 1000\n9\n") << Slurp(log_);
}

TEST_F(LauncherTest, LowerOomScoreAdjIsAWarning) {
  int own = 0;
  ASSERT_TRUE(
      absl::SimpleAtoi(absl::StripAsciiWhitespace(Slurp("/proc/self/oom_score_adj")), &own));
  Spec spec = BaseSpec({"cat", "/proc/self/oom_score_adj"});
  spec.process.oom_score_adj = own - 100;
  absl::StatusOr<CreatedContainer> created = Create(spec);
  ASSERT_THAT(created.status(), IsOk());
  // Lowering needs CAP_SYS_RESOURCE, which this machine may not give: then a warning.
  bool lowered = Slurp("/proc/self/status").find("CapEff:\t000001ffffffffff") != std::string::npos;
  if (!lowered) {
    EXPECT_THAT(created->warnings, ::testing::ElementsAre(HasSubstr("oom_score_adj")));
  }
  ASSERT_THAT(launcher_.Start(bundle_), IsOk());
  ASSERT_THAT(launcher_.WaitExit(bundle_, absl::Seconds(10)).status(), IsOk());
}

TEST_F(LauncherTest, RuntimeDefaultSeccompRefusesUnshare) {
  Spec spec = BaseSpec({"unshare", "-u", "true"});
  // CAP_SYS_ADMIN so that only seccomp can refuse; the profile is the default one's.
  SetCapabilities(AllCapabilities(), &spec.process);
  spec.linux_spec.seccomp = RuntimeDefaultSeccomp(DefaultCapabilities());
  absl::StatusOr<ExitInfo> exit = RunToExit(spec);
  ASSERT_THAT(exit.status(), IsOk());
  EXPECT_NE(exit->exit_code, 0);
  EXPECT_THAT(Slurp(log_), HasSubstr("Operation not permitted"));
}

TEST_F(LauncherTest, UnconfinedAllowsUnshare) {
  Spec spec = BaseSpec({"unshare", "-u", "true"});
  SetCapabilities(AllCapabilities(), &spec.process);
  absl::StatusOr<ExitInfo> exit = RunToExit(spec);
  ASSERT_THAT(exit.status(), IsOk());
  EXPECT_EQ(exit->exit_code, 0) << Slurp(log_);
}

TEST_F(LauncherTest, SeccompWithoutNoNewPrivs) {
  Spec spec = BaseSpec({"sh", "-c", "echo ok; unshare -u true"});
  SetCapabilities(AllCapabilities(), &spec.process);
  spec.process.no_new_privileges = false;
  spec.process.user = {1000, 1000, {}};
  spec.linux_spec.seccomp = RuntimeDefaultSeccomp(DefaultCapabilities());
  absl::StatusOr<ExitInfo> exit = RunToExit(spec);
  ASSERT_THAT(exit.status(), IsOk());
  EXPECT_NE(exit->exit_code, 0);
  EXPECT_EQ(Stdout(), "ok\n");
  EXPECT_THAT(Slurp(absl::StrCat(bundle_, "/config.json")),
              HasSubstr("\"noNewPrivileges\": false"));
}

TEST_F(LauncherTest, MemoryLimitKillsAHogAndSaysOom) {
  Spec spec = BaseSpec({"dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1"});
  spec.linux_spec.resources.memory_limit = 32 << 20;
  absl::StatusOr<ExitInfo> exit = RunToExit(spec);
  ASSERT_THAT(exit.status(), IsOk());
  EXPECT_TRUE(exit->oom_killed);
  EXPECT_EQ(exit->signal, SIGKILL);
  EXPECT_THAT(Slurp(bundle_ + "/exit"), HasSubstr("oom_killed 1"));
}

TEST_F(LauncherTest, OwnPidNamespace) {
  absl::StatusOr<ExitInfo> exit = RunToExit(BaseSpec({"sh", "-c", "echo $$; ps -o pid,args"}));
  ASSERT_THAT(exit.status(), IsOk());
  std::string out = Stdout();
  EXPECT_THAT(out, ::testing::StartsWith("1\n"));
  EXPECT_THAT(out, MatchesRegex("(.|\n)*\n *1 [^\n]*sh -c(.|\n)*"));
}

// A process that holds new pid and net namespaces, as a pod's pause process would.
class NamespaceHolder {
 public:
  NamespaceHolder() {
    pid_ = ::fork();
    if (pid_ == 0) {
      ::execlp("unshare", "unshare", "--pid", "--net", "--fork", "--kill-child", "sleep", "600",
               nullptr);
      _exit(127);
    }
    // The sleeping child of unshare is pid 1 of the new pid namespace.
    for (int i = 0; i < 500 && sleeper_ == 0; ++i) {
      std::string children = Slurp(absl::StrCat("/proc/", pid_, "/task/", pid_, "/children"));
      int child = 0;
      if (absl::SimpleAtoi(absl::StripAsciiWhitespace(children), &child)) {
        // Wait until the child has exec'd sleep (its pid ns is final from the fork on).
        if (Slurp(absl::StrCat("/proc/", child, "/cmdline")).rfind("sleep", 0) == 0) {
          sleeper_ = child;
        }
      }
      if (sleeper_ == 0) ::usleep(10000);
    }
  }
  ~NamespaceHolder() {
    ::kill(pid_, SIGKILL);
    if (sleeper_ > 0) ::kill(sleeper_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  std::string Ns(const char* type) const { return absl::StrCat("/proc/", sleeper_, "/ns/", type); }
  int sleeper() const { return sleeper_; }

 private:
  int pid_ = 0;
  int sleeper_ = 0;
};

TEST_F(LauncherTest, JoinsAnotherProcesssPidAndNetNamespaces) {
  NamespaceHolder holder;
  ASSERT_GT(holder.sleeper(), 0);
  Spec spec = BaseSpec({"sh", "-c", "echo $$; ps -o pid,args; readlink /proc/self/ns/net"});
  spec.linux_spec.namespaces = {{"pid", holder.Ns("pid")},
                                {"network", holder.Ns("net")},
                                {"mount", ""},
                                {"uts", ""},
                                {"ipc", ""}};
  absl::StatusOr<ExitInfo> exit = RunToExit(spec);
  ASSERT_THAT(exit.status(), IsOk());
  std::string out = Stdout();
  EXPECT_THAT(out, ::testing::Not(::testing::StartsWith("1\n")));
  EXPECT_THAT(out, MatchesRegex("(.|\n)*\n *1 sleep 600\n(.|\n)*"));
  char link[64] = {};
  ASSERT_GT(::readlink(holder.Ns("net").c_str(), link, sizeof(link) - 1), 0);
  EXPECT_THAT(out, HasSubstr(link));
}

TEST_F(LauncherTest, MonitorSurvivesTheDeathOfItsParent) {
  Spec spec = BaseSpec({"sleep", "1000"});
  int report[2];
  ASSERT_EQ(::pipe(report), 0);
  // A stand-in for cribd: it creates and starts the container, then dies by SIGKILL.
  pid_t parent = ::fork();
  if (parent == 0) {
    ::close(report[0]);
    absl::StatusOr<CreatedContainer> created = launcher_.Create(id_, bundle_, spec, log_);
    int pids[2] = {0, 0};
    if (created.ok() && launcher_.Start(bundle_).ok()) {
      pids[0] = created->monitor_pid;
      pids[1] = created->init_pid;
    }
    (void)!::write(report[1], pids, sizeof(pids));
    ::pause();
    _exit(0);
  }
  ::close(report[1]);
  int pids[2] = {0, 0};
  ASSERT_EQ(::read(report[0], pids, sizeof(pids)), static_cast<ssize_t>(sizeof(pids)));
  ::close(report[0]);
  pids_.assign(pids, pids + 2);
  ASSERT_GT(pids[0], 0);
  ::kill(parent, SIGKILL);
  ::waitpid(parent, nullptr, 0);
  ::usleep(100000);
  EXPECT_TRUE(Alive(pids[0]));
  EXPECT_TRUE(Alive(pids[1]));
  // Its own session: nothing sent to the old parent's group or session reaches it.
  EXPECT_EQ(::getsid(pids[0]), pids[0]);
  absl::StatusOr<ContainerStatus> status = launcher_.Status(bundle_);
  ASSERT_THAT(status.status(), IsOk());
  EXPECT_EQ(status->state, ContainerState::kRunning);
  ASSERT_THAT(launcher_.Kill(bundle_, SIGKILL), IsOk());
  absl::StatusOr<ExitInfo> exit = launcher_.WaitExit(bundle_, absl::Seconds(10));
  ASSERT_THAT(exit.status(), IsOk());
  EXPECT_EQ(exit->signal, SIGKILL);
}

TEST_F(LauncherTest, ExecOutputExitCodeAndTimeout) {
  ASSERT_THAT(Create(BaseSpec({"sleep", "1000"})).status(), IsOk());
  ASSERT_THAT(launcher_.Start(bundle_), IsOk());
  ExecOptions options;
  options.args = {"sh", "-c", "echo out $$; hostname; echo err >&2; exit 7"};
  absl::StatusOr<ExecResult> result = launcher_.Exec(bundle_, options);
  ASSERT_THAT(result.status(), IsOk());
  EXPECT_EQ(result->exit_code, 7);
  // In the container's pid and uts namespaces: a small pid, the container's hostname.
  EXPECT_THAT(result->stdout_data, MatchesRegex("out [0-9]+\nbox\n"));
  EXPECT_EQ(result->stderr_data, "err\n");

  options.args = {"sh", "-c", "grep ^CapEff /proc/self/status; cat /proc/1/cmdline"};
  result = launcher_.Exec(bundle_, options);
  ASSERT_THAT(result.status(), IsOk());
  EXPECT_EQ(result->stdout_data, std::string("CapEff:\t00000000a80425fb\nsleep\0"
                                             "1000\0",
                                             36));

  options.args = {"head", "-c", "100000", "/dev/zero"};
  options.max_output = 1000;
  result = launcher_.Exec(bundle_, options);
  ASSERT_THAT(result.status(), IsOk());
  EXPECT_EQ(result->stdout_data.size(), 1000u);

  options.args = {"sleep", "30"};
  options.timeout = absl::Milliseconds(300);
  absl::Time start = absl::Now();
  EXPECT_THAT(launcher_.Exec(bundle_, options),
              StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr("timed out")));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  // The timed-out process was killed: only the init is left in the container.
  std::string procs = Slurp(::crib::testing::CgroupDir("pids", cgroup_path_) + "/cgroup.procs");
  EXPECT_EQ(procs, absl::StrCat(pids_[1], "\n"));

  options.args = {"/bin/nope"};
  options.timeout = absl::ZeroDuration();
  EXPECT_THAT(launcher_.Exec(bundle_, options),
              StatusIs(absl::StatusCode::kUnknown,
                       HasSubstr("exec \"/bin/nope\": no such file or directory")));
}

TEST_F(LauncherTest, MaskedAndReadonlyPaths) {
  // Both have content on the host.
  ASSERT_NE(Slurp("/proc/timer_list"), "");
  ASSERT_TRUE(std::filesystem::exists("/sys/firmware/acpi"));
  Spec spec = BaseSpec({"sh", "-c",
                        "wc -c < /proc/timer_list; ls /sys/firmware | wc -l; "
                        "echo 1 > /proc/sys/kernel/domainname && echo writable"});
  SetCapabilities(AllCapabilities(), &spec.process);
  absl::StatusOr<ExitInfo> exit = RunToExit(spec);
  ASSERT_THAT(exit.status(), IsOk());
  EXPECT_EQ(Stdout(), "0\n0\n") << Slurp(log_);
  EXPECT_THAT(Slurp(log_), HasSubstr("Read-only file system"));
}

TEST_F(LauncherTest, BindMountsReadonlyAndWritable) {
  TempDir host;
  std::ofstream(host.path() + "/in") << "from host\n";
  Spec spec = BaseSpec({"sh", "-c",
                        "cat /ro/in; touch /ro/x || echo refused; echo hi > /rw/out; "
                        "grep -E ' /(ro|rw) ' /proc/self/mountinfo | cut -d' ' -f5,6"});
  spec.mounts.push_back({"/ro", "bind", host.path(), {"rbind", "ro", "rprivate"}});
  spec.mounts.push_back({"/rw", "bind", host.path(), {"rbind", "rw"}});
  absl::StatusOr<ExitInfo> exit = RunToExit(spec);
  ASSERT_THAT(exit.status(), IsOk());
  EXPECT_THAT(Stdout(), MatchesRegex("from host\nrefused\n/ro ro,[a-z,]*\n/rw rw,[a-z,]*\n"));
  EXPECT_EQ(Slurp(host.path() + "/out"), "hi\n");
  EXPECT_FALSE(std::filesystem::exists(host.path() + "/x"));
}

// Mount targets resolve inside the rootfs: a symlink in the image that points at a host
// directory (absolute, or up through "..") leads the mount into the rootfs, never onto the host.
TEST_F(LauncherTest, MountTargetsThroughSymlinksStayInsideTheRootfs) {
  TempDir host, source;
  std::ofstream(source.path() + "/in") << "volume\n";
  const std::string rootfs = dir_.path() + "/evil-rootfs";
  std::filesystem::create_directories(rootfs);
  // A private copy of the shared rootfs's top level (bind mounts of its directories would
  // do as well; symlinks to them keep it cheap).
  for (const char* d : {"bin", "etc", "proc", "sys", "dev", "tmp", "root"}) {
    std::filesystem::create_directories(rootfs + "/" + d);
  }
  std::filesystem::copy(RootfsEnvironment::Path() + "/bin", rootfs + "/bin",
                        std::filesystem::copy_options::recursive |
                            std::filesystem::copy_options::copy_symlinks |
                            std::filesystem::copy_options::overwrite_existing);
  std::filesystem::create_directory_symlink(host.path(), rootfs + "/abs");
  std::filesystem::create_directory_symlink("../../../../../../../../" + host.path(),
                                            rootfs + "/up");
  std::filesystem::create_symlink(host.path() + "/hosts", rootfs + "/etc/hosts");
  Spec spec = BaseSpec({"sh", "-c", "cat /abs/x/in /up/y/in /etc/hosts"});
  spec.root_path = rootfs;
  spec.mounts.push_back({"/abs/x", "bind", source.path(), {"rbind", "ro"}});
  spec.mounts.push_back({"/up/y", "bind", source.path(), {"rbind", "ro"}});
  spec.mounts.push_back({"/etc/hosts", "bind", source.path() + "/in", {"rbind", "ro"}});
  absl::StatusOr<ExitInfo> exit = RunToExit(spec);
  ASSERT_THAT(exit.status(), IsOk());
  EXPECT_EQ(exit->exit_code, 0) << Slurp(log_);
  EXPECT_EQ(Stdout(), "volume\nvolume\nvolume\n");
  // Nothing was made on the host side of the symlinks; the mount points are in the rootfs.
  EXPECT_TRUE(std::filesystem::is_empty(host.path()));
  EXPECT_TRUE(std::filesystem::exists(rootfs + host.path() + "/x"));
  EXPECT_TRUE(std::filesystem::exists(rootfs + host.path() + "/hosts"));
}

TEST_F(LauncherTest, RecursiveReadonlyAndCreatedWorkingDirectory) {
  TempDir host;
  std::filesystem::create_directories(host.path() + "/sub");
  ASSERT_EQ(::mount("tmpfs", (host.path() + "/sub").c_str(), "tmpfs", 0, "size=1m"), 0);
  absl::Cleanup unmount = [&] { ::umount2((host.path() + "/sub").c_str(), MNT_DETACH); };
  Spec spec = BaseSpec({"sh", "-c", "pwd; touch /v/sub/f 2>/dev/null || echo refused"});
  spec.process.cwd = "/made/by/the/init";
  spec.mounts.push_back({"/v", "bind", host.path(), {"rbind", "ro", "rro"}});
  absl::StatusOr<ExitInfo> exit = RunToExit(spec);
  ASSERT_THAT(exit.status(), IsOk());
  EXPECT_EQ(Stdout(), "/made/by/the/init\nrefused\n");
  EXPECT_FALSE(std::filesystem::exists(host.path() + "/sub/f"));
}

TEST_F(LauncherTest, DeviceCgroupRules) {
  Spec spec = BaseSpec({"sh", "-c",
                        "head -c 1 /dev/zero >/dev/null && echo zero-ok; "
                        "head -c 1 /dev/urandom >/dev/null 2>&1 || echo urandom-refused"});
  Resources& r = spec.linux_spec.resources;
  // mknod of any node stays allowed (the init makes /dev's standard nodes), opening only these.
  r.devices = {{false, "a", -1, -1, "rwm"}, {true, "c", -1, -1, "m"},    {true, "c", 1, 5, "rwm"},
               {true, "c", 1, 3, "rwm"},    {true, "c", 136, -1, "rwm"}, {true, "c", 5, 2, "rwm"}};
  absl::StatusOr<ExitInfo> exit = RunToExit(spec);
  ASSERT_THAT(exit.status(), IsOk());
  EXPECT_EQ(Stdout(), "zero-ok\nurandom-refused\n");
}

TEST_F(LauncherTest, CgroupFilesShowTheLimits) {
  Spec spec = BaseSpec({"sleep", "1000"});
  Resources& r = spec.linux_spec.resources;
  r.cpu_shares = 512;
  r.cpu_quota = 50000;
  r.cpu_period = 100000;
  r.cpuset_cpus = "0";
  r.memory_limit = 64 << 20;
  r.pids_limit = 100;
  ASSERT_THAT(Create(spec).status(), IsOk());
  ASSERT_THAT(launcher_.Start(bundle_), IsOk());
  std::string base = "/sys/fs/cgroup/";
  EXPECT_EQ(Slurp(base + "cpu" + cgroup_path_ + "/cpu.shares"), "512\n");
  EXPECT_EQ(Slurp(base + "cpu" + cgroup_path_ + "/cpu.cfs_quota_us"), "50000\n");
  EXPECT_EQ(Slurp(base + "cpu" + cgroup_path_ + "/cpu.cfs_period_us"), "100000\n");
  EXPECT_EQ(Slurp(base + "cpuset" + cgroup_path_ + "/cpuset.cpus"), "0\n");
  EXPECT_EQ(Slurp(base + "memory" + cgroup_path_ + "/memory.limit_in_bytes"),
            absl::StrCat(64 << 20, "\n"));
  EXPECT_EQ(Slurp(base + "pids" + cgroup_path_ + "/pids.max"), "100\n");
  // The init is in the container's cgroup in every hierarchy, the monitor is not.
  for (const char* h : {"cpu", "cpuset", "memory", "pids"}) {
    EXPECT_EQ(Slurp(base + h + cgroup_path_ + "/cgroup.procs"), absl::StrCat(pids_[1], "\n")) << h;
  }
}

TEST_F(LauncherTest, MissingBinaryIsAClearStartError) {
  ASSERT_THAT(Create(BaseSpec({"/bin/nope"})).status(), IsOk());
  EXPECT_THAT(launcher_.Start(bundle_),
              StatusIs(absl::StatusCode::kUnknown,
                       HasSubstr("exec \"/bin/nope\": no such file or directory")));
  absl::StatusOr<ExitInfo> exit = launcher_.WaitExit(bundle_, absl::Seconds(10));
  ASSERT_THAT(exit.status(), IsOk());
  EXPECT_NE(exit->exit_code, 0);
}

TEST_F(LauncherTest, CommandNotInPathIsAClearStartError) {
  ASSERT_THAT(Create(BaseSpec({"nope"})).status(), IsOk());
  EXPECT_THAT(launcher_.Start(bundle_),
              StatusIs(absl::StatusCode::kUnknown, HasSubstr("exec \"nope\": no such file")));
}

TEST_F(LauncherTest, SetupFailureLeavesNothing) {
  Spec spec = BaseSpec({"true"});
  spec.mounts.push_back({"/data", "bind", "/nonexistent/crib/source", {"rbind"}});
  EXPECT_THAT(Create(spec),
              StatusIs(absl::StatusCode::kUnknown, HasSubstr("/nonexistent/crib/source")));
  spec.mounts.pop_back();
  // A missing working directory is made (as runc does); one that is a file is an error.
  spec.process.cwd = "/etc/passwd";
  EXPECT_THAT(Create(spec), StatusIs(absl::StatusCode::kUnknown,
                                     HasSubstr("chdir to cwd /etc/passwd: not a directory")));
  // TearDown checks that no cgroup, mount or process is left.
}

bool WaitFor(const std::function<bool()>& done) {
  for (int i = 0; i < 1000; ++i) {
    if (done()) return true;
    ::usleep(10000);
  }
  return false;
}

// The standby monitors (`crib-monitor standby`) started by this test: the launcher spawns them
// with this process's environment, which the test marks.
std::set<pid_t> MarkedStandbys(const std::string& mark) {
  std::set<pid_t> out;
  for (pid_t pid : ::crib::testing::ProcessesWith("standby")) {
    if (Slurp(absl::StrCat("/proc/", pid, "/cmdline")) !=
        absl::StrCat(CRIB_MONITOR_PATH, std::string("\0standby\0", 9))) {
      continue;
    }
    for (absl::string_view var :
         absl::StrSplit(Slurp(absl::StrCat("/proc/", pid, "/environ")), '\0')) {
      if (var == absl::StrCat("CRIB_TEST_MARK=", mark)) out.insert(pid);
    }
  }
  return out;
}

TEST_F(LauncherTest, TheNextCreateIsHandedToAStandbyMonitor) {
  ASSERT_EQ(::setenv("CRIB_TEST_MARK", id_.c_str(), 1), 0);
  absl::Cleanup unmark = [] { ::unsetenv("CRIB_TEST_MARK"); };
  std::optional<Launcher> launcher(std::in_place, CRIB_MONITOR_PATH);
  const std::string first_bundle = dir_.path() + "/first";
  std::filesystem::create_directories(first_bundle);
  // The first create spawns its monitor, and a standby for the next one.
  Spec spec = BaseSpec({"sh", "-c", "echo from-$0", "first"});
  absl::StatusOr<CreatedContainer> first = launcher->Create(id_ + "a", first_bundle, spec, log_);
  ASSERT_THAT(first.status(), IsOk());
  ASSERT_THAT(launcher->Start(first_bundle), IsOk());
  ASSERT_THAT(launcher->WaitExit(first_bundle, absl::Seconds(20)).status(), IsOk());
  ASSERT_THAT(launcher->Remove(first_bundle), IsOk());
  std::set<pid_t> standbys;
  ASSERT_TRUE(WaitFor([&] { return (standbys = MarkedStandbys(id_)).size() == 1; }));
  const pid_t standby = *standbys.begin();
  EXPECT_LT(ProcStatusField(standby, "VmRSS"), 1024) << "a waiting standby keeps little resident";

  // The second is that standby: the same process, now the container's monitor, with the log,
  // the exit and the status it would have had.
  spec.process.args = {"sh", "-c", "echo from-$0", "second"};
  absl::StatusOr<CreatedContainer> second = launcher->Create(id_, bundle_, spec, log_);
  ASSERT_THAT(second.status(), IsOk());
  pids_ = {second->monitor_pid, second->init_pid};
  EXPECT_EQ(second->monitor_pid, standby);
  EXPECT_EQ(::getsid(second->monitor_pid), second->monitor_pid);
  ASSERT_THAT(launcher->Start(bundle_), IsOk());
  absl::StatusOr<ExitInfo> exit = launcher->WaitExit(bundle_, absl::Seconds(20));
  ASSERT_THAT(exit.status(), IsOk());
  EXPECT_EQ(exit->exit_code, 0);
  EXPECT_THAT(Stdout(), HasSubstr("from-second"));

  // A new standby waits; the launcher's end ends it.
  ASSERT_TRUE(WaitFor([&] {
    standbys = MarkedStandbys(id_);
    return standbys.size() == 1 && *standbys.begin() != standby;
  }));
  launcher.reset();
  EXPECT_TRUE(ExitsWithin(*standbys.begin()));
}

TEST_F(LauncherTest, AStartRightAfterTheCreateIsServedBeforeTheReExec) {
  absl::StatusOr<CreatedContainer> created = Create(BaseSpec({"sleep", "1000"}));
  ASSERT_THAT(created.status(), IsOk());
  ASSERT_THAT(launcher_.Start(bundle_), IsOk());
  // Then the monitor re-executes itself as `serve` and goes on with a running container.
  const std::string cmdline_path = absl::StrCat("/proc/", created->monitor_pid, "/cmdline");
  std::string cmdline;
  ASSERT_TRUE(WaitFor([&] { return absl::StrContains(cmdline = Slurp(cmdline_path), "serve"); }));
  absl::StatusOr<ContainerStatus> status = launcher_.Status(bundle_);
  ASSERT_THAT(status.status(), IsOk());
  EXPECT_EQ(status->state, ContainerState::kRunning);
  EXPECT_THAT(launcher_.Start(bundle_), StatusIs(absl::StatusCode::kFailedPrecondition,
                                                 HasSubstr("not in the created state")));
  ASSERT_THAT(launcher_.Kill(bundle_, SIGKILL), IsOk());
  absl::StatusOr<ExitInfo> exit = launcher_.WaitExit(bundle_, absl::Seconds(10));
  ASSERT_THAT(exit.status(), IsOk());
  EXPECT_EQ(exit->signal, SIGKILL);
  EXPECT_GT(exit->started_at, absl::UnixEpoch());
  EXPECT_LE(exit->started_at, exit->finished_at);
  // Started before the re-exec (the usual case: the start came within the window), `serve`
  // was told when, and that is the time the exit file has.
  std::vector<std::string> args = absl::StrSplit(cmdline, '\0');
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] == "--started-at") {
      EXPECT_EQ(args[i + 1], absl::StrCat(absl::ToUnixNanos(exit->started_at)));
    }
  }
}

TEST_F(LauncherTest, AStandbyThatDiedIsReplacedBySpawningTheMonitor) {
  ASSERT_EQ(::setenv("CRIB_TEST_MARK", id_.c_str(), 1), 0);
  absl::Cleanup unmark = [] { ::unsetenv("CRIB_TEST_MARK"); };
  const std::string first_bundle = dir_.path() + "/first";
  std::filesystem::create_directories(first_bundle);
  Spec spec = BaseSpec({"true"});
  ASSERT_THAT(launcher_.Create(id_ + "a", first_bundle, spec, log_).status(), IsOk());
  ASSERT_THAT(launcher_.Remove(first_bundle), IsOk());
  std::set<pid_t> standbys;
  ASSERT_TRUE(WaitFor([&] { return (standbys = MarkedStandbys(id_)).size() == 1; }));
  const pid_t standby = *standbys.begin();
  ASSERT_EQ(::kill(standby, SIGKILL), 0);
  ASSERT_TRUE(ExitsWithin(standby));
  absl::StatusOr<ExitInfo> exit = RunToExit(spec);
  ASSERT_THAT(exit.status(), IsOk());
  EXPECT_EQ(exit->exit_code, 0);
  EXPECT_NE(pids_[0], standby);
}

TEST_F(LauncherTest, ReopenLogAfterRotation) {
  std::string go = absl::StrCat("/tmp/", id_, "-go");
  std::string host_go = RootfsEnvironment::Path() + go;
  absl::Cleanup remove_go = [&] { std::filesystem::remove(host_go); };
  ASSERT_THAT(Create(BaseSpec({"sh", "-c",
                               absl::StrCat("echo one; while [ ! -e ", go,
                                            " ]; do sleep 0.02; done; echo two; sleep 1000")}))
                  .status(),
              IsOk());
  ASSERT_THAT(launcher_.Start(bundle_), IsOk());
  ASSERT_TRUE(WaitFor([&] { return Slurp(log_).find("one") != std::string::npos; }));
  ASSERT_EQ(::rename(log_.c_str(), (log_ + ".1").c_str()), 0);
  ASSERT_THAT(launcher_.ReopenLog(bundle_), IsOk());
  std::ofstream(host_go) << "";
  ASSERT_TRUE(WaitFor([&] { return Slurp(log_).find("two") != std::string::npos; }));
  EXPECT_THAT(LogRecords(log_), ::testing::ElementsAre("stdout F two"));
  EXPECT_THAT(LogRecords(log_ + ".1"), ::testing::ElementsAre("stdout F one"));
  EXPECT_THAT(launcher_.Resize(bundle_, 24, 80),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no terminal")));
}

TEST_F(LauncherTest, TerminalContainer) {
  Spec spec = BaseSpec({"sh", "-c", "tty; stty size"});
  spec.process.terminal = true;
  absl::StatusOr<ExitInfo> exit = RunToExit(spec);
  ASSERT_THAT(exit.status(), IsOk());
  EXPECT_EQ(exit->exit_code, 0) << Slurp(log_);
  EXPECT_THAT(Slurp(log_), HasSubstr("stdout F /dev/pts/0\r"));
}

TEST_F(LauncherTest, MonitorIsSmallAndLinksNoHeavyLibrary) {
  std::string dynamic = Shell(absl::StrCat("readelf -d ", CRIB_MONITOR_PATH, " 2>&1"));
  for (const char* lib : {"grpc", "protobuf", "spdlog", "absl", "stdc++"}) {
    EXPECT_THAT(dynamic, ::testing::Not(HasSubstr(lib)));
  }
  absl::StatusOr<CreatedContainer> created = Create(BaseSpec({"sleep", "1000"}));
  ASSERT_THAT(created.status(), IsOk());
  ASSERT_THAT(launcher_.Start(bundle_), IsOk());
  ExecOptions options;
  options.args = {"true"};
  ASSERT_THAT(launcher_.Exec(bundle_, options).status(), IsOk());  // the monitor's busiest path
  // It serves an exec only once re-executed in serve mode, and ps shows it by its name.
  EXPECT_THAT(Slurp(absl::StrCat("/proc/", created->monitor_pid, "/cmdline")), HasSubstr("serve"));
  EXPECT_EQ(Slurp(absl::StrCat("/proc/", created->monitor_pid, "/comm")), "crib-monitor\n");
  auto rss_kib = [&] {
    std::string status = Slurp(absl::StrCat("/proc/", created->monitor_pid, "/status"));
    size_t at = status.find("VmRSS:");
    int64_t kib = 0;
    if (at == std::string::npos ||
        !absl::SimpleAtoi(
            absl::StripAsciiWhitespace(absl::StripSuffix(
                absl::StripAsciiWhitespace(status.substr(at + 6, status.find('\n', at) - at - 6)),
                "kB")),
            &kib)) {
      return int64_t{-1};
    }
    return kib;
  };
  const int64_t busy = rss_kib();
  // After a second without work the monitor drops the executable's mappings.
  absl::SleepFor(absl::Milliseconds(1500));
  const int64_t idle = rss_kib();
  std::printf("crib-monitor RSS: %lld KiB busy, %lld KiB idle\n", static_cast<long long>(busy),
              static_cast<long long>(idle));
  EXPECT_GT(idle, 0);
  EXPECT_LT(idle, busy);
}

// ---- Streamed exec, attach and dialing into a network namespace: the runtime pieces under
// the streaming server (src/stream).

MATCHER_P(IsOkAndHolds, value, "is OK and holds " + ::testing::PrintToString(value)) {
  if (!arg.ok()) {
    *result_listener << "status is " << arg.status();
    return false;
  }
  *result_listener << "holds " << *arg;
  return *arg == value;
}

// Reads from `fd` until EOF or until `done` says the collected text is complete.
std::string ReadUntil(int fd, const std::function<bool(const std::string&)>& done,
                      absl::Duration timeout = absl::Seconds(10)) {
  std::string out;
  absl::Time deadline = absl::Now() + timeout;
  while (!done(out) && absl::Now() < deadline) {
    struct pollfd p = {fd, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    char buf[4096];
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    out.append(buf, n);
  }
  return out;
}

std::string ReadAll(int fd) {
  return ReadUntil(fd, [](const std::string&) { return false; });
}

bool WriteString(int fd, const std::string& s) {
  return ::write(fd, s.data(), s.size()) == static_cast<ssize_t>(s.size());
}

TEST_F(LauncherTest, StreamExecWithStdinPipesAndExitCode) {
  ASSERT_THAT(Create(BaseSpec({"sleep", "1000"})).status(), IsOk());
  ASSERT_THAT(launcher_.Start(bundle_), IsOk());
  StreamExecOptions options;
  options.args = {"cat"};
  options.stdin = true;
  absl::StatusOr<std::unique_ptr<ExecProcess>> cat = launcher_.StartExec(bundle_, options);
  ASSERT_THAT(cat.status(), IsOk());
  ASSERT_TRUE(WriteString((*cat)->stdin_fd().get(), "hello\n"));
  (*cat)->stdin_fd().Reset();
  EXPECT_EQ(ReadAll((*cat)->stdout_fd().get()), "hello\n");
  EXPECT_EQ(ReadAll((*cat)->stderr_fd().get()), "");
  EXPECT_THAT((*cat)->ExitCode(), IsOkAndHolds(0));

  options.args = {"sh", "-c", "echo out; echo err >&2; exit 5"};
  options.stdin = false;
  absl::StatusOr<std::unique_ptr<ExecProcess>> sh = launcher_.StartExec(bundle_, options);
  ASSERT_THAT(sh.status(), IsOk());
  EXPECT_FALSE((*sh)->stdin_fd().valid());
  EXPECT_EQ(ReadAll((*sh)->stdout_fd().get()), "out\n");
  EXPECT_EQ(ReadAll((*sh)->stderr_fd().get()), "err\n");
  EXPECT_THAT((*sh)->ExitCode(), IsOkAndHolds(5));
  EXPECT_THAT((*sh)->Resize(24, 80),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no tty")));

  options.args = {"/bin/nope"};
  EXPECT_THAT(launcher_.StartExec(bundle_, options),
              StatusIs(absl::StatusCode::kUnknown,
                       HasSubstr("exec \"/bin/nope\": no such file or directory")));
}

TEST_F(LauncherTest, StreamExecTtyFromTheContainersDevptsWithResize) {
  ASSERT_THAT(Create(BaseSpec({"sleep", "1000"})).status(), IsOk());
  ASSERT_THAT(launcher_.Start(bundle_), IsOk());
  StreamExecOptions options;
  options.args = {"sh", "-c", "read x; tty; stty size; exit 2"};
  options.tty = true;
  options.stdin = true;
  absl::StatusOr<std::unique_ptr<ExecProcess>> sh = launcher_.StartExec(bundle_, options);
  ASSERT_THAT(sh.status(), IsOk());
  EXPECT_FALSE((*sh)->stderr_fd().valid());
  ASSERT_THAT((*sh)->Resize(33, 101), IsOk());
  ASSERT_TRUE(WriteString((*sh)->stdin_fd().get(), "go\n"));
  std::string out = ReadUntil((*sh)->stdout_fd().get(), [](const std::string& s) {
    return s.find("101") != std::string::npos;
  });
  EXPECT_THAT(out, MatchesRegex("go\r\n/dev/pts/[0-9]+\r\n33 101\r\n"));
  EXPECT_THAT((*sh)->ExitCode(), IsOkAndHolds(2));
}

TEST_F(LauncherTest, StreamExecDiesWithItsHandle) {
  ASSERT_THAT(Create(BaseSpec({"sleep", "1000"})).status(), IsOk());
  ASSERT_THAT(launcher_.Start(bundle_), IsOk());
  std::string procs_file = ::crib::testing::CgroupDir("pids", cgroup_path_) + "/cgroup.procs";
  StreamExecOptions options;
  options.args = {"sleep", "1000"};
  {
    absl::StatusOr<std::unique_ptr<ExecProcess>> sleeper = launcher_.StartExec(bundle_, options);
    ASSERT_THAT(sleeper.status(), IsOk());
    EXPECT_TRUE(WaitFor([&] {
      return absl::StrContains(Slurp(procs_file), "\n") &&
             Slurp(procs_file) != absl::StrCat(pids_[1], "\n");
    }));
  }
  EXPECT_TRUE(WaitFor([&] { return Slurp(procs_file) == absl::StrCat(pids_[1], "\n"); }))
      << Slurp(procs_file);
  // Kill() ends it with SIGKILL, and the exit code says so.
  absl::StatusOr<std::unique_ptr<ExecProcess>> sleeper = launcher_.StartExec(bundle_, options);
  ASSERT_THAT(sleeper.status(), IsOk());
  (*sleeper)->Kill();
  EXPECT_THAT((*sleeper)->ExitCode(), IsOkAndHolds(128 + SIGKILL));
}

TEST_F(LauncherTest, AttachersSeeOutputAndWriteStdin) {
  CreateOptions create;
  create.stdin = true;
  ASSERT_THAT(
      Create(BaseSpec({"sh", "-c", "while read l; do echo got $l; echo err $l >&2; done"}), create)
          .status(),
      IsOk());
  ASSERT_THAT(launcher_.Start(bundle_), IsOk());
  AttachOptions writer_options;
  writer_options.stdin = true;
  absl::StatusOr<Attachment> writer = launcher_.Attach(bundle_, writer_options);
  ASSERT_THAT(writer.status(), IsOk());
  AttachOptions reader_options;
  reader_options.stderr = false;
  absl::StatusOr<Attachment> reader = launcher_.Attach(bundle_, reader_options);
  ASSERT_THAT(reader.status(), IsOk());
  EXPECT_FALSE(reader->stderr_fd.valid());
  EXPECT_FALSE(reader->stdin_fd.valid());
  ASSERT_TRUE(WriteString(writer->stdin_fd.get(), "one\n"));
  auto has_got_one = [](const std::string& s) { return s.find("got one\n") != std::string::npos; };
  EXPECT_EQ(ReadUntil(writer->stdout_fd.get(), has_got_one), "got one\n");
  EXPECT_EQ(ReadUntil(writer->stderr_fd.get(),
                      [](const std::string& s) { return s.find('\n') != std::string::npos; }),
            "err one\n");
  EXPECT_EQ(ReadUntil(reader->stdout_fd.get(), has_got_one), "got one\n");
  // Without stdin_once, the container's stdin stays open when an attacher leaves.
  writer->stdin_fd.Reset();
  absl::StatusOr<Attachment> again = launcher_.Attach(bundle_, writer_options);
  ASSERT_THAT(again.status(), IsOk());
  ASSERT_TRUE(WriteString(again->stdin_fd.get(), "two\n"));
  EXPECT_EQ(ReadUntil(again->stdout_fd.get(),
                      [](const std::string& s) { return s.find('\n') != std::string::npos; }),
            "got two\n");
  EXPECT_THAT(Slurp(log_), HasSubstr("stdout F got two"));
  ASSERT_THAT(launcher_.Kill(bundle_, SIGKILL), IsOk());
  // The attachment ends with the container.
  EXPECT_EQ(ReadAll(reader->stdout_fd.get()), "got two\n");
}

TEST_F(LauncherTest, StdinOnceClosesStdinWhenTheFirstAttacherLeaves) {
  CreateOptions create;
  create.stdin = true;
  create.stdin_once = true;
  ASSERT_THAT(Create(BaseSpec({"cat"}), create).status(), IsOk());
  ASSERT_THAT(launcher_.Start(bundle_), IsOk());
  AttachOptions options;
  options.stdin = true;
  absl::StatusOr<Attachment> attachment = launcher_.Attach(bundle_, options);
  ASSERT_THAT(attachment.status(), IsOk());
  ASSERT_TRUE(WriteString(attachment->stdin_fd.get(), "only once\n"));
  EXPECT_EQ(ReadUntil(attachment->stdout_fd.get(),
                      [](const std::string& s) { return s.find('\n') != std::string::npos; }),
            "only once\n");
  attachment->stdin_fd.Reset();  // cat sees EOF and the container exits
  absl::StatusOr<ExitInfo> exit = launcher_.WaitExit(bundle_, absl::Seconds(10));
  ASSERT_THAT(exit.status(), IsOk());
  EXPECT_EQ(exit->exit_code, 0);
  EXPECT_THAT(LogRecords(log_), ::testing::ElementsAre("stdout F only once"));
  EXPECT_THAT(launcher_.Attach(bundle_, options).status(),
              ::testing::Not(IsOk()));  // nothing left to attach to
}

TEST_F(LauncherTest, AStuckAttacherDoesNotHoldUpTheLog) {
  constexpr int kBytes = 8 << 20;
  std::string go = absl::StrCat("/tmp/", id_, "-go");
  std::string host_go = RootfsEnvironment::Path() + go;
  absl::Cleanup remove_go = [&] { std::filesystem::remove(host_go); };
  ASSERT_THAT(Create(BaseSpec({"sh", "-c",
                               absl::StrCat("while [ ! -e ", go, " ]; do sleep 0.02; done; ",
                                            "head -c ", kBytes, " /dev/zero | tr '\\0' a")}))
                  .status(),
              IsOk());
  ASSERT_THAT(launcher_.Start(bundle_), IsOk());
  // An attacher that never reads.
  absl::StatusOr<Attachment> stuck = launcher_.Attach(bundle_, AttachOptions{});
  ASSERT_THAT(stuck.status(), IsOk());
  std::ofstream(host_go) << "";
  absl::StatusOr<ExitInfo> exit = launcher_.WaitExit(bundle_, absl::Seconds(30));
  ASSERT_THAT(exit.status(), IsOk());
  EXPECT_EQ(exit->exit_code, 0);
  // The log has everything; the attacher got what fit in its socket, the rest was dropped.
  size_t logged = 0;
  for (const auto& r : LogRecords(log_)) logged += r.size() - std::string("stdout P ").size();
  EXPECT_EQ(logged, static_cast<size_t>(kBytes));
  std::string got = ReadAll(stuck->stdout_fd.get());
  EXPECT_GT(got.size(), 0u);
  EXPECT_LT(got.size(), static_cast<size_t>(kBytes));
  EXPECT_THAT(Slurp(bundle_ + "/monitor.log"), HasSubstr("dropping"));
}

TEST_F(LauncherTest, AttachToATerminalContainer) {
  CreateOptions create;
  create.stdin = true;
  Spec spec = BaseSpec({"sh", "-c", "read l; echo got $l; stty size"});
  spec.process.terminal = true;
  ASSERT_THAT(Create(spec, create).status(), IsOk());
  ASSERT_THAT(launcher_.Start(bundle_), IsOk());
  AttachOptions options;
  options.stdin = true;
  options.stderr = false;
  absl::StatusOr<Attachment> attachment = launcher_.Attach(bundle_, options);
  ASSERT_THAT(attachment.status(), IsOk());
  ASSERT_THAT(launcher_.Resize(bundle_, 20, 70), IsOk());
  ASSERT_TRUE(WriteString(attachment->stdin_fd.get(), "x\n"));
  EXPECT_EQ(ReadAll(attachment->stdout_fd.get()), "x\r\ngot x\r\n20 70\r\n");
}

TEST_F(LauncherTest, DialInANetworkNamespace) {
  NamespaceHolder holder;
  ASSERT_GT(holder.sleeper(), 0);
  Shell(absl::StrCat("nsenter --net=", holder.Ns("net"), " ip link set lo up"));
  // A listener in the namespace, made by a thread that joins it.
  int port = 0;
  UniqueFd listener;
  std::thread([&] {
    UniqueFd ns(::open(holder.Ns("net").c_str(), O_RDONLY | O_CLOEXEC));
    if (::setns(ns.get(), CLONE_NEWNET) != 0) return;
    listener.Reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    struct sockaddr_in addr = {};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        ::listen(listener.get(), 4) != 0 ||
        ::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      return;
    }
    port = ntohs(addr.sin_port);
  }).join();
  ASSERT_GT(port, 0);
  absl::StatusOr<UniqueFd> conn = DialInNetns(holder.Ns("net"), port);
  ASSERT_THAT(conn.status(), IsOk());
  UniqueFd accepted(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(accepted.valid());
  ASSERT_TRUE(WriteString(accepted.get(), "hi"));
  EXPECT_EQ(ReadUntil(conn->get(), [](const std::string& s) { return s.size() >= 2; }), "hi");
  // The same port on the host is another one; a port nobody listens on is refused.
  listener.Reset();
  EXPECT_THAT(DialInNetns(holder.Ns("net"), port),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("connection refused")));
  // Nothing on 127.0.0.1 but something on ::1: the fallback finds it.
  UniqueFd listener6;
  std::thread([&] {
    UniqueFd ns(::open(holder.Ns("net").c_str(), O_RDONLY | O_CLOEXEC));
    if (::setns(ns.get(), CLONE_NEWNET) != 0) return;
    listener6.Reset(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
    int one = 1;
    ::setsockopt(listener6.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    struct sockaddr_in6 addr = {};
    addr.sin6_family = AF_INET6;
    addr.sin6_addr = in6addr_loopback;
    addr.sin6_port = htons(static_cast<uint16_t>(port));
    if (::bind(listener6.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(listener6.get(), 4) != 0) {
      listener6.Reset();
    }
  }).join();
  ASSERT_TRUE(listener6.valid());
  EXPECT_THAT(DialInNetns(holder.Ns("net"), port).status(), IsOk());
  EXPECT_THAT(DialInNetns("/nonexistent/netns", 80),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("/nonexistent/netns")));
}

// The template every container's mount namespace is copied from: the host's at the time, with
// the mounts that hold crib's directories and the others, without those below them, and
// private: a mount the host makes afterwards does not reach it.
TEST(MountTemplateTest, HoldsTheHostsMountsButCribsOwnAndNoLaterOne) {
  TempDir dir;
  const std::string base = dir.path() + "/base";
  absl::Cleanup unmount = [&] { crib::testing::UnmountAllUnder(dir.path()); };
  auto tmpfs = [](const std::string& at) {
    ASSERT_THAT(MakeDirs(at), IsOk());
    ASSERT_EQ(::mount("tmpfs", at.c_str(), "tmpfs", 0, nullptr), 0) << at << ": " << errno;
  };
  tmpfs(base);  // holds the state directory; shared, as / is on most hosts
  ASSERT_EQ(::mount(nullptr, base.c_str(), nullptr, MS_SHARED, nullptr), 0) << errno;
  tmpfs(base + "/state/pods/1/shm");  // below it: a pod's
  tmpfs(base + "/other");             // beside it
  absl::StatusOr<UniqueFd> made = MakeMountNamespaceTemplate({base + "/state"});
  ASSERT_THAT(made, IsOk());
  tmpfs(base + "/later");
  // The template's mount points, read by a thread that joins it.
  std::set<std::string> points;
  std::thread reader([&] {
    if (::unshare(CLONE_FS) != 0 || ::setns(made->get(), CLONE_NEWNS) != 0) return;
    absl::StatusOr<std::string> info = ReadFile("/proc/thread-self/mountinfo");
    if (!info.ok()) return;
    for (absl::string_view line : absl::StrSplit(*info, '\n', absl::SkipEmpty())) {
      std::vector<absl::string_view> fields = absl::StrSplit(line, ' ');
      if (fields.size() > 6 && absl::StartsWith(fields[4], dir.path())) {
        points.insert(std::string(fields[4]));
        // Private: no peer group ("shared:N") nor master ("master:N") among the optional fields.
        EXPECT_FALSE(absl::StrContains(line, "shared:")) << line;
      }
    }
  });
  reader.join();
  EXPECT_THAT(points, ::testing::UnorderedElementsAre(base, base + "/other"));
}

}  // namespace
}  // namespace crib::runtime
