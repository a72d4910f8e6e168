// The built-in bridge network: one Linux bridge with the pod CIDR's gateway address, a veth
// pair per pod (host end on the bridge, the other end as eth0 in the pod's namespace), the
// pod's address from crib's IPAM, and masquerading and hostPorts in crib's nftables table.
// Like the CNI bridge + host-local + portmap plugins, without running any of them. It never
// switches the namespace of a thread it does not own, never runs `ip` or `nft`, and never
// touches links, addresses or nftables tables other than its own.
#pragma once

#include <memory>
#include <set>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/work_queue.h"
#include "config/config.h"
#include "network/backend.h"
#include "network/ipam.h"
#include "network/nft.h"

namespace crib::network {

class BridgeBackend final : public NetworkBackend {
 public:
  BridgeBackend(const NetworkConfig& config, store::Store& store);

  absl::string_view Name() const override { return "bridge"; }
  Readiness Status() const override;
  absl::StatusOr<PodNetworkStatus> SetUp(const PodNetworkConfig& config) override;
  absl::Status TearDown(const PodNetworkConfig& config) override;
  absl::Status SetPodCidr(absl::string_view cidr) override;
  absl::StatusOr<int> RemoveOrphans(const std::set<std::string>& live_pod_ids) override;

  // The host end of a pod's veth pair: "crib" and 11 hex digits of a hash of the pod id
  // (interface names have at most 15 bytes), so TearDown finds it from the id alone.
  static std::string HostInterfaceName(absl::string_view pod_id);

  // Removes crib's nftables table and the bridge: for uninstalling and for tests. Pods still
  // attached lose their network.
  absl::Status RemoveAll();

 private:
  // The node's side, shared by all pods: the bridge with the gateway address of `cidr`,
  // IPv4 forwarding, and route_localnet on the bridge for 127.0.0.1 hostPorts.
  absl::StatusOr<int> PrepareHost(const Ipv4Cidr& cidr);
  absl::StatusOr<PodNetworkStatus> SetUpSteps(const PodNetworkConfig& config);

  store::Store& store_;

  const NetworkConfig config_;
  Ipam ipam_;
  NftTable nft_;
  mutable absl::Mutex mutex_;
  absl::StatusOr<Ipv4Cidr> cidr_ ABSL_GUARDED_BY(mutex_);
  absl::Mutex host_mutex_;
  // The host ends queued on link_reaper_ and not yet deleted: RemovePodSandbox leaves those to
  // it instead of deleting the same pair at the same time and waiting for the kernel twice.
  absl::Mutex reaping_mutex_;
  std::set<std::string> reaping_ ABSL_GUARDED_BY(reaping_mutex_);
  // Veth pairs that StopPodSandbox took down, deleted in the background: the kernel takes about
  // 20 ms per pair (RCU grace periods). A pair still queued when cribd dies is deleted by its
  // pod's RemovePodSandbox, or with its network namespace when the pin goes. Last: its
  // destructor runs first.
  WorkQueue link_reaper_;
};

}  // namespace crib::network
