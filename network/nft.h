// crib's own nftables table (family inet) through libnftables: masquerading of pod traffic
// that leaves the pod networks, forwarding for the bridge, and hostPort DNAT rules for traffic
// from other hosts (prerouting) and from the node itself (output), including 127.0.0.1 as the
// CNI portmap plugin allows. crib creates the table whole and removes it whole; it never
// reads or writes any other table. Each pod's DNAT rules carry the comment "pod:<id>", so
// they are found again (also after a restart) and removed by pod.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "network/backend.h"
#include "network/ipam.h"

struct nft_ctx;

namespace crib::network {

class NftTable {
 public:
  // `table` and `bridge` must be plain names (config validates them).
  NftTable(std::string table, std::string bridge);
  ~NftTable();
  NftTable(const NftTable&) = delete;
  NftTable& operator=(const NftTable&) = delete;

  // Whether libnftables works here: a dry run of the table's creation.
  absl::Status Probe() const;

  // In one nftables transaction: creates the table, its set and chains if missing, resets the
  // shared rules, adds `cidr` to the pod networks (the first time for each CIDR), and adds the
  // pod's DNAT rules (if any).
  absl::Status AddPod(const Ipv4Cidr& cidr, absl::string_view pod_id, uint32_t pod_ip,
                      const std::vector<PortMapping>& mappings);

  // Deletes the pod's rules; OK if there are none or there is no table.
  absl::Status RemovePod(absl::string_view pod_id);

  // The pods that have rules in the table.
  absl::StatusOr<std::set<std::string>> PodIds();

  // Deletes the whole table; OK if there is none.
  absl::Status RemoveTable();

 private:
  // Runs nft commands; on success `output` (if given) gets what they printed.
  absl::Status Run(const std::string& commands, std::string* output) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  bool TableExists() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  const std::string table_;
  const std::string bridge_;
  mutable absl::Mutex mutex_;
  nft_ctx* ctx_ ABSL_GUARDED_BY(mutex_);
  // CIDRs for which this object made the table, its shared rules and the set element.
  std::set<std::string> prepared_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace crib::network
