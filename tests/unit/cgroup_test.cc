#include "absl/strings/str_split.h"
#include "cgroup/cgroup_files.h"
#include "cgroup/layout.h"
#include "common/files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "support/status_matchers.h"
#include "support/temp_dir.h"

namespace crib::cgroup {
namespace {

using ::crib::testing::IsOk;
using ::crib::testing::StatusIs;
using ::testing::HasSubstr;

// The machine's own layout, checked against what /proc/self/mountinfo says independently.
TEST(CgroupLayout, DetectsThisMachine) {
  absl::StatusOr<Layout> layout = DetectLayout();
  ASSERT_THAT(layout, IsOk());
  const std::string mounts = *ReadFile("/proc/self/mounts");
  const bool v2_root = mounts.find(" /sys/fs/cgroup cgroup2 ") != std::string::npos;
  const bool v2_unified = mounts.find(" /sys/fs/cgroup/unified cgroup2 ") != std::string::npos;
  if (v2_root) {
    EXPECT_EQ(layout->mode, Mode::kUnified);
  } else if (v2_unified) {
    EXPECT_EQ(layout->mode, Mode::kHybrid);
    EXPECT_EQ(layout->unified_path, "/sys/fs/cgroup/unified");
  } else {
    EXPECT_EQ(layout->mode, Mode::kLegacy);
  }
  if (!v2_root) {
    // v1: a controller counts when its hierarchy is mounted.
    for (const char* name : {"cpu", "memory", "pids"}) {
      const bool mounted =
          mounts.find(std::string(" /sys/fs/cgroup/") + name + " cgroup ") != std::string::npos ||
          mounts.find(std::string(" /sys/fs/cgroup/") + name + ",") != std::string::npos;
      EXPECT_EQ(layout->controllers.contains(name), mounted) << name;
    }
  }
}

// Each controller's hierarchy, as the layout keeps it, is the mount whose options name that
// controller in /proc/self/mounts (read here on its own).
TEST(CgroupLayout, NamesTheMountOfEachController) {
  absl::StatusOr<Layout> layout = DetectLayout();
  ASSERT_THAT(layout, IsOk());
  ASSERT_FALSE(layout->hierarchies.empty());
  EXPECT_EQ(ControllerMount(*layout, "no-such-controller"), "");
  const std::string mounts = *ReadFile("/proc/self/mounts");
  for (const std::string& controller : layout->controllers) {
    const std::string mount = ControllerMount(*layout, controller);
    ASSERT_FALSE(mount.empty()) << controller;
    if (layout->mode == Mode::kUnified) {
      EXPECT_EQ(mount, "/sys/fs/cgroup");
      continue;
    }
    bool named = false;
    for (absl::string_view line : absl::StrSplit(mounts, '\n')) {
      std::vector<absl::string_view> fields = absl::StrSplit(line, ' ');
      if (fields.size() < 4 || fields[1] != mount || fields[2] != "cgroup") continue;
      for (absl::string_view option : absl::StrSplit(fields[3], ',')) named |= option == controller;
    }
    EXPECT_TRUE(named) << controller << " at " << mount;
  }
}

TEST(CgroupLayout, ADirectoryThatIsNoCgroupMountIsRefused) {
  EXPECT_THAT(DetectLayout("/proc"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("/proc is neither")));
}

// crib-monitor gets cribd's hierarchies in one word; what comes out is what went in.
TEST(CgroupHierarchies, OneWordCarriesThemToTheMonitor) {
  const std::vector<Hierarchy> hierarchies = {
      {"/sys/fs/cgroup/cpu,cpuacct", {"cpu", "cpuacct"}, false},
      {"/sys/fs/cgroup/memory", {"memory"}, false},
      {"/sys/fs/cgroup/unified", {}, true},
  };
  const std::string word = EncodeHierarchies(hierarchies);
  EXPECT_EQ(word,
            "v1:cpu,cpuacct:/sys/fs/cgroup/cpu,cpuacct;v1:memory:/sys/fs/cgroup/memory;"
            "v2::/sys/fs/cgroup/unified");
  std::vector<Hierarchy> decoded;
  ASSERT_TRUE(DecodeHierarchies(word, &decoded));
  ASSERT_EQ(decoded.size(), hierarchies.size());
  for (size_t i = 0; i < decoded.size(); ++i) {
    EXPECT_EQ(decoded[i].mount_point, hierarchies[i].mount_point);
    EXPECT_EQ(decoded[i].controllers, hierarchies[i].controllers);
    EXPECT_EQ(decoded[i].v2, hierarchies[i].v2);
  }
  // This machine's own, as the layout found them.
  absl::StatusOr<Layout> layout = DetectLayout();
  ASSERT_TRUE(layout.ok()) << layout.status();
  ASSERT_TRUE(DecodeHierarchies(EncodeHierarchies(layout->hierarchies), &decoded));
  EXPECT_EQ(decoded.size(), layout->hierarchies.size());

  for (const char* bad : {"", "v3::/x", "v1:memory", "v1:memory:relative", "v2::/a;"}) {
    EXPECT_FALSE(DecodeHierarchies(bad, &decoded)) << bad;
  }
  EXPECT_EQ(EncodeHierarchies({{"/odd;mount", {"memory"}, false}}), "") << "cannot be carried";
}

}  // namespace
}  // namespace crib::cgroup
