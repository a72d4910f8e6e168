#include "network/netlink.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/route.h>
#include <sched.h>
#include <unistd.h>

#include <system_error>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/status_macros.h"
#include "network/ipam.h"

namespace crib::network {
namespace {

// libnl returns negative NLE_* codes, not errnos; keep the codes callers act on.
absl::Status NlStatus(int err, absl::string_view what) {
  if (err < 0) err = -err;
  const std::string message = absl::StrCat(what, ": ", nl_geterror(err));
  switch (err) {
    case NLE_EXIST:
      return absl::AlreadyExistsError(message);
    case NLE_OBJ_NOTFOUND:
    case NLE_NODEV:
      return absl::NotFoundError(message);
    case NLE_PERM:
    case NLE_NOACCESS:
      return absl::PermissionDeniedError(message);
    case NLE_BUSY:
      return absl::FailedPreconditionError(message);
    case NLE_INVAL:
    case NLE_RANGE:
      return absl::InvalidArgumentError(message);
    default:
      return absl::InternalError(message);
  }
}

struct LinkDeleter {
  void operator()(rtnl_link* link) const { rtnl_link_put(link); }
};
using Link = std::unique_ptr<rtnl_link, LinkDeleter>;

struct AddrDeleter {
  void operator()(rtnl_addr* addr) const { rtnl_addr_put(addr); }
};
struct NlAddrDeleter {
  void operator()(nl_addr* addr) const { nl_addr_put(addr); }
};
using NlAddr = std::unique_ptr<nl_addr, NlAddrDeleter>;
struct RouteDeleter {
  void operator()(rtnl_route* route) const { rtnl_route_put(route); }
};

absl::StatusOr<Link> GetLink(nl_sock* sock, absl::string_view name) {
  rtnl_link* link = nullptr;
  const int err = rtnl_link_get_kernel(sock, 0, std::string(name).c_str(), &link);
  if (err < 0) return NlStatus(err, absl::StrCat("get link ", name));
  return Link(link);
}

absl::StatusOr<NlAddr> Ipv4Address(uint32_t ip, int prefix) {
  const uint32_t be = htonl(ip);
  nl_addr* addr = nl_addr_build(AF_INET, &be, sizeof be);
  if (addr == nullptr) return absl::ResourceExhaustedError("nl_addr_build: out of memory");
  nl_addr_set_prefixlen(addr, prefix);
  return NlAddr(addr);
}

absl::Status SetUp(nl_sock* sock, rtnl_link* link, absl::string_view name) {
  if (rtnl_link_get_flags(link) & IFF_UP) return absl::OkStatus();
  Link change(rtnl_link_alloc());
  rtnl_link_set_flags(change.get(), IFF_UP);
  const int err = rtnl_link_change(sock, link, change.get(), 0);
  if (err < 0) return NlStatus(err, absl::StrCat("set link ", name, " up"));
  return absl::OkStatus();
}

// Adds address/prefix to the link; OK if it is already there.
absl::Status AddAddress(nl_sock* sock, int ifindex, absl::string_view link_name, uint32_t ip,
                        int prefix) {
  std::unique_ptr<rtnl_addr, AddrDeleter> addr(rtnl_addr_alloc());
  ASSIGN_OR_RETURN(NlAddr local, Ipv4Address(ip, prefix));
  rtnl_addr_set_ifindex(addr.get(), ifindex);
  rtnl_addr_set_family(addr.get(), AF_INET);
  if (int err = rtnl_addr_set_local(addr.get(), local.get()); err < 0) {
    return NlStatus(err, "set address");
  }
  const int err = rtnl_addr_add(sock, addr.get(), 0);
  if (err < 0 && err != -NLE_EXIST) {
    return NlStatus(err,
                    absl::StrCat("add address ", Ipv4ToString(ip), "/", prefix, " to ", link_name));
  }
  return absl::OkStatus();
}

}  // namespace

void NlSocketDeleter::operator()(nl_sock* sock) const { nl_socket_free(sock); }

absl::StatusOr<std::vector<std::string>> LinksOnBridge(nl_sock* sock, int bridge_index) {
  nl_cache* cache = nullptr;
  if (int err = rtnl_link_alloc_cache(sock, AF_UNSPEC, &cache); err < 0) {
    return NlStatus(err, "list links");
  }
  std::vector<std::string> names;
  for (nl_object* o = nl_cache_get_first(cache); o != nullptr; o = nl_cache_get_next(o)) {
    rtnl_link* link = reinterpret_cast<rtnl_link*>(o);
    if (rtnl_link_get_master(link) == bridge_index && rtnl_link_get_name(link) != nullptr) {
      names.emplace_back(rtnl_link_get_name(link));
    }
  }
  nl_cache_free(cache);
  return names;
}

absl::StatusOr<NlSocket> ConnectRoute() {
  NlSocket sock(nl_socket_alloc());
  if (!sock) return absl::ResourceExhaustedError("nl_socket_alloc: out of memory");
  if (int err = nl_connect(sock.get(), NETLINK_ROUTE); err < 0) {
    return NlStatus(err, "connect a rtnetlink socket");
  }
  return sock;
}

absl::StatusOr<int> LinkIndex(nl_sock* sock, absl::string_view name) {
  ASSIGN_OR_RETURN(Link link, GetLink(sock, name));
  return rtnl_link_get_ifindex(link.get());
}

absl::StatusOr<std::string> LinkKind(nl_sock* sock, absl::string_view name) {
  ASSIGN_OR_RETURN(Link link, GetLink(sock, name));
  const char* type = rtnl_link_get_type(link.get());
  return std::string(type == nullptr ? "" : type);
}

absl::StatusOr<int> EnsureBridge(nl_sock* sock, absl::string_view name, int mtu, uint32_t address,
                                 int prefix) {
  const std::string context = absl::StrCat("bridge ", name);
  absl::StatusOr<Link> link = GetLink(sock, name);
  if (absl::IsNotFound(link.status())) {
    Link bridge(rtnl_link_bridge_alloc());
    if (!bridge) return absl::ResourceExhaustedError("rtnl_link_bridge_alloc: out of memory");
    rtnl_link_set_name(bridge.get(), std::string(name).c_str());
    rtnl_link_set_mtu(bridge.get(), mtu);
    rtnl_link_set_flags(bridge.get(), IFF_UP);
    const int err = rtnl_link_add(sock, bridge.get(), NLM_F_CREATE | NLM_F_EXCL);
    // Another pod's set-up may have created it meanwhile.
    if (err < 0 && err != -NLE_EXIST) return NlStatus(err, absl::StrCat("create ", context));
    link = GetLink(sock, name);
  }
  if (!link.ok()) return Annotate(link.status(), context);
  const char* type = rtnl_link_get_type(link->get());
  if (type == nullptr || std::string(type) != "bridge") {
    return absl::FailedPreconditionError(absl::StrCat(context, ": the link exists and is a ",
                                                      type == nullptr ? "device" : type,
                                                      ", not a bridge"));
  }
  RETURN_IF_ERROR(SetUp(sock, link->get(), name));
  const int ifindex = rtnl_link_get_ifindex(link->get());
  RETURN_IF_ERROR(AddAddress(sock, ifindex, name, address, prefix));
  return ifindex;
}

absl::Status CreateVethPair(nl_sock* sock, absl::string_view host_name, int bridge_index,
                            absl::string_view pod_name, const UniqueFd& netns, int mtu) {
  rtnl_link* veth = rtnl_link_veth_alloc();
  if (veth == nullptr) return absl::ResourceExhaustedError("rtnl_link_veth_alloc: out of memory");
  rtnl_link_set_name(veth, std::string(host_name).c_str());
  rtnl_link_set_mtu(veth, mtu);
  rtnl_link_set_master(veth, bridge_index);
  rtnl_link_set_flags(veth, IFF_UP);
  rtnl_link* peer = rtnl_link_veth_get_peer(veth);
  rtnl_link_set_name(peer, std::string(pod_name).c_str());
  rtnl_link_set_mtu(peer, mtu);
  rtnl_link_set_ns_fd(peer, netns.get());
  rtnl_link_put(peer);
  const int err = rtnl_link_add(sock, veth, NLM_F_CREATE | NLM_F_EXCL);
  rtnl_link_veth_release(veth);
  if (err < 0) {
    return NlStatus(err, absl::StrCat("create veth pair ", host_name, " <-> ", pod_name));
  }
  return absl::OkStatus();
}

absl::Status DeleteLink(nl_sock* sock, absl::string_view name) {
  Link link(rtnl_link_alloc());
  rtnl_link_set_name(link.get(), std::string(name).c_str());
  const int err = rtnl_link_delete(sock, link.get());
  if (err < 0 && err != -NLE_NODEV && err != -NLE_OBJ_NOTFOUND) {
    return NlStatus(err, absl::StrCat("delete link ", name));
  }
  return absl::OkStatus();
}

absl::Status SetLinkDown(nl_sock* sock, absl::string_view name) {
  absl::StatusOr<Link> link = GetLink(sock, name);
  if (absl::IsNotFound(link.status())) return absl::OkStatus();
  RETURN_IF_ERROR(link.status());
  if ((rtnl_link_get_flags(link->get()) & IFF_UP) == 0) return absl::OkStatus();
  Link change(rtnl_link_alloc());
  rtnl_link_unset_flags(change.get(), IFF_UP);
  const int err = rtnl_link_change(sock, link->get(), change.get(), 0);
  if (err < 0 && err != -NLE_NODEV && err != -NLE_OBJ_NOTFOUND) {
    return NlStatus(err, absl::StrCat("set link ", name, " down"));
  }
  return absl::OkStatus();
}

absl::Status WriteSysctl(const std::string& path, absl::string_view value) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return ErrnoStatus(errno, absl::StrCat("open ", path));
  if (::write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size())) {
    return ErrnoStatus(errno, absl::StrCat("write ", value, " to ", path));
  }
  return absl::OkStatus();
}

namespace {

absl::Status LoopbackUp(nl_sock* sock) {
  ASSIGN_OR_RETURN(Link lo, GetLink(sock, "lo"));
  return SetUp(sock, lo.get(), "lo");
}

// IPv6 off on `interface` of the current network namespace, before it comes up: the pod network
// is IPv4 alone, and an interface with IPv6 on sends duplicate address detection and MLD reports
// when it comes up, which the bridge floods to every pod on it (while pods 380 to 480 started, a
// fifth of the machine's CPU time went to those floods). `lo` keeps ::1. A kernel without IPv6
// has nothing to turn off.
absl::Status DisableIpv6(absl::string_view interface) {
  absl::Status off =
      WriteSysctl(absl::StrCat("/proc/sys/net/ipv6/conf/", interface, "/disable_ipv6"), "1");
  return absl::IsNotFound(off) ? absl::OkStatus() : off;
}

absl::Status ConfigureInCurrentNamespace(absl::string_view interface, uint32_t address, int prefix,
                                         uint32_t gateway) {
  ASSIGN_OR_RETURN(NlSocket sock, ConnectRoute());
  RETURN_IF_ERROR(LoopbackUp(sock.get()));
  ASSIGN_OR_RETURN(Link eth, GetLink(sock.get(), interface));
  const int ifindex = rtnl_link_get_ifindex(eth.get());
  RETURN_IF_ERROR(DisableIpv6(interface));
  RETURN_IF_ERROR(AddAddress(sock.get(), ifindex, interface, address, prefix));
  RETURN_IF_ERROR(SetUp(sock.get(), eth.get(), interface));

  std::unique_ptr<rtnl_route, RouteDeleter> route(rtnl_route_alloc());
  ASSIGN_OR_RETURN(NlAddr any, Ipv4Address(0, 0));
  ASSIGN_OR_RETURN(NlAddr via, Ipv4Address(gateway, 32));
  rtnl_route_set_family(route.get(), AF_INET);
  rtnl_route_set_table(route.get(), RT_TABLE_MAIN);
  rtnl_route_set_scope(route.get(), RT_SCOPE_UNIVERSE);
  rtnl_route_set_protocol(route.get(), RTPROT_BOOT);
  rtnl_route_set_type(route.get(), RTN_UNICAST);
  if (int err = rtnl_route_set_dst(route.get(), any.get()); err < 0) {
    return NlStatus(err, "set route destination");
  }
  rtnl_nexthop* nexthop = rtnl_route_nh_alloc();
  rtnl_route_nh_set_ifindex(nexthop, ifindex);
  rtnl_route_nh_set_gateway(nexthop, via.get());
  rtnl_route_add_nexthop(route.get(), nexthop);  // the route owns it now
  if (int err = rtnl_route_add(sock.get(), route.get(), NLM_F_CREATE | NLM_F_EXCL); err < 0) {
    return NlStatus(
        err, absl::StrCat("add default route via ", Ipv4ToString(gateway), " dev ", interface));
  }
  return absl::OkStatus();
}

// Runs `work` on a thread of its own that joins `netns` first. The thread ends with the work, so
// no thread that others use ever leaves the host's namespace.
template <typename Work>
absl::Status InNamespace(const UniqueFd& netns, Work work) {
  absl::Status status;
  try {
    std::thread worker([&] {
      if (::setns(netns.get(), CLONE_NEWNET) != 0) {
        status = ErrnoStatus(errno, "setns into the pod network namespace");
        return;
      }
      status = work();
    });
    worker.join();
  } catch (const std::system_error& e) {
    return absl::ResourceExhaustedError(
        absl::StrCat("start a thread for the pod network namespace: ", e.what()));
  }
  return status;
}

}  // namespace

absl::Status SetLoopbackUp(const UniqueFd& netns) {
  return InNamespace(netns, []() -> absl::Status {
    ASSIGN_OR_RETURN(NlSocket sock, ConnectRoute());
    return LoopbackUp(sock.get());
  });
}

absl::Status ConfigurePodInterface(const UniqueFd& netns, absl::string_view interface,
                                   uint32_t address, int prefix, uint32_t gateway) {
  return InNamespace(
      netns, [&] { return ConfigureInCurrentNamespace(interface, address, prefix, gateway); });
}

}  // namespace crib::network
