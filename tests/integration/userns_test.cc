// Pods in user namespaces of their own (CRI userns_options, mode POD) through a real cribd on
// its socket, checked on the machine: the pinned namespace, the maps a container and an exec
// see, the host ids of its processes, id-mapped host volumes, the image's owners in the root
// file system, capabilities that hold only inside, pods with different mappings kept apart,
// refused requests that leave nothing, what Status says, recovery after kill -9 of cribd, and
// Debian's nginx serving from such a pod.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "support/cri_fixture.h"
#include "support/machine.h"
#include "support/temp_dir.h"

namespace crib::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

// Host ids far above any the machine uses, 65536 ids each: a pod's mapping is 0 -> kHostA.
constexpr uint32_t kHostA = 1u << 20;
constexpr uint32_t kHostB = 2u << 20;
constexpr uint32_t kLength = 65536;

cri::IDMapping Range(uint32_t host_id, uint32_t container_id, uint32_t length) {
  cri::IDMapping m;
  m.set_host_id(host_id);
  m.set_container_id(container_id);
  m.set_length(length);
  return m;
}

// userns_options as kubelet sends them for a pod with hostUsers: false.
cri::UserNamespace PodUserns(uint32_t host_id) {
  cri::UserNamespace userns;
  userns.set_mode(cri::POD);
  *userns.add_uids() = Range(host_id, 0, kLength);
  *userns.add_gids() = Range(host_id, 0, kLength);
  return userns;
}

// The rows of a /proc/<pid>/uid_map or gid_map text, as numbers.
std::vector<std::vector<uint64_t>> MapRows(const std::string& text) {
  std::vector<std::vector<uint64_t>> rows;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipWhitespace())) {
    std::vector<uint64_t> row;
    for (absl::string_view field :
         absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty())) {
      uint64_t n = 0;
      row.push_back(absl::SimpleAtoi(field, &n) ? n : ~0ULL);
    }
    rows.push_back(row);
  }
  return rows;
}

// The ids of a "Uid:" or "Gid:" line of /proc/<pid>/status: real, effective, saved, fs.
std::vector<uint64_t> StatusIds(pid_t pid, const std::string& key) {
  std::vector<uint64_t> ids;
  for (absl::string_view line :
       absl::StrSplit(Slurp(absl::StrCat("/proc/", pid, "/status")), '\n')) {
    if (!absl::ConsumePrefix(&line, key + ":")) continue;
    for (absl::string_view field :
         absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty())) {
      uint64_t n = 0;
      ids.push_back(absl::SimpleAtoi(field, &n) ? n : ~0ULL);
    }
  }
  return ids;
}

// "uid:gid" of a path on the host.
std::string Owner(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return "missing";
  return absl::StrCat(st.st_uid, ":", st.st_gid);
}

// The text `readlink /proc/<pid>/ns/user` gives for the namespace pinned at `pin`.
std::string NamespaceLink(const std::string& pin, const char* kind) {
  struct stat st;
  return ::stat(pin.c_str(), &st) == 0 ? absl::StrCat(kind, ":[", st.st_ino, "]") : "no pin";
}

// Lines of a mount table (the host's unless named) that say "idmapped" (an id-mapped mount, or
// an overlay over one) and name one of `paths`.
std::vector<std::string> IdmappedMountsNaming(
    const std::vector<std::string>& paths, const std::string& mountinfo = "/proc/self/mountinfo") {
  std::vector<std::string> out;
  std::ifstream in(mountinfo);
  std::string line;
  while (std::getline(in, line)) {
    if (!absl::StrContains(line, "idmapped")) continue;
    for (const std::string& p : paths) {
      if (absl::StrContains(line, p)) {
        out.push_back(line);
        break;
      }
    }
  }
  return out;
}

// The mountinfo line of the mount at `mount_point` as process `pid` sees it (the topmost one);
// its sixth field holds the mount's options ("rw,nosuid,idmapped").
std::string MountInfoOf(pid_t pid, const std::string& mount_point) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/mountinfo"));
  std::string line, found;
  while (std::getline(in, line)) {
    std::vector<std::string> cols = absl::StrSplit(line, ' ');
    if (cols.size() > 5 && cols[4] == mount_point) found = line;
  }
  return found;
}

std::string MountOptionsOf(pid_t pid, const std::string& mount_point) {
  std::vector<std::string> cols = absl::StrSplit(MountInfoOf(pid, mount_point), ' ');
  return cols.size() > 5 ? cols[5] : "";
}

// Live children of `parent` (zombies do not count).
std::vector<pid_t> ChildrenOf(pid_t parent) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    pid_t pid = 0;
    if (!absl::SimpleAtoi(entry.path().filename().string(), &pid)) continue;
    const std::string stat = Slurp(absl::StrCat("/proc/", pid, "/stat"));
    const size_t close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::vector<std::string> fields = absl::StrSplit(stat.substr(close + 2), ' ');
    pid_t ppid = 0;
    if (fields.size() > 1 && absl::SimpleAtoi(fields[1], &ppid) && ppid == parent && !Exited(pid)) {
      out.push_back(pid);
    }
  }
  return out;
}

class UsernsTest : public CriFixture {
 protected:
  static cri::NamespaceOption& Namespaces(cri::PodSandboxConfig& config) {
    return *config.mutable_linux()->mutable_security_context()->mutable_namespace_options();
  }

  // A pod on the bridge (a user namespace cannot share the host's network) whose user
  // namespace maps 0..65535 to host_id..host_id+65535.
  cri::PodSandboxConfig UsernsPodConfig(const std::string& name, uint32_t host_id) {
    cri::PodSandboxConfig config = PodConfig(name, /*host_network=*/false);
    *Namespaces(config).mutable_userns_options() = PodUserns(host_id);
    return config;
  }

  // A container as kubelet makes it for such a pod: the pod's userns_options again.
  cri::ContainerConfig UsernsConfig(const std::string& name, std::vector<std::string> command,
                                    uint32_t host_id, const std::string& image = "busybox:latest") {
    cri::ContainerConfig config = Config(name, std::move(command), image);
    *config.mutable_linux()
         ->mutable_security_context()
         ->mutable_namespace_options()
         ->mutable_userns_options() = PodUserns(host_id);
    return config;
  }

  // A writable host volume, as kubelet sends a hostPath or emptyDir: no mappings of its own.
  static cri::Mount* AddVolume(cri::ContainerConfig& config, const std::string& host_path,
                               const std::string& container_path) {
    cri::Mount* m = config.add_mounts();
    m->set_host_path(host_path);
    m->set_container_path(container_path);
    m->set_readonly(false);
    return m;
  }

  // A volume id-mapped with the pod's mappings, as kubelet asks for one.
  static cri::Mount* AddMappedVolume(cri::ContainerConfig& config, const std::string& host_path,
                                     const std::string& container_path, uint32_t host_id) {
    cri::Mount* m = AddVolume(config, host_path, container_path);
    *m->add_uidmappings() = Range(host_id, 0, kLength);
    *m->add_gidmappings() = Range(host_id, 0, kLength);
    return m;
  }

  static void RunAs(cri::ContainerConfig& config, int64_t uid, int64_t gid) {
    auto* sc = config.mutable_linux()->mutable_security_context();
    sc->mutable_run_as_user()->set_value(uid);
    sc->mutable_run_as_group()->set_value(gid);
  }

  // RunPodSandbox for a request that must be refused; a pod it makes all the same is removed,
  // so that the next request is judged on its own.
  grpc::Status RunRefusedPod(const cri::PodSandboxConfig& config) {
    cri::RunPodSandboxRequest request;
    *request.mutable_config() = config;
    cri::RunPodSandboxResponse response;
    grpc::Status status =
        runtime_->RunPodSandbox(ContextWithDeadline(absl::Seconds(30)).get(), request, &response);
    if (status.ok()) {
      EXPECT_THAT(RemovePod(response.pod_sandbox_id()), GrpcOk());
    }
    return status;
  }

  // CreateContainer for a request that must be refused; a container it makes is removed.
  grpc::Status CreateRefused(const std::string& pod, const cri::ContainerConfig& config) {
    std::string id;
    grpc::Status status = Create(pod, config, &id);
    if (status.ok()) {
      EXPECT_THAT(RemoveContainer(id), GrpcOk());
    }
    return status;
  }

  cri::PodSandboxStatus PodStatus(const std::string& id) {
    cri::PodSandboxStatusRequest request;
    request.set_pod_sandbox_id(id);
    cri::PodSandboxStatusResponse response;
    grpc::Status status =
        runtime_->PodSandboxStatus(ContextWithDeadline().get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.status();
  }

  // The host pid of a running container's process (its status's verbose "pid").
  pid_t InitPid(const std::string& id) {
    const cri::ContainerStatusResponse response = Status(id, /*verbose=*/true);
    if (response.info().count("info") == 0) return -1;
    return nlohmann::json::parse(response.info().at("info")).value("pid", -1);
  }

  // ExecSync's stdout, with its stderr and exit code appended when it fails.
  std::string ExecOut(const std::string& id, std::vector<std::string> cmd) {
    cri::ExecSyncResponse response;
    grpc::Status status = Exec(id, std::move(cmd), &response);
    if (!status.ok()) return absl::StrCat("exec failed: ", status.error_message());
    if (response.exit_code() != 0) {
      return absl::StrCat(response.stdout(), response.stderr(), "exit ", response.exit_code());
    }
    return response.stdout();
  }

  std::string PinPath(const char* kind, const std::string& pod) const {
    return absl::StrCat(options_.state_dir, "/", kind, "/", pod);
  }

  // Mounts under the root and state dirs besides the pin directories' own mounts.
  std::vector<std::string> MountsLeft() {
    std::vector<std::string> out;
    for (const std::string& dir : {options_.root_dir, options_.state_dir}) {
      for (const std::string& m : MountsUnder(dir)) {
        if (!IsPinDir(options_.state_dir, m)) out.push_back(m);
      }
    }
    return out;
  }

  // What a refused request may not leave: pods, pins of each kind, mounts, cgroups.
  struct Traces {
    size_t pods, mounts;
    int userns, netns, ipcns, utsns, pod_dirs, cgroups;
    bool operator==(const Traces&) const = default;
  };
  Traces Trace() {
    Traces t;
    t.pods = ListPods().size();
    t.mounts = MountsLeft().size();
    t.userns = EntriesIn(options_.state_dir + "/userns");
    t.netns = EntriesIn(options_.state_dir + "/netns");
    t.ipcns = EntriesIn(options_.state_dir + "/ipcns");
    t.utsns = EntriesIn(options_.state_dir + "/utsns");
    t.pod_dirs = EntriesIn(options_.state_dir + "/pods");
    t.cgroups = CgroupTree(cgroup_parent_);
    return t;
  }
  static std::string Describe(const Traces& t) {
    return absl::StrCat("pods ", t.pods, ", mounts ", t.mounts, ", userns ", t.userns, ", netns ",
                        t.netns, ", ipcns ", t.ipcns, ", utsns ", t.utsns, ", pod dirs ",
                        t.pod_dirs, ", cgroups ", t.cgroups);
  }
  using CriFixture::Describe;
};

TEST_F(UsernsTest, PodUserNamespaceIsPinnedAndItsContainersRunInIt) {
  const std::string pod = RunPod(UsernsPodConfig("mapped", kHostA));
  ASSERT_FALSE(pod.empty());
  const std::string pin = PinPath("userns", pod);
  // A bind mount of the namespace's nsfs file, beside the pod's other pins.
  EXPECT_TRUE(std::filesystem::exists(pin)) << pin;
  EXPECT_THAT(MountsUnder(options_.state_dir), ::testing::Contains(pin));
  for (const char* kind : {"netns", "ipcns", "utsns"}) {
    EXPECT_TRUE(std::filesystem::exists(PinPath(kind, pod))) << kind;
  }
  const std::string userns = NamespaceLink(pin, "user");
  ASSERT_NE(userns, "no pin");
  EXPECT_NE(userns, NamespaceLink("/proc/self/ns/user", "user")) << "not the host's";

  const std::vector<std::vector<uint64_t>> expected_map = {{0, kHostA, kLength}};
  const std::string probe =
      "cat /proc/self/uid_map; echo --; cat /proc/self/gid_map; echo --; id -u; id -g; "
      "readlink /proc/self/ns/user";
  auto check_probe = [&](const std::string& out, const std::string& who) {
    std::vector<std::string> parts = absl::StrSplit(out, "--\n");
    ASSERT_EQ(parts.size(), 3u) << who << ": " << out;
    EXPECT_EQ(MapRows(parts[0]), expected_map) << who << " uid_map: " << parts[0];
    EXPECT_EQ(MapRows(parts[1]), expected_map) << who << " gid_map: " << parts[1];
    EXPECT_EQ(parts[2], absl::StrCat("0\n0\n", userns, "\n")) << who;
  };
  // A container that carries the pod's userns_options (as kubelet sends them), and one that
  // carries none: both run in the pod's user namespace.
  const std::string carrying = RunContainer(
      pod, UsernsConfig("carrying", {"sh", "-c", probe + "; exec sleep 1000"}, kHostA));
  const std::string plain =
      RunContainer(pod, Config("plain", {"sh", "-c", probe + "; exec sleep 1000"}));
  ASSERT_FALSE(carrying.empty());
  ASSERT_FALSE(plain.empty());
  ASSERT_TRUE(WaitFor([&] { return absl::StrContains(Stdout(pod, "carrying"), "user:["); }))
      << Stdout(pod, "carrying") << cribd_->Log();
  ASSERT_TRUE(WaitFor([&] { return absl::StrContains(Stdout(pod, "plain"), "user:["); }))
      << Stdout(pod, "plain") << cribd_->Log();
  check_probe(Stdout(pod, "carrying"), "carrying");
  check_probe(Stdout(pod, "plain"), "plain");
  // ExecSync joins the same user namespace.
  check_probe(ExecOut(carrying, {"sh", "-c", probe}), "exec");

  // On the host the container's process is root of the pod mapped to kHostA.
  for (const std::string& id : {carrying, plain}) {
    const pid_t pid = InitPid(id);
    ASSERT_GT(pid, 0) << id;
    EXPECT_THAT(StatusIds(pid, "Uid"), ElementsAre(kHostA, kHostA, kHostA, kHostA)) << id;
    EXPECT_THAT(StatusIds(pid, "Gid"), ElementsAre(kHostA, kHostA, kHostA, kHostA)) << id;
    std::error_code ec;
    EXPECT_EQ(std::filesystem::read_symlink(absl::StrCat("/proc/", pid, "/ns/user"), ec).string(),
              userns)
        << id;
  }
  // A user of the image's id 1000 is kHostA + 1000 on the host.
  cri::ContainerConfig as_user = UsernsConfig("as-user", {"sleep", "1000"}, kHostA);
  RunAs(as_user, 1000, 1000);
  const std::string user = RunContainer(pod, as_user);
  const pid_t user_pid = InitPid(user);
  ASSERT_GT(user_pid, 0);
  EXPECT_THAT(StatusIds(user_pid, "Uid"),
              ElementsAre(kHostA + 1000, kHostA + 1000, kHostA + 1000, kHostA + 1000));
  EXPECT_THAT(StatusIds(user_pid, "Gid"),
              ElementsAre(kHostA + 1000, kHostA + 1000, kHostA + 1000, kHostA + 1000));
}

// kubelet sends mode NODE for a pod with hostUsers (the default): the host's user namespace,
// no pin.
TEST_F(UsernsTest, ModeNodeIsTheHostsUserNamespace) {
  cri::PodSandboxConfig config = PodConfig("host-users", /*host_network=*/false);
  Namespaces(config).mutable_userns_options()->set_mode(cri::NODE);
  const std::string pod = RunPod(config);
  ASSERT_FALSE(pod.empty());
  EXPECT_FALSE(std::filesystem::exists(PinPath("userns", pod)));
  cri::ContainerConfig container = Config("host-users", {"cat", "/proc/self/uid_map"});
  container.mutable_linux()
      ->mutable_security_context()
      ->mutable_namespace_options()
      ->mutable_userns_options()
      ->set_mode(cri::NODE);
  EXPECT_EQ(MapRows(RunToExit(pod, container)), MapRows(Slurp("/proc/self/uid_map")));
}

// A container with a pid namespace of its own is forked once more inside the pod's user
// namespace: the first process forks the container's pid 1, tells the monitor its pid and
// exits. Held there (the init's test delay), the first process is still the one that speaks
// first: pid 1 waits for it, so the monitor never takes the first process, gone at once, for
// the container's init.
TEST_F(UsernsTest, SlowForkOfPid1StillReportsPid1) {
  cribd_->SignalAndWait(SIGTERM);
  cribd_.reset();
  ::setenv("CRIB_TEST_FAILPOINT", "init.after_pid1_fork:sleep=100ms", 1);
  const bool started = Start();
  ::unsetenv("CRIB_TEST_FAILPOINT");
  ASSERT_TRUE(started);
  const std::string pod = RunPod(UsernsPodConfig("slow-fork", kHostA));
  ASSERT_FALSE(pod.empty());
  cri::ContainerConfig config =
      UsernsConfig("pid1", {"sh", "-c", "echo $$; exec sleep 1000"}, kHostA);
  const std::string id = RunContainer(pod, config);
  ASSERT_FALSE(id.empty()) << cribd_->Log();
  ASSERT_TRUE(WaitFor([&] { return !Stdout(pod, "pid1").empty(); })) << cribd_->Log();
  EXPECT_EQ(Stdout(pod, "pid1"), "1\n");
  EXPECT_EQ(Status(id).status().state(), cri::CONTAINER_RUNNING);
  // The pid crib reports is the container's pid 1 (the last of its NSpid), alive.
  const pid_t pid = InitPid(id);
  ASSERT_GT(pid, 0);
  absl::StatusOr<std::string> status = ReadFile(absl::StrCat("/proc/", pid, "/status"));
  ASSERT_THAT(status, IsOk());
  EXPECT_THAT(*status, ::testing::ContainsRegex("NSpid:\\s+[0-9]+\\s+1\n"));
  ASSERT_THAT(StopContainer(id), GrpcOk());
  ASSERT_THAT(RemoveContainer(id), GrpcOk());
}

TEST_F(UsernsTest, ContainerUsernsOptionsMustEqualThePods) {
  const std::string pod = RunPod(UsernsPodConfig("must-equal", kHostA));
  const Leftovers before = Count();
  for (const uint32_t host_id : {kHostB, kHostA + 1}) {
    cri::ContainerConfig other = UsernsConfig(absl::StrCat("other-", host_id), {"true"}, host_id);
    const grpc::Status status = CreateRefused(pod, other);
    EXPECT_FALSE(status.ok()) << "host id " << host_id;
    EXPECT_EQ(Count(), before) << Describe(Count());
  }
  cri::ContainerConfig longer = UsernsConfig("longer", {"true"}, kHostA);
  auto* userns = longer.mutable_linux()
                     ->mutable_security_context()
                     ->mutable_namespace_options()
                     ->mutable_userns_options();
  *userns->add_uids() = Range(kHostA + kLength, kLength, 10);
  *userns->add_gids() = Range(kHostA + kLength, kLength, 10);
  EXPECT_FALSE(CreateRefused(pod, longer).ok());
  EXPECT_EQ(Count(), before) << Describe(Count());
  // The pod's own options are taken.
  EXPECT_EQ(MapRows(RunToExit(pod, UsernsConfig("same", {"cat", "/proc/self/uid_map"}, kHostA))),
            (std::vector<std::vector<uint64_t>>{{0, kHostA, kLength}}));
}

TEST_F(UsernsTest, HostVolumesAreIdMappedMounts) {
  TempDir volume;
  ASSERT_EQ(::chmod(volume.path().c_str(), 0777), 0);
  std::ofstream(volume.path() + "/host-root") << "made by the host's root\n";
  std::ofstream(volume.path() + "/host-5000") << "given to 5000\n";
  ASSERT_EQ(::chown((volume.path() + "/host-5000").c_str(), 5000, 5000), 0);
  const std::string pod = RunPod(UsernsPodConfig("volumes", kHostA));

  cri::ContainerConfig as_root = UsernsConfig(
      "as-root",
      {"sh", "-c",
       "stat -c %u:%g /vol/host-root /vol/host-5000 && touch /vol/by-root && "
       "touch /vol/chowned && chown 1000:1000 /vol/chowned && stat -c %u:%g /vol/chowned"},
      kHostA);
  AddMappedVolume(as_root, volume.path(), "/vol", kHostA);
  EXPECT_EQ(RunToExit(pod, as_root), "0:0\n5000:5000\n1000:1000\n") << cribd_->Log();
  EXPECT_EQ(Owner(volume.path() + "/by-root"), "0:0");
  EXPECT_EQ(Owner(volume.path() + "/chowned"), "1000:1000");

  cri::ContainerConfig as_user = UsernsConfig(
      "as-user", {"sh", "-c", "id -u; touch /vol/by-1000 && stat -c %u:%g /vol/by-1000"}, kHostA);
  RunAs(as_user, 1000, 1000);
  AddMappedVolume(as_user, volume.path(), "/vol", kHostA);
  EXPECT_EQ(RunToExit(pod, as_user), "1000\n1000:1000\n");
  EXPECT_EQ(Owner(volume.path() + "/by-1000"), "1000:1000");

  // The kernel lists the volume as an id-mapped mount in the container's mount table; once
  // the container is removed, no id-mapped mount names the test's directories.
  const std::vector<std::string> ours = {dir_.path(), volume.path()};
  for (const cri::Container& c : List()) ASSERT_THAT(RemoveContainer(c.id()), GrpcOk());
  EXPECT_THAT(IdmappedMountsNaming(ours), IsEmpty());
  cri::ContainerConfig holder = UsernsConfig("holder", {"sleep", "1000"}, kHostA);
  AddMappedVolume(holder, volume.path(), "/vol", kHostA);
  const std::string id = RunContainer(pod, holder);
  const pid_t pid = InitPid(id);
  ASSERT_GT(pid, 0);
  EXPECT_THAT(MountOptionsOf(pid, "/vol"), HasSubstr("idmapped"));
  EXPECT_THAT(IdmappedMountsNaming({volume.path()}, absl::StrCat("/proc/", pid, "/mountinfo")),
              Not(IsEmpty()));
  ASSERT_THAT(StopContainer(id), GrpcOk());
  ASSERT_THAT(RemoveContainer(id), GrpcOk());
  EXPECT_THAT(IdmappedMountsNaming(ours), IsEmpty());
}

// A mount without mappings (kubelet before 1.30 chowns such volumes to the pod's ids itself)
// is a plain bind mount: the host's ids pass through the user namespace's mapping.
TEST_F(UsernsTest, VolumesWithoutMappingsArePlainBindMounts) {
  TempDir volume;
  ASSERT_EQ(::chmod(volume.path().c_str(), 0777), 0);
  std::ofstream(volume.path() + "/host-root") << "made by the host's root\n";
  const std::string pod = RunPod(UsernsPodConfig("plain-volume", kHostA));
  cri::ContainerConfig config = UsernsConfig(
      "writer",
      {"sh", "-c", "stat -c %u:%g /vol/host-root && touch /vol/by-root && exec sleep 1000"},
      kHostA);
  AddVolume(config, volume.path(), "/vol");
  const std::string id = RunContainer(pod, config);
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(WaitFor([&] { return !Stdout(pod, "writer").empty(); }));
  EXPECT_EQ(Stdout(pod, "writer"), "65534:65534\n");  // the host's root is nobody inside
  const std::string mapped_root = absl::StrCat(kHostA, ":", kHostA);
  EXPECT_TRUE(WaitFor([&] { return Owner(volume.path() + "/by-root") == mapped_root; }))
      << Owner(volume.path() + "/by-root");
  const pid_t pid = InitPid(id);
  ASSERT_GT(pid, 0);
  EXPECT_THAT(MountOptionsOf(pid, "/vol"), Not(HasSubstr("idmapped")));
  ASSERT_THAT(StopContainer(id), GrpcOk());
  ASSERT_THAT(RemoveContainer(id), GrpcOk());
}

TEST_F(UsernsTest, ImageFilesKeepTheirOwnersAndRootOwnsItsRootfs) {
  ASSERT_THAT(Pull("layers:latest"), GrpcOk());
  const std::string pod = RunPod(UsernsPodConfig("rootfs", kHostA));
  const std::string out = RunToExit(
      pod, UsernsConfig("owners",
                        {"sh", "-c",
                         "stat -c %u:%g / /bin/busybox /etc/passwd /data/owned; "
                         "touch /newfile && mkdir /x && chown 1234:1234 /newfile && "
                         "stat -c %u:%g /newfile /x; "
                         "chown 70000:70000 /newfile 2>/dev/null && echo unmapped-chowned || "
                         "echo unmapped-refused; stat -c %u:%g /newfile"},
                        kHostA, "layers:latest"));
  EXPECT_EQ(out, "0:0\n0:0\n0:0\n1000:1000\n1234:1234\n0:0\nunmapped-refused\n1234:1234\n")
      << cribd_->Log();
}

TEST_F(UsernsTest, CapabilitiesHoldOnlyInsideTheUserNamespace) {
  const std::string pod = RunPod(UsernsPodConfig("caps", kHostA));
  // The default set lets root chown; without CAP_SYS_ADMIN it cannot mount; and CAP_MKNOD in
  // a user namespace makes no device node.
  EXPECT_EQ(RunToExit(pod, UsernsConfig("default",
                                        {"sh", "-c",
                                         "touch /f && chown 4321:4321 /f && stat -c %u:%g /f; "
                                         "mkdir -p /mnt; mount -t tmpfs none /mnt 2>/dev/null && "
                                         "echo mounted || echo mount-refused; "
                                         "mknod /tmp/null c 1 3 2>/dev/null && echo mknod || "
                                         "echo mknod-refused"},
                                        kHostA)),
            "4321:4321\nmount-refused\nmknod-refused\n");

  // With CAP_SYS_ADMIN (and no seccomp filter) root mounts a tmpfs: one that belongs to the
  // pod's user namespace, so what root makes there is kHostA's on the host.
  cri::ContainerConfig admin =
      UsernsConfig("admin",
                   {"sh", "-c",
                    "mkdir -p /mnt && mount -t tmpfs none /mnt && touch /mnt/made && echo mounted; "
                    "exec sleep 1000"},
                   kHostA);
  auto* sc = admin.mutable_linux()->mutable_security_context();
  sc->mutable_capabilities()->add_add_capabilities("SYS_ADMIN");
  sc->mutable_seccomp()->set_profile_type(cri::SecurityProfile::Unconfined);
  const std::string id = RunContainer(pod, admin);
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(WaitFor([&] { return Stdout(pod, "admin") == "mounted\n"; }))
      << Stdout(pod, "admin") << "\n"
      << Slurp(LogPath(pod, "admin"));
  const pid_t pid = InitPid(id);
  ASSERT_GT(pid, 0);
  EXPECT_THAT(MountInfoOf(pid, "/mnt"), HasSubstr(" - tmpfs "));
  EXPECT_EQ(Owner(absl::StrCat("/proc/", pid, "/root/mnt/made")),
            absl::StrCat(kHostA, ":", kHostA));

  // A nested user namespace: seccomp's default profile refuses it, Unconfined allows it.
  auto nested = [&](const std::string& name, cri::SecurityProfile::ProfileType type) {
    cri::ContainerConfig config = UsernsConfig(
        name, {"sh", "-c", "unshare -U true 2>&1 && echo allowed || echo refused"}, kHostA);
    config.mutable_linux()->mutable_security_context()->mutable_seccomp()->set_profile_type(type);
    return RunToExit(pod, config);
  };
  EXPECT_THAT(nested("runtime-default", cri::SecurityProfile::RuntimeDefault),
              HasSubstr("refused"));
  EXPECT_THAT(nested("unconfined", cri::SecurityProfile::Unconfined), HasSubstr("allowed"));
}

TEST_F(UsernsTest, PodsWithDifferentMappingsDoNotShareAccess) {
  TempDir shared;
  ASSERT_EQ(::chmod(shared.path().c_str(), 01777), 0);
  const std::string pod_a = RunPod(UsernsPodConfig("pod-a", kHostA));
  const std::string pod_b = RunPod(UsernsPodConfig("pod-b", kHostB));
  auto as = [&](const std::string& name, int64_t uid, uint32_t host_id, const std::string& cmd) {
    cri::ContainerConfig config = UsernsConfig(name, {"sh", "-c", cmd}, host_id);
    RunAs(config, uid, uid);
    AddMappedVolume(config, shared.path(), "/shared", host_id);
    return config;
  };
  EXPECT_EQ(RunToExit(pod_a, as("writer", 1000, kHostA,
                                "echo secret > /shared/secret && chmod 600 /shared/secret && "
                                "cat /shared/secret")),
            "secret\n");
  struct stat st;
  ASSERT_EQ(::stat((shared.path() + "/secret").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1000u);
  EXPECT_EQ(st.st_gid, 1000u);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_THAT(
      RunToExit(pod_b, as("stranger", 2000, kHostB, "cat /shared/secret 2>&1 || echo refused")),
      ::testing::AllOf(HasSubstr("Permission denied"), HasSubstr("refused"),
                       Not(HasSubstr("secret\n"))));
  // The two pods' processes are different users on the host.
  const std::string a = RunContainer(pod_a, as("sleeper-a", 1000, kHostA, "exec sleep 1000"));
  const std::string b = RunContainer(pod_b, as("sleeper-b", 2000, kHostB, "exec sleep 1000"));
  const pid_t pid_a = InitPid(a), pid_b = InitPid(b);
  ASSERT_GT(pid_a, 0);
  ASSERT_GT(pid_b, 0);
  EXPECT_THAT(StatusIds(pid_a, "Uid"),
              ElementsAre(kHostA + 1000, kHostA + 1000, kHostA + 1000, kHostA + 1000));
  EXPECT_THAT(StatusIds(pid_b, "Uid"),
              ElementsAre(kHostB + 2000, kHostB + 2000, kHostB + 2000, kHostB + 2000));
  EXPECT_NE(NamespaceLink(PinPath("userns", pod_a), "user"),
            NamespaceLink(PinPath("userns", pod_b), "user"));
}

TEST_F(UsernsTest, InvalidUserNamespacesAreRefusedAndLeaveNothing) {
  struct Case {
    std::string what;
    std::function<void(cri::PodSandboxConfig&)> change;
  };
  auto mappings = [](std::vector<cri::IDMapping> uids, std::vector<cri::IDMapping> gids) {
    return [uids, gids](cri::PodSandboxConfig& config) {
      cri::UserNamespace* userns = Namespaces(config).mutable_userns_options();
      userns->clear_uids();
      userns->clear_gids();
      for (const cri::IDMapping& m : uids) *userns->add_uids() = m;
      for (const cri::IDMapping& m : gids) *userns->add_gids() = m;
    };
  };
  const cri::IDMapping full = Range(kHostA, 0, kLength);
  const std::vector<Case> cases = {
      {"length 0", mappings({Range(kHostA, 0, 0)}, {Range(kHostA, 0, 0)})},
      {"overlapping container ranges",
       mappings({full, Range(kHostB, 1000, 10)}, {full, Range(kHostB, 1000, 10)})},
      {"host ids past 2^32",
       mappings({Range(4294967295u - 100, 0, kLength)}, {Range(4294967295u - 100, 0, kLength)})},
      {"container id 0 not mapped",
       mappings({Range(kHostA, 1, kLength)}, {Range(kHostA, 1, kLength)})},
      {"gids with another count",
       mappings({full}, {Range(kHostA, 0, 1000), Range(kHostA + 1000, 1000, kLength - 1000)})},
      {"gids with another container id",
       mappings({Range(kHostA, 0, 1000), Range(kHostA + 1000, 1000, 1000)},
                {Range(kHostA, 0, 1000), Range(kHostA + 1000, 2000, 1000)})},
      {"gids with another length", mappings({full}, {Range(kHostA, 0, kLength - 1)})},
      {"uids without gids", mappings({full}, {})},
      {"no mappings", mappings({}, {})},
      {"host network",
       [](cri::PodSandboxConfig& config) { Namespaces(config).set_network(cri::NODE); }},
      {"host ipc", [](cri::PodSandboxConfig& config) { Namespaces(config).set_ipc(cri::NODE); }},
      {"host pid", [](cri::PodSandboxConfig& config) { Namespaces(config).set_pid(cri::NODE); }},
      {"mode CONTAINER",
       [](cri::PodSandboxConfig& config) {
         Namespaces(config).mutable_userns_options()->set_mode(cri::CONTAINER);
       }},
      {"mode TARGET",
       [](cri::PodSandboxConfig& config) {
         Namespaces(config).mutable_userns_options()->set_mode(cri::TARGET);
       }},
  };
  // One good pod first, so that the pin directories exist and a leftover would show.
  const std::string good = RunPod(UsernsPodConfig("good", kHostA));
  ASSERT_FALSE(good.empty());
  const Traces before = Trace();
  const std::vector<std::string> mounts_before = MountsLeft();
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    cri::PodSandboxConfig config = UsernsPodConfig(absl::StrCat("bad-", i), kHostB);
    c.change(config);
    const grpc::Status status = RunRefusedPod(config);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << c.what << ": " << status.error_message();
    EXPECT_EQ(Trace(), before) << c.what << ": " << Describe(Trace());
  }
  EXPECT_EQ(MountsLeft(), mounts_before);
  ASSERT_EQ(ListPods().size(), 1u);
  EXPECT_EQ(ListPods()[0].id(), good);

  // A privileged container would hold the host's capabilities: refused in such a pod.
  const Leftovers containers_before = Count();
  cri::ContainerConfig privileged = UsernsConfig("privileged", {"true"}, kHostA);
  privileged.mutable_linux()->mutable_security_context()->set_privileged(true);
  const grpc::Status status = CreateRefused(good, privileged);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_EQ(Count(), containers_before) << Describe(Count());
}

TEST_F(UsernsTest, StatusReportsUserNamespaces) {
  cri::StatusResponse response;
  ASSERT_THAT(runtime_->Status(ContextWithDeadline().get(), cri::StatusRequest(), &response),
              GrpcOk());
  std::map<std::string, bool> userns;
  for (const cri::RuntimeHandler& h : response.runtime_handlers()) {
    userns[h.name()] = h.features().user_namespaces();
  }
  EXPECT_THAT(userns, ::testing::Contains(::testing::Pair("", true)));
  EXPECT_THAT(userns, ::testing::Contains(::testing::Pair("crib", true)));
}

TEST_F(UsernsTest, PodSurvivesACribdCrashAndIsRemovedAfter) {
  const std::vector<std::string> mounts_before = MountsLeft();
  const std::string pod = RunPod(UsernsPodConfig("crash", kHostA));
  TempDir volume;
  cri::ContainerConfig survivor = UsernsConfig("survivor", {"sleep", "1000"}, kHostA);
  AddVolume(survivor, volume.path(), "/vol");
  const std::string id = RunContainer(pod, survivor);
  ASSERT_FALSE(id.empty());
  const std::vector<std::vector<uint64_t>> expected_map = {{0, kHostA, kLength}};
  ASSERT_EQ(MapRows(ExecOut(id, {"cat", "/proc/self/uid_map"})), expected_map);
  const pid_t pid = InitPid(id);
  ASSERT_GT(pid, 0);

  cribd_->SignalAndWait(SIGKILL);
  cribd_.reset();
  ASSERT_TRUE(Start());
  EXPECT_EQ(PodStatus(pod).state(), cri::SANDBOX_READY);
  EXPECT_EQ(Status(id).status().state(), cri::CONTAINER_RUNNING);
  EXPECT_FALSE(Exited(pid));
  EXPECT_EQ(MapRows(ExecOut(id, {"cat", "/proc/self/uid_map"})), expected_map);
  EXPECT_EQ(MapRows(ExecOut(id, {"cat", "/proc/self/gid_map"})), expected_map);
  EXPECT_EQ(ExecOut(id, {"readlink", "/proc/self/ns/user"}),
            NamespaceLink(PinPath("userns", pod), "user") + "\n");

  ASSERT_THAT(StopPod(pod), GrpcOk());
  EXPECT_TRUE(ExitsWithin(pid));
  ASSERT_THAT(RemovePod(pod), GrpcOk());
  EXPECT_TRUE(ListPods().empty());
  EXPECT_FALSE(std::filesystem::exists(PinPath("userns", pod)));
  EXPECT_EQ(EntriesIn(options_.state_dir + "/userns"), 0);
  EXPECT_EQ(MountsLeft(), mounts_before);
  EXPECT_THAT(IdmappedMountsNaming({dir_.path(), volume.path()}), IsEmpty());
}

// A real server: Debian's nginx (tests/images: nginx:latest) in a pod with a user namespace,
// reached from a busybox of the same pod. Its master is the pod's root, its workers www-data
// (33) of the pod, so kHostA + 33 on the host.
TEST_F(UsernsTest, NginxServesFromAPodWithAUserNamespace) {
  ASSERT_THAT(Pull("nginx:latest"), GrpcOk());
  const std::string pod = RunPod(UsernsPodConfig("web", kHostA));
  const std::string server = RunContainer(pod, UsernsConfig("nginx", {}, kHostA, "nginx:latest"));
  const std::string client = RunContainer(pod, UsernsConfig("client", {"sleep", "1000"}, kHostA));
  ASSERT_FALSE(server.empty());
  ASSERT_FALSE(client.empty());
  std::string page;
  EXPECT_TRUE(WaitFor(
      [&] {
        page = ExecOut(client, {"wget", "-qO-", "http://127.0.0.1:80/"});
        return page == "served by nginx in a user namespace\n";
      },
      absl::Seconds(30)))
      << page << "\nnginx: " << Slurp(LogPath(pod, "nginx")) << "\n"
      << cribd_->Log();
  const pid_t master = InitPid(server);
  ASSERT_GT(master, 0);
  EXPECT_EQ(Slurp(absl::StrCat("/proc/", master, "/comm")), "nginx");
  EXPECT_THAT(StatusIds(master, "Uid"), ElementsAre(kHostA, kHostA, kHostA, kHostA));
  std::vector<pid_t> workers;
  EXPECT_TRUE(WaitFor([&] { return (workers = ChildrenOf(master)).size() == 2; }))
      << workers.size() << " workers";
  for (const pid_t worker : workers) {
    EXPECT_THAT(StatusIds(worker, "Uid"),
                ElementsAre(kHostA + 33, kHostA + 33, kHostA + 33, kHostA + 33))
        << worker;
    EXPECT_THAT(StatusIds(worker, "Gid"),
                ElementsAre(kHostA + 33, kHostA + 33, kHostA + 33, kHostA + 33))
        << worker;
  }
}

}  // namespace
}  // namespace crib::testing
