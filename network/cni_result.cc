#include "network/cni_result.h"

#include <arpa/inet.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "network/cni_config.h"

namespace crib::network::cni {
namespace {

using nlohmann::json;

// A string member of `object`, or "" (also when it is not a string: results come from plugins
// and nlohmann::json throws on wrong types, which must not escape).
std::string StringAt(const json& object, const char* key) {
  if (!object.is_object()) return "";
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : "";
}

struct Address {
  std::string text;
  bool v4 = false;
};

// "10.1.0.5/24" or "fd00::5/64" (a prefix is optional) to its address in canonical form.
absl::StatusOr<Address> ParseAddress(const json& value) {
  if (!value.is_string()) return absl::InvalidArgumentError("an address is not a string");
  const std::string text = value.get<std::string>();
  const std::string ip = text.substr(0, text.find('/'));
  unsigned char buf[16];
  char out[INET6_ADDRSTRLEN];
  for (int family : {AF_INET, AF_INET6}) {
    if (::inet_pton(family, ip.c_str(), buf) == 1 &&
        ::inet_ntop(family, buf, out, sizeof out) != nullptr) {
      return Address{out, family == AF_INET};
    }
  }
  return absl::InvalidArgumentError(absl::StrCat("address \"", text, "\" does not parse"));
}

}  // namespace

bool ParseError(absl::string_view output, PluginError* error) {
  const json parsed = json::parse(output.begin(), output.end(), nullptr, false);
  if (!parsed.is_object() || (!parsed.contains("code") && !parsed.contains("msg"))) return false;
  if (auto code = parsed.find("code"); code != parsed.end() && code->is_number_integer()) {
    error->code = code->get<int>();
  }
  if (auto msg = parsed.find("msg"); msg != parsed.end() && msg->is_string()) {
    error->msg = msg->get<std::string>();
  }
  if (auto details = parsed.find("details"); details != parsed.end() && details->is_string()) {
    error->details = details->get<std::string>();
  }
  return true;
}

absl::Status ErrorStatus(absl::string_view context, const PluginError& error,
                         absl::string_view stderr_text) {
  std::string message(context);
  for (absl::string_view part : {absl::string_view(error.msg), absl::string_view(error.details),
                                 absl::StripAsciiWhitespace(stderr_text)}) {
    if (!part.empty()) absl::StrAppend(&message, ": ", part);
  }
  switch (error.code) {
    case kErrorIncompatibleVersion:
    case kErrorUnsupportedField:
    case kErrorInvalidEnvironment:
    case kErrorInvalidConfig:
      return absl::FailedPreconditionError(message);
    case kErrorTryAgainLater:
      return absl::UnavailableError(message);
    default:
      return absl::UnknownError(message);
  }
}

absl::StatusOr<std::vector<std::string>> ResultIps(const json& result, absl::string_view ifname) {
  if (!result.is_object()) return absl::InvalidArgumentError("the result is not a JSON object");
  std::vector<Address> addresses;
  const std::string version = StringAt(result, "cniVersion");
  const bool legacy = (!version.empty() && CompareVersions(version, "0.3.0") < 0) ||
                      (version.empty() && !result.contains("ips"));
  if (legacy) {
    for (const char* key : {"ip4", "ip6"}) {
      auto entry = result.find(key);
      if (entry == result.end() || !entry->is_object() || !entry->contains("ip")) continue;
      absl::StatusOr<Address> address = ParseAddress((*entry)["ip"]);
      if (!address.ok()) return address.status();
      addresses.push_back(*address);
    }
  } else if (auto ips = result.find("ips"); ips != result.end()) {
    if (!ips->is_array()) return absl::InvalidArgumentError("the result's \"ips\" is not a list");
    const json interfaces = result.contains("interfaces") ? result["interfaces"] : json::array();
    for (const json& ip : *ips) {
      if (!ip.is_object() || !ip.contains("address")) {
        return absl::InvalidArgumentError("an entry of the result's \"ips\" has no address");
      }
      if (auto index = ip.find("interface"); index != ip.end() && index->is_number_integer()) {
        const int i = index->get<int>();
        if (i < 0 || !interfaces.is_array() || static_cast<size_t>(i) >= interfaces.size()) {
          return absl::InvalidArgumentError(
              absl::StrCat("an address refers to interface ", i, ", which the result lacks"));
        }
        const json& interface = interfaces[i];
        if (StringAt(interface, "name") != ifname || StringAt(interface, "sandbox").empty()) {
          continue;  // the host's side, or another interface of the pod
        }
      }
      absl::StatusOr<Address> address = ParseAddress(ip["address"]);
      if (!address.ok()) return address.status();
      addresses.push_back(*address);
    }
  }
  std::vector<std::string> out;
  for (bool v4 : {true, false}) {
    for (const Address& a : addresses) {
      if (a.v4 == v4) out.push_back(a.text);
    }
  }
  return out;
}

}  // namespace crib::network::cni
