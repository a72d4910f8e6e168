// GetContainerEvents: a stream of the container room's lifecycle events, each with its pod's
// status and the statuses of the pod's containers, until the client goes away, the server
// shuts down, or the subscriber falls behind (then the stream ends with ResourceExhausted and
// the client relists, as kubelet's evented PLEG does).
#include "absl/time/clock.h"
#include "server/cri_convert.h"
#include "server/grpc_status.h"
#include "server/runtime_service.h"

namespace crib::server {
namespace {

cri::ContainerEventType FromType(container::ContainerEvent::Type type) {
  switch (type) {
    case container::ContainerEvent::Type::kCreated:
      return cri::CONTAINER_CREATED_EVENT;
    case container::ContainerEvent::Type::kStarted:
      return cri::CONTAINER_STARTED_EVENT;
    case container::ContainerEvent::Type::kStopped:
      return cri::CONTAINER_STOPPED_EVENT;
    case container::ContainerEvent::Type::kDeleted:
      break;
  }
  return cri::CONTAINER_DELETED_EVENT;
}

}  // namespace

grpc::Status RuntimeService::GetContainerEvents(
    grpc::ServerContext* context, const cri::GetEventsRequest*,
    grpc::ServerWriter<cri::ContainerEventResponse>* writer) {
  std::unique_ptr<container::EventHub::Subscription> subscription =
      deps_.containers.events().Subscribe();
  while (!context->IsCancelled()) {
    container::ContainerEvent event;
    if (!subscription->Next(&event, absl::Milliseconds(500))) {
      if (subscription->dropped()) {
        return ToGrpcStatus(absl::ResourceExhaustedError(
            "GetContainerEvents: this subscriber fell behind and was dropped; list again"));
      }
      continue;
    }
    cri::ContainerEventResponse response;
    response.set_container_id(event.container_id);
    response.set_container_event_type(FromType(event.type));
    response.set_created_at(event.at_ns);
    // The pod and its containers as they are now (a removed pod or container is left out).
    if (absl::StatusOr<pod::PodSandbox> pod = deps_.pods.Get(event.pod_id); pod.ok()) {
      FillPodSandboxStatus(*pod, response.mutable_pod_sandbox_status());
    }
    container::ContainerFilter filter;
    filter.pod_id = event.pod_id;
    if (absl::StatusOr<std::vector<container::Container>> containers =
            deps_.containers.List(filter);
        containers.ok()) {
      for (const container::Container& c : *containers) {
        FillContainerStatus(c, response.add_containers_statuses());
      }
    }
    if (!writer->Write(response)) break;  // the client is gone
  }
  return grpc::Status::OK;
}

}  // namespace crib::server
