// The bridge backend's link work over rtnetlink with libnl-3 (never by running `ip`): the
// bridge and its gateway address, the pods' veth pairs, and the pod side of a veth inside the
// pod's network namespace. A netlink socket acts in the namespace it was created in, so the
// pod side runs on a short-lived thread of its own that joins the pod's namespace first; no
// other thread ever changes namespace.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/unique_fd.h"

struct nl_sock;

namespace crib::network {

struct NlSocketDeleter {
  void operator()(nl_sock* sock) const;
};
using NlSocket = std::unique_ptr<nl_sock, NlSocketDeleter>;

// A NETLINK_ROUTE socket in the calling thread's network namespace.
absl::StatusOr<NlSocket> ConnectRoute();

// ifindex of `name`; NotFound if there is no such link.
absl::StatusOr<int> LinkIndex(nl_sock* sock, absl::string_view name);

// The link's kind ("bridge", "veth", "" for none); NotFound if there is no such link.
absl::StatusOr<std::string> LinkKind(nl_sock* sock, absl::string_view name);

// Writes `value` into the kernel setting `path` (/proc/sys or /sys); NotFound if it is missing.
// /proc/sys/net shows the network namespace of the thread that opens it.
absl::Status WriteSysctl(const std::string& path, absl::string_view value);

// Makes `name` a bridge that is up, creating it with `mtu` when it is missing, and gives it
// `address`/`prefix` (host byte order) unless it has it. FailedPrecondition if `name` exists
// and is not a bridge. Returns its ifindex.
absl::StatusOr<int> EnsureBridge(nl_sock* sock, absl::string_view name, int mtu, uint32_t address,
                                 int prefix);

// Creates the veth pair `host_name` (attached to `bridge_index`, up) <-> `pod_name`, the
// latter created directly inside the namespace `netns` (down, configured by
// ConfigurePodInterface). AlreadyExists if `host_name` exists.
absl::Status CreateVethPair(nl_sock* sock, absl::string_view host_name, int bridge_index,
                            absl::string_view pod_name, const UniqueFd& netns, int mtu);

// The names of the links attached to the bridge `bridge_index`.
absl::StatusOr<std::vector<std::string>> LinksOnBridge(nl_sock* sock, int bridge_index);

// Deletes the link `name`; OK if it does not exist.
absl::Status DeleteLink(nl_sock* sock, absl::string_view name);

// Sets the link `name` down; OK if it does not exist.
absl::Status SetLinkDown(nl_sock* sock, absl::string_view name);

// Inside `netns` (on a thread of its own): `lo` up. For backends whose plugins configure only
// the pod's interface (CNI).
absl::Status SetLoopbackUp(const UniqueFd& netns);

// Inside `netns` (on a thread of its own): `lo` up, `interface` up with `address`/`prefix`
// and IPv6 off (the network is IPv4 alone), and a default route via `gateway`.
absl::Status ConfigurePodInterface(const UniqueFd& netns, absl::string_view interface,
                                   uint32_t address, int prefix, uint32_t gateway);

}  // namespace crib::network
