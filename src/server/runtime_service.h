// The CRI v1 RuntimeService as crib serves it. Each group of RPCs has its own file (status.cc,
// pod_sandbox.cc, container.cc, events.cc, exec.cc, stats.cc, list_stream.cc); an RPC that
// no file implements answers UNIMPLEMENTED naming itself (see interceptor.h).
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
  grpc::Status UpdateRuntimeConfig(grpc::ServerContext* context,
                                   const cri::UpdateRuntimeConfigRequest* request,
                                   cri::UpdateRuntimeConfigResponse* response) override;

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
  grpc::Status UpdatePodSandboxResources(grpc::ServerContext* context,
                                         const cri::UpdatePodSandboxResourcesRequest* request,
                                         cri::UpdatePodSandboxResourcesResponse* response) override;

  // container.cc
  grpc::Status CreateContainer(grpc::ServerContext* context,
                               const cri::CreateContainerRequest* request,
                               cri::CreateContainerResponse* response) override;
  grpc::Status StartContainer(grpc::ServerContext* context,
                              const cri::StartContainerRequest* request,
                              cri::StartContainerResponse* response) override;
  grpc::Status StopContainer(grpc::ServerContext* context, const cri::StopContainerRequest* request,
                             cri::StopContainerResponse* response) override;
  grpc::Status RemoveContainer(grpc::ServerContext* context,
                               const cri::RemoveContainerRequest* request,
                               cri::RemoveContainerResponse* response) override;
  grpc::Status ContainerStatus(grpc::ServerContext* context,
                               const cri::ContainerStatusRequest* request,
                               cri::ContainerStatusResponse* response) override;
  grpc::Status ListContainers(grpc::ServerContext* context,
                              const cri::ListContainersRequest* request,
                              cri::ListContainersResponse* response) override;
  grpc::Status ExecSync(grpc::ServerContext* context, const cri::ExecSyncRequest* request,
                        cri::ExecSyncResponse* response) override;
  grpc::Status UpdateContainerResources(grpc::ServerContext* context,
                                        const cri::UpdateContainerResourcesRequest* request,
                                        cri::UpdateContainerResourcesResponse* response) override;
  grpc::Status ReopenContainerLog(grpc::ServerContext* context,
                                  const cri::ReopenContainerLogRequest* request,
                                  cri::ReopenContainerLogResponse* response) override;

  // events.cc
  grpc::Status GetContainerEvents(grpc::ServerContext* context,
                                  const cri::GetEventsRequest* request,
                                  grpc::ServerWriter<cri::ContainerEventResponse>* writer) override;

  // exec.cc
  grpc::Status Exec(grpc::ServerContext* context, const cri::ExecRequest* request,
                    cri::ExecResponse* response) override;
  grpc::Status Attach(grpc::ServerContext* context, const cri::AttachRequest* request,
                      cri::AttachResponse* response) override;
  grpc::Status PortForward(grpc::ServerContext* context, const cri::PortForwardRequest* request,
                           cri::PortForwardResponse* response) override;

  // stats.cc
  grpc::Status ContainerStats(grpc::ServerContext* context,
                              const cri::ContainerStatsRequest* request,
                              cri::ContainerStatsResponse* response) override;
  grpc::Status ListContainerStats(grpc::ServerContext* context,
                                  const cri::ListContainerStatsRequest* request,
                                  cri::ListContainerStatsResponse* response) override;
  grpc::Status StreamContainerStats(
      grpc::ServerContext* context, const cri::StreamContainerStatsRequest* request,
      grpc::ServerWriter<cri::StreamContainerStatsResponse>* writer) override;
  grpc::Status PodSandboxStats(grpc::ServerContext* context,
                               const cri::PodSandboxStatsRequest* request,
                               cri::PodSandboxStatsResponse* response) override;
  grpc::Status ListPodSandboxStats(grpc::ServerContext* context,
                                   const cri::ListPodSandboxStatsRequest* request,
                                   cri::ListPodSandboxStatsResponse* response) override;
  grpc::Status StreamPodSandboxStats(
      grpc::ServerContext* context, const cri::StreamPodSandboxStatsRequest* request,
      grpc::ServerWriter<cri::StreamPodSandboxStatsResponse>* writer) override;
  grpc::Status ListMetricDescriptors(grpc::ServerContext* context,
                                     const cri::ListMetricDescriptorsRequest* request,
                                     cri::ListMetricDescriptorsResponse* response) override;
  grpc::Status ListPodSandboxMetrics(grpc::ServerContext* context,
                                     const cri::ListPodSandboxMetricsRequest* request,
                                     cri::ListPodSandboxMetricsResponse* response) override;
  grpc::Status StreamPodSandboxMetrics(
      grpc::ServerContext* context, const cri::StreamPodSandboxMetricsRequest* request,
      grpc::ServerWriter<cri::StreamPodSandboxMetricsResponse>* writer) override;

  // list_stream.cc: the List RPCs' answers, sent in batches on a server stream.
  grpc::Status StreamPodSandboxes(
      grpc::ServerContext* context, const cri::StreamPodSandboxesRequest* request,
      grpc::ServerWriter<cri::StreamPodSandboxesResponse>* writer) override;
  grpc::Status StreamContainers(grpc::ServerContext* context,
                                const cri::StreamContainersRequest* request,
                                grpc::ServerWriter<cri::StreamContainersResponse>* writer) override;

 private:
  Dependencies deps_;
};

}  // namespace crib::server
