// Containers through a real cribd on its socket, with images from a real registry on
// loopback, checked on the machine: the CRI log, exit codes and reasons, the process's env,
// cwd, user and groups, capabilities, seccomp, cgroup files, namespaces, ExecSync, and that
// bad input and removal leave no mount, cgroup, process, directory or record behind.
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "support/cri_fixture.h"
#include "support/cribd_process.h"
#include "support/machine.h"
#include "support/registry.h"
#include "support/status_matchers.h"
#include "support/stream_client.h"
#include "support/stream_lab.h"

namespace crib::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::MatchesRegex;
using ::testing::Not;

// CapEff of a /proc/<pid>/status text.
uint64_t CapEff(const std::string& status) {
  for (absl::string_view line : absl::StrSplit(status, '\n')) {
    if (absl::ConsumePrefix(&line, "CapEff:")) {
      uint64_t v = 0;
      if (absl::SimpleHexAtoi(absl::StripAsciiWhitespace(line), &v)) return v;
    }
  }
  return ~0ULL;
}

class ContainerTest : public CriFixture {};

TEST_F(ContainerTest, EchoHelloAppearsInTheCriLog) {
  const std::string pod = RunPod("web");
  const Leftovers before = Count();
  cri::ContainerStatus status;
  const std::string out =
      RunToExit(pod, Config("hello", {"sh", "-c", "echo hello; echo oops >&2"}), &status);
  EXPECT_EQ(out, "hello\n");
  const std::string log = LogPath(pod, "hello");
  EXPECT_THAT(Slurp(log), MatchesRegex("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\."
                                       "[0-9]{9}Z (stdout|stderr) F (hello|oops)\n.*"));
  EXPECT_THAT(LogRecords(log), ::testing::UnorderedElementsAre("stdout F hello", "stderr F oops"));
  EXPECT_EQ(status.exit_code(), 0);
  EXPECT_EQ(status.reason(), "Completed");
  EXPECT_EQ(status.log_path(), log);
  EXPECT_GT(status.started_at(), status.created_at());
  EXPECT_GE(status.finished_at(), status.started_at());
  EXPECT_EQ(status.image().image(), Ref("busybox:latest"));
  EXPECT_THAT(status.image_ref(), HasSubstr("@sha256:"));
  EXPECT_THAT(status.image_id(), ::testing::StartsWith("sha256:"));
  ASSERT_THAT(RemoveContainer(status.id()), GrpcOk());
  EXPECT_EQ(Count(), before) << Describe(Count());
}

TEST_F(ContainerTest, ExitCodesAndReasons) {
  const std::string pod = RunPod("exits");
  cri::ContainerStatus status;
  RunToExit(pod, Config("three", {"sh", "-c", "exit 3"}), &status);
  EXPECT_EQ(status.exit_code(), 3);
  EXPECT_EQ(status.reason(), "Error");
  // A memory limit kills a hog; the kernel's OOM kill is the reason.
  cri::ContainerConfig hog = Config("hog", {"sh", "-c", "dd if=/dev/zero of=/dev/null bs=256M"});
  hog.mutable_linux()->mutable_resources()->set_memory_limit_in_bytes(32 << 20);
  RunToExit(pod, hog, &status);
  EXPECT_EQ(status.exit_code(), 137);
  EXPECT_EQ(status.reason(), "OOMKilled");
}

TEST_F(ContainerTest, CommandArgsEnvAndWorkingDirMergeWithTheImage) {
  ASSERT_THAT(Pull("app:latest"), GrpcOk());
  const std::string pod = RunPod("merge");
  // No command or args: the image's Entrypoint with its Cmd.
  EXPECT_EQ(RunToExit(pod, Config("image-default", {}, "app:latest")), "from the image cmd\n");
  // Args only: they replace the Cmd, the Entrypoint stays.
  cri::ContainerConfig args = Config("args", {}, "app:latest");
  args.add_args("echo $FROM_IMAGE $OVERRIDE $ADDED; pwd");
  cri::KeyValue* env = args.add_envs();
  env->set_key("OVERRIDE");
  env->set_value("request");
  env = args.add_envs();
  env->set_key("ADDED");
  env->set_value("new");
  EXPECT_EQ(RunToExit(pod, args), "yes request new\n/srv\n");
  // A command replaces the Entrypoint and drops the image's Cmd; working_dir wins.
  cri::ContainerConfig command = Config("command", {"pwd"}, "app:latest");
  command.set_working_dir("/tmp");
  EXPECT_EQ(RunToExit(pod, command), "/tmp\n");
}

TEST_F(ContainerTest, UsersAndGroupsAsIdPrintsThem) {
  for (const char* image : {"groups:latest", "user:latest", "username:latest"}) {
    ASSERT_THAT(Pull(image), GrpcOk());
  }
  const std::string pod = RunPod("users");
  // The image's USER by name, with its groups from the image's /etc/group.
  EXPECT_EQ(RunToExit(pod, Config("by-name", {"id"}, "groups:latest")),
            "uid=1000(app) gid=1000(app) groups=50(staff),60(media),1000(app)\n");
  EXPECT_EQ(RunToExit(pod, Config("uid-gid", {"id"}, "user:latest")),
            "uid=1000 gid=1000 groups=1000\n");
  EXPECT_EQ(RunToExit(pod, Config("daemon", {"id"}, "username:latest")),
            "uid=1(daemon) gid=1(daemon) groups=1(daemon)\n");
  // run_as_user over the image's USER, run_as_group and supplemental groups.
  cri::ContainerConfig as_user = Config("as-user", {"id"}, "groups:latest");
  auto* sc = as_user.mutable_linux()->mutable_security_context();
  sc->mutable_run_as_user()->set_value(1000);
  sc->mutable_run_as_group()->set_value(63);
  sc->add_supplemental_groups(4242);
  EXPECT_EQ(RunToExit(pod, as_user),
            "uid=1000(app) gid=63(audio) groups=50(staff),60(media),63(audio),4242\n");
  // Strict: only the primary and the requested groups. (The kernel sorts the group list.)
  sc->set_supplemental_groups_policy(cri::Strict);
  as_user.mutable_metadata()->set_name("strict");
  as_user.set_log_path("strict/0.log");
  EXPECT_EQ(RunToExit(pod, as_user), "uid=1000(app) gid=63(audio) groups=63(audio),4242\n");
  // The status reports who it ran as.
  cri::ContainerConfig named = Config("named", {"true"}, "groups:latest");
  named.mutable_linux()->mutable_security_context()->set_run_as_username("app");
  cri::ContainerStatus status;
  RunToExit(pod, named, &status);
  EXPECT_EQ(status.user().linux().uid(), 1000);
  EXPECT_EQ(status.user().linux().gid(), 1000);
  EXPECT_THAT(status.user().linux().supplemental_groups(), ElementsAre(1000, 50, 60));
}

TEST_F(ContainerTest, ReadonlyRootfsRefusesWrites) {
  const std::string pod = RunPod("ro");
  cri::ContainerConfig config =
      Config("ro", {"sh", "-c", "touch /x 2>&1 || echo refused; echo ok > /tmp/x 2>&1 || true"});
  config.mutable_linux()->mutable_security_context()->set_readonly_rootfs(true);
  const std::string out = RunToExit(pod, config);
  EXPECT_THAT(out, HasSubstr("Read-only file system"));
  EXPECT_THAT(out, HasSubstr("refused"));
}

// The writable layer is a volatile overlay (no sync of the upper file system: it never
// outlives a reboot), and writes and fsync in it work.
TEST_F(ContainerTest, TheWritableLayerIsAVolatileOverlay) {
  const std::string pod = RunPod("volatile");
  const std::string id =
      RunContainer(pod, Config("w", {"sh", "-c", "echo data > /kept; sync /kept; sleep 600"}));
  ASSERT_FALSE(id.empty());
  const std::string rootfs = absl::StrCat(options_.state_dir, "/containers/", id, "/rootfs");
  std::string line;
  for (absl::string_view l : absl::StrSplit(Slurp("/proc/self/mountinfo"), '\n')) {
    if (absl::StrContains(l, absl::StrCat(" ", rootfs, " "))) line = std::string(l);
  }
  ASSERT_THAT(line, HasSubstr(" - overlay ")) << rootfs;
  EXPECT_THAT(line, HasSubstr("volatile")) << line;
  cri::ExecSyncResponse exec;
  ASSERT_THAT(Exec(id, {"cat", "/kept"}, &exec), GrpcOk());
  EXPECT_EQ(exec.stdout(), "data\n");
}

// The mount points of crib's own mounts (/proc, /dev, /sys, the pod's /etc files) that the
// image lacks come from a layer made once for the image, above its snapshots: the writable
// layer holds nothing until the container writes, and the image's /etc keeps its times. The
// layer goes with the image's snapshots. A CRI mount of another kind in one's place (a
// directory on /etc/hosts) goes without it.
TEST_F(ContainerTest, MountPointsComeFromALayerAboveTheImage) {
  const std::string pod = RunPod("points");
  const std::string id = RunContainer(pod, Config("points", {"sleep", "600"}));
  ASSERT_FALSE(id.empty());
  const std::string snapshots = options_.root_dir + "/snapshots";
  std::vector<std::string> layers;
  for (const std::string& name : ListDirectory(snapshots)) {
    if (absl::EndsWith(name, ".mounts")) layers.push_back(name);
  }
  ASSERT_THAT(layers, ElementsAre(::testing::_)) << absl::StrJoin(ListDirectory(snapshots), " ");
  EXPECT_THAT(ListDirectory(absl::StrCat(options_.root_dir, "/containers/", id, "/upper")),
              IsEmpty());
  // /etc as the image's top snapshot has it; the pod's files mounted on the layer's points.
  struct stat etc;
  const std::string top = absl::StrCat(snapshots, "/", absl::StripSuffix(layers[0], ".mounts"));
  ASSERT_EQ(::stat((top + "/etc").c_str(), &etc), 0);
  cri::ExecSyncResponse exec;
  ASSERT_THAT(Exec(id, {"stat", "-c", "%a %u %g %Y", "/etc"}, &exec), GrpcOk());
  EXPECT_EQ(exec.stdout(), absl::StrCat(absl::StrFormat("%o", etc.st_mode & 07777), " ", etc.st_uid,
                                        " ", etc.st_gid, " ", etc.st_mtime, "\n"));
  ASSERT_THAT(
      Exec(id, {"sh", "-c", "cat /etc/hostname; test -e /proc/self/status && echo proc"}, &exec),
      GrpcOk());
  EXPECT_EQ(exec.stdout(), absl::StrCat(Slurp("/proc/sys/kernel/hostname"), "\nproc\n"));

  // A directory on /etc/hosts: the init makes that point itself, in the writable layer.
  cri::ContainerConfig dir_hosts = Config("dir-hosts", {"sleep", "600"});
  cri::Mount* mount = dir_hosts.add_mounts();
  ASSERT_THAT(MakeDirs(dir_.path() + "/hosts-dir"), IsOk());
  mount->set_host_path(dir_.path() + "/hosts-dir");
  mount->set_container_path("/etc/hosts");
  const std::string second = RunContainer(pod, dir_hosts);
  ASSERT_FALSE(second.empty());
  ASSERT_THAT(Exec(second, {"sh", "-c", "test -d /etc/hosts && echo dir"}, &exec), GrpcOk());
  EXPECT_EQ(exec.stdout(), "dir\n");
  EXPECT_THAT(ListDirectory(absl::StrCat(options_.root_dir, "/containers/", second, "/upper")),
              ::testing::Contains("etc"));

  ASSERT_THAT(RemovePod(pod), GrpcOk());
  cri::RemoveImageRequest remove;
  remove.mutable_image()->set_image(Ref("busybox:latest"));
  cri::RemoveImageResponse removed;
  ASSERT_THAT(cribd_->Image()->RemoveImage(ContextWithDeadline().get(), remove, &removed),
              GrpcOk());
  EXPECT_THAT(ListDirectory(snapshots), IsEmpty());
}

TEST_F(ContainerTest, CapabilitiesAsRequested) {
  const std::string pod = RunPod("caps");
  auto cap_eff = [&](const std::string& name, std::vector<std::string> add,
                     std::vector<std::string> drop, bool privileged = false) {
    cri::ContainerConfig config = Config(name, {"cat", "/proc/self/status"});
    auto* sc = config.mutable_linux()->mutable_security_context();
    for (const std::string& a : add) sc->mutable_capabilities()->add_add_capabilities(a);
    for (const std::string& d : drop) sc->mutable_capabilities()->add_drop_capabilities(d);
    sc->set_privileged(privileged);
    return CapEff(RunToExit(pod, config));
  };
  // containerd's default set: CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP
  // NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP.
  const uint64_t kDefault = 0xa80425fb;
  EXPECT_EQ(cap_eff("default", {}, {}), kDefault);
  EXPECT_EQ(cap_eff("add-net-admin", {"NET_ADMIN"}, {"CAP_MKNOD"}),
            (kDefault | (1ULL << 12)) & ~(1ULL << 27));
  EXPECT_EQ(cap_eff("only-chown", {"chown"}, {"ALL"}), 1ULL);
  // All that this machine lets crib grant (it lacks CAP_SYS_RESOURCE itself).
  const uint64_t own = CapEff(Slurp("/proc/self/status"));
  EXPECT_EQ(cap_eff("all", {"ALL"}, {}), own);
  EXPECT_EQ(cap_eff("privileged", {}, {}, true), own);
  // An unknown name is refused.
  cri::ContainerConfig bad = Config("bad-cap", {"true"});
  bad.mutable_linux()->mutable_security_context()->mutable_capabilities()->add_add_capabilities(
      "NOT_A_CAP");
  EXPECT_EQ(Create(pod, bad).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(ContainerTest, SeccompRuntimeDefaultRefusesWhatItMust) {
  const std::string pod = RunPod("seccomp");
  auto run = [&](const std::string& name, std::optional<cri::SecurityProfile::ProfileType> type,
                 const std::string& localhost = "") {
    cri::ContainerConfig config =
        Config(name, {"sh", "-c", "unshare -U true 2>&1 && echo allowed || echo refused"});
    if (type) {
      auto* profile = config.mutable_linux()->mutable_security_context()->mutable_seccomp();
      profile->set_profile_type(*type);
      profile->set_localhost_ref(localhost);
    }
    return RunToExit(pod, config);
  };
  EXPECT_THAT(run("default", cri::SecurityProfile::RuntimeDefault), HasSubstr("refused"));
  EXPECT_THAT(run("unconfined", cri::SecurityProfile::Unconfined), HasSubstr("allowed"));
  // A Localhost profile in the OCI format: everything but unshare.
  const std::string profile = dir_.path() + "/profile.json";
  std::ofstream(profile) << R"({"defaultAction": "SCMP_ACT_ALLOW",
    "syscalls": [{"names": ["unshare"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]})";
  EXPECT_THAT(run("localhost", cri::SecurityProfile::Localhost, profile), HasSubstr("refused"));
  cri::ContainerConfig missing = Config("missing-profile", {"true"});
  auto* p = missing.mutable_linux()->mutable_security_context()->mutable_seccomp();
  p->set_profile_type(cri::SecurityProfile::Localhost);
  p->set_localhost_ref(dir_.path() + "/no-such-profile.json");
  // Not NOT_FOUND, which kubelet would read as "the container is gone": the profile is not on
  // this node (yet).
  grpc::Status status = Create(pod, missing);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("no-such-profile.json"));
}

TEST_F(ContainerTest, PidNamespaceOfItsOwnOrThePods) {
  cri::PodSandboxConfig shared = PodConfig("shared-pid");
  shared.mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_pid(
      cri::POD);
  const std::string pod = RunPod(shared);
  EXPECT_EQ(RunToExit(RunPod("own-pid"), Config("own", {"sh", "-c", "echo $$"})), "1\n");
  cri::ContainerConfig in_pod =
      Config("in-pod", {"sh", "-c", "echo $$; tr '\\0' ' ' < /proc/1/cmdline; echo"});
  in_pod.mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_pid(
      cri::POD);
  const std::string out = RunToExit(pod, in_pod);
  EXPECT_THAT(out, Not(::testing::StartsWith("1\n")));
  EXPECT_THAT(out, HasSubstr("crib-pause"));
}

// A pod that shares no process namespace has no crib-pause: its containers join its pinned
// network, ipc and uts namespaces, each has a pid namespace of its own, and one that asks for
// the pod's is refused, naming the pod.
TEST_F(ContainerTest, ContainersOfAPodWithoutPauseShareItsPinnedNamespaces) {
  cri::PodSandboxConfig config = PodConfig("no-pause", /*host_network=*/false);
  config.set_hostname("no-pause-host");
  config.mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_pid(
      cri::CONTAINER);
  const std::string pod = RunPod(config);
  EXPECT_TRUE(PauseProcesses(options_.state_dir).empty());
  // Two containers at once (a pid namespace's inode number is reused once it is gone).
  const std::string a = RunContainer(pod, Config("a", {"sleep", "1000"}));
  const std::string b = RunContainer(pod, Config("b", {"sleep", "1000"}));
  auto show = [&](const std::string& id) -> std::vector<std::string> {
    cri::ExecSyncResponse response;
    EXPECT_THAT(Exec(id,
                     {"sh", "-c",
                      "hostname; for n in net ipc uts pid; do readlink /proc/1/ns/$n; done; "
                      "cat /proc/1/comm"},
                     &response),
                GrpcOk());
    return absl::StrSplit(response.stdout(), '\n');
  };
  const std::vector<std::string> la = show(a);
  const std::vector<std::string> lb = show(b);
  ASSERT_GE(la.size(), 6u) << absl::StrJoin(la, "|");
  ASSERT_GE(lb.size(), 6u) << absl::StrJoin(lb, "|");
  EXPECT_EQ(la[0], "no-pause-host") << "exec joins the pinned uts namespace";
  auto inode_text = [](const std::string& path, const char* kind) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 ? absl::StrCat(kind, ":[", st.st_ino, "]") : "?";
  };
  EXPECT_EQ(la[1], inode_text(absl::StrCat(options_.state_dir, "/netns/", pod), "net"));
  EXPECT_EQ(la[2], inode_text(absl::StrCat(options_.state_dir, "/ipcns/", pod), "ipc"));
  EXPECT_EQ(la[3], inode_text(absl::StrCat(options_.state_dir, "/utsns/", pod), "uts"));
  for (int i = 0; i <= 3; ++i) EXPECT_EQ(la[i], lb[i]) << "line " << i;
  EXPECT_NE(la[4], lb[4]) << "a pid namespace each";
  EXPECT_EQ(la[5], "sleep") << "pid 1 of its pid namespace is the container's own process";

  const Leftovers before = Count();
  cri::ContainerConfig in_pod = Config("in-pod", {"true"});
  in_pod.mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_pid(
      cri::POD);
  const grpc::Status refused = Create(pod, in_pod);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(refused.error_message(), HasSubstr(absl::StrCat("pod sandbox ", pod,
                                                              " shares no process namespace")));
  EXPECT_EQ(Count(), before);
}

TEST_F(ContainerTest, ExecSyncOutputExitCodeAndTimeout) {
  const std::string pod = RunPod("exec");
  const std::string id = RunContainer(pod, Config("sleeper", {"sleep", "1000"}));
  cri::ExecSyncResponse response;
  ASSERT_THAT(Exec(id, {"sh", "-c", "echo out; echo err >&2; exit 4"}, &response), GrpcOk());
  EXPECT_EQ(response.stdout(), "out\n");
  EXPECT_EQ(response.stderr(), "err\n");
  EXPECT_EQ(response.exit_code(), 4);
  // In the container's namespaces: its pid 1 is the sleeper.
  ASSERT_THAT(Exec(id, {"cat", "/proc/1/cmdline"}, &response), GrpcOk());
  EXPECT_EQ(response.stdout(), std::string("sleep\0"
                                           "1000\0",
                                           11));
  const absl::Time start = absl::Now();
  grpc::Status timed_out = Exec(id, {"sleep", "30"}, &response, 1);
  EXPECT_EQ(timed_out.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_THAT(timed_out.error_message(), HasSubstr("timed out"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  grpc::Status missing = Exec(id, {"/no/such/binary"}, &response);
  EXPECT_FALSE(missing.ok());
  EXPECT_THAT(missing.error_message(), HasSubstr("/no/such/binary"));
  ASSERT_THAT(StopContainer(id), GrpcOk());
  EXPECT_EQ(Exec(id, {"true"}, &response).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(ContainerTest, UpdateContainerResourcesReachesTheCgroup) {
  const std::string pod = RunPod("update");
  cri::ContainerConfig config = Config("limited", {"sleep", "1000"});
  config.mutable_linux()->mutable_resources()->set_memory_limit_in_bytes(64 << 20);
  config.mutable_linux()->mutable_resources()->set_cpu_shares(256);
  const std::string id = RunContainer(pod, config);
  const std::string cgroup = absl::StrCat(cgroup_parent_, "/", pod, "/", id);
  EXPECT_EQ(CgroupMemoryLimit(cgroup), absl::StrCat(64 << 20));
  EXPECT_EQ(CgroupCpuShares(cgroup, 256), "256");
  cri::UpdateContainerResourcesRequest request;
  request.set_container_id(id);
  request.mutable_linux()->set_memory_limit_in_bytes(128 << 20);
  request.mutable_linux()->set_cpu_shares(512);
  request.mutable_linux()->set_cpu_quota(20000);
  request.mutable_linux()->set_cpu_period(100000);
  cri::UpdateContainerResourcesResponse response;
  ASSERT_THAT(runtime_->UpdateContainerResources(ContextWithDeadline().get(), request, &response),
              GrpcOk());
  EXPECT_EQ(CgroupMemoryLimit(cgroup), absl::StrCat(128 << 20));
  EXPECT_EQ(CgroupCpuShares(cgroup, 512), "512");
  EXPECT_EQ(CgroupCpuQuota(cgroup), "20000");
  EXPECT_EQ(Status(id).status().resources().linux().memory_limit_in_bytes(), 128 << 20);
}

// kubelet sends a limit for every huge page size the node has. Where the machine offers the
// hugetlb controller to crib's cgroups they land there; where it does not (a hybrid machine may
// leave it to the v2 tree) they are left out with one warning, and Status says so. A size the
// kernel lacks is left out either way. Containers run in every case.
TEST_F(ContainerTest, HugepageLimitsAreAppliedWhereTheMachineCan) {
  const std::vector<std::string> sizes = HugepageSizes();
  const std::string absent = AbsentHugepageSize();
  const std::string pod = RunPod("huge");
  auto config = [&](const std::string& name) {
    cri::ContainerConfig c = Config(name, {"sleep", "1000"});
    auto* resources = c.mutable_linux()->mutable_resources();
    for (const std::string& size : sizes) {
      cri::HugepageLimit* limit = resources->add_hugepage_limits();
      limit->set_page_size(size);
      limit->set_limit(2 * HugepageBytes(size));
    }
    cri::HugepageLimit* limit = resources->add_hugepage_limits();
    limit->set_page_size(absent);
    limit->set_limit(0);
    return c;
  };
  const std::string id = RunContainer(pod, config("huge"));
  ASSERT_FALSE(id.empty()) << cribd_->Log();
  const std::string cgroup = absl::StrCat(cgroup_parent_, "/", pod, "/", id);
  const bool unified = std::filesystem::exists("/sys/fs/cgroup/cgroup.controllers");
  const bool offered = unified ? absl::StrContains(Slurp("/sys/fs/cgroup/cgroup.controllers"),
                                                   "hugetlb")
                               : std::filesystem::exists("/sys/fs/cgroup/hugetlb/cgroup.procs");
  for (const std::string& size : sizes) {
    const std::string file =
        unified ? absl::StrCat("/sys/fs/cgroup", cgroup, "/hugetlb.", size, ".max")
                : absl::StrCat("/sys/fs/cgroup/hugetlb", cgroup, "/hugetlb.", size,
                               ".limit_in_bytes");
    if (offered) {
      EXPECT_EQ(Slurp(file), absl::StrCat(2 * HugepageBytes(size))) << file;
    }
  }
  const std::string log = cribd_->Log();
  EXPECT_THAT(log, HasSubstr(absl::StrCat("the kernel has no ", absent, " huge pages")));
  cri::StatusResponse status;
  ASSERT_THAT(runtime_->Status(ContextWithDeadline().get(), cri::StatusRequest(), &status),
              GrpcOk());
  ASSERT_GE(status.status().conditions_size(), 1);
  EXPECT_EQ(status.status().conditions(0).type(), "RuntimeReady");
  if (!offered) {
    EXPECT_THAT(log, HasSubstr("hugetlb: no cgroup"));
    EXPECT_THAT(status.status().conditions(0).message(), HasSubstr("hugetlb"));
  } else {
    EXPECT_THAT(status.status().conditions(0).message(), Not(HasSubstr("hugetlb")));
  }
  // The warning is said once per kind of limit, not per container.
  ASSERT_FALSE(RunContainer(pod, config("huge-again")).empty());
  const std::string again = cribd_->Log();
  const size_t kinds = offered ? 1 : 2;
  size_t warnings = 0;
  for (size_t at = again.find("and not for later containers"); at != std::string::npos;
       at = again.find("and not for later containers", at + 1)) {
    ++warnings;
  }
  EXPECT_EQ(warnings, kinds) << again;
}

// On cgroup v1 the container's /sys/fs/cgroup shows its own cgroup in each hierarchy,
// read-only, as runc mounts it (applications such as the JVM read their limits there).
TEST_F(ContainerTest, ContainerSeesItsOwnCgroup) {
  const std::string pod = RunPod("own-cgroup");
  cri::ContainerConfig config = Config(
      "reader", {"sh", "-c",
                 "cat /sys/fs/cgroup/memory/memory.limit_in_bytes; "
                 "cat /sys/fs/cgroup/cpu/cpu.shares; head -n 1 /sys/fs/cgroup/pids/cgroup.procs; "
                 "echo 1 > /sys/fs/cgroup/pids/pids.max 2>/dev/null || echo refused"});
  config.mutable_linux()->mutable_resources()->set_memory_limit_in_bytes(48 << 20);
  config.mutable_linux()->mutable_resources()->set_cpu_shares(300);
  EXPECT_EQ(RunToExit(pod, config), absl::StrCat(48 << 20, "\n300\n1\nrefused\n"));
}

TEST_F(ContainerTest, TerminationMessageFromItsFileOrTheLogTail) {
  const std::string pod = RunPod("term");
  cri::ContainerConfig config =
      Config("writer", {"sh", "-c", "echo -n bye > /dev/termination-log; exit 1"});
  (*config.mutable_annotations())["io.kubernetes.container.terminationMessagePath"] =
      "/dev/termination-log";
  cri::ContainerStatus status;
  RunToExit(pod, config, &status);
  EXPECT_EQ(status.message(), "bye");
  cri::ContainerConfig fallback =
      Config("fallback", {"sh", "-c", "echo first; echo last words; exit 2"});
  (*fallback.mutable_annotations())["io.kubernetes.container.terminationMessagePath"] =
      "/dev/termination-log";
  (*fallback.mutable_annotations())["io.kubernetes.container.terminationMessagePolicy"] =
      "FallbackToLogsOnError";
  RunToExit(pod, fallback, &status);
  EXPECT_EQ(status.message(), "first\nlast words\n");
}

TEST_F(ContainerTest, StopUsesTheImageStopSignalThenKill) {
  ASSERT_THAT(Pull("app:latest"), GrpcOk());
  const std::string pod = RunPod("stop");
  // app:latest says SIGUSR1; the command traps it.
  cri::ContainerConfig graceful = Config("graceful", {}, "app:latest");
  graceful.add_args("trap 'echo got usr1; exit 7' USR1; while :; do sleep 0.1; done");
  const std::string id = RunContainer(pod, graceful);
  absl::SleepFor(absl::Milliseconds(200));
  ASSERT_THAT(StopContainer(id, 10), GrpcOk());
  cri::ContainerStatus status = Status(id).status();
  EXPECT_EQ(status.state(), cri::CONTAINER_EXITED);
  EXPECT_EQ(status.exit_code(), 7);
  EXPECT_EQ(status.stop_signal(), cri::SIGNAL_SIGUSR1);
  EXPECT_EQ(Stdout(pod, "graceful"), "got usr1\n");
  // pid 1 ignores SIGTERM without a handler: the timeout ends in SIGKILL.
  const std::string stubborn = RunContainer(pod, Config("stubborn", {"sleep", "1000"}));
  const absl::Time start = absl::Now();
  ASSERT_THAT(StopContainer(stubborn, 1), GrpcOk());
  EXPECT_GE(absl::Now() - start, absl::Seconds(1));
  EXPECT_EQ(Status(stubborn).status().exit_code(), 137);
  EXPECT_THAT(StopContainer(stubborn, 1), GrpcOk());  // idempotent
}

// A bind of a host file that is itself a mount point shows the file mounted on top; a bind of a
// directory brings the mounts below it (the monitor copies a file's mount alone, a directory's
// with everything below).
TEST_F(ContainerTest, BindsShowAFileMountedOverTheSourceAndTheMountsBelowADirectory) {
  const std::string pod = RunPod("over");
  TempDir host;
  const std::string under = host.path() + "/under", over = host.path() + "/over";
  const std::string dir = host.path() + "/dir";
  std::ofstream(under) << "under\n";
  std::ofstream(over) << "over\n";
  std::filesystem::create_directories(dir + "/sub");
  ASSERT_EQ(::mount(over.c_str(), under.c_str(), nullptr, MS_BIND, nullptr), 0);
  absl::Cleanup unmount_file = [&] { ::umount2(under.c_str(), MNT_DETACH); };
  ASSERT_EQ(::mount("tmpfs", (dir + "/sub").c_str(), "tmpfs", 0, "size=1m"), 0);
  absl::Cleanup unmount_dir = [&] { ::umount2((dir + "/sub").c_str(), MNT_DETACH); };
  std::ofstream(dir + "/sub/file") << "below\n";

  cri::ContainerConfig config = Config("binds", {"sh", "-c", "cat /f /d/sub/file"});
  cri::Mount* file = config.add_mounts();
  file->set_container_path("/f");
  file->set_host_path(under);
  cri::Mount* directory = config.add_mounts();
  directory->set_container_path("/d");
  directory->set_host_path(dir);
  cri::ContainerStatus status;
  EXPECT_EQ(RunToExit(pod, config, &status), "over\nbelow\n");
}

TEST_F(ContainerTest, MountsReadonlyPropagationAndTheirErrors) {
  const std::string pod = RunPod("mounts");
  TempDir host;
  std::ofstream(host.path() + "/in") << "from host\n";
  std::filesystem::create_directory_symlink(host.path(), dir_.path() + "/link-to-host");
  cri::ContainerConfig config =
      Config("binds", {"sh", "-c",
                       "cat /ro/in; touch /ro/x 2>/dev/null || echo refused; "
                       "echo hi > /rw/out; cat /etc/hostname >/dev/null && echo ok"});
  cri::Mount* ro = config.add_mounts();
  ro->set_container_path("/ro");
  ro->set_host_path(dir_.path() + "/link-to-host");  // a symlink, resolved
  ro->set_readonly(true);
  cri::Mount* rw = config.add_mounts();
  rw->set_container_path("/rw");
  rw->set_host_path(host.path());
  cri::ContainerStatus status;
  EXPECT_EQ(RunToExit(pod, config, &status), "from host\nrefused\nok\n");
  EXPECT_EQ(Slurp(host.path() + "/out"), "hi");
  ASSERT_EQ(status.mounts_size(), 2);
  EXPECT_EQ(status.mounts(0).container_path(), "/ro");
  EXPECT_TRUE(status.mounts(0).readonly());

  // A missing host path is made as a directory, as containerd and CRI-O do (kubelet's
  // hostPath volumes without a type rely on it).
  cri::ContainerConfig missing = Config("missing", {"sh", "-c", "echo made > /data/file"});
  cri::Mount* m = missing.add_mounts();
  m->set_container_path("/data");
  m->set_host_path(dir_.path() + "/no/such/dir");
  EXPECT_EQ(RunToExit(pod, missing, &status), "");
  EXPECT_EQ(Slurp(dir_.path() + "/no/such/dir/file"), "made");

  const Leftovers before = Count();
  // Propagation the host mount cannot give is a clear error.
  cri::ContainerConfig bidirectional = Config("bidirectional", {"true"});
  m = bidirectional.add_mounts();
  m->set_container_path("/data");
  m->set_host_path(host.path());
  m->set_propagation(cri::PROPAGATION_BIDIRECTIONAL);
  grpc::Status s = Create(pod, bidirectional);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("not shared"));
  EXPECT_EQ(Count(), before) << Describe(Count());

  // On a shared mount, host-to-container propagation shows a mount made after the start.
  const std::string shared = dir_.path() + "/shared";
  std::filesystem::create_directories(shared + "/later");
  ASSERT_EQ(::mount(shared.c_str(), shared.c_str(), nullptr, MS_BIND, nullptr), 0);
  ASSERT_EQ(::mount(nullptr, shared.c_str(), nullptr, MS_SHARED, nullptr), 0);
  cri::ContainerConfig slave = Config("slave", {"sleep", "1000"});
  m = slave.add_mounts();
  m->set_container_path("/shared");
  m->set_host_path(shared);
  m->set_propagation(cri::PROPAGATION_HOST_TO_CONTAINER);
  const std::string id = RunContainer(pod, slave);
  ASSERT_EQ(::mount("tmpfs", (shared + "/later").c_str(), "tmpfs", 0, "size=1m"), 0);
  std::ofstream(shared + "/later/file") << "propagated\n";
  cri::ExecSyncResponse response;
  ASSERT_THAT(Exec(id, {"cat", "/shared/later/file"}, &response), GrpcOk());
  EXPECT_EQ(response.stdout(), "propagated\n");

  // Bidirectional: a mount made inside a privileged container reaches the host, and one the
  // host makes reaches the container; none of the container's own mounts (its rootfs, /proc)
  // shows on the host.
  std::filesystem::create_directories(shared + "/from-container");
  std::filesystem::create_directories(shared + "/from-host");
  const auto host_mounts = [] {
    return std::count(std::istreambuf_iterator<char>(std::ifstream("/proc/self/mountinfo").rdbuf()),
                      {}, '\n');
  };
  cri::ContainerConfig both = Config(
      "both", {"sh", "-c",
               "mount -t tmpfs -o size=1m tmpfs /shared/from-container && "
               "echo inside > /shared/from-container/file && exec sleep 1000"});
  both.mutable_linux()->mutable_security_context()->set_privileged(true);
  m = both.add_mounts();
  m->set_container_path("/shared");
  m->set_host_path(shared);
  m->set_propagation(cri::PROPAGATION_BIDIRECTIONAL);
  const auto mounts_before = host_mounts();
  const std::string both_id = RunContainer(pod, both);
  std::string seen;
  for (int i = 0; i < 500 && seen.empty(); ++i) {
    seen = Slurp(shared + "/from-container/file");
    if (seen.empty()) usleep(10000);
  }
  EXPECT_EQ(seen, "inside");
  // The host gained the overlay rootfs of the container and the propagated tmpfs, no more.
  EXPECT_EQ(host_mounts(), mounts_before + 2);
  ASSERT_EQ(::mount("tmpfs", (shared + "/from-host").c_str(), "tmpfs", 0, "size=1m"), 0);
  std::ofstream(shared + "/from-host/file") << "outside\n";
  ASSERT_THAT(Exec(both_id, {"cat", "/shared/from-host/file"}, &response), GrpcOk());
  EXPECT_EQ(response.stdout(), "outside\n");
  // In the host's peer group itself, not a slave of it.
  ASSERT_THAT(Exec(both_id, {"grep", " /shared ", "/proc/self/mountinfo"}, &response), GrpcOk());
  EXPECT_THAT(response.stdout(), HasSubstr(" shared:"));
  EXPECT_THAT(response.stdout(), Not(HasSubstr(" master:")));
}

TEST_F(ContainerTest, SymlinksInTheImageCannotMoveMountsOntoTheHost) {
  ASSERT_THAT(Pull("evil-etc:latest"), GrpcOk());
  std::filesystem::remove_all("/tmp/crib-evil-etc");
  const std::string pod = RunPod("evil");
  const std::string out =
      RunToExit(pod, Config("evil", {"sh", "-c", "cat /etc/hosts"}, "evil-etc:latest"));
  EXPECT_THAT(out, HasSubstr("localhost"));
  EXPECT_FALSE(std::filesystem::exists("/tmp/crib-evil-etc"))
      << "a mount point was made on the host through the image's symlinks";
}

TEST_F(ContainerTest, ImageWithManyLayers) {
  ASSERT_THAT(Pull("manylayers:latest"), GrpcOk());
  const std::string pod = RunPod("many");
  EXPECT_EQ(RunToExit(pod, Config("many", {"sh", "-c", "ls /many | wc -l; cat /many/layer069"},
                                  "manylayers:latest")),
            "70\nlayer 69\n");
}

TEST_F(ContainerTest, BadInputGivesClearErrorsAndLeavesNothing) {
  ASSERT_THAT(Pull("groups:latest"), GrpcOk());
  ASSERT_THAT(Pull("nocmd:latest"), GrpcOk());
  const std::string pod = RunPod("bad");
  const Leftovers before = Count();
  auto expect = [&](const cri::ContainerConfig& config, grpc::StatusCode code,
                    const std::string& text, const std::string& pod_id) {
    grpc::Status s = Create(pod_id, config);
    EXPECT_EQ(s.error_code(), code) << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr(text));
    EXPECT_EQ(Count(), before) << Describe(Count()) << " after " << text;
  };
  cri::ContainerConfig unknown_user = Config("unknown-user", {"id"}, "groups:latest");
  unknown_user.mutable_linux()->mutable_security_context()->set_run_as_username("nobody-here");
  expect(unknown_user, grpc::StatusCode::INVALID_ARGUMENT, "\"nobody-here\" is not in /etc/passwd",
         pod);
  expect(Config("no-pod", {"true"}), grpc::StatusCode::NOT_FOUND, "pod sandbox nope", "nope");
  cri::ContainerConfig no_image = Config("no-image", {"true"});
  no_image.mutable_image()->set_image(Ref("not-pulled:latest"));
  expect(no_image, grpc::StatusCode::NOT_FOUND, "not-pulled", pod);
  expect(Config("no-cmd", {}, "nocmd:latest"), grpc::StatusCode::INVALID_ARGUMENT,
         "has neither Entrypoint nor Cmd", pod);
  cri::ContainerConfig bad_dir = Config("bad-dir", {"true"});
  bad_dir.set_working_dir("relative");
  expect(bad_dir, grpc::StatusCode::INVALID_ARGUMENT, "not absolute", pod);
  // A log path may not leave the pod's log directory.
  const std::string outside = dir_.path() + "/outside.log";
  for (const std::string& path :
       {std::string("../../../../../../../../") + outside, outside, std::string("a/../../x.log")}) {
    cri::ContainerConfig escape = Config("escape", {"true"});
    escape.set_log_path(path);
    expect(escape, grpc::StatusCode::INVALID_ARGUMENT, "is not a path inside the pod's log", pod);
  }
  EXPECT_FALSE(std::filesystem::exists(outside));
  cri::PodSandboxConfig relative = PodConfig("relative-logs");
  relative.set_log_directory("logs/relative");
  cri::RunPodSandboxRequest run;
  *run.mutable_config() = relative;
  cri::RunPodSandboxResponse ran;
  grpc::Status refused = runtime_->RunPodSandbox(ContextWithDeadline().get(), run, &ran);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << refused.error_message();
  EXPECT_THAT(refused.error_message(), HasSubstr("is not an absolute path"));

  // A duplicate name (another config) is AlreadyExists naming the holder.
  const std::string first = CreateOk(pod, Config("dup", {"sleep", "1000"}));
  grpc::Status dup = Create(pod, Config("dup", {"sleep", "2000"}));
  EXPECT_EQ(dup.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_THAT(dup.error_message(), HasSubstr(first));
  // The same config again (a client retrying after its deadline) gets the same container.
  std::string again;
  ASSERT_THAT(Create(pod, Config("dup", {"sleep", "1000"}), &again), GrpcOk());
  EXPECT_EQ(again, first);
  ASSERT_THAT(RemoveContainer(first), GrpcOk());

  // A missing binary fails the start with its name; the container is exited, StartError.
  const std::string missing = CreateOk(pod, Config("missing", {"/bin/no-such-binary"}));
  grpc::Status started = StartContainer(missing);
  EXPECT_FALSE(started.ok());
  EXPECT_THAT(started.error_message(), HasSubstr("/bin/no-such-binary"));
  cri::ContainerStatus status = Status(missing).status();
  EXPECT_EQ(status.state(), cri::CONTAINER_EXITED);
  EXPECT_EQ(status.reason(), "StartError");
  EXPECT_EQ(status.exit_code(), 128);
  ASSERT_THAT(RemoveContainer(missing), GrpcOk());
  ASSERT_THAT(RemoveContainer(missing), GrpcOk());  // idempotent
  // So is a stop of a container that is gone (kubelet retries stops).
  EXPECT_THAT(StopContainer(missing), GrpcOk());
  EXPECT_EQ(Count(), before) << Describe(Count());
}

// A failure after any step of CreateContainer undoes the steps before it: no record, mount,
// bundle, layer, monitor or cgroup is left, and the error names the step.
TEST_F(ContainerTest, FailureAfterEachCreateStepLeavesNothing) {
  const std::string pod = RunPod("fail-create");
  const Leftovers before = Count();
  const std::vector<std::pair<std::string, std::string>> steps = {
      {"reserve", "reserve name"},         {"cgroup_start", "start making the cgroup"},
      {"dirs", "make the writable layer"}, {"rootfs", "mount rootfs"},
      {"user", "resolve the user"},        {"log", "make the log directory"},
      {"spec", "build the spec"},          {"cgroup", "make the cgroup"},
      {"monitor", "start crib-monitor"},   {"watch", "watch crib-monitor"},
      {"started", "start times"},          {"record", "record container"}};
  for (const auto& [step, words] : steps) {
    ::setenv("CRIB_TEST_FAILPOINT", absl::StrCat("container.create.after_", step).c_str(), 1);
    cribd_.reset();
    ASSERT_TRUE(Start());
    ::unsetenv("CRIB_TEST_FAILPOINT");
    grpc::Status status = Create(pod, Config(absl::StrCat("fail-", step), {"sleep", "1000"}));
    EXPECT_FALSE(status.ok()) << step;
    EXPECT_THAT(status.error_message(), HasSubstr(words)) << step;
    EXPECT_EQ(Count(), before) << step << ": " << Describe(Count());
  }
  ::unsetenv("CRIB_TEST_FAILPOINT");
}

// crib-monitor opens the container's log while the init sets itself up: a log that cannot be
// opened (a directory in its place) fails the create with its path, and the init, the cgroup,
// the bundle and the writable layer go with it.
TEST_F(ContainerTest, ALogThatCannotBeOpenedFailsTheCreateAndLeavesNothing) {
  const std::string pod = RunPod("bad-log");
  const Leftovers before = Count();
  const std::string log = LogPath(pod, "blocked");
  ASSERT_TRUE(std::filesystem::create_directories(log));
  grpc::Status status = Create(pod, Config("blocked", {"sleep", "1000"}));
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.error_message(), HasSubstr(absl::StrCat("open log ", log)));
  EXPECT_EQ(Count(), before) << Describe(Count());
  // With the directory gone the same container runs and writes its log there.
  std::filesystem::remove(log);
  const std::string id = RunContainer(pod, Config("blocked", {"echo", "logged"}));
  EXPECT_EQ(WaitExited(id).exit_code(), 0);
  EXPECT_EQ(Stdout(pod, "blocked"), "logged\n");
}

TEST_F(ContainerTest, ListFiltersAndStatusVerbose) {
  const std::string pod_a = RunPod("list-a");
  const std::string pod_b = RunPod("list-b");
  cri::ContainerConfig labelled = Config("labelled", {"sleep", "1000"});
  (*labelled.mutable_labels())["tier"] = "front";
  const std::string running = RunContainer(pod_a, labelled);
  const std::string created = CreateOk(pod_b, Config("created", {"sleep", "1000"}));
  EXPECT_EQ(List().size(), 2u);
  cri::ContainerFilter filter;
  filter.set_pod_sandbox_id(pod_b);
  ASSERT_EQ(List(&filter).size(), 1u);
  EXPECT_EQ(List(&filter)[0].id(), created);
  filter.Clear();
  filter.mutable_state()->set_state(cri::CONTAINER_RUNNING);
  ASSERT_EQ(List(&filter).size(), 1u);
  EXPECT_EQ(List(&filter)[0].id(), running);
  filter.Clear();
  (*filter.mutable_label_selector())["tier"] = "front";
  EXPECT_EQ(List(&filter).size(), 1u);
  filter.Clear();
  filter.set_id(running.substr(0, 12));
  ASSERT_EQ(List(&filter).size(), 1u);
  EXPECT_EQ(List(&filter)[0].state(), cri::CONTAINER_RUNNING);
  cri::ContainerStatusResponse verbose = Status(running.substr(0, 12), true);
  EXPECT_EQ(verbose.status().id(), running);
  const nlohmann::json info = nlohmann::json::parse(verbose.info().at("info"));
  EXPECT_EQ(info["sandboxID"], pod_a);
  EXPECT_GT(info["pid"].get<int>(), 0);
  EXPECT_EQ(info["runtimeSpec"]["process"]["args"], nlohmann::json({"sleep", "1000"}));
  EXPECT_EQ(info["config"]["metadata"]["name"], "labelled");
}

// A list takes the record of a container whose exit file and monitor are watched as it is:
// an exit (the init killed) and a monitor killed before it could write the exit file both
// show in ListContainers with no ContainerStatus call to look at their files.
TEST_F(ContainerTest, ListContainersSeesAnExitAndAKilledMonitorWithoutAStatusCall) {
  const std::string pod = RunPod("list-exits");
  const std::string ended = RunContainer(pod, Config("ended", {"sleep", "1000"}));
  const std::string orphaned = RunContainer(pod, Config("orphaned", {"sleep", "1000"}));
  const std::string kept = RunContainer(pod, Config("kept", {"sleep", "1000"}));
  auto pid_in = [&](const std::string& id, const char* file) {
    return static_cast<pid_t>(
        std::atoi(Slurp(absl::StrCat(options_.state_dir, "/containers/", id, "/", file)).c_str()));
  };
  const pid_t ended_init = pid_in(ended, "init.pid");
  const pid_t orphaned_init = pid_in(orphaned, "init.pid");
  const pid_t orphaned_monitor = pid_in(orphaned, "monitor.pid");
  ASSERT_GT(ended_init, 0);
  ASSERT_GT(orphaned_init, 0);
  ASSERT_GT(orphaned_monitor, 0);
  auto state_in = [](const std::vector<cri::Container>& listed, const std::string& id) {
    for (const cri::Container& c : listed) {
      if (c.id() == id) return c.state();
    }
    return cri::CONTAINER_UNKNOWN;
  };
  std::vector<cri::Container> listed = List();
  ASSERT_EQ(state_in(listed, ended), cri::CONTAINER_RUNNING);
  ASSERT_EQ(state_in(listed, orphaned), cri::CONTAINER_RUNNING);

  ASSERT_EQ(::kill(ended_init, SIGKILL), 0);
  ASSERT_EQ(::kill(orphaned_monitor, SIGKILL), 0);
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  for (;;) {
    listed = List();
    if (state_in(listed, ended) == cri::CONTAINER_EXITED &&
        state_in(listed, orphaned) == cri::CONTAINER_EXITED) {
      break;
    }
    if (absl::Now() > deadline) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(state_in(listed, ended), cri::CONTAINER_EXITED);
  EXPECT_EQ(state_in(listed, orphaned), cri::CONTAINER_EXITED);
  EXPECT_EQ(state_in(listed, kept), cri::CONTAINER_RUNNING);
  EXPECT_EQ(Status(ended).status().exit_code(), 137);
  EXPECT_EQ(Status(orphaned).status().reason(), "Unknown");
  // Without its monitor, the orphaned container's process was killed when its exit was
  // recorded (it is gone, or a zombie nobody reaps).
  auto gone = [](pid_t pid) {
    absl::StatusOr<std::string> stat = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
    return !stat.ok() || absl::StrContains(*stat, ") Z ");
  };
  for (int i = 0; i < 1000 && !gone(orphaned_init); ++i) absl::SleepFor(absl::Milliseconds(10));
  EXPECT_TRUE(gone(orphaned_init));
}

TEST_F(ContainerTest, StopAndRemovePodTakeItsContainers) {
  const std::string pod = RunPod("pod-stop");
  const Leftovers before = Count();
  const std::string a = RunContainer(pod, Config("a", {"sleep", "1000"}));
  const std::string b = CreateOk(pod, Config("b", {"sleep", "1000"}));
  ASSERT_THAT(StopPod(pod), GrpcOk());
  EXPECT_EQ(Status(a).status().state(), cri::CONTAINER_EXITED);
  EXPECT_EQ(Status(b).status().state(), cri::CONTAINER_EXITED);
  EXPECT_EQ(Create(pod, Config("c", {"true"})).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  ASSERT_THAT(RemovePod(pod), GrpcOk());
  EXPECT_TRUE(List().empty());
  Leftovers after = Count();
  EXPECT_EQ(after.monitors, 0u);
  EXPECT_EQ(after.bundles, 0);
  EXPECT_EQ(after.layers, 0);
  EXPECT_LT(after.cgroups, before.cgroups) << Describe(after);
}

TEST_F(ContainerTest, ContainersSurviveACribdCrash) {
  const std::string pod = RunPod("crash");
  const std::string sleeper = RunContainer(pod, Config("sleeper", {"sleep", "1000"}));
  const std::string quitter = RunContainer(pod, Config("quitter", {"sh", "-c", "sleep 1; exit 5"}));
  const int monitor_pid = nlohmann::json::parse(Status(sleeper, true).info().at("info"))["pid"];
  ASSERT_GT(monitor_pid, 0);
  cribd_->SignalAndWait(SIGKILL);
  cribd_.reset();
  absl::SleepFor(absl::Milliseconds(1500));  // the quitter ends while cribd is down
  ASSERT_TRUE(Start());
  cri::ContainerStatus status = Status(sleeper).status();
  EXPECT_EQ(status.state(), cri::CONTAINER_RUNNING);
  cri::ContainerStatus quit = Status(quitter).status();
  EXPECT_EQ(quit.state(), cri::CONTAINER_EXITED);
  EXPECT_EQ(quit.exit_code(), 5);
  cri::ExecSyncResponse response;
  ASSERT_THAT(Exec(sleeper, {"echo", "still here"}, &response), GrpcOk());
  EXPECT_EQ(response.stdout(), "still here\n");
  ASSERT_THAT(StopContainer(sleeper, 0), GrpcOk());
  EXPECT_EQ(Status(sleeper).status().exit_code(), 137);
  ASSERT_THAT(RemoveContainer(sleeper), GrpcOk());
}

TEST_F(ContainerTest, ReopenContainerLogAfterRotation) {
  const std::string pod = RunPod("logs");
  const std::string id =
      RunContainer(pod, Config("ticker", {"sh", "-c", "while :; do echo tick; sleep 0.05; done"}));
  const std::string log = LogPath(pod, "ticker");
  absl::SleepFor(absl::Milliseconds(200));
  ASSERT_EQ(::rename(log.c_str(), (log + ".1").c_str()), 0);
  cri::ReopenContainerLogRequest request;
  request.set_container_id(id);
  cri::ReopenContainerLogResponse response;
  ASSERT_THAT(runtime_->ReopenContainerLog(ContextWithDeadline().get(), request, &response),
              GrpcOk());
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_THAT(LogRecords(log), ::testing::Contains("stdout F tick"));
  EXPECT_THAT(LogRecords(log + ".1"), ::testing::Contains("stdout F tick"));
  ASSERT_THAT(StopContainer(id), GrpcOk());
  EXPECT_EQ(
      runtime_->ReopenContainerLog(ContextWithDeadline().get(), request, &response).error_code(),
      grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(ContainerTest, ContainerInAPodNetworkNamespace) {
  cri::PodSandboxConfig config = PodConfig("net", /*host_network=*/false);
  config.set_hostname("netpod");
  const std::string pod = RunPod(config);
  cri::PodSandboxStatusRequest request;
  request.set_pod_sandbox_id(pod);
  cri::PodSandboxStatusResponse response;
  ASSERT_THAT(runtime_->PodSandboxStatus(ContextWithDeadline().get(), request, &response),
              GrpcOk());
  const std::string ip = response.status().network().ip();
  ASSERT_FALSE(ip.empty());
  const std::string out = RunToExit(
      pod, Config("ip", {"sh", "-c", "ip -4 -o addr show eth0; hostname; cat /etc/hosts"}));
  EXPECT_THAT(out, HasSubstr(ip + "/"));
  EXPECT_THAT(out, HasSubstr("\nnetpod\n"));
  EXPECT_THAT(out, HasSubstr(ip + "\tnetpod"));
}

TEST_F(ContainerTest, DevicesAndPrivileged) {
  const std::string pod = RunPod("devices");
  cri::ContainerConfig config =
      Config("device", {"sh", "-c", "echo x > /dev/mine && echo wrote; ls /dev/kmsg 2>&1"});
  cri::Device* d = config.add_devices();
  d->set_host_path("/dev/null");
  d->set_container_path("/dev/mine");
  d->set_permissions("rw");
  EXPECT_THAT(RunToExit(pod, config), ::testing::StartsWith("wrote\n"));
  EXPECT_THAT(Stdout(pod, "device"), HasSubstr("No such file"));
  // /proc/timer_list is masked (an empty file) unless the container is privileged.
  const std::string probe =
      "ls /dev/kmsg 2>&1; grep ' /sys ' /proc/self/mountinfo | cut -d' ' -f6; "
      "echo timer_list $(wc -c < /proc/timer_list)";
  EXPECT_THAT(RunToExit(pod, Config("plain", {"sh", "-c", probe})),
              MatchesRegex("ls: /dev/kmsg: No such file or directory\nro,.*\ntimer_list 0\n"));
  cri::ContainerConfig privileged = Config("privileged", {"sh", "-c", probe});
  privileged.mutable_linux()->mutable_security_context()->set_privileged(true);
  const std::string out = RunToExit(pod, privileged);
  EXPECT_THAT(out, MatchesRegex("/dev/kmsg\nrw,.*\ntimer_list [1-9][0-9]*\n"));
}

// Exec, Attach and PortForward through cribd: each RPC returns a URL, a client speaks SPDY
// or WebSocket to it (the streaming server's own tests cover the protocols in depth).
TEST_F(ContainerTest, ExecAttachAndPortForwardThroughTheirUrls) {
  cri::PodSandboxConfig config = PodConfig("streams", /*host_network=*/false);
  const std::string pod = RunPod(config);
  cri::ContainerConfig echo = Config("echo", {"sh", "-c", "while read l; do echo got $l; done"});
  echo.set_stdin(true);
  const std::string id = RunContainer(pod, echo);

  cri::ExecRequest exec;
  exec.set_container_id(id);
  exec.add_cmd("sh");
  exec.add_cmd("-c");
  exec.add_cmd("echo out; exit 3");
  exec.set_stdout(true);
  cri::ExecResponse exec_url;
  ASSERT_THAT(runtime_->Exec(ContextWithDeadline().get(), exec, &exec_url), GrpcOk());
  RemoteCommandResult ran = RunSpdy(exec_url.url(), "v4.channel.k8s.io", false, true, false, false);
  EXPECT_EQ(ran.out, "out\n");
  EXPECT_THAT(ran.error, HasSubstr("NonZeroExitCode"));
  EXPECT_THAT(ran.error, HasSubstr("\"message\":\"3\""));

  cri::AttachRequest attach;
  attach.set_container_id(id);
  attach.set_stdin(true);
  attach.set_stdout(true);
  cri::AttachResponse attach_url;
  ASSERT_THAT(runtime_->Attach(ContextWithDeadline().get(), attach, &attach_url), GrpcOk());
  absl::StatusOr<std::unique_ptr<WebSocketClient>> ws =
      WebSocketClient::Connect(attach_url.url(), {"v5.channel.k8s.io"});
  ASSERT_THAT(ws.status(), IsOk());
  ASSERT_TRUE((*ws)->upgraded()) << (*ws)->response().body;
  absl::SleepFor(absl::Milliseconds(200));  // the attach is made once the session is up
  ASSERT_THAT((*ws)->SendChannel(0, "hello\n"), IsOk());
  ASSERT_THAT((*ws)->Pump([&] { return absl::StrContains((*ws)->channel(1), "got hello\n"); }),
              IsOk());
  EXPECT_THAT(Stdout(pod, "echo"), HasSubstr("got hello\n"));  // the log has it too

  // A busybox httpd in the pod's network namespace, reached through port forwarding.
  cri::ContainerConfig httpd =
      Config("httpd", {"sh", "-c",
                       "mkdir -p /www && echo forwarded > /www/index.html && "
                       "exec httpd -f -p 127.0.0.1:8080 -h /www"});
  RunContainer(pod, httpd);
  cri::PortForwardRequest forward;
  forward.set_pod_sandbox_id(pod);
  forward.add_port(8080);
  cri::PortForwardResponse forward_url;
  ASSERT_THAT(runtime_->PortForward(ContextWithDeadline().get(), forward, &forward_url), GrpcOk());
  std::string body;
  for (int attempt = 0; attempt < 50 && !absl::StrContains(body, "forwarded"); ++attempt) {
    absl::SleepFor(absl::Milliseconds(50));  // until httpd listens
    cri::PortForwardResponse again;
    ASSERT_THAT(runtime_->PortForward(ContextWithDeadline().get(), forward, &again), GrpcOk());
    absl::StatusOr<std::unique_ptr<WebSocketClient>> pf =
        WebSocketClient::Connect(again.url(), {"v4.channel.k8s.io"});
    ASSERT_THAT(pf.status(), IsOk());
    if (!(*pf)->Pump([&] { return (*pf)->channel(0).size() >= 2; }).ok()) continue;
    if (!(*pf)->SendChannel(0, "GET / HTTP/1.0\r\n\r\n").ok()) continue;
    (void)(*pf)->Pump([&] { return (*pf)->closed(); });
    body = (*pf)->channel(0);
  }
  EXPECT_THAT(body, HasSubstr("forwarded"));

  // The requests are checked: a stopped container, an unknown one, tty with stderr.
  grpc::Status unknown = runtime_->Exec(
      ContextWithDeadline().get(),
      [] {
        cri::ExecRequest r;
        r.set_container_id("no-such-container");
        r.add_cmd("true");
        r.set_stdout(true);
        return r;
      }(),
      &exec_url);
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::NOT_FOUND);
  exec.set_tty(true);
  exec.set_stderr(true);
  EXPECT_EQ(runtime_->Exec(ContextWithDeadline().get(), exec, &exec_url).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  exec.set_tty(false);
  ASSERT_THAT(StopContainer(id), GrpcOk());
  EXPECT_EQ(runtime_->Exec(ContextWithDeadline().get(), exec, &exec_url).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
}

// GetContainerEvents: create, start, stop and delete arrive in order with the pod's status;
// a container that ends by itself yields STOPPED without anyone asking for its status.
TEST_F(ContainerTest, ContainerEventsArriveInOrder) {
  const std::string pod = RunPod("events");
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  std::unique_ptr<grpc::ClientReader<cri::ContainerEventResponse>> stream =
      runtime_->GetContainerEvents(&context, cri::GetEventsRequest());
  std::mutex mu;
  std::vector<cri::ContainerEventResponse> events;
  std::thread reader([&] {
    cri::ContainerEventResponse event;
    while (stream->Read(&event)) {
      std::lock_guard<std::mutex> lock(mu);
      events.push_back(event);
    }
  });
  auto types_of = [&](const std::string& id) {
    std::vector<cri::ContainerEventType> types;
    std::lock_guard<std::mutex> lock(mu);
    for (const auto& e : events) {
      if (e.container_id() == id) types.push_back(e.container_event_type());
    }
    return types;
  };
  auto wait_for = [&](const std::string& id, size_t n) {
    for (int i = 0; i < 500 && types_of(id).size() < n; ++i) absl::SleepFor(absl::Milliseconds(10));
    return types_of(id);
  };
  absl::SleepFor(absl::Milliseconds(200));  // the subscription is made
  const std::string id = RunContainer(pod, Config("lifecycle", {"sleep", "1000"}));
  ASSERT_THAT(StopContainer(id), GrpcOk());
  ASSERT_THAT(RemoveContainer(id), GrpcOk());
  EXPECT_THAT(wait_for(id, 4),
              ElementsAre(cri::CONTAINER_CREATED_EVENT, cri::CONTAINER_STARTED_EVENT,
                          cri::CONTAINER_STOPPED_EVENT, cri::CONTAINER_DELETED_EVENT));
  // Ends by itself: nobody calls ContainerStatus, the monitor's exit file is the trigger.
  const std::string quits = RunContainer(pod, Config("quits", {"sh", "-c", "sleep 0.3; exit 2"}));
  EXPECT_THAT(wait_for(quits, 3),
              ElementsAre(cri::CONTAINER_CREATED_EVENT, cri::CONTAINER_STARTED_EVENT,
                          cri::CONTAINER_STOPPED_EVENT));
  {
    std::lock_guard<std::mutex> lock(mu);
    const cri::ContainerEventResponse& stopped = events.back();
    EXPECT_EQ(stopped.pod_sandbox_status().id(), pod);
    ASSERT_EQ(stopped.containers_statuses_size(), 1);
    EXPECT_EQ(stopped.containers_statuses(0).state(), cri::CONTAINER_EXITED);
    EXPECT_EQ(stopped.containers_statuses(0).exit_code(), 2);
    EXPECT_GT(stopped.created_at(), 0);
  }
  context.TryCancel();
  reader.join();
}

}  // namespace
}  // namespace crib::testing
