#include "network/ipam.h"

#include <arpa/inet.h>

#include <algorithm>
#include <set>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/status_macros.h"
#include "store/store.h"

namespace crib::network {

std::string Ipv4ToString(uint32_t ip) {
  return absl::StrCat(ip >> 24, ".", (ip >> 16) & 0xff, ".", (ip >> 8) & 0xff, ".", ip & 0xff);
}

absl::StatusOr<uint32_t> ParseIpv4(absl::string_view text) {
  in_addr addr{};
  if (::inet_pton(AF_INET, std::string(text).c_str(), &addr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("\"", text, "\" is not an IPv4 address"));
  }
  return ntohl(addr.s_addr);
}

absl::StatusOr<Ipv4Cidr> Ipv4Cidr::Parse(absl::string_view text) {
  const size_t slash = text.find('/');
  Ipv4Cidr cidr;
  absl::StatusOr<uint32_t> ip = slash == absl::string_view::npos ? absl::InvalidArgumentError("")
                                                                 : ParseIpv4(text.substr(0, slash));
  if (!ip.ok() || !absl::SimpleAtoi(text.substr(slash + 1), &cidr.prefix) || cidr.prefix < 0 ||
      cidr.prefix > 30) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pod cidr \"", text, "\" is not an IPv4 CIDR with a prefix of at most 30 bits"));
  }
  cidr.network = *ip;
  if ((cidr.network & ~cidr.mask()) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("pod cidr \"", text, "\" has host bits set (did you mean ",
                     Ipv4ToString(cidr.network & cidr.mask()), "/", cidr.prefix, "?)"));
  }
  return cidr;
}

std::string Ipv4Cidr::ToString() const { return absl::StrCat(Ipv4ToString(network), "/", prefix); }

// Addresses tried after the last one handed out before the others are read.
constexpr uint64_t kQuickTries = 4;

absl::StatusOr<IpLease> Ipam::Allocate(const Ipv4Cidr& cidr, absl::string_view owner) {
  const std::string network = cidr.ToString();
  absl::MutexLock lock(&mutex_);
  IpLease lease;
  absl::Status status = store_.Write([&](store::Transaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(const std::vector<std::string> held, tx.IpsOf(network, owner));
    for (const std::string& ip : held) {
      if (absl::StatusOr<uint32_t> parsed = ParseIpv4(ip); parsed.ok()) {
        lease = IpLease{*parsed, false};
        return absl::OkStatus();
      }
    }
    const uint32_t first = cidr.gateway() + 1;
    const uint32_t last = cidr.broadcast() - 1;
    const uint64_t count = uint64_t{last} - first + 1;
    // The addresses after the last one handed out here are nearly always free: a few are tried
    // without reading the others (a list of every address in the network cost 0.2 ms more
    // at 300 pods than at 30).
    if (auto it = last_.find(network); it != last_.end()) {
      const uint32_t previous = it->second;
      const uint64_t start = previous >= first && previous <= last ? previous - first + 1 : 0;
      for (uint64_t i = 0; i < std::min<uint64_t>(kQuickTries, count); ++i) {
        const uint32_t candidate = first + static_cast<uint32_t>((start + i) % count);
        absl::Status reserved = tx.ReserveIp(network, Ipv4ToString(candidate), owner);
        if (absl::IsAlreadyExists(reserved)) continue;
        RETURN_IF_ERROR(reserved);
        lease = IpLease{candidate, true};
        return absl::OkStatus();
      }
    }
    ASSIGN_OR_RETURN(std::vector<store::IpAllocation> taken, tx.ListIps(network));
    std::set<uint32_t> used;
    int64_t newest_ns = -1;
    uint32_t newest = 0;
    for (const store::IpAllocation& a : taken) {
      absl::StatusOr<uint32_t> ip = ParseIpv4(a.ip);
      if (!ip.ok()) continue;
      if (a.owner == owner) {
        lease = IpLease{*ip, false};
        return absl::OkStatus();
      }
      used.insert(*ip);
      if (a.reserved_at_ns > newest_ns) {
        newest_ns = a.reserved_at_ns;
        newest = *ip;
      }
    }
    uint32_t previous = first - 1;
    if (auto it = last_.find(network); it != last_.end()) {
      previous = it->second;
    } else if (newest_ns >= 0) {
      previous = newest;
    }
    uint64_t start = previous >= first && previous <= last ? previous - first + 1 : 0;
    for (uint64_t i = 0; i < count; ++i) {
      const uint32_t candidate = first + static_cast<uint32_t>((start + i) % count);
      if (used.count(candidate)) continue;
      absl::Status reserved = tx.ReserveIp(network, Ipv4ToString(candidate), owner);
      if (absl::IsAlreadyExists(reserved)) continue;
      RETURN_IF_ERROR(reserved);
      lease = IpLease{candidate, true};
      return absl::OkStatus();
    }
    return absl::ResourceExhaustedError(absl::StrCat(
        "pod cidr ", network, " has no free address (all ", count, " pod addresses are in use)"));
  });
  if (!status.ok()) return Annotate(status, absl::StrCat("allocate an address for ", owner));
  if (lease.fresh) last_[network] = lease.ip;
  return lease;
}

absl::Status Ipam::Release(absl::string_view owner) {
  return Annotate(store_.ReleaseIpsOf(owner), absl::StrCat("release the addresses of ", owner));
}

}  // namespace crib::network
