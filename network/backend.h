// The one interface every pod network backend implements (bridge, cni), and the factory that
// picks one from the configuration. Knows nothing of gRPC.
#pragma once

#include <memory>

#include "absl/strings/string_view.h"
#include "common/condition.h"
#include "config/config.h"

namespace crib::network {

class NetworkBackend {
 public:
  virtual ~NetworkBackend() = default;

  virtual absl::string_view Name() const = 0;

  // The NetworkReady condition of the CRI Status RPC, from the backend's real state.
  virtual Readiness Status() const = 0;
};

std::unique_ptr<NetworkBackend> MakeNetworkBackend(const Config& config);

}  // namespace crib::network
