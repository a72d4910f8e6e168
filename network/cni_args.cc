#include "network/cni_args.h"

#include <arpa/inet.h>

#include <cctype>
#include <limits>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "network/port_mapping.h"

namespace crib::network::cni {
namespace {

using nlohmann::json;
using uint128 = unsigned __int128;

// kubelet's bounds for the bandwidth annotations (pkg/util/bandwidth): 1 kbit/s to 1 Pbit/s.
constexpr int64_t kMinBandwidth = 1000;
constexpr int64_t kMaxBandwidth = 1000000000000000;
// containerd's burst for both directions: unlimited in practice.
constexpr uint64_t kBandwidthBurst = 4294967295u;  // math.MaxUint32

absl::Status BadQuantity(absl::string_view text) {
  return absl::InvalidArgumentError(
      absl::StrCat("\"", text, "\" is not a non-negative quantity (e.g. 10M, 1Gi, 500k)"));
}

// 10^n for n <= 38, which fits 128 bits.
uint128 Pow10(int n) {
  uint128 v = 1;
  for (int i = 0; i < n; ++i) v *= 10;
  return v;
}

absl::StatusOr<int64_t> Bandwidth(const std::map<std::string, std::string>& annotations,
                                  const char* key, bool* present) {
  auto it = annotations.find(key);
  *present = it != annotations.end();
  if (!*present) return 0;
  absl::StatusOr<int64_t> bits = ParseQuantity(it->second);
  if (!bits.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("annotation ", key, ": ", bits.status().message()));
  }
  if (*bits < kMinBandwidth || *bits > kMaxBandwidth) {
    return absl::InvalidArgumentError(absl::StrCat("annotation ", key, ": \"", it->second,
                                                   "\" is outside 1k..1P bits per second"));
  }
  return bits;
}

bool ValidAddress(absl::string_view text) {
  const std::string ip(text.substr(0, text.find('/')));
  unsigned char buf[16];
  if (::inet_pton(AF_INET, ip.c_str(), buf) != 1 && ::inet_pton(AF_INET6, ip.c_str(), buf) != 1) {
    return false;
  }
  const size_t slash = text.find('/');
  if (slash == absl::string_view::npos) return true;
  int prefix = -1;
  const int max = ip.find(':') == std::string::npos ? 32 : 128;
  return absl::SimpleAtoi(text.substr(slash + 1), &prefix) && prefix >= 0 && prefix <= max;
}

bool ValidMac(absl::string_view text) {
  std::vector<absl::string_view> parts = absl::StrSplit(text, ':');
  if (parts.size() != 6) return false;
  for (absl::string_view p : parts) {
    if (p.size() != 2 || !absl::ascii_isxdigit(p[0]) || !absl::ascii_isxdigit(p[1])) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<std::string> CniArgs(const PodNetworkConfig& pod) {
  const std::vector<std::pair<const char*, const std::string*>> pairs = {
      {"K8S_POD_NAMESPACE", &pod.namespace_},
      {"K8S_POD_NAME", &pod.name},
      {"K8S_POD_INFRA_CONTAINER_ID", &pod.pod_id},
      {"K8S_POD_UID", &pod.uid},
  };
  std::string out = "IgnoreUnknown=1";
  for (const auto& [key, value] : pairs) {
    if (value->find_first_of(";=") != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(key, " \"", *value, "\" holds ';' or '=', which CNI_ARGS cannot carry"));
    }
    absl::StrAppend(&out, ";", key, "=", *value);
  }
  return out;
}

absl::StatusOr<json> CapabilityArgs(const PodNetworkConfig& pod) {
  json args = json::object();

  json ports = json::array();
  for (const PortMapping& m : pod.port_mappings) {
    if (m.host_port == 0) continue;  // exposes nothing on the node, as containerd skips it
    ports.push_back({{"hostPort", m.host_port},
                     {"containerPort", m.container_port},
                     {"protocol", absl::AsciiStrToLower(ProtocolName(m.protocol))},
                     {"hostIP", m.host_ip}});
  }
  if (!ports.empty()) args["portMappings"] = std::move(ports);

  if (!pod.dns_servers.empty() || !pod.dns_searches.empty() || !pod.dns_options.empty()) {
    args["dns"] = {
        {"servers", pod.dns_servers}, {"searches", pod.dns_searches}, {"options", pod.dns_options}};
  }

  bool ingress_set = false, egress_set = false;
  absl::StatusOr<int64_t> ingress =
      Bandwidth(pod.annotations, kIngressBandwidthAnnotation, &ingress_set);
  if (!ingress.ok()) return ingress.status();
  absl::StatusOr<int64_t> egress =
      Bandwidth(pod.annotations, kEgressBandwidthAnnotation, &egress_set);
  if (!egress.ok()) return egress.status();
  if (ingress_set || egress_set) {
    json bandwidth = json::object();
    if (ingress_set) {
      bandwidth["ingressRate"] = *ingress;
      bandwidth["ingressBurst"] = kBandwidthBurst;
    }
    if (egress_set) {
      bandwidth["egressRate"] = *egress;
      bandwidth["egressBurst"] = kBandwidthBurst;
    }
    args["bandwidth"] = std::move(bandwidth);
  }

  if (auto it = pod.annotations.find(kIpsAnnotation); it != pod.annotations.end()) {
    json ips = json::array();
    for (absl::string_view ip : absl::StrSplit(it->second, ',', absl::SkipWhitespace())) {
      ip = absl::StripAsciiWhitespace(ip);
      if (!ValidAddress(ip)) {
        return absl::InvalidArgumentError(
            absl::StrCat("annotation ", kIpsAnnotation, ": \"", ip, "\" is not an IP address"));
      }
      ips.push_back(std::string(ip));
    }
    if (!ips.empty()) args["ips"] = std::move(ips);
  }
  if (auto it = pod.annotations.find(kMacAnnotation); it != pod.annotations.end()) {
    const absl::string_view mac = absl::StripAsciiWhitespace(it->second);
    if (!ValidMac(mac)) {
      return absl::InvalidArgumentError(
          absl::StrCat("annotation ", kMacAnnotation, ": \"", mac,
                       "\" is not a MAC address (aa:bb:cc:dd:ee:ff)"));
    }
    args["mac"] = std::string(mac);
  }

  args[kPodAnnotationsCapability] = pod.annotations;
  return args;
}

absl::StatusOr<int64_t> ParseQuantity(absl::string_view text) {
  absl::string_view s = text;
  absl::ConsumePrefix(&s, "+");
  // The number: digits, optionally a point and more digits, at most 18 significant ones.
  uint128 number = 0;
  int digits = 0, fraction = 0;
  bool seen_point = false;
  while (!s.empty() && (absl::ascii_isdigit(s[0]) || (s[0] == '.' && !seen_point))) {
    if (s[0] == '.') {
      seen_point = true;
    } else {
      if (++digits > 18) return BadQuantity(text);
      number = number * 10 + static_cast<unsigned>(s[0] - '0');
      if (seen_point) ++fraction;
    }
    s.remove_prefix(1);
  }
  if (digits == 0) return BadQuantity(text);
  int exponent10 = -fraction, exponent2 = 0;
  static const std::vector<std::pair<absl::string_view, std::pair<int, int>>> kSuffixes = {
      {"Ki", {0, 10}}, {"Mi", {0, 20}}, {"Gi", {0, 30}}, {"Ti", {0, 40}}, {"Pi", {0, 50}},
      {"Ei", {0, 60}}, {"n", {-9, 0}},  {"u", {-6, 0}},  {"m", {-3, 0}},  {"k", {3, 0}},
      {"M", {6, 0}},   {"G", {9, 0}},   {"T", {12, 0}},  {"P", {15, 0}},  {"E", {18, 0}},
  };
  bool matched = s.empty();
  for (const auto& [suffix, exponents] : kSuffixes) {
    if (!matched && s == suffix) {
      exponent10 += exponents.first;
      exponent2 = exponents.second;
      matched = true;
    }
  }
  if (!matched && (s[0] == 'e' || s[0] == 'E')) {
    int e = 0;
    if (!absl::SimpleAtoi(s.substr(1), &e) || e < -60 || e > 60) return BadQuantity(text);
    exponent10 += e;
    matched = true;
  }
  if (!matched) return BadQuantity(text);

  constexpr uint128 kMax = std::numeric_limits<int64_t>::max();
  uint128 value = number << exponent2;  // below 2^60 * 2^60
  if (exponent10 >= 0) {
    for (int i = 0; i < exponent10 && value != 0; ++i) {
      value *= 10;
      if (value > kMax) return BadQuantity(text);
    }
  } else if (exponent10 < -38) {
    value = value == 0 ? 0 : 1;  // rounds up
  } else {
    const uint128 divisor = Pow10(-exponent10);
    value = (value + divisor - 1) / divisor;
  }
  if (value > kMax) return BadQuantity(text);
  return static_cast<int64_t>(value);
}

}  // namespace crib::network::cni
