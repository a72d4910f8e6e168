// The container init's plan (runtime/monitor/init.h): what crib-monitor computes from
// config.json before the clone, checked field by field, without root and without a clone.
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/monitor/init.h"
#include "runtime/spec.h"
#include "support/temp_dir.h"

namespace crib::runtime {
namespace {

using ::crib::testing::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

// A bundle with a rootfs directory, a directory and a file to bind.
class PlanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(bundle() + "/rootfs");
    std::filesystem::create_directories(dir_.path() + "/data");
    std::ofstream(dir_.path() + "/file") << "x";
  }

  std::string bundle() const { return dir_.path() + "/bundle"; }
  std::string data_dir() const { return dir_.path() + "/data"; }
  std::string data_file() const { return dir_.path() + "/file"; }

  static Spec BaseSpec() {
    Spec spec;
    spec.process.args = {"sh"};
    return spec;
  }

  TempDir dir_;
};

struct MountCase {
  const char* name;
  Mount mount;  // "@dir" and "@file" as source stand for the test's own paths
  std::string type;
  std::string source;
  std::string data;
  unsigned long flags;
  unsigned long propagation;
  bool bind, recursive, recursive_readonly, file_target, dev_tmpfs, cgroup_v1, cgroup_readonly;
};

const MountCase kMountCases[] = {
    {"proc",
     {"/proc", "proc", "proc", {"nosuid", "noexec", "nodev"}},
     "proc",
     "proc",
     "",
     MS_NOSUID | MS_NOEXEC | MS_NODEV,
     0,
     false,
     false,
     false,
     false,
     false,
     false,
     false},
    {"dev_tmpfs",
     {"/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}},
     "tmpfs",
     "tmpfs",
     "mode=755,size=65536k",
     MS_NOSUID | MS_STRICTATIME,
     0,
     false,
     false,
     false,
     false,
     true,
     false,
     false},
    {"devpts",
     {"/dev/pts",
      "devpts",
      "devpts",
      {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
     "devpts",
     "devpts",
     "newinstance,ptmxmode=0666,mode=0620,gid=5",
     MS_NOSUID | MS_NOEXEC,
     0,
     false,
     false,
     false,
     false,
     false,
     false,
     false},
    {"tmpfs_elsewhere_is_not_dev",
     {"/run", "tmpfs", "tmpfs", {"nodev"}},
     "tmpfs",
     "tmpfs",
     "",
     MS_NODEV,
     0,
     false,
     false,
     false,
     false,
     false,
     false,
     false},
    {"rbind_ro_rslave",
     {"/data", "bind", "@dir", {"rbind", "ro", "rslave"}},
     "bind",
     "@dir",
     "",
     MS_RDONLY,
     MS_SLAVE | MS_REC,
     true,
     true,
     false,
     false,
     false,
     false,
     false},
    {"bind_option_without_bind_type",
     {"/data", "none", "@dir", {"bind", "rprivate"}},
     "none",
     "@dir",
     "",
     0,
     MS_PRIVATE | MS_REC,
     true,
     false,
     false,
     false,
     false,
     false,
     false},
    {"bind_of_a_file",
     {"/etc/hosts", "bind", "@file", {"bind"}},
     "bind",
     "@file",
     "",
     0,
     0,
     true,
     false,
     false,
     true,
     false,
     false,
     false},
    {"rro",
     {"/data", "bind", "@dir", {"rbind", "rro"}},
     "bind",
     "@dir",
     "",
     0,
     0,
     true,
     true,
     true,
     false,
     false,
     false,
     false},
    {"rw_clears_ro",
     {"/data", "bind", "@dir", {"rbind", "ro", "rw"}},
     "bind",
     "@dir",
     "",
     0,
     0,
     true,
     true,
     false,
     false,
     false,
     false,
     false},
    {"rshared",
     {"/data", "bind", "@dir", {"rbind", "rshared"}},
     "bind",
     "@dir",
     "",
     0,
     MS_SHARED | MS_REC,
     true,
     true,
     false,
     false,
     false,
     false,
     false},
    {"cgroup_ro",
     {"/sys/fs/cgroup", "cgroup", "cgroup", {"nosuid", "noexec", "nodev", "relatime", "ro"}},
     "tmpfs",
     "tmpfs",
     "mode=755",
     MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RELATIME,
     0,
     false,
     false,
     false,
     false,
     false,
     true,
     true},
    {"cgroup_rw",
     {"/sys/fs/cgroup", "cgroup", "cgroup", {"rw"}},
     "tmpfs",
     "tmpfs",
     "mode=755",
     0,
     0,
     false,
     false,
     false,
     false,
     false,
     true,
     false},
};

class MountPlanTest : public PlanTest, public ::testing::WithParamInterface<MountCase> {
 protected:
  std::string Path(const std::string& source) const {
    if (source == "@dir") return data_dir();
    if (source == "@file") return data_file();
    return source;
  }
};

TEST_P(MountPlanTest, MountStepOfTheSpec) {
  const MountCase& c = GetParam();
  Spec spec = BaseSpec();
  Mount mount = c.mount;
  mount.source = Path(mount.source);
  spec.mounts = {mount};
  Plan plan;
  std::string error;
  ASSERT_TRUE(BuildPlan(spec, bundle(), /*for_exec=*/false, {}, &plan, &error)) << error;
  ASSERT_EQ(plan.mounts.size(), 1u);
  const MountStep& m = plan.mounts[0];
  EXPECT_EQ(m.target, c.mount.destination);
  EXPECT_EQ(m.type, c.type);
  EXPECT_EQ(m.source, Path(c.source));
  EXPECT_EQ(m.data, c.data);
  EXPECT_EQ(m.flags, c.flags);
  EXPECT_EQ(m.propagation, c.propagation);
  EXPECT_EQ(m.bind, c.bind);
  EXPECT_EQ(m.recursive, c.recursive);
  EXPECT_EQ(m.recursive_readonly, c.recursive_readonly);
  EXPECT_EQ(m.file_target, c.file_target);
  EXPECT_EQ(m.dev_tmpfs, c.dev_tmpfs);
  EXPECT_EQ(m.cgroup_v1, c.cgroup_v1);
  EXPECT_EQ(m.cgroup_readonly, c.cgroup_readonly);
}

INSTANTIATE_TEST_SUITE_P(Mounts, MountPlanTest, ::testing::ValuesIn(kMountCases),
                         [](const ::testing::TestParamInfo<MountCase>& info) {
                           return std::string(info.param.name);
                         });

// Specs the plan refuses, each with the words of its error.
struct RefusedCase {
  const char* name;
  void (*change)(Spec&);
  const char* error;
};

const RefusedCase kRefusedCases[] = {
    {"no_args", [](Spec& s) { s.process.args.clear(); }, "the process has no args"},
    {"unknown_rlimit",
     [](Spec& s) {
       s.process.rlimits = {{"RLIMIT_NOPE", 1, 1}};
     },
     "unknown rlimit \"RLIMIT_NOPE\""},
    {"unknown_capability", [](Spec& s) { s.process.capabilities.bounding = {"CAP_NOPE"}; },
     "CAP_NOPE"},
    {"relative_destination",
     [](Spec& s) {
       s.mounts = {{"data", "tmpfs", "tmpfs", {}}};
     },
     "mount destination \"data\" is not absolute"},
    {"missing_bind_source",
     [](Spec& s) {
       s.mounts = {{"/data", "bind", "/nonexistent/crib", {"rbind"}}};
     },
     "mount source /nonexistent/crib for /data"},
    {"unsupported_namespace",
     [](Spec& s) {
       s.linux_spec.namespaces = {{"time", ""}};
     },
     "unsupported namespace \"time\""},
    {"new_user_namespace",
     [](Spec& s) {
       s.linux_spec.namespaces = {{"user", ""}};
     },
     "a new user namespace: the launcher only joins one"},
    {"idmapped_mount_without_user_namespace",
     [](Spec& s) {
       s.mounts = {
           {"/data", "bind", "/tmp", {"rbind"}, {{0, 1 << 20, 65536}}, {{0, 1 << 20, 65536}}}};
     },
     "mount /data: an id-mapped mount needs the pod's user namespace"},
    {"missing_namespace_path",
     [](Spec& s) {
       s.linux_spec.namespaces = {{"network", "/nonexistent/netns"}};
     },
     "open network namespace /nonexistent/netns"},
    {"hostname_without_uts", [](Spec& s) { s.hostname = "web"; },
     "hostname \"web\" needs a uts namespace"},
    {"unknown_rootfs_propagation", [](Spec& s) { s.linux_spec.rootfs_propagation = "sideways"; },
     "unknown rootfs propagation \"sideways\""},
    {"missing_rootfs", [](Spec& s) { s.root_path = "nope"; }, "rootfs "},
};

class RefusedPlanTest : public PlanTest, public ::testing::WithParamInterface<RefusedCase> {};

TEST_P(RefusedPlanTest, SaysWhy) {
  Spec spec = BaseSpec();
  GetParam().change(spec);
  Plan plan;
  std::string error;
  EXPECT_FALSE(BuildPlan(spec, bundle(), /*for_exec=*/false, {}, &plan, &error));
  EXPECT_THAT(error, HasSubstr(GetParam().error));
}

INSTANTIATE_TEST_SUITE_P(Specs, RefusedPlanTest, ::testing::ValuesIn(kRefusedCases),
                         [](const ::testing::TestParamInfo<RefusedCase>& info) {
                           return std::string(info.param.name);
                         });

TEST_F(PlanTest, ExecNeedsOnlyTheProcess) {
  Spec spec = BaseSpec();
  spec.hostname = "web";  // would be refused without a uts namespace, but exec skips it
  spec.root_path = "nope";
  Plan plan;
  std::string error;
  ASSERT_TRUE(BuildPlan(spec, bundle(), /*for_exec=*/true, {}, &plan, &error)) << error;
  EXPECT_TRUE(plan.rootfs.empty());
  EXPECT_EQ(plan.unshare_flags, 0);
}

TEST_F(PlanTest, NamespacesToMakeAndToJoin) {
  Spec spec = BaseSpec();
  spec.hostname = "web";
  spec.linux_spec.namespaces = {
      {"pid", ""}, {"ipc", ""}, {"uts", ""}, {"cgroup", ""}, {"network", "/proc/self/ns/net"}};
  Plan plan;
  std::string error;
  ASSERT_TRUE(BuildPlan(spec, bundle(), false, {}, &plan, &error)) << error;
  EXPECT_EQ(plan.clone_flags, CLONE_NEWPID);
  EXPECT_EQ(plan.unshare_flags, CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNS);
  EXPECT_TRUE(plan.new_cgroup_ns);
  EXPECT_TRUE(plan.new_uts);
  EXPECT_FALSE(plan.join_pid);
  ASSERT_EQ(plan.joins.size(), 1u);
  EXPECT_EQ(plan.joins[0].first, CLONE_NEWNET);
  EXPECT_TRUE(plan.joins[0].second);
  EXPECT_EQ(plan.hostname, "web");
}

TEST_F(PlanTest, JoinedUtsMayTakeTheHostname) {
  Spec spec = BaseSpec();
  spec.hostname = "web";
  spec.linux_spec.namespaces = {{"uts", "/proc/self/ns/uts"}, {"pid", "/proc/self/ns/pid"}};
  Plan plan;
  std::string error;
  ASSERT_TRUE(BuildPlan(spec, bundle(), false, {}, &plan, &error)) << error;
  EXPECT_EQ(plan.clone_flags, 0);
  EXPECT_EQ(plan.unshare_flags, CLONE_NEWNS);  // always a mount namespace of its own
  EXPECT_TRUE(plan.join_pid);
  EXPECT_TRUE(plan.new_uts);
}

TEST_F(PlanTest, ProcessUserCapabilitiesAndLimits) {
  Spec spec = BaseSpec();
  spec.process.args = {"sh", "-c", "true"};
  spec.process.env = {"A=1", "PATH=/bin::/usr/bin"};
  spec.process.cwd = "";
  spec.process.user = {1000, 1001, {5, 6}};
  spec.process.capabilities.bounding = {"CAP_CHOWN", "CAP_KILL"};
  spec.process.capabilities.effective = {"CAP_KILL"};
  spec.process.rlimits = {{"RLIMIT_NOFILE", 4096, 1024}};
  spec.process.oom_score_adj = -10;
  spec.process.no_new_privileges = true;
  spec.process.terminal = true;
  Plan plan;
  std::string error;
  ASSERT_TRUE(BuildPlan(spec, bundle(), false, {}, &plan, &error)) << error;
  EXPECT_EQ(plan.cwd, "/");
  EXPECT_THAT(plan.path_dirs, ElementsAre("/bin", ".", "/usr/bin"));
  ASSERT_EQ(plan.argv.size(), 4u);
  EXPECT_STREQ(plan.argv[2], "true");
  EXPECT_EQ(plan.argv[3], nullptr);
  ASSERT_EQ(plan.envp.size(), 3u);
  EXPECT_EQ(plan.envp[2], nullptr);
  EXPECT_EQ(plan.uid, 1000u);
  EXPECT_EQ(plan.gid, 1001u);
  EXPECT_THAT(plan.groups, ElementsAre(5u, 6u));
  EXPECT_EQ(plan.cap_bounding, (1ULL << 0) | (1ULL << 5));  // CAP_CHOWN, CAP_KILL
  EXPECT_EQ(plan.cap_effective, 1ULL << 5);
  EXPECT_EQ(plan.cap_ambient, 0u);
  ASSERT_EQ(plan.rlimits.size(), 1u);
  EXPECT_EQ(plan.rlimits[0].first, RLIMIT_NOFILE);
  EXPECT_EQ(plan.rlimits[0].second.rlim_cur, 1024u);
  EXPECT_EQ(plan.rlimits[0].second.rlim_max, 4096u);
  EXPECT_TRUE(plan.set_oom_score_adj);
  EXPECT_EQ(plan.oom_score_adj, "-10");
  EXPECT_TRUE(plan.no_new_privileges);
  EXPECT_TRUE(plan.terminal);
  EXPECT_FALSE(plan.has_seccomp);
}

TEST_F(PlanTest, DefaultPathWithoutPathInTheEnv) {
  Spec spec = BaseSpec();
  Plan plan;
  std::string error;
  ASSERT_TRUE(BuildPlan(spec, bundle(), true, {}, &plan, &error)) << error;
  EXPECT_THAT(plan.path_dirs, ElementsAre("/usr/local/sbin", "/usr/local/bin", "/usr/sbin",
                                          "/usr/bin", "/sbin", "/bin"));
}

TEST_F(PlanTest, RootDevicesSysctlsAndPaths) {
  Spec spec = BaseSpec();
  spec.root_readonly = true;
  spec.linux_spec.devices = {{"/dev/null", "c", 1, 3, std::nullopt, std::nullopt, std::nullopt},
                             {"/dev/sda", "b", 8, 0, 0620, 0, 6},
                             {"/dev/fifo", "p", 0, 0, 0600, 7, std::nullopt}};
  spec.linux_spec.sysctl = {{"net.ipv4.ip_forward", "1"}, {"kernel.shm_rmid_forced", "1"}};
  spec.linux_spec.masked_paths = {"/proc/kcore"};
  spec.linux_spec.readonly_paths = {"/proc/sys"};
  Plan plan;
  std::string error;
  ASSERT_TRUE(BuildPlan(spec, bundle(), false, {}, &plan, &error)) << error;
  // A relative root is the bundle's, resolved.
  EXPECT_EQ(plan.rootfs, std::filesystem::canonical(bundle() + "/rootfs").string());
  EXPECT_TRUE(plan.root_readonly);
  EXPECT_EQ(plan.root_propagation, static_cast<unsigned long>(MS_SLAVE | MS_REC));
  EXPECT_TRUE(plan.rootfs_mount.empty());
  ASSERT_EQ(plan.devices.size(), 3u);
  EXPECT_EQ(plan.devices[0].mode, S_IFCHR | 0666u);
  EXPECT_EQ(plan.devices[0].dev, makedev(1, 3));
  EXPECT_EQ(plan.devices[1].mode, S_IFBLK | 0620u);
  EXPECT_EQ(plan.devices[1].dev, makedev(8, 0));
  EXPECT_EQ(plan.devices[1].gid, 6u);
  EXPECT_EQ(plan.devices[2].mode, S_IFIFO | 0600u);
  EXPECT_EQ(plan.devices[2].uid, 7u);
  EXPECT_THAT(plan.sysctls, ElementsAre(Pair("/proc/sys/kernel/shm_rmid_forced", "1"),
                                        Pair("/proc/sys/net/ipv4/ip_forward", "1")));
  EXPECT_THAT(plan.masked, ElementsAre("/proc/kcore"));
  EXPECT_THAT(plan.readonly, ElementsAre("/proc/sys"));
  EXPECT_TRUE(plan.cgroup_join.empty());
}

TEST_F(PlanTest, SharedRootNamesTheMountThatHoldsIt) {
  Spec spec = BaseSpec();
  spec.root_path = bundle() + "/rootfs";
  spec.linux_spec.rootfs_propagation = "rshared";
  Plan plan;
  std::string error;
  ASSERT_TRUE(BuildPlan(spec, bundle(), false, {}, &plan, &error)) << error;
  EXPECT_EQ(plan.root_propagation, static_cast<unsigned long>(MS_SHARED | MS_REC));
  // Some mount above the rootfs ("/" at least): a prefix of its path.
  ASSERT_FALSE(plan.rootfs_mount.empty());
  EXPECT_EQ(plan.rootfs.compare(0, plan.rootfs_mount.size(), plan.rootfs_mount), 0)
      << plan.rootfs_mount;
}

}  // namespace
}  // namespace crib::runtime
