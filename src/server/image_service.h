// The CRI v1 ImageService as crib serves it, implemented in image.cc over image::ImageStore
// (StreamImages in list_stream.cc).
// An RPC not implemented yet answers UNIMPLEMENTED naming itself (see interceptor.h).
#pragma once

#include "server/dependencies.h"

namespace crib::server {

class ImageService final : public cri::ImageService::Service {
 public:
  explicit ImageService(Dependencies deps) : deps_(deps) {}

  grpc::Status PullImage(grpc::ServerContext* context, const cri::PullImageRequest* request,
                         cri::PullImageResponse* response) override;
  grpc::Status ListImages(grpc::ServerContext* context, const cri::ListImagesRequest* request,
                          cri::ListImagesResponse* response) override;
  grpc::Status StreamImages(grpc::ServerContext* context, const cri::StreamImagesRequest* request,
                            grpc::ServerWriter<cri::StreamImagesResponse>* writer) override;
  grpc::Status ImageStatus(grpc::ServerContext* context, const cri::ImageStatusRequest* request,
                           cri::ImageStatusResponse* response) override;
  grpc::Status RemoveImage(grpc::ServerContext* context, const cri::RemoveImageRequest* request,
                           cri::RemoveImageResponse* response) override;
  grpc::Status ImageFsInfo(grpc::ServerContext* context, const cri::ImageFsInfoRequest* request,
                           cri::ImageFsInfoResponse* response) override;

 private:
  Dependencies deps_;
};

}  // namespace crib::server
