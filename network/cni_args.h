// What crib tells CNI plugins about one pod, following kubelet's and containerd's conventions:
// CNI_ARGS (IgnoreUnknown=1 and the K8S_POD_* keys), and the capability arguments that become
// a plugin's runtimeConfig for the capabilities it declares:
//   portMappings  the pod's CRI port mappings with a host port
//   dns           the pod's CRI DNS config
//   bandwidth     kubernetes.io/ingress-bandwidth and kubernetes.io/egress-bandwidth (rates
//                 in bits/s as Kubernetes quantities; burst unlimited, as containerd sets it)
//   ips, mac      crib's annotations cni.crib.io/ips (comma-separated addresses, optionally
//                 with a prefix) and cni.crib.io/mac; kubelet and containerd define none
//   io.kubernetes.cri.pod-annotations  every pod annotation, as containerd passes them
// Pure logic.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "network/backend.h"
#include "nlohmann/json.hpp"

namespace crib::network::cni {

inline constexpr char kIngressBandwidthAnnotation[] = "kubernetes.io/ingress-bandwidth";
inline constexpr char kEgressBandwidthAnnotation[] = "kubernetes.io/egress-bandwidth";
inline constexpr char kIpsAnnotation[] = "cni.crib.io/ips";
inline constexpr char kMacAnnotation[] = "cni.crib.io/mac";
inline constexpr char kPodAnnotationsCapability[] = "io.kubernetes.cri.pod-annotations";

// "IgnoreUnknown=1;K8S_POD_NAMESPACE=<ns>;K8S_POD_NAME=<name>;K8S_POD_INFRA_CONTAINER_ID=<pod
// id>;K8S_POD_UID=<uid>". InvalidArgument if a value holds ';' or '=', which CNI_ARGS cannot
// carry.
absl::StatusOr<std::string> CniArgs(const PodNetworkConfig& pod);

// The capability arguments (a JSON object) for `pod`. InvalidArgument naming the annotation for
// a bandwidth that does not parse or lies outside 1k..1P (kubelet's limits), an address or a
// MAC address that does not parse.
absl::StatusOr<nlohmann::json> CapabilityArgs(const PodNetworkConfig& pod);

// A Kubernetes resource quantity ("10M", "1.5Gi", "500k", "2e6") as an integer, rounded up as
// Quantity.Value() does. InvalidArgument for anything else, negative values, values of 2^63
// and above, and numbers of more than 18 digits.
absl::StatusOr<int64_t> ParseQuantity(absl::string_view text);

}  // namespace crib::network::cni
