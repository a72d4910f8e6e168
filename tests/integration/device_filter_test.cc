// The cgroup v2 device filter on a real v2 hierarchy (the unified tree of a hybrid machine, or
// /sys/fs/cgroup on a v2 one): a child process in a cgroup carrying the filter opens and mknods
// real device nodes, and the kernel allows or refuses them by the rules.
#include "cgroup/device_filter.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cgroup/cgroup_files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace crib::runtime {

using ::crib::cgroup::AllowsEveryDevice;
using ::crib::cgroup::AttachDeviceFilter;
using ::crib::cgroup::AttachedDeviceFilters;
using ::crib::cgroup::DeviceFilterProgram;
using ::crib::cgroup::DeviceRule;
using ::crib::cgroup::Resources;
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::SizeIs;

// The mount point of the cgroup2 hierarchy ("" if none).
std::string CgroupV2Mount() {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    size_t dash = line.find(" - ");
    if (dash == std::string::npos || line.compare(dash + 3, 8, "cgroup2 ") != 0) continue;
    std::istringstream fields(line.substr(0, dash));
    std::string f, mount_point;
    for (int i = 0; i < 5 && fields >> f; ++i) mount_point = f;
    return mount_point;
  }
  return "";
}

// What a probe does in the filtered process: open a device node, or mknod one.
struct Probe {
  enum Kind { kOpen, kMknod } kind;
  std::string path;
  int flags_or_mode;  // open flags, or S_IFCHR / S_IFBLK
  unsigned major = 0, minor = 0;
};

Probe Open(const std::string& path, int flags) { return {Probe::kOpen, path, flags}; }
Probe Mknod(int type, unsigned major, unsigned minor) {
  return {Probe::kMknod, "", type, major, minor};
}

class DeviceFilterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string mount = CgroupV2Mount();
    ASSERT_FALSE(mount.empty()) << "this test needs a cgroup2 hierarchy";
    cgroup_ = mount + "/crib-device-filter-test-" + std::to_string(::getpid());
    ASSERT_EQ(::mkdir(cgroup_.c_str(), 0755), 0) << cgroup_ << ": " << std::strerror(errno);
    char tmpl[] = "/tmp/crib-device-filter-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    scratch_ = tmpl;
  }
  void TearDown() override {
    if (!cgroup_.empty()) {
      EXPECT_EQ(::rmdir(cgroup_.c_str()), 0) << std::strerror(errno);
    }
    if (!scratch_.empty()) std::system(("rm -rf " + scratch_).c_str());
  }

  // Runs the probes in a child that joined the cgroup: 0 or the errno of each.
  std::vector<int> Run(const std::vector<Probe>& probes) {
    int fds[2];
    if (::pipe(fds) != 0) return {};
    pid_t pid = ::fork();
    if (pid == 0) {
      ::close(fds[0]);
      int procs = ::open((cgroup_ + "/cgroup.procs").c_str(), O_WRONLY);
      if (procs < 0 || ::write(procs, "0", 1) != 1) ::_exit(100);
      ::close(procs);
      int n = 0;
      for (const Probe& p : probes) {
        int result = 0;
        if (p.kind == Probe::kOpen) {
          int fd = ::open(p.path.c_str(), p.flags_or_mode | O_CLOEXEC);
          result = fd < 0 ? errno : 0;
          if (fd >= 0) ::close(fd);
        } else {
          std::string node = scratch_ + "/node" + std::to_string(n++);
          result = ::mknod(node.c_str(), p.flags_or_mode | 0600, makedev(p.major, p.minor)) != 0
                       ? errno
                       : 0;
        }
        if (::write(fds[1], &result, sizeof(result)) != sizeof(result)) ::_exit(101);
      }
      ::_exit(0);
    }
    ::close(fds[1]);
    std::vector<int> results;
    int r;
    while (::read(fds[0], &r, sizeof(r)) == sizeof(r)) results.push_back(r);
    ::close(fds[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "probe child status " << status;
    return results;
  }

  std::string cgroup_;
  std::string scratch_;
};

TEST_F(DeviceFilterTest, AnAllowlistAllowsOnlyItsDevicesAndAccess) {
  std::vector<DeviceRule> rules = {
      {false, "a", -1, -1, "rwm"},
      {true, "c", 1, 3, "rwm"},  // /dev/null
      {true, "c", 1, 5, "r"},    // /dev/zero, read only
      {true, "c", -1, -1, "m"},  // mknod of any character device
  };
  std::string error;
  ASSERT_TRUE(AttachDeviceFilter(cgroup_, rules, &error)) << error;
  EXPECT_THAT(AttachedDeviceFilters(cgroup_), SizeIs(1));
  EXPECT_THAT(
      Run({Open("/dev/null", O_RDWR), Open("/dev/zero", O_RDONLY), Open("/dev/zero", O_WRONLY),
           Open("/dev/full", O_RDONLY), Mknod(S_IFCHR, 1, 7), Mknod(S_IFBLK, 7, 0)}),
      ElementsAre(0, 0, EPERM, EPERM, 0, EPERM));
  // Outside the cgroup nothing is refused: the rules are the filter's, not the machine's.
  int fd = ::open("/dev/full", O_WRONLY | O_CLOEXEC);
  EXPECT_GE(fd, 0);
  if (fd >= 0) ::close(fd);
}

TEST_F(DeviceFilterTest, ADenylistRefusesWhatItNamesAndAnyRequestTouchingIt) {
  std::vector<DeviceRule> rules = {
      {true, "a", -1, -1, "rwm"}, {false, "c", 1, 7, "w"},  // no writing to /dev/full
  };
  std::string error;
  ASSERT_TRUE(AttachDeviceFilter(cgroup_, rules, &error)) << error;
  EXPECT_THAT(Run({Open("/dev/full", O_RDONLY), Open("/dev/full", O_WRONLY),
                   Open("/dev/full", O_RDWR), Open("/dev/zero", O_RDWR), Mknod(S_IFCHR, 1, 7)}),
              ElementsAre(0, EPERM, EPERM, 0, 0));
}

TEST_F(DeviceFilterTest, TheLastMatchingRuleDecides) {
  std::vector<DeviceRule> rules = {
      {false, "a", -1, -1, "rwm"},
      {true, "c", 1, -1, "rwm"},  // every memory device...
      {false, "c", 1, 5, "w"},    // ...but no writing to /dev/zero
      {true, "c", 1, 9, "rw"},    // a later allow of another device changes nothing for 1:5
  };
  std::string error;
  ASSERT_TRUE(AttachDeviceFilter(cgroup_, rules, &error)) << error;
  EXPECT_THAT(
      Run({Open("/dev/zero", O_RDONLY), Open("/dev/zero", O_WRONLY), Open("/dev/urandom", O_RDWR),
           Open("/dev/null", O_RDWR), Open("/dev/tty", O_RDWR)}),
      ElementsAre(0, EPERM, 0, 0, EPERM));
}

TEST_F(DeviceFilterTest, ContainerdsDefaultsAllowTheStandardNodesOnly) {
  // The rules crib gives an unprivileged container.
  std::vector<DeviceRule> rules = {
      {false, "a", -1, -1, "rwm"}, {true, "c", -1, -1, "m"},    {true, "b", -1, -1, "m"},
      {true, "c", 1, 3, "rwm"},    {true, "c", 1, 8, "rwm"},    {true, "c", 1, 7, "rwm"},
      {true, "c", 5, 0, "rwm"},    {true, "c", 1, 5, "rwm"},    {true, "c", 1, 9, "rwm"},
      {true, "c", 5, 1, "rwm"},    {true, "c", 136, -1, "rwm"}, {true, "c", 5, 2, "rwm"},
  };
  EXPECT_FALSE(AllowsEveryDevice(rules));
  std::string error;
  ASSERT_TRUE(AttachDeviceFilter(cgroup_, rules, &error)) << error;
  EXPECT_THAT(
      Run({Open("/dev/null", O_RDWR), Open("/dev/urandom", O_RDONLY), Open("/dev/full", O_WRONLY),
           Open("/dev/kmsg", O_RDONLY), Mknod(S_IFBLK, 7, 0), Mknod(S_IFCHR, 1, 1)}),
      ElementsAre(0, 0, 0, EPERM, 0, 0));
}

TEST_F(DeviceFilterTest, AttachingAgainReplacesTheFilter) {
  std::string error;
  ASSERT_TRUE(AttachDeviceFilter(cgroup_, {{false, "a", -1, -1, "rwm"}}, &error)) << error;
  std::vector<uint32_t> first = AttachedDeviceFilters(cgroup_);
  ASSERT_THAT(first, SizeIs(1));
  EXPECT_THAT(Run({Open("/dev/null", O_RDWR)}), ElementsAre(EPERM));

  ASSERT_TRUE(
      AttachDeviceFilter(cgroup_, {{false, "a", -1, -1, "rwm"}, {true, "c", 1, 3, "rw"}}, &error))
      << error;
  std::vector<uint32_t> second = AttachedDeviceFilters(cgroup_);
  ASSERT_THAT(second, SizeIs(1));
  EXPECT_NE(second[0], first[0]);
  EXPECT_THAT(Run({Open("/dev/null", O_RDWR), Open("/dev/zero", O_RDONLY)}), ElementsAre(0, EPERM));
}

TEST_F(DeviceFilterTest, AnUnopenableCgroupIsAClearError) {
  std::string error;
  EXPECT_FALSE(AttachDeviceFilter(cgroup_ + "/missing", {{false, "a", -1, -1, "rwm"}}, &error));
  EXPECT_THAT(error, ::testing::HasSubstr(cgroup_ + "/missing"));
  EXPECT_THAT(AttachedDeviceFilters(cgroup_), IsEmpty());
}

// crib's container cgroup on a machine that has only cgroup v2: a private mount namespace in
// which /sys/fs/cgroup is the v2 hierarchy alone (the same tree as the host's unified one).
TEST_F(DeviceFilterTest, AContainerCgroupOnV2GetsTheFilterFromItsResources) {
  const std::string leaf = "crib-device-filter-container-" + std::to_string(::getpid());
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    auto report = [&](const std::string& text) {
      (void)!::write(fds[1], text.data(), text.size());
      ::_exit(0);
    };
    if (::unshare(CLONE_NEWNS) != 0 || ::mount("", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) ||
        ::umount2("/sys/fs/cgroup", MNT_DETACH) != 0 ||
        ::mount("cgroup2", "/sys/fs/cgroup", "cgroup2", 0, nullptr) != 0) {
      report(std::string("set up the v2-only namespace: ") + std::strerror(errno));
    }
    cgroup::CgroupFiles cgroup;
    std::string error;
    if (!cgroup.Init(leaf, &error) || !cgroup.Create(&error)) report("init/create: " + error);
    std::string out = cgroup.unified() ? "unified" : "not unified";
    Resources resources;
    resources.devices = {{false, "a", -1, -1, "rwm"}, {true, "c", 1, 3, "rwm"}};
    if (!cgroup.Apply(resources, &error)) report("apply: " + error);
    out += " filters=" + std::to_string(AttachedDeviceFilters(cgroup.Dir("")).size());
    // Privileged: every device, so no program.
    cgroup::CgroupFiles privileged;
    if (!privileged.Init(leaf + "-privileged", &error) || !privileged.Create(&error)) {
      report("init/create: " + error);
    }
    resources.devices = {{true, "a", -1, -1, "rwm"}};
    if (!privileged.Apply(resources, &error)) report("apply: " + error);
    out += " privileged=" + std::to_string(AttachedDeviceFilters(privileged.Dir("")).size());
    if (!cgroup.Remove(&error) || !privileged.Remove(&error)) report("remove: " + error);
    report(out);
  }
  ::close(fds[1]);
  std::string out;
  char buf[512];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof(buf))) > 0) out.append(buf, n);
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_EQ(out, "unified filters=1 privileged=0");
  // Removed by the child; in the host's view of the same tree nothing is left.
  EXPECT_NE(::access((CgroupV2Mount() + "/" + leaf).c_str(), F_OK), 0);
  ::rmdir((CgroupV2Mount() + "/" + leaf).c_str());
  ::rmdir((CgroupV2Mount() + "/" + leaf + "-privileged").c_str());
}

TEST(DeviceFilterProgramTest, AllowsEveryDeviceOnlyWhenTheLastWordIsAllowAll) {
  EXPECT_TRUE(AllowsEveryDevice({{true, "a", -1, -1, "rwm"}}));
  EXPECT_TRUE(AllowsEveryDevice({{false, "a", -1, -1, "rwm"}, {true, "a", -1, -1, ""}}));
  EXPECT_TRUE(AllowsEveryDevice({{true, "a", -1, -1, "rwm"}, {true, "c", 1, 3, "r"}}));
  EXPECT_FALSE(AllowsEveryDevice({{true, "a", -1, -1, "rwm"}, {false, "c", 1, 3, "w"}}));
  EXPECT_FALSE(AllowsEveryDevice({{true, "a", -1, -1, "rw"}}));
  EXPECT_FALSE(AllowsEveryDevice({}));
}

TEST(DeviceFilterProgramTest, RulesBeforeAnUnconditionalOneAreLeftOut) {
  std::vector<bpf_insn> shadowed = DeviceFilterProgram(
      {{true, "c", 1, 3, "rwm"}, {true, "c", 1, 5, "rwm"}, {false, "a", -1, -1, "rwm"}});
  std::vector<bpf_insn> alone = DeviceFilterProgram({{false, "a", -1, -1, "rwm"}});
  EXPECT_EQ(shadowed.size(), alone.size());
  // Prologue (6), "deny all" (2): nothing more.
  EXPECT_EQ(alone.size(), 8u);
}

}  // namespace
}  // namespace crib::runtime
