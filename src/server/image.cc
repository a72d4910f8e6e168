// ImageService: PullImage, ListImages, ImageStatus, RemoveImage, ImageFsInfo, each a thin
// translation to one image::ImageStore call (ImageFsInfo's container file system comes from
// the stats room's writable-layer sampler).
#include "common/errors.h"
#include "container/stats.h"
#include "image/image_store.h"
#include "nlohmann/json.hpp"
#include "server/grpc_status.h"
#include "server/image_service.h"

namespace crib::server {
namespace {

void ToCri(const image::Image& image, cri::Image& out) {
  out.set_id(image.id);
  for (const std::string& tag : image.repo_tags) out.add_repo_tags(tag);
  for (const std::string& digest : image.repo_digests) out.add_repo_digests(digest);
  out.set_size(image.size);
  if (image.uid.has_value()) {
    out.mutable_uid()->set_value(*image.uid);
  } else {
    out.set_username(image.username);
  }
  out.mutable_spec()->set_image(image.id);
  for (const auto& [k, v] : image.annotations) (*out.mutable_spec()->mutable_annotations())[k] = v;
}

void ToCri(const image::FsUsage& usage, cri::FilesystemUsage& out) {
  out.set_timestamp(usage.timestamp_ns);
  out.mutable_fs_id()->set_mountpoint(usage.mountpoint);
  out.mutable_used_bytes()->set_value(usage.used_bytes);
  out.mutable_inodes_used()->set_value(usage.inodes_used);
}

}  // namespace

grpc::Status ImageService::PullImage(grpc::ServerContext* context,
                                     const cri::PullImageRequest* request,
                                     cri::PullImageResponse* response) {
  image::registry::PullOptions options;
  const cri::AuthConfig& auth = request->auth();
  options.credentials.username = auth.username();
  options.credentials.password = auth.password();
  options.credentials.auth = auth.auth();
  options.credentials.identity_token = auth.identity_token();
  options.credentials.registry_token = auth.registry_token();
  // A client deadline or cancel stops the pull.
  options.cancelled = [context] { return context->IsCancelled(); };
  absl::StatusOr<std::string> id = deps_.images.Pull(request->image().image(), options);
  if (!id.ok()) return ToGrpcStatus(id.status());
  response->set_image_ref(*id);
  return grpc::Status::OK;
}

grpc::Status ImageService::ListImages(grpc::ServerContext*, const cri::ListImagesRequest* request,
                                      cri::ListImagesResponse* response) {
  absl::StatusOr<std::vector<image::Image>> images =
      deps_.images.List(request->filter().image().image());
  if (!images.ok()) return ToGrpcStatus(images.status());
  for (const image::Image& image : *images) ToCri(image, *response->add_images());
  return grpc::Status::OK;
}

grpc::Status ImageService::ImageStatus(grpc::ServerContext*, const cri::ImageStatusRequest* request,
                                       cri::ImageStatusResponse* response) {
  absl::StatusOr<image::Image> image =
      deps_.images.Status(request->image().image(), request->verbose());
  // CRI: an image that is not present is an empty response, not an error.
  if (IsCriNotFound(image.status())) return grpc::Status::OK;
  if (!image.ok()) return ToGrpcStatus(image.status());
  ToCri(*image, *response->mutable_image());
  if (request->verbose()) {
    nlohmann::json info;
    info["id"] = image->id;
    info["manifestDigest"] = image->manifest_digest;
    info["chainIDs"] = image->chain_ids;
    info["imageSpec"] = nlohmann::json::parse(image->config_json, nullptr, false);
    (*response->mutable_info())["info"] = info.dump();
  }
  return grpc::Status::OK;
}

grpc::Status ImageService::RemoveImage(grpc::ServerContext*, const cri::RemoveImageRequest* request,
                                       cri::RemoveImageResponse*) {
  absl::Status status = deps_.images.Remove(request->image().image());
  // CRI: removing an image that is not there succeeds.
  if (IsCriNotFound(status)) return grpc::Status::OK;
  return ToGrpcStatus(status);
}

grpc::Status ImageService::ImageFsInfo(grpc::ServerContext*, const cri::ImageFsInfoRequest*,
                                       cri::ImageFsInfoResponse* response) {
  absl::StatusOr<image::FsUsage> images = deps_.images.FsInfo();
  if (!images.ok()) return ToGrpcStatus(images.status());
  ToCri(*images, *response->add_image_filesystems());
  // The writable layers, as the stats sampler last measured them.
  absl::StatusOr<container::FilesystemUsage> layers = deps_.stats.WritableLayers();
  if (!layers.ok()) return ToGrpcStatus(layers.status());
  ToCri(image::FsUsage{layers->mountpoint, layers->used_bytes, layers->inodes_used,
                       layers->timestamp_ns},
        *response->add_container_filesystems());
  return grpc::Status::OK;
}

}  // namespace crib::server
