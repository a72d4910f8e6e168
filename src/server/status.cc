// Version, Status and RuntimeConfig: what the runtime is, whether it and its network are
// ready, and the cgroup driver kubelet must agree with.
#include "common/version.h"
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
  AddCondition(*status, "RuntimeReady", runtime::CheckRuntimeReady(deps_.config));
  AddCondition(*status, "NetworkReady", deps_.network.Status());
  // The default handler (""): crib's own launcher.
  cri::RuntimeHandler* handler = response->add_runtime_handlers();
  handler->set_name("");
  handler->mutable_features()->set_recursive_read_only_mounts(
      runtime::SupportsRecursiveReadOnly());
  handler->mutable_features()->set_user_namespaces(false);
  // Merge and Strict are both implemented (container/users.cc).
  response->mutable_features()->set_supplemental_groups_policy(true);
  if (request->verbose()) {
    (*response->mutable_info())["config"] = ConfigToJson(deps_.config);
  }
  return grpc::Status::OK;
}

grpc::Status RuntimeService::RuntimeConfig(grpc::ServerContext*, const cri::RuntimeConfigRequest*,
                                           cri::RuntimeConfigResponse* response) {
  response->mutable_linux()->set_cgroup_driver(deps_.config.cgroup_driver == CgroupDriver::kSystemd
                                                   ? cri::CgroupDriver::SYSTEMD
                                                   : cri::CgroupDriver::CGROUPFS);
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
