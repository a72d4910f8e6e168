// Checking CRI port mappings before any pod work starts, so that a bad one is InvalidArgument
// from RunPodSandbox and never a half-made pod. Only checks: the rules that implement the
// mappings are the backends' job.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "network/backend.h"

namespace crib::network {

// "TCP", "UDP" or "SCTP", any case (CRI's Protocol names).
absl::StatusOr<Protocol> ParseProtocol(absl::string_view name);
absl::string_view ProtocolName(Protocol protocol);

// Builds a mapping from CRI's wider integers, refusing ports outside 0..65535 (container port
// 1..65535) and host IPs that are not IPv4 addresses ("" and "0.0.0.0" mean every address).
absl::StatusOr<PortMapping> MakePortMapping(absl::string_view protocol, int64_t container_port,
                                            int64_t host_port, absl::string_view host_ip);

// InvalidArgument naming the mapping for: an unknown protocol, container port 0, host port 0
// with a host IP, a host IP that is not IPv4, and the same (protocol, host IP, host port)
// twice. A mapping with host port 0 and no host IP maps nothing and is accepted (kubelet sends
// one for every container port), as the CNI portmap plugin skips it.
absl::Status ValidatePortMappings(const std::vector<PortMapping>& mappings);

}  // namespace crib::network
