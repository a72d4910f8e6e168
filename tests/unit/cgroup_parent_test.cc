// A pod's cgroup parent read by the driver's rules (cgroup/parent.h), table-driven.
#include <string>
#include <vector>

#include "cgroup/cgroup_files.h"
#include "cgroup/parent.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "support/status_matchers.h"

namespace crib::cgroup {
namespace {

using ::crib::testing::IsOk;
using ::crib::testing::StatusIs;
using ::testing::HasSubstr;

TEST(ExpandSlice, PlacesASliceUnderItsPrefixes) {
  struct Case {
    std::string slice;
    std::string path;  // empty: refused
  };
  const std::vector<Case> cases = {
      {"-.slice", "/"},
      {"system.slice", "/system.slice"},
      {"kubepods.slice", "/kubepods.slice"},
      {"kubepods-besteffort.slice", "/kubepods.slice/kubepods-besteffort.slice"},
      {"kubepods-burstable-pod7c4e_1f.slice",
       "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod7c4e_1f.slice"},
      {"a:b.c.slice", "/a:b.c.slice"},
      {"kubepods", ""},
      {".slice", ""},
      {"kubepods.scope", ""},
      {"-kubepods.slice", ""},
      {"kubepods-.slice", ""},
      {"kube--pods.slice", ""},
      {"kube/pods.slice", ""},
      {"kube pods.slice", ""},
      {std::string(250, 'a') + ".slice", ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.slice);
    absl::StatusOr<std::string> path = ExpandSlice(c.slice);
    if (c.path.empty()) {
      EXPECT_THAT(path, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.slice)));
    } else {
      ASSERT_THAT(path, IsOk());
      EXPECT_EQ(*path, c.path);
    }
  }
}

// What an OCI runtime run with --systemd-cgroup is given (SystemdCgroupsPath) and where the
// scope it has systemd start lands (CgroupPathOfSpec), for the containers of a runtime handler.
TEST(SystemdCgroupsPath, ScopesInSlicesGoBothWays) {
  const std::string pod =
      "/kubepods.slice/kubepods-besteffort.slice/"
      "kubepods-besteffort-pod7c.slice/kubepods-besteffort-pod7c-crib_9d.slice";
  const std::string scope = pod + "/crib-4f2a.scope";
  EXPECT_EQ(SystemdCgroupsPath(scope), "kubepods-besteffort-pod7c-crib_9d.slice:crib:4f2a");
  EXPECT_EQ(CgroupPathOfSpec("kubepods-besteffort-pod7c-crib_9d.slice:crib:4f2a"), scope);
  EXPECT_EQ(SystemdCgroupsPath("/crib.slice/crib-crib_9d.slice/crib-4f2a.scope"),
            "crib-crib_9d.slice:crib:4f2a");
  EXPECT_EQ(CgroupPathOfSpec(":crib:4f2a"), "/system.slice/crib-4f2a.scope");
  EXPECT_EQ(CgroupPathOfSpec("-.slice:crib:4f2a"), "/crib-4f2a.scope");
  // Paths stay paths; what is not a scope where systemd would put it has no systemd form.
  EXPECT_EQ(CgroupPathOfSpec("/crib/9d/4f2a"), "/crib/9d/4f2a");
  for (const char* other :
       {"/crib/9d/4f2a", "/crib-4f2a.scope", "/a.slice/b.slice/crib-4f2a.scope",
        "/a.slice/crib.scope", "/a.slice/-4f2a.scope", "/a.slice/crib-4f2a", "crib-4f2a.scope"}) {
    EXPECT_EQ(SystemdCgroupsPath(other), "") << other;
  }
}

TEST(ParseSystemdPath, ReadsContainerdsForm) {
  absl::StatusOr<SystemdPath> path = ParseSystemdPath("kubepods-pod1.slice:crib:4f2a");
  ASSERT_THAT(path, IsOk());
  EXPECT_EQ(path->slice, "kubepods-pod1.slice");
  EXPECT_EQ(path->prefix, "crib");
  EXPECT_EQ(path->name, "4f2a");
  ASSERT_THAT(ParseSystemdPath(":crib:4f2a"), IsOk()) << "an empty slice is system.slice";
  for (const char* bad : {"kubepods.slice", "a.slice:crib", "a.slice::x",
                          "a.slice:crib:", "a--b.slice:crib:x", "a.slice:crib:x:y"}) {
    EXPECT_THAT(ParseSystemdPath(bad), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(bad)))
        << bad;
  }
}

TEST(SliceOfParent, TakesTheNameOrThePathOfASlice) {
  EXPECT_EQ(*SliceOfParent(""), "");
  EXPECT_EQ(*SliceOfParent("kubepods-besteffort.slice"), "kubepods-besteffort.slice");
  EXPECT_EQ(*SliceOfParent("/kubepods.slice/kubepods-besteffort.slice"),
            "kubepods-besteffort.slice");
  EXPECT_THAT(SliceOfParent("/kubepods/besteffort"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("/kubepods/besteffort")));
}

TEST(CheckCgroupParent, EachDriverTakesItsOwnForm) {
  struct Case {
    std::string parent;
    bool systemd;
    std::string error;  // empty: accepted
  };
  const std::vector<Case> cases = {
      {"", false, ""},
      {"", true, ""},
      {"/kubepods/burstable/pod1", false, ""},
      {"/crib", false, ""},
      {"kubepods-burstable-pod1.slice", true, ""},
      {"kubepods-burstable-pod1.slice", false, "cgroup_driver \"cgroupfs\""},
      {"/kubepods/burstable/pod1", true, "cgroup_driver \"systemd\""},
      {"kubepods/pod1", false, "not an absolute path"},
      {"/kubepods/../../etc", false, "\"..\" component"},
      {"/kubepods/./x", false, "\".\" component"},
      {"kubepods--pod1.slice", true, "not a systemd slice name"},
      {"kubepods", true, "does not end in .slice"},
      // kubelet's form: the slice's cgroup path.
      {"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice", true, ""},
      {"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/", true, ""},
      {"/kubepods.slice", true, ""},
      {"/kubepods.slice/kubepods-pod1.slice/other.slice", true, "cgroupfs path"},
      {"/system.slice/kubepods-pod1.slice", true, "cgroupfs path"},
      {"/kubepods.slice/x", true, "cgroupfs path"},
      // containerd's form names a container's scope, never a pod's parent.
      {"kubepods.slice:cri-containerd:abc", true, "a container's systemd cgroup path"},
      {"kubepods.slice:cri-containerd:abc", false, "not an absolute path"},
      {"bad--name.slice:crib:x", true, "bad--name.slice"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.parent + (c.systemd ? " (systemd)" : " (cgroupfs)"));
    absl::Status status = CheckCgroupParent(c.parent, c.systemd);
    if (c.error.empty()) {
      EXPECT_THAT(status, IsOk());
    } else {
      EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.error)));
      EXPECT_THAT(status.message(), HasSubstr(c.parent));
    }
  }
}

}  // namespace
}  // namespace crib::cgroup
