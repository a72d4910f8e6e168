// The CRI v1 RuntimeService as crib serves it. Each group of RPCs has its own file (status.cc,
// later pod_sandbox.cc, container.cc, exec.cc, stats.cc); an RPC that no file implements yet
// answers UNIMPLEMENTED naming itself (see interceptor.h).
#pragma once

#include "server/dependencies.h"

namespace crib::server {

class RuntimeService final : public cri::RuntimeService::Service {
 public:
  explicit RuntimeService(Dependencies deps) : deps_(deps) {}

  // status.cc
  grpc::Status Version(grpc::ServerContext* context, const cri::VersionRequest* request,
                       cri::VersionResponse* response) override;
  grpc::Status Status(grpc::ServerContext* context, const cri::StatusRequest* request,
                      cri::StatusResponse* response) override;
  grpc::Status RuntimeConfig(grpc::ServerContext* context, const cri::RuntimeConfigRequest* request,
                             cri::RuntimeConfigResponse* response) override;

  // pod_sandbox.cc
  grpc::Status RunPodSandbox(grpc::ServerContext* context, const cri::RunPodSandboxRequest* request,
                             cri::RunPodSandboxResponse* response) override;
  grpc::Status StopPodSandbox(grpc::ServerContext* context,
                              const cri::StopPodSandboxRequest* request,
                              cri::StopPodSandboxResponse* response) override;
  grpc::Status RemovePodSandbox(grpc::ServerContext* context,
                                const cri::RemovePodSandboxRequest* request,
                                cri::RemovePodSandboxResponse* response) override;
  grpc::Status PodSandboxStatus(grpc::ServerContext* context,
                                const cri::PodSandboxStatusRequest* request,
                                cri::PodSandboxStatusResponse* response) override;
  grpc::Status ListPodSandbox(grpc::ServerContext* context,
                              const cri::ListPodSandboxRequest* request,
                              cri::ListPodSandboxResponse* response) override;

 private:
  Dependencies deps_;
};

}  // namespace crib::server
