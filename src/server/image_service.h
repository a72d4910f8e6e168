// The CRI v1 ImageService as crib serves it, implemented in image.cc. An RPC not implemented
// yet answers UNIMPLEMENTED naming itself (see interceptor.h).
#pragma once

#include "server/dependencies.h"

namespace crib::server {

class ImageService final : public cri::ImageService::Service {
 public:
  explicit ImageService(Dependencies deps) : deps_(deps) {}

 private:
  [[maybe_unused]] Dependencies deps_;
};

}  // namespace crib::server
