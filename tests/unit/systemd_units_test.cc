// The systemd driver's names and unit properties (cgroup/systemd_driver.h), table-driven: no
// systemd needed. systemd_driver_test checks the same against a real systemd.
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "cgroup/parent.h"
#include "cgroup/systemd_driver.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "support/status_matchers.h"

namespace crib::cgroup {
namespace {

using ::crib::testing::IsOk;
using ::testing::Contains;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr uint64_t kInfinity = std::numeric_limits<uint64_t>::max();
const std::string kId(64, 'f');

TEST(PodSliceName, IsAChildOfTheParentSlice) {
  struct Case {
    std::string parent;
    std::string slice;  // empty: refused
  };
  const std::vector<Case> cases = {
      {"", "crib-" + kId + ".slice"},
      {"-.slice", "crib_" + kId + ".slice"},
      {"kubepods.slice", "kubepods-crib_" + kId + ".slice"},
      {"kubepods-burstable-pod7c4e_1f.slice",
       "kubepods-burstable-pod7c4e_1f-crib_" + kId + ".slice"},
      // kubelet sends the slice's cgroup path.
      {"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod7c4e_1f.slice",
       "kubepods-burstable-pod7c4e_1f-crib_" + kId + ".slice"},
      {"kubepods", ""},
      {"/kubepods/burstable", ""},
      {std::string(180, 'a') + ".slice", ""},  // the child's name would pass 255 characters
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::string> name = PodSliceName(c.parent, kId);
    if (c.slice.empty()) {
      EXPECT_FALSE(name.ok()) << c.parent;
      continue;
    }
    ASSERT_THAT(name.status(), IsOk()) << c.parent;
    EXPECT_EQ(*name, c.slice);
    // Its id comes back from the name, so that recovery finds its pod.
    EXPECT_EQ(IdOfUnit(*name), kId) << *name;
    // And systemd places it below the parent.
    absl::StatusOr<std::string> path = ExpandSlice(*name);
    ASSERT_THAT(path.status(), IsOk());
    if (!c.parent.empty() && c.parent != "-.slice") {
      EXPECT_EQ(path->substr(0, path->rfind('/')), *ExpandSlice(*SliceOfParent(c.parent))) << *path;
    }
  }
}

TEST(IdOfUnit, ReadsOnlyCribsNames) {
  struct Case {
    std::string unit;
    std::string id;
  };
  const std::string other(64, 'a');
  const std::vector<Case> cases = {
      {"crib-" + kId + ".scope", kId},
      {"crib-" + kId + ".slice", kId},
      {"crib_" + kId + ".slice", kId},
      {"kubepods-burstable-pod1-crib_" + kId + ".slice", kId},
      // kubelet's root may itself start like crib's names (its tests' roots do).
      {"crib_e2e_x-kubepods-burstable-pod1-crib_" + kId + ".slice", kId},
      {"crib_" + other + "-kubepods-crib_" + kId + ".slice", kId},
      {"crib_e2e_x-kubepods.slice", ""},
      {"crib_" + kId + ".scope", ""},
      {"crib-abc.scope", ""},
      {"crib-" + std::string(64, 'F') + ".scope", ""},
      {"kubepods-burstable-pod1.slice", ""},
      {"cri-containerd-" + kId + ".scope", ""},
      {"kubepods-crib_" + kId + ".scope", ""},
      {"crib-" + kId + ".service", ""},
      {"crib.slice", ""},
  };
  for (const Case& c : cases) EXPECT_EQ(IdOfUnit(c.unit), c.id) << c.unit;
}

TEST(SystemdPaths, TheLastPartSaysWhoOwnsTheCgroup) {
  EXPECT_TRUE(IsSystemdPath("/crib.slice/crib-1.slice"));
  EXPECT_TRUE(IsSystemdPath("/crib.slice/crib-1.slice/crib-2.scope"));
  EXPECT_FALSE(IsSystemdPath("/crib/1"));
  EXPECT_FALSE(IsSystemdPath("/crib.slice/1"));
  EXPECT_EQ(UnitOfPath("/crib.slice/crib-1.slice/crib-2.scope"), "crib-2.scope");
  EXPECT_EQ(ScopeName("2"), "crib-2.scope");
}

TEST(CpuMask, SetsTheBitsOfEachRange) {
  struct Case {
    std::string list;
    Bytes mask;  // empty with `bad`: refused
    bool bad = false;
  };
  const std::vector<Case> cases = {
      {"0", {0x01}},       {"0-3", {0x0f}},   {"1,3", {0x0a}}, {"0-1,8", {0x03, 0x01}},
      {" 2 - 2 ", {0x04}}, {"3-1", {}, true}, {"a", {}, true}, {"0-99999", {}, true},
  };
  for (const Case& c : cases) {
    absl::StatusOr<Bytes> mask = CpuMask(c.list);
    if (c.bad) {
      EXPECT_FALSE(mask.ok()) << c.list;
      continue;
    }
    ASSERT_THAT(mask.status(), IsOk()) << c.list;
    EXPECT_EQ(*mask, c.mask) << c.list;
  }
}

DeviceRule Rule(bool allow, std::string type, int64_t major, int64_t minor, std::string access) {
  return {allow, std::move(type), major, minor, std::move(access)};
}

TEST(ResourceProperties, CarryWhatSystemdAppliesOnEachHierarchy) {
  Resources r;
  r.cpu_shares = 1024;
  r.cpu_quota = 25001;
  r.cpu_period = 100000;
  r.memory_limit = 64 << 20;
  r.memory_swap = 96 << 20;
  r.pids_limit = 100;
  r.cpuset_cpus = "0-1";
  r.cpuset_mems = "0";
  r.hugepage_limits = {{"2MB", 1 << 21}};
  r.unified = {{"memory.high", "50000000"}};

  const std::vector<UnitProperty> v2 = ResourceProperties(r, true);
  EXPECT_THAT(v2, Contains(UnitProperty{"CPUWeight", uint64_t{39}}));
  // 25001/100000 of a second, rounded up to whole 10 ms.
  EXPECT_THAT(v2, Contains(UnitProperty{"CPUQuotaPerSecUSec", uint64_t{260000}}));
  EXPECT_THAT(v2, Contains(UnitProperty{"CPUQuotaPeriodUSec", uint64_t{100000}}));
  EXPECT_THAT(v2, Contains(UnitProperty{"MemoryMax", uint64_t{64 << 20}}));
  EXPECT_THAT(v2, Contains(UnitProperty{"MemorySwapMax", uint64_t{32 << 20}}));
  EXPECT_THAT(v2, Contains(UnitProperty{"TasksMax", uint64_t{100}}));
  EXPECT_THAT(v2, Contains(UnitProperty{"AllowedCPUs", Bytes{0x03}}));
  EXPECT_THAT(v2, Contains(UnitProperty{"AllowedMemoryNodes", Bytes{0x01}}));
  // No property for hugetlb or unified keys: the files carry those.
  EXPECT_EQ(v2.size(), 8u);

  const std::vector<UnitProperty> v1 = ResourceProperties(r, false);
  EXPECT_THAT(v1, Contains(UnitProperty{"CPUShares", uint64_t{1024}}));
  EXPECT_THAT(v1, Contains(UnitProperty{"MemoryLimit", uint64_t{64 << 20}}));
  EXPECT_THAT(v1, Not(Contains(UnitProperty{"MemorySwapMax", uint64_t{32 << 20}})));
  EXPECT_THAT(v1, Not(Contains(UnitProperty{"AllowedCPUs", Bytes{0x03}})));
  EXPECT_EQ(v1.size(), 5u);

  Resources unlimited;
  unlimited.cpu_quota = -1;
  unlimited.pids_limit = -1;
  unlimited.memory_limit = 1 << 30;
  unlimited.memory_swap = -1;
  const std::vector<UnitProperty> open = ResourceProperties(unlimited, true);
  EXPECT_THAT(open, Contains(UnitProperty{"CPUQuotaPerSecUSec", kInfinity}));
  EXPECT_THAT(open, Contains(UnitProperty{"TasksMax", kInfinity}));
  EXPECT_THAT(open, Contains(UnitProperty{"MemorySwapMax", kInfinity}));

  EXPECT_THAT(ResourceProperties(Resources{}, true), IsEmpty());
}

TEST(ResourceProperties, DeviceRulesBecomeAnAllowListWhenTheyAreOne) {
  Resources r;
  r.devices = {Rule(false, "a", -1, -1, "rwm"), Rule(true, "c", 1, 3, "rwm"),
               Rule(true, "c", -1, -1, "m"), Rule(true, "c", 1, -1, "r"),
               Rule(true, "c", 4242, -1, "rw")};
  const std::vector<UnitProperty> props = ResourceProperties(r, false);
  ASSERT_EQ(props.size(), 2u);
  EXPECT_EQ(props[0], (UnitProperty{"DevicePolicy", std::string("strict")}));
  // char 1 is "mem" in /proc/devices; major 4242 has no name, so it is left out (denied).
  EXPECT_EQ(props[1], (UnitProperty{"DeviceAllow", DeviceAllowList{{"/dev/char/1:3", "rwm"},
                                                                   {"char-*", "m"},
                                                                   {"char-mem", "r"}}}));

  // A deny after an allow has no systemd form: only the cgroup's own rules then.
  r.devices.push_back(Rule(false, "c", 1, 3, "w"));
  EXPECT_THAT(ResourceProperties(r, false), IsEmpty());
  // Nor has a list that does not start by denying everything.
  r.devices = {Rule(true, "a", -1, -1, "rwm")};
  EXPECT_THAT(ResourceProperties(r, false), IsEmpty());
}

}  // namespace
}  // namespace crib::cgroup
