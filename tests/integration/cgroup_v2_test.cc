// crib on a cgroup v2 machine, emulated on this hybrid one: cribd runs in a mount namespace of
// its own in which /sys/fs/cgroup is the v2 hierarchy alone (the tree the host sees at
// /sys/fs/cgroup/unified), so that it takes its v2 paths for pods and containers. The v1
// controllers stay bound to v1, so the tree offers no controllers: what is checked is what v2
// does without them — cgroups, the pause leaf, the device filter, stats — from the host's side.
#include <sys/stat.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "cgroup/device_filter.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "support/cri_fixture.h"

namespace crib::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;

class CgroupV2Test : public CriFixture {
 protected:
  void SetUp() override {
    ASSERT_TRUE(std::filesystem::exists(kUnified + std::string("/cgroup.procs")))
        << "this test needs the hybrid layout's v2 tree at " << kUnified;
    options_.wrapper = {"unshare",
                        "--mount",
                        "--propagation",
                        "slave",
                        "sh",
                        "-c",
                        "umount -l /sys/fs/cgroup && "
                        "mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec \"$@\"",
                        "cribd-on-v2"};
    CriFixture::SetUp();
  }

  // The host's view of a cgroup that cribd made at `path`.
  static std::string HostDir(const std::string& path) { return kUnified + path; }

  static constexpr char kUnified[] = "/sys/fs/cgroup/unified";
};

TEST_F(CgroupV2Test, PodsAndContainersGetV2CgroupsAndTheDeviceFilterIsEnforced) {
  cri::StatusRequest status_request;
  cri::StatusResponse status;
  ASSERT_THAT(runtime_->Status(ContextWithDeadline().get(), status_request, &status), GrpcOk());
  const std::string pod = RunPod(PodConfig("v2"));
  ASSERT_FALSE(pod.empty());
  const std::string pod_dir = HostDir(absl::StrCat(cgroup_parent_, "/", pod));
  EXPECT_TRUE(std::filesystem::is_directory(pod_dir)) << pod_dir << "\n" << cribd_->Log();
  // v2 allows processes only in leaves once controllers are enabled below: pause has its own.
  EXPECT_THAT(Slurp(pod_dir + "/cgroup.procs"), IsEmpty());

  const std::string id = RunContainer(pod, Config("sleeper", {"sleep", "3600"}));
  ASSERT_FALSE(id.empty());
  const std::string dir = absl::StrCat(pod_dir, "/", id);
  ASSERT_TRUE(std::filesystem::is_directory(dir)) << dir << "\n" << cribd_->Log();
  EXPECT_THAT(Slurp(dir + "/cgroup.procs"), Not(IsEmpty()));
  EXPECT_THAT(cgroup::AttachedDeviceFilters(dir), SizeIs(1));

  // The host's v1 devices controller leaves everything to the filter: what the container may
  // not open is refused by the program alone.
  cri::ExecSyncResponse out;
  ASSERT_THAT(Exec(id, {"sh", "-c", "head -c 3 /dev/zero | wc -c"}, &out, 10), GrpcOk());
  EXPECT_EQ(out.exit_code(), 0) << out.stderr();
  EXPECT_EQ(std::string(absl::StripAsciiWhitespace(out.stdout())), "3");
  // A block device the rules allow to create but not to open (the host's first loop device,
  // which reads as empty while unbound).
  ASSERT_THAT(Exec(id, {"sh", "-c", "mknod /tmp/loop b 7 0 && head -c 1 /tmp/loop"}, &out, 10),
              GrpcOk());
  EXPECT_NE(out.exit_code(), 0);
  EXPECT_THAT(out.stderr(), HasSubstr("Operation not permitted"));

  // Stats come from the v2 files that exist without controllers.
  cri::ContainerStatsRequest stats_request;
  stats_request.set_container_id(id);
  cri::ContainerStatsResponse stats;
  EXPECT_THAT(runtime_->ContainerStats(ContextWithDeadline().get(), stats_request, &stats),
              GrpcOk());
  EXPECT_TRUE(stats.stats().has_cpu()) << stats.DebugString();
  cri::PodSandboxStatsRequest pod_stats_request;
  pod_stats_request.set_pod_sandbox_id(pod);
  cri::PodSandboxStatsResponse pod_stats;
  EXPECT_THAT(runtime_->PodSandboxStats(ContextWithDeadline().get(), pod_stats_request, &pod_stats),
              GrpcOk());
  EXPECT_THAT(pod_stats.stats().linux().containers(), SizeIs(1)) << pod_stats.DebugString();

  ASSERT_THAT(StopContainer(id, 1), GrpcOk());
  ASSERT_THAT(RemoveContainer(id), GrpcOk());
  EXPECT_FALSE(std::filesystem::exists(dir));
  ASSERT_THAT(StopPod(pod), GrpcOk());
  ASSERT_THAT(RemovePod(pod), GrpcOk());
  EXPECT_FALSE(std::filesystem::exists(pod_dir));
}

TEST_F(CgroupV2Test, APrivilegedContainerGetsNoDeviceFilter) {
  cri::PodSandboxConfig pod_config = PodConfig("v2p");
  pod_config.mutable_linux()->mutable_security_context()->set_privileged(true);
  const std::string pod = RunPod(pod_config);
  cri::ContainerConfig c = Config("privileged", {"sleep", "3600"});
  c.mutable_linux()->mutable_security_context()->set_privileged(true);
  const std::string id = RunContainer(pod, c);
  ASSERT_FALSE(id.empty());
  const std::string dir = HostDir(absl::StrCat(cgroup_parent_, "/", pod, "/", id));
  ASSERT_TRUE(std::filesystem::is_directory(dir)) << dir;
  EXPECT_THAT(cgroup::AttachedDeviceFilters(dir), IsEmpty());
}

// hugetlb is the one controller this machine leaves to v2: limits from the request for every
// page size the machine has, a unified key, and an update reach the container's v2 files; a
// limit for a page size the kernel lacks is left out. The kernel keeps whole pages of a limit
// only (4 MiB of 1 GB pages is 0), so each limit is two pages, as kubelet's are whole pages.
TEST_F(CgroupV2Test, HugepageLimitsAndUnifiedKeysReachTheV2Cgroup) {
  ASSERT_THAT(Slurp(std::string(kUnified) + "/cgroup.controllers"), HasSubstr("hugetlb"));
  const std::vector<std::string> sizes = HugepageSizes();
  ASSERT_THAT(sizes, Not(IsEmpty())) << "the kernel offers no huge pages";
  const std::string absent = AbsentHugepageSize();
  const std::string pod = RunPod(PodConfig("v2h"));
  cri::ContainerConfig config = Config("huge", {"sleep", "3600"});
  cri::LinuxContainerResources* resources = config.mutable_linux()->mutable_resources();
  for (const std::string& size : sizes) {
    cri::HugepageLimit* limit = resources->add_hugepage_limits();
    ASSERT_GT(HugepageBytes(size), 0u) << size;
    limit->set_page_size(size);
    limit->set_limit(2 * HugepageBytes(size));
  }
  cri::HugepageLimit* missing = resources->add_hugepage_limits();
  missing->set_page_size(absent);
  missing->set_limit(0);
  const std::string rsvd = absl::StrCat("hugetlb.", sizes[0], ".rsvd.max");
  (*resources->mutable_unified())[rsvd] = "0";
  const std::string id = RunContainer(pod, config);
  ASSERT_FALSE(id.empty()) << cribd_->Log();
  const std::string pod_dir = HostDir(absl::StrCat(cgroup_parent_, "/", pod));
  const std::string dir = absl::StrCat(pod_dir, "/", id);
  EXPECT_THAT(Slurp(pod_dir + "/cgroup.subtree_control"), HasSubstr("hugetlb"));
  for (const std::string& size : sizes) {
    EXPECT_EQ(Slurp(absl::StrCat(dir, "/hugetlb.", size, ".max")),
              absl::StrCat(2 * HugepageBytes(size)))
        << size;
  }
  EXPECT_EQ(Slurp(dir + "/" + rsvd), "0");
  EXPECT_FALSE(std::filesystem::exists(absl::StrCat(dir, "/hugetlb.", absent, ".max")));
  EXPECT_THAT(cribd_->Log(), HasSubstr(absl::StrCat("the kernel has no ", absent, " huge pages")));

  cri::UpdateContainerResourcesRequest request;
  request.set_container_id(id);
  cri::HugepageLimit* raised = request.mutable_linux()->add_hugepage_limits();
  raised->set_page_size(sizes[0]);
  raised->set_limit(4 * HugepageBytes(sizes[0]));
  (*request.mutable_linux()->mutable_unified())[rsvd] = "1073741824";
  cri::UpdateContainerResourcesResponse response;
  ASSERT_THAT(runtime_->UpdateContainerResources(ContextWithDeadline().get(), request, &response),
              GrpcOk());
  EXPECT_EQ(Slurp(absl::StrCat(dir, "/hugetlb.", sizes[0], ".max")),
            absl::StrCat(4 * HugepageBytes(sizes[0])));
  EXPECT_EQ(Slurp(dir + "/" + rsvd), "1073741824");
}

TEST_F(CgroupV2Test, AnUnknownUnifiedKeyFailsCreateNamingItAndLeavesNoCgroup) {
  const std::string pod = RunPod(PodConfig("v2u"));
  cri::ContainerConfig config = Config("unknown-key", {"sleep", "3600"});
  (*config.mutable_linux()->mutable_resources()->mutable_unified())["crib.nonsense"] = "1";
  std::string id;
  grpc::Status status = Create(pod, config, &id);
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.error_message(), HasSubstr("crib.nonsense"));
  const std::string pod_dir = HostDir(absl::StrCat(cgroup_parent_, "/", pod));
  std::vector<std::string> children;
  for (const auto& e : std::filesystem::directory_iterator(pod_dir)) {
    if (e.is_directory()) children.push_back(e.path().filename().string());
  }
  // Only the pause process's leaf.
  EXPECT_THAT(children, SizeIs(1)) << ::testing::PrintToString(children);
  EXPECT_THAT(List(), IsEmpty());
}

}  // namespace
}  // namespace crib::testing
