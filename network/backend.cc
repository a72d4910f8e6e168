#include "network/backend.h"

#include "absl/strings/str_cat.h"
#include "network/bridge.h"
#include "network/cni.h"

namespace crib::network {

std::unique_ptr<NetworkBackend> MakeNetworkBackend(const Config& config, store::Store& store) {
  switch (config.network.backend) {
    case NetworkBackendKind::kCni:
      return std::make_unique<CniBackend>(config.network,
                                          absl::StrCat(config.root_dir, "/cni/results"));
    case NetworkBackendKind::kBridge:
      break;
  }
  return std::make_unique<BridgeBackend>(config.network, store);
}

}  // namespace crib::network
