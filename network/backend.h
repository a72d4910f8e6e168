// The one interface every pod network backend implements (bridge, cni), and the factory that
// picks one from the configuration. Knows nothing of gRPC: the pod room translates the CRI
// request into a PodNetworkConfig.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/condition.h"
#include "config/config.h"

namespace crib::store {
class Store;
}

namespace crib::network {

enum class Protocol { kTcp, kUdp, kSctp };

// A CRI PortMapping: host_ip:host_port on the node forwards to container_port in the pod.
struct PortMapping {
  Protocol protocol = Protocol::kTcp;
  uint16_t container_port = 0;
  uint16_t host_port = 0;
  std::string host_ip;  // empty: every address of the node
};

// What a backend needs to attach one pod.
struct PodNetworkConfig {
  std::string pod_id;  // crib's sandbox id
  std::string name;    // pod metadata, for CNI_ARGS and logs
  std::string namespace_;
  std::string uid;
  std::string netns_path;  // the pinned network namespace (e.g. /run/crib/netns/<id>)
  std::string interface = "eth0";
  std::vector<PortMapping> port_mappings;
  std::map<std::string, std::string> annotations;  // bandwidth and other hints for CNI
  // The pod's DNS config (CRI DNSConfig), for CNI's dns capability.
  std::vector<std::string> dns_servers;
  std::vector<std::string> dns_searches;
  std::vector<std::string> dns_options;
  // Set by RemovePodSandbox: a TearDown that has failed repeatedly may then give up (and log
  // what it leaves behind) instead of blocking the pod's removal forever.
  bool removing = false;
  // Set by StopPodSandbox: links whose deletion waits on the kernel (a veth pair: about 20 ms of
  // RCU grace periods) may be taken down at once and deleted in the background.
  bool defer_link_deletion = false;
};

// What the pod got: its addresses, the first one primary (PodSandboxStatus.network.ip).
struct PodNetworkStatus {
  std::vector<std::string> ips;
};

class NetworkBackend {
 public:
  virtual ~NetworkBackend() = default;

  virtual absl::string_view Name() const = 0;

  // The NetworkReady condition of the CRI Status RPC, from the backend's real state.
  virtual Readiness Status() const = 0;

  // Attaches the pod in `config.netns_path`: all or nothing, so a failure leaves no link,
  // address, rule or allocation behind, and the error names the failing step.
  virtual absl::StatusOr<PodNetworkStatus> SetUp(const PodNetworkConfig& config) = 0;

  // Detaches the pod and releases what SetUp took. Idempotent; succeeds when the pod was never
  // set up, was half torn down, or its network namespace is already gone.
  virtual absl::Status TearDown(const PodNetworkConfig& config) = 0;

  // UpdateRuntimeConfig's pod CIDR; backends that take addresses from elsewhere ignore it.
  virtual absl::Status SetPodCidr(absl::string_view cidr) = 0;

  // At start-up: detaches whatever the backend still holds for pods that are not in
  // `live_pod_ids` (a crash between a pod's removal steps). Returns how many it detached.
  virtual absl::StatusOr<int> RemoveOrphans(const std::set<std::string>& live_pod_ids) = 0;
};

std::unique_ptr<NetworkBackend> MakeNetworkBackend(const Config& config, store::Store& store);

}  // namespace crib::network
