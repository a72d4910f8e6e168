// What the gRPC handlers call into: the daemon's services, owned by cribd and outliving the
// gRPC server. Each room's issue adds its service here.
#pragma once

#include "api/cri/api.grpc.pb.h"
#include "config/config.h"
#include "container/service.h"
#include "container/stats.h"
#include "image/image_store.h"
#include "network/backend.h"
#include "pod/service.h"
#include "store/store.h"
#include "stream/server.h"

namespace crib::server {

namespace cri = ::runtime::v1;

struct Dependencies {
  const Config& config;
  network::NetworkBackend& network;
  store::Store& store;
  pod::PodService& pods;
  image::ImageStore& images;
  container::ContainerService& containers;
  stream::Server& streams;
  container::StatsService& stats;
};

}  // namespace crib::server
