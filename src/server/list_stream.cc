// StreamPodSandboxes, StreamContainers and StreamImages: the answer of ListPodSandbox,
// ListContainers and ListImages for the same filter, sent in batches (batch_stream.h).
#include "server/batch_stream.h"
#include "server/image_service.h"
#include "server/runtime_service.h"

namespace crib::server {

grpc::Status RuntimeService::StreamPodSandboxes(
    grpc::ServerContext* context, const cri::StreamPodSandboxesRequest* request,
    grpc::ServerWriter<cri::StreamPodSandboxesResponse>* writer) {
  cri::ListPodSandboxRequest list;
  if (request->has_filter()) *list.mutable_filter() = request->filter();
  cri::ListPodSandboxResponse all;
  if (grpc::Status s = ListPodSandbox(context, &list, &all); !s.ok()) return s;
  return WriteInBatches(context, writer, *all.mutable_items(),
                        &cri::StreamPodSandboxesResponse::mutable_pod_sandboxes);
}

grpc::Status RuntimeService::StreamContainers(
    grpc::ServerContext* context, const cri::StreamContainersRequest* request,
    grpc::ServerWriter<cri::StreamContainersResponse>* writer) {
  cri::ListContainersRequest list;
  if (request->has_filter()) *list.mutable_filter() = request->filter();
  cri::ListContainersResponse all;
  if (grpc::Status s = ListContainers(context, &list, &all); !s.ok()) return s;
  return WriteInBatches(context, writer, *all.mutable_containers(),
                        &cri::StreamContainersResponse::mutable_containers);
}

grpc::Status ImageService::StreamImages(grpc::ServerContext* context,
                                        const cri::StreamImagesRequest* request,
                                        grpc::ServerWriter<cri::StreamImagesResponse>* writer) {
  cri::ListImagesRequest list;
  if (request->has_filter()) *list.mutable_filter() = request->filter();
  cri::ListImagesResponse all;
  if (grpc::Status s = ListImages(context, &list, &all); !s.ok()) return s;
  return WriteInBatches(context, writer, *all.mutable_images(),
                        &cri::StreamImagesResponse::mutable_images);
}

}  // namespace crib::server
