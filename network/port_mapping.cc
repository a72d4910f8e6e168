#include "network/port_mapping.h"

#include <arpa/inet.h>

#include <set>
#include <string>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace crib::network {
namespace {

std::string Describe(const PortMapping& m) {
  return absl::StrCat("port mapping ", m.host_ip.empty() ? "*" : m.host_ip, ":", m.host_port,
                      " -> ", m.container_port, "/", ProtocolName(m.protocol));
}

bool IsIpv4(absl::string_view ip) {
  in_addr addr{};
  return ::inet_pton(AF_INET, std::string(ip).c_str(), &addr) == 1;
}

}  // namespace

absl::StatusOr<Protocol> ParseProtocol(absl::string_view name) {
  const std::string upper = absl::AsciiStrToUpper(name);
  if (upper == "TCP") return Protocol::kTcp;
  if (upper == "UDP") return Protocol::kUdp;
  if (upper == "SCTP") return Protocol::kSctp;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown protocol \"", name, "\" (want TCP, UDP or SCTP)"));
}

absl::string_view ProtocolName(Protocol protocol) {
  switch (protocol) {
    case Protocol::kTcp:
      return "tcp";
    case Protocol::kUdp:
      return "udp";
    case Protocol::kSctp:
      return "sctp";
  }
  return "unknown";
}

absl::StatusOr<PortMapping> MakePortMapping(absl::string_view protocol, int64_t container_port,
                                            int64_t host_port, absl::string_view host_ip) {
  const std::string what = absl::StrCat("port mapping ", host_ip.empty() ? "*" : host_ip, ":",
                                        host_port, " -> ", container_port, "/", protocol);
  absl::StatusOr<Protocol> parsed = ParseProtocol(protocol);
  if (!parsed.ok())
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", parsed.status().message()));
  if (container_port < 1 || container_port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": container port ", container_port, " is outside 1..65535"));
  }
  if (host_port < 0 || host_port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": host port ", host_port, " is outside 0..65535"));
  }
  PortMapping mapping;
  mapping.protocol = *parsed;
  mapping.container_port = static_cast<uint16_t>(container_port);
  mapping.host_port = static_cast<uint16_t>(host_port);
  mapping.host_ip = std::string(host_ip);
  if (absl::Status s = ValidatePortMappings({mapping}); !s.ok()) return s;
  return mapping;
}

absl::Status ValidatePortMappings(const std::vector<PortMapping>& mappings) {
  std::set<std::tuple<Protocol, std::string, uint16_t>> seen;
  for (const PortMapping& m : mappings) {
    if (m.protocol != Protocol::kTcp && m.protocol != Protocol::kUdp &&
        m.protocol != Protocol::kSctp) {
      return absl::InvalidArgumentError(
          absl::StrCat(Describe(m), ": unknown protocol ", static_cast<int>(m.protocol)));
    }
    if (m.container_port == 0) {
      return absl::InvalidArgumentError(absl::StrCat(Describe(m), ": container port 0"));
    }
    if (!m.host_ip.empty() && !IsIpv4(m.host_ip)) {
      return absl::InvalidArgumentError(absl::StrCat(Describe(m), ": host ip \"", m.host_ip,
                                                     "\" is not an IPv4 address (pods are IPv4)"));
    }
    if (m.host_port == 0) {
      if (!m.host_ip.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat(Describe(m), ": host port 0 with a host ip"));
      }
      continue;
    }
    const std::string ip = m.host_ip == "0.0.0.0" ? "" : m.host_ip;
    if (!seen.emplace(m.protocol, ip, m.host_port).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(Describe(m), ": the host port is mapped twice"));
    }
  }
  return absl::OkStatus();
}

}  // namespace crib::network
