// The common ground of the pod-level tests (pods, CNI): a cribd of the test's own in a
// temporary directory, pods under a cgroup parent of the test's own, the pod RPCs, and the
// removal of whatever a failed test left of its pods.
#pragma once

#include <signal.h>
#include <unistd.h>

#include <memory>
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
#include "support/status_matchers.h"

namespace crib::testing {

class PodFixture : public ::testing::Test {
 protected:
  // `cgroup_prefix` names the pods' cgroup parent, made unique per test.
  explicit PodFixture(const std::string& cgroup_prefix)
      : cgroup_parent_(absl::StrCat("/", cgroup_prefix, "-", pid_, "-",
                                    ::testing::UnitTest::GetInstance()->random_seed(), "-",
                                    absl::ToUnixNanos(absl::Now()) % 1000000)) {}

  bool Start() {
    absl::StatusOr<std::unique_ptr<CribdProcess>> cribd = CribdProcess::Start(options_);
    EXPECT_THAT(cribd, IsOk());
    if (!cribd.ok()) return false;
    cribd_ = std::move(*cribd);
    runtime_ = cribd_->Runtime();
    return true;
  }

  // Pods, their pause processes, mounts under the test's directory and cgroups: whatever a
  // failed test left. Stops cribd.
  void RemoveWhatPodsLeft() {
    if (cribd_ != nullptr) {
      for (const cri::PodSandbox& pod : List()) (void)Remove(pod.id());
    }
    cribd_.reset();
    for (pid_t pid : PauseProcesses()) {
      if (absl::StrContains(Slurp(absl::StrCat("/proc/", pid, "/cgroup")), cgroup_parent_)) {
        ::kill(pid, SIGKILL);
      }
    }
    UnmountAllUnder(dir_.path());
    RemoveCgroupTree(cgroup_parent_);
  }

  // A pod with the host's network (labelled app=<name>), and one with a network of its own.
  cri::RunPodSandboxRequest HostPod(const std::string& name) {
    cri::RunPodSandboxRequest request;
    cri::PodSandboxConfig* config = request.mutable_config();
    config->mutable_metadata()->set_name(name);
    config->mutable_metadata()->set_namespace_("default");
    config->mutable_metadata()->set_uid(absl::StrCat("uid-", name));
    config->mutable_linux()->set_cgroup_parent(cgroup_parent_);
    config->mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_network(
        cri::NODE);
    (*config->mutable_labels())["app"] = name;
    return request;
  }
  cri::RunPodSandboxRequest NetnsPod(const std::string& name) {
    cri::RunPodSandboxRequest request = HostPod(name);
    Namespaces(request).set_network(cri::POD);
    return request;
  }
  // `request` with the pod's pid namespace mode set to `pid` (CONTAINER: as kubelet's pods
  // without shareProcessNamespace, which have no crib-pause).
  static cri::RunPodSandboxRequest WithPid(cri::RunPodSandboxRequest request,
                                           cri::NamespaceMode pid) {
    Namespaces(request).set_pid(pid);
    return request;
  }
  static cri::NamespaceOption& Namespaces(cri::RunPodSandboxRequest& request) {
    return *request.mutable_config()
                ->mutable_linux()
                ->mutable_security_context()
                ->mutable_namespace_options();
  }

  grpc::Status Run(const cri::RunPodSandboxRequest& request, std::string* id = nullptr) {
    cri::RunPodSandboxResponse response;
    grpc::Status status =
        runtime_->RunPodSandbox(ContextWithDeadline(absl::Seconds(60)).get(), request, &response);
    if (id != nullptr) *id = response.pod_sandbox_id();
    return status;
  }
  std::string RunOk(const cri::RunPodSandboxRequest& request) {
    std::string id;
    grpc::Status status = Run(request, &id);
    EXPECT_TRUE(status.ok()) << status.error_message() << "\n" << cribd_->Log();
    return id;
  }

  grpc::Status Stop(const std::string& id) { return StopPod(*runtime_, id); }
  grpc::Status Remove(const std::string& id) { return RemovePod(*runtime_, id); }
  std::vector<cri::PodSandbox> List(const cri::PodSandboxFilter* filter = nullptr) {
    return ListPods(*runtime_, filter);
  }

  const pid_t pid_ = ::getpid();
  TempDir dir_;
  CribdOptions options_ = CribdProcess::OptionsIn(dir_.path());
  const std::string cgroup_parent_;
  std::unique_ptr<CribdProcess> cribd_;
  std::unique_ptr<cri::RuntimeService::Stub> runtime_;
};

}  // namespace crib::testing
