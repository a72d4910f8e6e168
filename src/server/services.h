// The CRI v1 RuntimeService and ImageService as crib serves them. Each RPC group has its own
// file (status.cc, image.cc, later pod_sandbox.cc, container.cc, exec.cc); an RPC that no file
// implements yet answers UNIMPLEMENTED naming itself (see interceptor.h).
#pragma once

#include "api/cri/api.grpc.pb.h"
#include "config/config.h"
#include "network/backend.h"
#include "store/store.h"

namespace crib::server {

namespace cri = ::runtime::v1;

// What the handlers call into; owned by the daemon, outliving the gRPC server.
struct Dependencies {
  const Config& config;
  network::NetworkBackend& network;
  store::Store& store;
};

class RuntimeService final : public cri::RuntimeService::Service {
 public:
  explicit RuntimeService(Dependencies deps) : deps_(deps) {}

  grpc::Status Version(grpc::ServerContext* context, const cri::VersionRequest* request,
                       cri::VersionResponse* response) override;
  grpc::Status Status(grpc::ServerContext* context, const cri::StatusRequest* request,
                      cri::StatusResponse* response) override;
  grpc::Status RuntimeConfig(grpc::ServerContext* context, const cri::RuntimeConfigRequest* request,
                             cri::RuntimeConfigResponse* response) override;

 private:
  Dependencies deps_;
};

class ImageService final : public cri::ImageService::Service {
 public:
  explicit ImageService(Dependencies deps) : deps_(deps) {}

 private:
  [[maybe_unused]] Dependencies deps_;
};

}  // namespace crib::server
