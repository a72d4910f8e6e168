// Version, Status and RuntimeConfig: what the runtime is, whether it and its network are
// ready, and the cgroup driver kubelet must agree with.
#include "absl/strings/str_cat.h"
#include "cgroup/systemd_bus.h"
#include "common/version.h"
#include "pod/userns.h"
#include "runtime/readiness.h"
#include "server/grpc_status.h"
#include "server/runtime_service.h"

namespace crib::server {
namespace {

// The CRI API version string kubelet expects in VersionResponse.version.
constexpr char kKubeletApiVersion[] = "0.1.0";

void AddCondition(cri::RuntimeStatus& status, const char* type, const Readiness& readiness) {
  cri::RuntimeCondition* condition = status.add_conditions();
  condition->set_type(type);
  condition->set_status(readiness.ready);
  condition->set_reason(readiness.reason);
  condition->set_message(readiness.message);
}

}  // namespace

grpc::Status RuntimeService::Version(grpc::ServerContext*, const cri::VersionRequest*,
                                     cri::VersionResponse* response) {
  response->set_version(kKubeletApiVersion);
  response->set_runtime_name("crib");
  response->set_runtime_version(kRuntimeVersion);
  response->set_runtime_api_version("v1");
  return grpc::Status::OK;
}

grpc::Status RuntimeService::Status(grpc::ServerContext*, const cri::StatusRequest* request,
                                    cri::StatusResponse* response) {
  cri::RuntimeStatus* status = response->mutable_status();
  Readiness runtime_ready = runtime::CheckRuntimeReady(deps_.config);
  if (runtime_ready.ready && deps_.config.cgroup_driver == CgroupDriver::kSystemd) {
    if (absl::Status s = cgroup::SystemdAnswers(); !s.ok()) {
      runtime_ready = {
          false, "SystemdUnreachable",
          absl::StrCat("cgroup_driver is systemd, but systemd does not answer: ", s.message())};
    }
  }
  AddCondition(*status, "RuntimeReady", runtime_ready);
  AddCondition(*status, "NetworkReady", deps_.network.Status());
  // The default handler (""), also by its name: crib's own launcher; then the OCI runtimes.
  // Only crib's launcher runs pods in user namespaces, where the kernel id-maps mounts.
  const bool kernel_rro = runtime::SupportsRecursiveReadOnly();
  const bool kernel_userns = pod::UserNamespaceSupport(deps_.config.root_dir).supported;
  auto add_handler = [&](const std::string& name, bool rro, bool userns) {
    cri::RuntimeHandler* handler = response->add_runtime_handlers();
    handler->set_name(name);
    handler->mutable_features()->set_recursive_read_only_mounts(kernel_rro && rro);
    handler->mutable_features()->set_user_namespaces(userns);
  };
  add_handler("", true, kernel_userns);
  add_handler(deps_.config.default_runtime_name, true, kernel_userns);
  for (const auto& [name, runtime] : deps_.config.runtimes) {
    add_handler(name, runtime.recursive_read_only_mounts, false);
  }
  // Merge and Strict are both implemented (container/users.cc).
  response->mutable_features()->set_supplemental_groups_policy(true);
  if (request->verbose()) {
    (*response->mutable_info())["config"] = ConfigToJson(deps_.config);
  }
  return grpc::Status::OK;
}

grpc::Status RuntimeService::RuntimeConfig(grpc::ServerContext*, const cri::RuntimeConfigRequest*,
                                           cri::RuntimeConfigResponse* response) {
  if (deps_.config.cgroup_driver == CgroupDriver::kCgroupfs) {
    response->mutable_linux()->set_cgroup_driver(cri::CgroupDriver::CGROUPFS);
    return grpc::Status::OK;
  }
  // SYSTEMD only while systemd answers: kubelet takes its own driver from this reply.
  if (absl::Status s = cgroup::SystemdAnswers(); !s.ok()) {
    return ToGrpcStatus(absl::FailedPreconditionError(
        absl::StrCat("cgroup_driver is systemd, but systemd does not answer: ", s.message())));
  }
  response->mutable_linux()->set_cgroup_driver(cri::CgroupDriver::SYSTEMD);
  return grpc::Status::OK;
}

grpc::Status RuntimeService::UpdateRuntimeConfig(grpc::ServerContext*,
                                                 const cri::UpdateRuntimeConfigRequest* request,
                                                 cri::UpdateRuntimeConfigResponse*) {
  // kubelet sends the node's pod CIDR; the bridge backend takes new pods' addresses from it.
  return ToGrpcStatus(
      deps_.network.SetPodCidr(request->runtime_config().network_config().pod_cidr()));
}

}  // namespace crib::server
