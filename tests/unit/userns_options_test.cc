// A pod's user namespace options (pod/userns.h): which ones ValidateUserNamespace takes (mode
// NODE whatever the mappings; mode POD with mappings the kernel takes, a root, uids and gids of
// one shape, and the pod's own network, ipc and pid), each refusal InvalidArgument naming the
// field; the text of a uid_map; the host id of a container id. Nothing here makes a namespace.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pod/sandbox.h"
#include "pod/userns.h"
#include "support/status_matchers.h"

namespace crib::pod {
namespace {

using ::crib::testing::IsOk;
using ::crib::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr uint64_t kIdSpace = uint64_t{1} << 32;
const IdMapping kPodRange = {0, 1 << 20, 65536};

// Mode POD with one range for uids and gids, and the pod's own network, ipc and pid.
NamespaceOptions PodUserns(std::vector<IdMapping> uids = {kPodRange},
                           std::vector<IdMapping> gids = {kPodRange}) {
  NamespaceOptions ns;
  ns.network = NamespaceMode::kPod;
  ns.ipc = NamespaceMode::kPod;
  ns.pid = NamespaceMode::kContainer;
  ns.user = NamespaceMode::kPod;
  ns.uid_mappings = std::move(uids);
  ns.gid_mappings = std::move(gids);
  return ns;
}

// `count` one-id ranges: container id i is host id 100000 + 2i (none overlap).
std::vector<IdMapping> SingleIds(size_t count) {
  std::vector<IdMapping> out;
  for (uint32_t i = 0; i < count; ++i) out.push_back({i, 100000 + 2 * i, 1});
  return out;
}

struct AcceptedCase {
  std::string name;
  NamespaceOptions ns;
};

TEST(ValidateUserNamespaceTest, Accepts) {
  NamespaceOptions node;  // the default: the host's user namespace
  NamespaceOptions node_with_mappings = PodUserns({}, {{5, 5, 0}});
  node_with_mappings.user = NamespaceMode::kNode;
  node_with_mappings.network = NamespaceMode::kNode;
  NamespaceOptions node_with_bad_mappings = PodUserns({{0, 0, 0}, {0, 0, 0}}, {});
  node_with_bad_mappings.user = NamespaceMode::kNode;
  const std::vector<IdMapping> two = {{0, 100000, 1000}, {1000, 300000, 64536}};
  // The same container ranges in another order, and other host ids.
  const std::vector<IdMapping> two_reordered = {{1000, 500000, 64536}, {0, 900000, 1000}};
  NamespaceOptions pid_pod = PodUserns();
  pid_pod.pid = NamespaceMode::kPod;
  const std::vector<AcceptedCase> cases = {
      {"mode NODE, no mappings", node},
      {"mode NODE with mappings and the host's network", node_with_mappings},
      {"mode NODE whatever the mappings say", node_with_bad_mappings},
      {"mode POD, one range of 65536 ids", PodUserns()},
      {"mode POD, two ranges that do not overlap", PodUserns(two, two)},
      {"uids and gids with other host ids",
       PodUserns(two, {{0, 7000000, 1000}, {1000, 8000000, 64536}})},
      {"gids in another order", PodUserns(two, two_reordered)},
      // 4294967294 is the last id a map may name: 4294967295 is (uid_t)-1, no id.
      {"host ids that end at the last id",
       PodUserns({{0, 0xFFFEFFFFu, 0x10000}}, {{0, 0xFFFEFFFFu, 0x10000}})},
      {"container ids that end at the last id",
       PodUserns({kPodRange, {0xFFFEFFFFu, 0xFFFE0000u, 0x10000}},
                 {kPodRange, {0xFFFEFFFFu, 0xFFFE0000u, 0x10000}})},
      {"every id", PodUserns({{0, 0, 0xFFFFFFFFu}}, {{0, 0, 0xFFFFFFFFu}})},
      {"adjacent ranges", PodUserns({{0, 100, 10}, {10, 110, 10}}, {{0, 100, 10}, {10, 110, 10}})},
      {"340 mappings, the kernel's most", PodUserns(SingleIds(340), SingleIds(340))},
      {"pid POD", pid_pod},
  };
  for (const AcceptedCase& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_THAT(ValidateUserNamespace(c.ns), IsOk());
  }
}

struct RefusedCase {
  std::string name;
  NamespaceOptions ns;
  std::vector<std::string> message;  // every part
};

::testing::Matcher<std::string> HasAll(const std::vector<std::string>& parts) {
  std::vector<::testing::Matcher<std::string>> matchers;
  for (const std::string& part : parts) matchers.push_back(HasSubstr(part));
  return ::testing::AllOfArray(matchers);
}

NamespaceOptions WithMode(NamespaceOptions ns, NamespaceMode NamespaceOptions::*field,
                          NamespaceMode mode) {
  ns.*field = mode;
  return ns;
}

TEST(ValidateUserNamespaceTest, RefusesNamingTheField) {
  const uint32_t top = static_cast<uint32_t>(kIdSpace - 65536);
  const std::vector<RefusedCase> cases = {
      {"mode CONTAINER",
       WithMode(PodUserns(), &NamespaceOptions::user, NamespaceMode::kContainer),
       {"userns_options.mode", "CONTAINER"}},
      {"mode TARGET",
       WithMode(PodUserns(), &NamespaceOptions::user, NamespaceMode::kTarget),
       {"userns_options.mode", "TARGET"}},
      {"no uids", PodUserns({}, {kPodRange}), {"userns_options.uids", "at least one mapping"}},
      {"no gids", PodUserns({kPodRange}, {}), {"userns_options.gids", "at least one mapping"}},
      {"a uid range of length 0",
       PodUserns({kPodRange, {70000, 2000000, 0}}),
       {"userns_options.uids[1]", "length is 0"}},
      {"a gid range of length 0",
       PodUserns({kPodRange}, {{0, 1 << 20, 0}}),
       {"userns_options.gids[0]", "length is 0"}},
      {"container ids past the last id",
       PodUserns({kPodRange, {top + 1, 2000000, 65536}}),
       {"userns_options.uids[1]", "run past the last id"}},
      {"host ids past the last id",
       PodUserns({{0, top + 1, 65536}}, {kPodRange}),
       {"userns_options.uids[0]", "run past the last id"}},
      {"gid host ids past the last id",
       PodUserns({kPodRange}, {{0, 0xFFFFFFFFu, 2}}),
       {"userns_options.gids[0]", "run past the last id"}},
      {"overlapping container ranges",
       PodUserns({{0, 100000, 1000}, {999, 300000, 10}}),
       {"userns_options.uids[1]", "container ids overlap", "userns_options.uids[0]"}},
      {"a container range inside another",
       PodUserns({kPodRange}, {kPodRange, {100, 5000000, 10}}),
       {"userns_options.gids[1]", "container ids overlap", "userns_options.gids[0]"}},
      {"overlapping host ranges",
       PodUserns({{0, 100000, 1000}, {1000, 100999, 10}}),
       {"userns_options.uids[1]", "host ids overlap", "userns_options.uids[0]"}},
      {"overlapping host ranges, the third with the first",
       PodUserns({kPodRange}, {{0, 100000, 10}, {10, 200000, 10}, {20, 100005, 1}}),
       {"userns_options.gids[2]", "host ids overlap", "userns_options.gids[0]"}},
      {"uid 0 not mapped",
       PodUserns({{1, 100000, 65535}}, {{1, 100000, 65535}}),
       {"userns_options.uids", "container id 0", "not mapped"}},
      {"gid 0 not mapped",
       PodUserns({kPodRange}, {{1, 100000, 65535}}),
       {"userns_options.gids", "container id 0", "not mapped"}},
      {"341 uid mappings",
       PodUserns(SingleIds(341), SingleIds(340)),
       {"userns_options.uids", "341 mappings", "340"}},
      {"341 gid mappings",
       PodUserns(SingleIds(340), SingleIds(341)),
       {"userns_options.gids", "341 mappings", "340"}},
      {"more uid ranges than gid ranges",
       PodUserns({{0, 100000, 1000}, {1000, 300000, 64536}}, {kPodRange}),
       {"userns_options", "uids and gids", "same container ranges"}},
      {"the same count, another container_id",
       PodUserns({{0, 100000, 1000}, {1000, 300000, 1000}},
                 {{0, 100000, 1000}, {2000, 300000, 1000}}),
       {"userns_options", "uids and gids", "same container ranges"}},
      {"the same count, another length",
       PodUserns({kPodRange}, {{0, 1 << 20, 65535}}),
       {"userns_options", "uids and gids", "same container ranges"}},
      {"the host's network",
       WithMode(PodUserns(), &NamespaceOptions::network, NamespaceMode::kNode),
       {"userns_options.mode POD", "network", "NODE"}},
      {"the host's ipc",
       WithMode(PodUserns(), &NamespaceOptions::ipc, NamespaceMode::kNode),
       {"userns_options.mode POD", "ipc", "NODE"}},
      {"the host's pid",
       WithMode(PodUserns(), &NamespaceOptions::pid, NamespaceMode::kNode),
       {"userns_options.mode POD", "pid", "NODE"}},
  };
  for (const RefusedCase& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_THAT(ValidateUserNamespace(c.ns),
                StatusIs(absl::StatusCode::kInvalidArgument, HasAll(c.message)));
  }
}

// The kernel refuses a range that would reach id 4294967295, (uid_t)-1 (map_write: first or
// lower_first == (u32)-1, or first + count wrapping u32, is EINVAL): checked here, the refusal
// names the field instead of failing later at the write of /proc/<pid>/uid_map.
TEST(ValidateUserNamespaceTest, RefusesRangesThatReachId4294967295) {
  const std::vector<RefusedCase> cases = {
      {"host ids up to 4294967295",
       PodUserns({{0, 0xFFFF0000u, 0x10000}}, {kPodRange}),
       {"userns_options.uids[0]"}},
      {"gid host ids up to 4294967295",
       PodUserns({kPodRange}, {{0, 0xFFFF0000u, 0x10000}}),
       {"userns_options.gids[0]"}},
      {"container ids up to 4294967295",
       PodUserns({kPodRange, {0xFFFF0000u, 1 << 24, 0x10000}},
                 {kPodRange, {0xFFFF0000u, 1 << 24, 0x10000}}),
       {"userns_options.uids[1]"}},
      {"the one id 4294967295",
       PodUserns({kPodRange, {0xFFFFFFFFu, 0xFFFFFFFEu, 1}},
                 {kPodRange, {0xFFFFFFFFu, 0xFFFFFFFEu, 1}}),
       {"userns_options.uids[1]"}},
  };
  for (const RefusedCase& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_THAT(ValidateUserNamespace(c.ns),
                StatusIs(absl::StatusCode::kInvalidArgument, HasAll(c.message)));
  }
}

// The refusals name the namespace they are about, not another one.
TEST(ValidateUserNamespaceTest, AHostNamespaceIsNamedAlone) {
  const absl::Status ipc =
      ValidateUserNamespace(WithMode(PodUserns(), &NamespaceOptions::ipc, NamespaceMode::kNode));
  EXPECT_THAT(std::string(ipc.message()),
              AllOf(HasSubstr("ipc"), ::testing::Not(HasSubstr("network"))));
  const absl::Status pid =
      ValidateUserNamespace(WithMode(PodUserns(), &NamespaceOptions::pid, NamespaceMode::kNode));
  EXPECT_THAT(std::string(pid.message()),
              AllOf(HasSubstr("pid"), ::testing::Not(HasSubstr("network"))));
}

TEST(MapTextTest, OneLinePerMappingInOrder) {
  EXPECT_EQ(MapText({}), "");
  EXPECT_EQ(MapText({kPodRange}), "0 1048576 65536\n");
  EXPECT_EQ(MapText({{1000, 300000, 64536}, {0, 100000, 1000}}),
            "1000 300000 64536\n0 100000 1000\n");
  EXPECT_EQ(MapText({{0xFFFFFFFFu, 0xFFFFFFFFu, 1}}), "4294967295 4294967295 1\n");
}

struct HostIdCase {
  uint32_t container_id;
  int64_t want;
};

TEST(HostIdOfTest, InsideAtTheEdgesAndOutside) {
  const std::vector<IdMapping> mappings = {
      {0, 100000, 1000}, {1000, 300000, 64536}, {70000, 0xFFFFFFF0u, 16}};
  const std::vector<HostIdCase> cases = {
      {0, 100000},           {1, 100001}, {999, 100999},     {1000, 300000},
      {65535, 364535},       {65536, -1}, {69999, -1},       {70000, 0xFFFFFFF0LL},
      {70015, 0xFFFFFFFFLL}, {70016, -1}, {0xFFFFFFFFu, -1},
  };
  for (const HostIdCase& c : cases) {
    SCOPED_TRACE(c.container_id);
    EXPECT_EQ(HostIdOf(mappings, c.container_id), c.want);
  }
  EXPECT_EQ(HostIdOf({}, 0), -1);
  EXPECT_EQ(HostIdOf({{5, 10, 1}}, 4), -1);
  EXPECT_EQ(HostIdOf({{5, 10, 1}}, 5), 10);
  EXPECT_EQ(HostIdOf({{5, 10, 1}}, 6), -1);
  // A range that reaches the last id.
  EXPECT_EQ(HostIdOf({{0xFFFFFFF0u, 0, 16}}, 0xFFFFFFFFu), 15);
}

}  // namespace
}  // namespace crib::pod
