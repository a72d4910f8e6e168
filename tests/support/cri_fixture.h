// A real cribd for integration tests of the CRI runtime service, with a real registry on
// loopback for its images: pods (host network or crib's bridge, with a bridge, table and
// subnet of the test's own), containers, ExecSync, and a count of everything they can leave
// behind. TearDown removes every pod and whatever a failed test left (processes, mounts,
// cgroups, links, tables).
#pragma once

#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "support/cri_calls.h"
#include "support/cribd_process.h"
#include "support/machine.h"
#include "support/registry.h"
#include "support/status_matchers.h"

namespace crib::testing {

MATCHER(GrpcOk, "is OK") {
  if (!arg.ok())
    *result_listener << "status is " << arg.error_code() << ": " << arg.error_message();
  return arg.ok();
}

// The text of a CRI log's records without their time stamps: "stdout F hello".
inline std::vector<std::string> LogRecords(const std::string& path) {
  std::vector<std::string> records;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) records.push_back(line.substr(line.find(' ') + 1));
  }
  return records;
}

// Cgroup directories at any depth below `parent`, in every hierarchy.
inline int CgroupTree(const std::string& parent) {
  int n = 0;
  for (const std::string& h : Hierarchies()) {
    std::error_code ec;
    for (auto it = std::filesystem::recursive_directory_iterator(h + parent, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      if (it->is_directory()) ++n;
    }
  }
  return n;
}

class CriFixture : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto registry = LocalRegistry::Start();
    ASSERT_THAT(registry.status(), IsOk());
    registry_ = registry->release();
  }
  static void TearDownTestSuite() {
    delete registry_;
    registry_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(registry_, nullptr);
    options_.config_text =
        absl::StrCat(extra_config_, "[network]\nbridge = \"", bridge_, "\"\nnft_table = \"", table_,
                     "\"\npod_cidr = \"", subnet_, "0/24\"\n");
    ASSERT_TRUE(Start());
    grpc::Status pulled = Pull("busybox:latest");
    ASSERT_TRUE(pulled.ok()) << pulled.error_message() << "\n" << cribd_->Log();
  }

  void TearDown() override {
    if (cribd_ != nullptr) {
      for (const cri::PodSandbox& pod : ListPods()) {
        grpc::Status s = RemovePod(pod.id());
        EXPECT_TRUE(s.ok()) << s.error_message();
      }
    }
    cribd_.reset();
    // Whatever a failed test left: monitors and their containers, mounts, cgroups, links.
    for (pid_t pid : ProcessesWith(dir_.path())) ::kill(pid, SIGKILL);
    UnmountAllUnder(dir_.path());
    RemoveCgroupTree(cgroup_parent_);
    Sh("ip link del " + bridge_);
    Sh("nft delete table inet " + table_);
  }

  bool Start() {
    absl::StatusOr<std::unique_ptr<CribdProcess>> cribd = CribdProcess::Start(options_);
    EXPECT_THAT(cribd, IsOk());
    if (!cribd.ok()) return false;
    cribd_ = std::move(*cribd);
    runtime_ = cribd_->Runtime();
    return true;
  }

  std::string Ref(const std::string& name) const {
    return absl::StrCat(registry_->host(), "/", name);
  }

  // Pushes the test image on first use in this registry (each test suite starts its own),
  // then pulls it into cribd.
  grpc::Status Pull(const std::string& name) {
    static std::set<std::string> pushed;
    if (pushed.count(Ref(name)) == 0) {
      absl::StatusOr<TestImages> images = registry_->Push({name});
      if (!images.ok()) return grpc::Status(grpc::StatusCode::INTERNAL, "push " + name);
      pushed.insert(Ref(name));
    }
    cri::PullImageRequest request;
    request.mutable_image()->set_image(Ref(name));
    cri::PullImageResponse response;
    return cribd_->Image()->PullImage(ContextWithDeadline(absl::Seconds(60)).get(), request,
                                      &response);
  }

  cri::PodSandboxConfig PodConfig(const std::string& name, bool host_network = true) {
    cri::PodSandboxConfig config;
    config.mutable_metadata()->set_name(name);
    config.mutable_metadata()->set_namespace_("default");
    config.mutable_metadata()->set_uid(absl::StrCat("uid-", name));
    config.set_log_directory(absl::StrCat(dir_.path(), "/logs/", name));
    config.mutable_linux()->set_cgroup_parent(cgroup_parent_);
    config.mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_network(
        host_network ? cri::NODE : cri::POD);
    return config;
  }

  // A pod of `config` under `runtime_handler` ("": crib's own launcher).
  std::string RunPod(const cri::PodSandboxConfig& config, const std::string& runtime_handler = "") {
    cri::RunPodSandboxRequest request;
    *request.mutable_config() = config;
    request.set_runtime_handler(runtime_handler);
    cri::RunPodSandboxResponse response;
    grpc::Status status =
        runtime_->RunPodSandbox(ContextWithDeadline(absl::Seconds(30)).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message() << "\n" << cribd_->Log();
    pod_configs_[response.pod_sandbox_id()] = config;
    return response.pod_sandbox_id();
  }
  std::string RunPod(const std::string& name) { return RunPod(PodConfig(name)); }

  // UpdateContainerResources with a new memory limit only.
  grpc::Status UpdateMemoryLimit(const std::string& id, int64_t bytes) {
    cri::UpdateContainerResourcesRequest update;
    update.set_container_id(id);
    update.mutable_linux()->set_memory_limit_in_bytes(bytes);
    cri::UpdateContainerResourcesResponse updated;
    return runtime_->UpdateContainerResources(ContextWithDeadline().get(), update, &updated);
  }

  cri::ContainerConfig Config(const std::string& name, std::vector<std::string> command,
                              const std::string& image = "busybox:latest") {
    cri::ContainerConfig config;
    config.mutable_metadata()->set_name(name);
    config.mutable_image()->set_image(Ref(image));
    for (const std::string& c : command) config.add_command(c);
    config.set_log_path(absl::StrCat(name, "/0.log"));
    // As kubelet sends it for a pod that does not share its process namespace.
    config.mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_pid(
        cri::CONTAINER);
    return config;
  }

  grpc::Status Create(const std::string& pod, const cri::ContainerConfig& config,
                      std::string* id = nullptr) {
    cri::CreateContainerRequest request;
    request.set_pod_sandbox_id(pod);
    *request.mutable_config() = config;
    *request.mutable_sandbox_config() = pod_configs_[pod];
    cri::CreateContainerResponse response;
    grpc::Status status =
        runtime_->CreateContainer(ContextWithDeadline(absl::Seconds(30)).get(), request, &response);
    if (id != nullptr) *id = response.container_id();
    return status;
  }

  std::string CreateOk(const std::string& pod, const cri::ContainerConfig& config) {
    std::string id;
    grpc::Status status = Create(pod, config, &id);
    EXPECT_TRUE(status.ok()) << status.error_message() << "\n" << cribd_->Log();
    return id;
  }

  grpc::Status StartContainer(const std::string& id) {
    cri::StartContainerRequest request;
    request.set_container_id(id);
    cri::StartContainerResponse response;
    return runtime_->StartContainer(ContextWithDeadline(absl::Seconds(30)).get(), request,
                                    &response);
  }

  std::string RunContainer(const std::string& pod, const cri::ContainerConfig& config) {
    const std::string id = CreateOk(pod, config);
    grpc::Status status = StartContainer(id);
    EXPECT_TRUE(status.ok()) << status.error_message() << "\n" << cribd_->Log();
    return id;
  }

  grpc::Status StopContainer(const std::string& id, int64_t timeout = 0) {
    cri::StopContainerRequest request;
    request.set_container_id(id);
    request.set_timeout(timeout);
    cri::StopContainerResponse response;
    return runtime_->StopContainer(ContextWithDeadline(absl::Seconds(60)).get(), request,
                                   &response);
  }

  grpc::Status RemoveContainer(const std::string& id) {
    cri::RemoveContainerRequest request;
    request.set_container_id(id);
    cri::RemoveContainerResponse response;
    return runtime_->RemoveContainer(ContextWithDeadline(absl::Seconds(30)).get(), request,
                                     &response);
  }

  cri::ContainerStatusResponse Status(const std::string& id, bool verbose = false) {
    cri::ContainerStatusRequest request;
    request.set_container_id(id);
    request.set_verbose(verbose);
    cri::ContainerStatusResponse response;
    grpc::Status status =
        runtime_->ContainerStatus(ContextWithDeadline().get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  // Polls until the container has exited.
  cri::ContainerStatus WaitExited(const std::string& id) {
    cri::ContainerStatus status;
    for (int i = 0; i < 1000; ++i) {
      status = Status(id).status();
      if (status.state() == cri::CONTAINER_EXITED) break;
      absl::SleepFor(absl::Milliseconds(10));
    }
    return status;
  }

  std::vector<cri::Container> List(const cri::ContainerFilter* filter = nullptr) {
    cri::ListContainersRequest request;
    if (filter != nullptr) *request.mutable_filter() = *filter;
    cri::ListContainersResponse response;
    grpc::Status status = runtime_->ListContainers(ContextWithDeadline().get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return {response.containers().begin(), response.containers().end()};
  }

  grpc::Status Exec(const std::string& id, std::vector<std::string> cmd, cri::ExecSyncResponse* out,
                    int64_t timeout = 0) {
    cri::ExecSyncRequest request;
    request.set_container_id(id);
    for (const std::string& c : cmd) request.add_cmd(c);
    request.set_timeout(timeout);
    return runtime_->ExecSync(ContextWithDeadline(absl::Seconds(60)).get(), request, out);
  }

  std::vector<cri::PodSandbox> ListPods() { return ::crib::testing::ListPods(*runtime_); }
  grpc::Status StopPod(const std::string& id) { return ::crib::testing::StopPod(*runtime_, id); }
  grpc::Status RemovePod(const std::string& id) {
    return ::crib::testing::RemovePod(*runtime_, id);
  }

  std::string LogPath(const std::string& pod, const std::string& name) {
    return absl::StrCat(pod_configs_[pod].log_directory(), "/", name, "/0.log");
  }

  // The stdout records of a container's log, one line each.
  std::string Stdout(const std::string& pod, const std::string& name) {
    std::string out;
    for (const std::string& r : LogRecords(LogPath(pod, name))) {
      if (absl::StartsWith(r, "stdout F ")) absl::StrAppend(&out, r.substr(9), "\n");
    }
    return out;
  }

  // Runs `command` in a new container of `pod` to its end; returns its stdout.
  std::string RunToExit(const std::string& pod, const cri::ContainerConfig& config,
                        cri::ContainerStatus* status = nullptr) {
    const std::string id = RunContainer(pod, config);
    cri::ContainerStatus exited = WaitExited(id);
    EXPECT_EQ(exited.state(), cri::CONTAINER_EXITED);
    if (status != nullptr) *status = exited;
    return Stdout(pod, config.metadata().name());
  }

  // Everything a container can leave behind, counted.
  struct Leftovers {
    size_t monitors, mounts;
    int cgroups, bundles, layers, records;
    bool operator==(const Leftovers&) const = default;
  };
  Leftovers Count() {
    Leftovers l;
    l.monitors = ProcessesWith(options_.state_dir + "/containers/").size();
    l.mounts = 0;
    for (const std::string& m : MountsUnder(dir_.path())) {
      if (!IsPinDir(options_.state_dir, m)) ++l.mounts;
    }
    l.cgroups = CgroupTree(cgroup_parent_);
    l.bundles = EntriesIn(options_.state_dir + "/containers");
    l.layers = EntriesIn(options_.root_dir + "/containers");
    l.records = static_cast<int>(List().size());
    return l;
  }
  static std::string Describe(const Leftovers& l) {
    return absl::StrCat("monitors ", l.monitors, ", mounts ", l.mounts, ", cgroups ", l.cgroups,
                        ", bundles ", l.bundles, ", layers ", l.layers, ", records ", l.records);
  }

  static inline LocalRegistry* registry_ = nullptr;
  std::string extra_config_;  // top-level keys before the [network] table, set before SetUp
  const pid_t pid_ = ::getpid();
  const std::string bridge_ = absl::StrCat("cc", pid_);
  const std::string table_ = absl::StrCat("crib_c", pid_);
  const std::string subnet_ = absl::StrCat("10.", 200 + pid_ % 50, ".", (pid_ / 50) % 256, ".");
  TempDir dir_;
  CribdOptions options_ = CribdProcess::OptionsIn(dir_.path());
  const std::string cgroup_parent_ =
      absl::StrCat("/crib-ctest-", pid_, "-", absl::ToUnixNanos(absl::Now()) % 1000000);
  std::unique_ptr<CribdProcess> cribd_;
  std::unique_ptr<cri::RuntimeService::Stub> runtime_;
  std::map<std::string, cri::PodSandboxConfig> pod_configs_;
};

}  // namespace crib::testing
