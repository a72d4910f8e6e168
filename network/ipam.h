// crib's IPAM for the bridge backend: IPv4 addresses from the pod CIDR, each allocation a row
// of the store's ip_allocations (owner = pod id), so an address is never handed out twice,
// also across restarts. Like the CNI host-local plugin it hands out the next free address
// after the last one it handed out, so an address just released is not reused at once, and
// never the network, gateway (first host) or broadcast address. Knows nothing of links.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace crib::store {
class Store;
}

namespace crib::network {

// An IPv4 network, addresses in host byte order.
struct Ipv4Cidr {
  uint32_t network = 0;
  int prefix = 0;

  // "10.88.0.0/16"; host bits must be zero; prefix at most 30 (a gateway and one pod).
  static absl::StatusOr<Ipv4Cidr> Parse(absl::string_view text);

  uint32_t mask() const { return prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix); }
  uint32_t broadcast() const { return network | ~mask(); }
  uint32_t gateway() const { return network + 1; }
  bool Contains(uint32_t ip) const { return (ip & mask()) == network; }
  std::string ToString() const;

  bool operator==(const Ipv4Cidr&) const = default;
};

std::string Ipv4ToString(uint32_t ip);
absl::StatusOr<uint32_t> ParseIpv4(absl::string_view text);

struct IpLease {
  uint32_t ip = 0;
  // False when the owner already held this address (nothing to undo on failure).
  bool fresh = false;
};

class Ipam {
 public:
  explicit Ipam(store::Store& store) : store_(store) {}

  // The owner's address in `cidr`: the one it holds, else the next free one.
  // ResourceExhausted naming the CIDR when none is free.
  absl::StatusOr<IpLease> Allocate(const Ipv4Cidr& cidr, absl::string_view owner);

  // Releases every address of `owner`; OK if it holds none.
  absl::Status Release(absl::string_view owner);

 private:
  store::Store& store_;
  absl::Mutex mutex_;
  // Per CIDR, the address handed out last; rebuilt from the newest allocation after a restart.
  std::map<std::string, uint32_t> last_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace crib::network
