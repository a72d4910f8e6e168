// CgroupFiles::Create on this machine's hierarchies: it makes the leaf first and walks up only
// as far as levels are missing, fills the cpuset files of the v1 levels it made (and of the
// existing one above them), and names the directory it could not make. CgroupFiles::Remove
// kills what still runs in the leaf and removes it.
#include "cgroup/cgroup_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace crib::cgroup {
namespace {

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

bool IsDir(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

class CgroupFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    ASSERT_TRUE(MountedHierarchies(&mounted_, &error)) << error;
    usable_ = UsableHierarchies(mounted_);
    ASSERT_FALSE(usable_.empty());
    for (const auto& h : usable_) {
      for (const auto& c : h.controllers) {
        if (!h.v2 && c == "cpuset") cpuset_mount_ = h.mount_point;
      }
    }
  }
  void TearDown() override {
    // Deepest first, in every hierarchy.
    for (const auto& h : usable_) {
      for (const char* rel : {"/x/y/z", "/x/y", "/x", "/a/b/c", "/a/b", "/a", ""}) {
        ::rmdir((h.mount_point + "/" + top_ + rel).c_str());
      }
    }
  }
  std::vector<std::string> Levels(const std::string& rel) const {
    std::vector<std::string> dirs;
    for (const auto& h : usable_) dirs.push_back(h.mount_point + "/" + top_ + rel);
    return dirs;
  }

  std::vector<Hierarchy> mounted_, usable_;
  std::string cpuset_mount_;
  const std::string top_ = "crib-cgroup-files-test-" + std::to_string(::getpid());
};

TEST_F(CgroupFilesTest, MakesEveryMissingLevelInEveryHierarchy) {
  CgroupFiles files;
  std::string error;
  ASSERT_TRUE(files.Init(mounted_, top_ + "/a/b/c", &error)) << error;
  ASSERT_TRUE(files.Create(&error)) << error;
  for (const char* rel : {"", "/a", "/a/b", "/a/b/c"}) {
    for (const auto& dir : Levels(rel)) EXPECT_TRUE(IsDir(dir)) << dir;
  }
  if (!cpuset_mount_.empty()) {
    const std::string root_cpus = Read(cpuset_mount_ + "/cpuset.cpus");
    ASSERT_NE(root_cpus, "");
    for (const char* rel : {"", "/a", "/a/b", "/a/b/c"}) {
      const std::string dir = cpuset_mount_ + "/" + top_ + rel;
      EXPECT_EQ(Read(dir + "/cpuset.cpus"), root_cpus) << dir;
      EXPECT_EQ(Read(dir + "/cpuset.mems"), Read(cpuset_mount_ + "/cpuset.mems")) << dir;
    }
  }
  // Again: everything exists, nothing fails.
  EXPECT_TRUE(files.Create(&error)) << error;
  // A process can join the leaf (a v1 cpuset cgroup with empty cpus would refuse it).
  for (const auto& procs : files.ProcsFiles()) {
    std::ofstream out(procs);
    out << "0";
    out.flush();
    EXPECT_TRUE(out.good()) << procs;
  }
  // Back out of it, to the root of each hierarchy, so that TearDown can remove it.
  for (const auto& h : usable_) {
    std::ofstream out(h.mount_point + "/cgroup.procs");
    out << "0";
  }
}

TEST_F(CgroupFilesTest, FillsAnEmptyCpusetParentMadeByOthersAndTheLeafBelowIt) {
  if (cpuset_mount_.empty()) GTEST_SKIP() << "no v1 cpuset hierarchy on this machine";
  // Made directly, as another party would: a new v1 cpuset cgroup has no cpus and no mems.
  ASSERT_EQ(::mkdir((cpuset_mount_ + "/" + top_).c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((cpuset_mount_ + "/" + top_ + "/x").c_str(), 0755), 0);
  ASSERT_EQ(Read(cpuset_mount_ + "/" + top_ + "/x/cpuset.cpus"), "\n");
  // The top level is filled by hand: only the level above the new ones is the walk's business.
  std::ofstream(cpuset_mount_ + "/" + top_ + "/cpuset.cpus")
      << Read(cpuset_mount_ + "/cpuset.cpus");
  std::ofstream(cpuset_mount_ + "/" + top_ + "/cpuset.mems")
      << Read(cpuset_mount_ + "/cpuset.mems");
  CgroupFiles files;
  std::string error;
  ASSERT_TRUE(files.Init(mounted_, top_ + "/x/y", &error)) << error;
  ASSERT_TRUE(files.Create(&error)) << error;
  const std::string cpus = Read(cpuset_mount_ + "/cpuset.cpus");
  EXPECT_EQ(Read(cpuset_mount_ + "/" + top_ + "/x/cpuset.cpus"), cpus);
  EXPECT_EQ(Read(cpuset_mount_ + "/" + top_ + "/x/y/cpuset.cpus"), cpus);
  for (const auto& dir : Levels("/x/y")) EXPECT_TRUE(IsDir(dir)) << dir;

  // A leaf that exists already with empty cpus (made by others) is filled too.
  ASSERT_EQ(::mkdir((cpuset_mount_ + "/" + top_ + "/x/y/z").c_str(), 0755), 0);
  ASSERT_TRUE(files.Init(mounted_, top_ + "/x/y/z", &error)) << error;
  ASSERT_TRUE(files.Create(&error)) << error;
  EXPECT_EQ(Read(cpuset_mount_ + "/" + top_ + "/x/y/z/cpuset.cpus"), cpus);
}

// Remove tries rmdir first: an empty cgroup goes at once, one that still holds a process has
// it killed and goes after it, and one already gone is no error.
TEST_F(CgroupFilesTest, RemoveKillsWhatStillRunsAndTakesEveryHierarchysLeaf) {
  CgroupFiles files;
  std::string error;
  ASSERT_TRUE(files.Init(mounted_, top_ + "/x/y", &error)) << error;
  ASSERT_TRUE(files.Create(&error)) << error;
  ASSERT_TRUE(files.Remove(&error)) << error;
  for (const auto& dir : Levels("/x/y")) EXPECT_FALSE(IsDir(dir)) << dir;
  for (const auto& dir : Levels("/x")) EXPECT_TRUE(IsDir(dir)) << "only the leaf goes: " << dir;
  EXPECT_TRUE(files.Remove(&error)) << "a cgroup gone already: " << error;

  ASSERT_TRUE(files.Create(&error)) << error;
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const std::vector<std::string> procs = files.ProcsFiles();
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    for (const auto& file : procs) {
      std::ofstream out(file);
      out << "0";
    }
    (void)::write(ready[1], "x", 1);
    for (;;) ::pause();
  }
  ::close(ready[1]);
  struct Reaper {  // the child goes whatever fails below
    pid_t pid;
    ~Reaper() {
      if (pid > 0 && ::kill(pid, SIGKILL) == 0) ::waitpid(pid, nullptr, 0);
    }
  } reaper{child};
  char c;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ::close(ready[0]);
  ASSERT_TRUE(files.HasProcesses());
  EXPECT_TRUE(files.Remove(&error)) << error;
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  reaper.pid = 0;
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  for (const auto& dir : Levels("/x/y")) EXPECT_FALSE(IsDir(dir)) << dir;
}

// A process of one thread joins by writing "0" into SelfJoinFiles: v1's `tasks` (moving the
// thread alone, which spares the kernel's global threadgroup lock), and the whole process is
// then in the cgroup of every hierarchy.
TEST_F(CgroupFilesTest, ASingleThreadedProcessJoinsEveryHierarchyThroughItsSelfJoinFiles) {
  CgroupFiles files;
  std::string error;
  ASSERT_TRUE(files.Init(mounted_, top_ + "/x/y", &error)) << error;
  ASSERT_TRUE(files.Create(&error)) << error;
  const std::vector<std::string> join = files.SelfJoinFiles();
  const std::vector<std::string> dirs = Levels("/x/y");
  ASSERT_EQ(join.size(), dirs.size());
  for (size_t i = 0; i < join.size(); ++i) {
    EXPECT_EQ(join[i], dirs[i] + (usable_[i].v2 ? "/cgroup.procs" : "/tasks"));
  }
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    char ok = 'y';
    for (const auto& file : join) {
      const int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC);
      if (fd < 0 || ::write(fd, "0", 1) != 1) ok = 'n';
      if (fd >= 0) ::close(fd);
    }
    (void)::write(ready[1], &ok, 1);
    for (;;) ::pause();
  }
  ::close(ready[1]);
  struct Reaper {
    pid_t pid;
    ~Reaper() {
      if (pid > 0 && ::kill(pid, SIGKILL) == 0) ::waitpid(pid, nullptr, 0);
    }
  } reaper{child};
  char ok = 0;
  ASSERT_EQ(::read(ready[0], &ok, 1), 1);
  ::close(ready[0]);
  EXPECT_EQ(ok, 'y') << "a write into a join file failed";
  // cgroup.procs lists processes (thread group leaders): the child is there in every one.
  for (const auto& dir : dirs) {
    EXPECT_EQ(Read(dir + "/cgroup.procs"), std::to_string(child) + "\n") << dir;
  }
  EXPECT_TRUE(files.Remove(&error)) << error;
  reaper.pid = 0;
  ::waitpid(child, nullptr, 0);
}

TEST_F(CgroupFilesTest, AMissingMountPointIsNamed) {
  Hierarchy gone;
  gone.mount_point = "/nonexistent-crib-cgroup-root";
  gone.controllers = {"cpu"};
  CgroupFiles files;
  std::string error;
  ASSERT_TRUE(files.Init({gone}, "a/b", &error)) << error;
  EXPECT_FALSE(files.Create(&error));
  EXPECT_EQ(error, "create cgroup /nonexistent-crib-cgroup-root/a: no such file or directory");
}

}  // namespace
}  // namespace crib::cgroup
