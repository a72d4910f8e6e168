// The files a pod's containers bind-mount: hostname, hosts and resolv.conf, written
// atomically under the pod's directory.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "pod/sandbox.h"

namespace crib::pod {

// /etc/hosts for a pod: the localhost lines, then "<ip> <hostname>" for each of `ips`.
std::string HostsContent(const std::vector<std::string>& ips, const std::string& hostname);

// resolv.conf from a CRI DNSConfig.
std::string ResolvConfContent(const DnsConfig& dns);

absl::Status WriteHostname(const std::string& pod_dir, const std::string& hostname);
absl::Status WriteHosts(const std::string& pod_dir, const std::string& content);
// From `dns`, or the host's /etc/resolv.conf when `dns` is empty.
absl::Status WriteResolvConf(const std::string& pod_dir, const DnsConfig& dns);

// The host's /etc/hosts, for host-network pods.
absl::StatusOr<std::string> HostHosts();

}  // namespace crib::pod
