#include "network/bridge.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/errors.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/unique_fd.h"
#include "common/steps.h"
#include "network/netlink.h"
#include "network/port_mapping.h"
#include "store/store.h"

namespace crib::network {
namespace {

constexpr char kIpForward[] = "/proc/sys/net/ipv4/ip_forward";

// Pod ids end up in interface names' hashes and nftables comments: keep them plain.
absl::Status CheckPodId(absl::string_view id) {
  const bool ok = !id.empty() && id.size() <= 100 && std::all_of(id.begin(), id.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("pod id \"", id, "\" is not 1 to 100 letters, digits, '-', '_' or '.'"));
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> SysctlIsOne(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  return absl::StripAsciiWhitespace(text) == "1";
}

// CAP_NET_ADMIN in the effective set, from /proc/self/status.
bool HasNetAdmin() {
  absl::StatusOr<std::string> status = ReadFile("/proc/self/status");
  if (!status.ok()) return false;
  for (absl::string_view line : absl::StrSplit(*status, '\n')) {
    if (!absl::ConsumePrefix(&line, "CapEff:")) continue;
    uint64_t caps = 0;
    if (!absl::SimpleHexAtoi(absl::StripAsciiWhitespace(line), &caps)) return false;
    return (caps >> 12) & 1;  // CAP_NET_ADMIN
  }
  return false;
}

}  // namespace

BridgeBackend::BridgeBackend(const NetworkConfig& config, store::Store& store)
    : store_(store),
      config_(config),
      ipam_(store),
      nft_(config.nft_table, config.bridge),
      cidr_(Ipv4Cidr::Parse(config.pod_cidr)),
      link_reaper_([this](const std::string& name) {
        absl::StatusOr<NlSocket> sock = ConnectRoute();
        absl::Status deleted = sock.ok() ? DeleteLink(sock->get(), name) : sock.status();
        if (!deleted.ok()) {
          spdlog::warn(
              "network: delete link {}: {} (it goes with its pod's network namespace, or with "
              "the stray veths at the next start)",
              name, deleted.message());
        }
        absl::MutexLock lock(&reaping_mutex_);
        reaping_.erase(name);
      }) {}

std::string BridgeBackend::HostInterfaceName(absl::string_view pod_id) {
  uint64_t hash = 14695981039346656037ull;  // FNV-1a
  for (char c : pod_id) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ull;
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(hash));
  return absl::StrCat("crib", absl::string_view(hex, 11));
}

Readiness BridgeBackend::Status() const {
  absl::StatusOr<Ipv4Cidr> cidr;
  {
    absl::MutexLock lock(&mutex_);
    cidr = cidr_;
  }
  if (!cidr.ok()) return Readiness{false, "InvalidPodCidr", std::string(cidr.status().message())};
  if (absl::Status s = nft_.Probe(); !s.ok()) {
    return Readiness{false, "NftablesUnavailable",
                     absl::StrCat("crib's nftables table ", config_.nft_table,
                                  " cannot be created: ", s.message())};
  }
  absl::StatusOr<NlSocket> sock = ConnectRoute();
  if (!sock.ok())
    return Readiness{false, "NetlinkUnavailable", std::string(sock.status().message())};
  absl::StatusOr<std::string> kind = LinkKind(sock->get(), config_.bridge);
  if (kind.ok() && *kind != "bridge") {
    return Readiness{false, "BridgeUnavailable",
                     absl::StrCat("link ", config_.bridge, " exists and is not a bridge")};
  }
  if (!kind.ok() && !absl::IsNotFound(kind.status())) {
    return Readiness{false, "BridgeUnavailable", std::string(kind.status().message())};
  }
  if (!kind.ok() && !HasNetAdmin()) {
    return Readiness{false, "BridgeUnavailable",
                     absl::StrCat("bridge ", config_.bridge,
                                  " is missing and cribd lacks CAP_NET_ADMIN to create it")};
  }
  absl::StatusOr<bool> forwarding = SysctlIsOne(kIpForward);
  if (!forwarding.ok() || (!*forwarding && ::access(kIpForward, W_OK) != 0)) {
    return Readiness{false, "IpForwardingUnavailable",
                     absl::StrCat("IPv4 forwarding is off and ", kIpForward,
                                  " cannot be written, so pods cannot reach other networks")};
  }
  return Readiness{true, "", ""};
}

absl::Status BridgeBackend::SetPodCidr(absl::string_view cidr) {
  if (cidr.empty()) return absl::OkStatus();
  ASSIGN_OR_RETURN(Ipv4Cidr parsed, Ipv4Cidr::Parse(cidr));
  absl::MutexLock lock(&mutex_);
  if (cidr_.ok() && *cidr_ == parsed) return absl::OkStatus();
  cidr_ = parsed;
  spdlog::info("network: pod cidr is now {} for new pods", parsed.ToString());
  return absl::OkStatus();
}

absl::StatusOr<int> BridgeBackend::PrepareHost(const Ipv4Cidr& cidr) {
  absl::MutexLock lock(&host_mutex_);
  ASSIGN_OR_RETURN(NlSocket sock, ConnectRoute());
  ASSIGN_OR_RETURN(const int bridge, EnsureBridge(sock.get(), config_.bridge, config_.mtu,
                                                  cidr.gateway(), cidr.prefix));
  ASSIGN_OR_RETURN(const bool forwarding, SysctlIsOne(kIpForward));
  if (!forwarding) {
    RETURN_IF_ERROR(WriteSysctl(kIpForward, "1"));
    spdlog::info("network: turned on IPv4 forwarding (net.ipv4.ip_forward=1) for pod traffic");
  }
  // Lets 127.0.0.1:<hostPort> be sent on to a pod through the bridge.
  RETURN_IF_ERROR(WriteSysctl(
      absl::StrCat("/proc/sys/net/ipv4/conf/", config_.bridge, "/route_localnet"), "1"));
  return bridge;
}

absl::StatusOr<PodNetworkStatus> BridgeBackend::SetUp(const PodNetworkConfig& config) {
  const absl::Time start = absl::Now();
  absl::StatusOr<PodNetworkStatus> result = SetUpSteps(config);
  if (!result.ok()) {
    return Annotate(result.status(), absl::StrCat("set up the network of pod ", config.pod_id));
  }
  spdlog::info("network: pod {} attached to {} as {} in {}", config.pod_id, config_.bridge,
               result->ips.front(), absl::FormatDuration(absl::Now() - start));
  return result;
}

absl::StatusOr<PodNetworkStatus> BridgeBackend::SetUpSteps(const PodNetworkConfig& config) {
  RETURN_IF_ERROR(CheckPodId(config.pod_id));
  if (config.interface.empty() || config.interface.size() > 15) {
    return absl::InvalidArgumentError(
        absl::StrCat("interface name \"", config.interface, "\" is not 1 to 15 bytes"));
  }
  RETURN_IF_ERROR(ValidatePortMappings(config.port_mappings));
  absl::StatusOr<Ipv4Cidr> cidr_or;
  {
    absl::MutexLock lock(&mutex_);
    cidr_or = cidr_;
  }
  ASSIGN_OR_RETURN(const Ipv4Cidr cidr, cidr_or);
  UniqueFd netns(::open(config.netns_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!netns) {
    return ErrnoStatus(errno, absl::StrCat("open network namespace ", config.netns_path));
  }
  const std::string host_name = HostInterfaceName(config.pod_id);

  absl::StatusOr<int> bridge = PrepareHost(cidr);
  if (!bridge.ok()) return Annotate(bridge.status(), "prepare the bridge");
  ASSIGN_OR_RETURN(NlSocket sock, ConnectRoute());
  // A second SetUp of an attached pod must not undo the first one's work when it fails.
  if (LinkIndex(sock.get(), host_name).ok()) {
    return absl::AlreadyExistsError(
        absl::StrCat("the pod is already attached (link ", host_name, " exists)"));
  }

  IpLease lease;
  absl::Status attached = RunSteps(
      absl::StrCat("network: pod ", config.pod_id), "network.bridge",
      [&](Steps& steps) -> absl::Status {
        RETURN_IF_ERROR(steps.Run(
            "allocate_address", "allocate address",
            [&]() -> absl::Status {
              ASSIGN_OR_RETURN(lease, ipam_.Allocate(cidr, config.pod_id));
              return absl::OkStatus();
            },
            [this, &lease, pod_id = config.pod_id] {
              return lease.fresh ? ipam_.Release(pod_id) : absl::OkStatus();
            }));
        RETURN_IF_ERROR(steps.Run(
            "create_veth_pair", "create veth pair",
            [&] {
              return CreateVethPair(sock.get(), host_name, *bridge, config.interface, netns,
                                    config_.mtu);
            },
            [&sock, host_name] { return DeleteLink(sock.get(), host_name); }));
        // Lets a pod reach its own hostPorts through the bridge (the CNI bridge's hairpinMode).
        RETURN_IF_ERROR(steps.Run("hairpin", "set hairpin mode", [&] {
          return WriteSysctl(absl::StrCat("/sys/class/net/", host_name, "/brport/hairpin_mode"),
                             "1");
        }));
        RETURN_IF_ERROR(steps.Run(
            "configure_pod_interface",
            absl::StrCat("configure pod interface ", config.interface, " in ", config.netns_path),
            [&] {
              return ConfigurePodInterface(netns, config.interface, lease.ip, cidr.prefix,
                                           cidr.gateway());
            }));
        return steps.Run(
            "add_nftables_rules", "add nftables rules",
            [&] { return nft_.AddPod(cidr, config.pod_id, lease.ip, config.port_mappings); },
            [this, pod_id = config.pod_id] { return nft_.RemovePod(pod_id); });
      });
  if (!attached.ok()) return attached;
  return PodNetworkStatus{{Ipv4ToString(lease.ip)}};
}

absl::Status BridgeBackend::TearDown(const PodNetworkConfig& config) {
  const std::string context = absl::StrCat("tear down the network of pod ", config.pod_id);
  RETURN_IF_ERROR(Annotate(CheckPodId(config.pod_id), context));
  // Every step runs even if an earlier one failed, so a retry has the least left to do.
  absl::Status first_error;
  auto note = [&](absl::Status s, absl::string_view step) {
    if (!s.ok() && first_error.ok()) first_error = Annotate(s, absl::StrCat(context, ": ", step));
  };
  const std::string host_name = HostInterfaceName(config.pod_id);
  absl::StatusOr<NlSocket> sock = ConnectRoute();
  note(sock.status(), "delete veth pair");
  // Deleting the host end deletes the pair; with the namespace gone it is gone already. A
  // deferred deletion takes the host end down first: the bridge forwards nothing to the pod
  // any more, and its address can go to another pod at once.
  bool deferred = false;
  if (sock.ok() && config.defer_link_deletion) {
    absl::Status down = SetLinkDown(sock->get(), host_name);
    deferred = down.ok();
    if (!deferred) spdlog::warn("network: pod {}: {}", config.pod_id, down.message());
  }
  bool reaping = false;
  {
    absl::MutexLock lock(&reaping_mutex_);
    reaping = reaping_.count(host_name) > 0;
    if (deferred) reaping_.insert(host_name);
  }
  if (sock.ok() && !deferred && !reaping) {
    note(DeleteLink(sock->get(), host_name), "delete veth pair");
  }
  note(nft_.RemovePod(config.pod_id), "remove nftables rules");
  note(ipam_.Release(config.pod_id), "release address");
  if (deferred) link_reaper_.Add(host_name);
  if (first_error.ok()) spdlog::info("network: pod {} detached", config.pod_id);
  return first_error;
}

absl::StatusOr<int> BridgeBackend::RemoveOrphans(const std::set<std::string>& live_pod_ids) {
  std::set<std::string> orphans;
  ASSIGN_OR_RETURN(std::vector<store::IpAllocation> ips, store_.ListAllIps());
  for (const store::IpAllocation& ip : ips) {
    if (live_pod_ids.count(ip.owner) == 0) orphans.insert(ip.owner);
  }
  ASSIGN_OR_RETURN(std::set<std::string> with_rules, nft_.PodIds());
  for (const std::string& id : with_rules) {
    if (live_pod_ids.count(id) == 0) orphans.insert(id);
  }
  for (const std::string& id : orphans) {
    PodNetworkConfig config;
    config.pod_id = id;
    RETURN_IF_ERROR(TearDown(config));
  }
  // Host ends of veth pairs on the bridge whose pod is gone (their names hash the pod id).
  int links = 0;
  ASSIGN_OR_RETURN(NlSocket sock, ConnectRoute());
  absl::StatusOr<int> bridge = LinkIndex(sock.get(), config_.bridge);
  if (bridge.ok()) {
    std::set<std::string> expected;
    for (const std::string& id : live_pod_ids) expected.insert(HostInterfaceName(id));
    ASSIGN_OR_RETURN(std::vector<std::string> attached, LinksOnBridge(sock.get(), *bridge));
    for (const std::string& name : attached) {
      if (!absl::StartsWith(name, "crib") || expected.count(name) > 0) continue;
      RETURN_IF_ERROR(DeleteLink(sock.get(), name));
      ++links;
    }
  }
  if (!orphans.empty() || links > 0) {
    spdlog::info("network: detached {} pods that no longer exist ({} stray veths)", orphans.size(),
                 links);
  }
  return static_cast<int>(orphans.size()) + links;
}

absl::Status BridgeBackend::RemoveAll() {
  RETURN_IF_ERROR(nft_.RemoveTable());
  ASSIGN_OR_RETURN(NlSocket sock, ConnectRoute());
  if (absl::StatusOr<std::string> kind = LinkKind(sock.get(), config_.bridge);
      kind.ok() && *kind == "bridge") {
    RETURN_IF_ERROR(DeleteLink(sock.get(), config_.bridge));
  }
  return absl::OkStatus();
}

}  // namespace crib::network
