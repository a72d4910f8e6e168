#include "network/backend.h"

#include "absl/strings/str_cat.h"
#include "network/bridge.h"
#include "network/cni.h"

namespace crib::network {
namespace {

// Stands in for a backend whose issue has not landed yet, and says so in Status, so that
// kubelet never takes the node for network-ready.
class MissingBackend final : public NetworkBackend {
 public:
  explicit MissingBackend(absl::string_view name) : name_(name) {}

  absl::string_view Name() const override { return name_; }

  Readiness Status() const override {
    return Readiness{false, "NetworkBackendNotImplemented", std::string(Unavailable().message())};
  }

  absl::StatusOr<PodNetworkStatus> SetUp(const PodNetworkConfig&) override { return Unavailable(); }
  absl::Status TearDown(const PodNetworkConfig&) override { return absl::OkStatus(); }
  absl::Status SetPodCidr(absl::string_view) override { return absl::OkStatus(); }

 private:
  absl::Status Unavailable() const {
    return absl::UnimplementedError(absl::StrCat(
        "the ", name_,
        " network backend is not implemented in this build of crib, so no pod network can be "
        "set up"));
  }

  std::string name_;
};

}  // namespace

std::unique_ptr<NetworkBackend> MakeNetworkBackend(const Config& config, store::Store& store) {
  if (config.network.backend == NetworkBackendKind::kBridge) {
    return std::make_unique<BridgeBackend>(config.network, store);
  }
  if (config.network.backend == NetworkBackendKind::kCni) {
    return std::make_unique<CniBackend>(config.network,
                                        absl::StrCat(config.root_dir, "/cni/results"));
  }
  return std::make_unique<MissingBackend>(NetworkBackendName(config.network.backend));
}

}  // namespace crib::network
