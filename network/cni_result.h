// What CNI plugins print on stdout, in each spec version's form: the error result (code, msg,
// details) of a failed call, and the addresses a successful ADD result gives the pod (the
// "ips" of spec 0.3.0 and later, "ip4"/"ip6" before). Pure parsing.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace crib::network::cni {

// The spec's well-known error codes that say something about the cause.
inline constexpr int kErrorIncompatibleVersion = 1;
inline constexpr int kErrorUnsupportedField = 2;
inline constexpr int kErrorInvalidEnvironment = 4;
inline constexpr int kErrorInvalidConfig = 7;
inline constexpr int kErrorTryAgainLater = 11;

struct PluginError {
  int code = 0;
  std::string msg;
  std::string details;
};

// The error object in `output`, if it is one (has a "code" or "msg").
bool ParseError(absl::string_view output, PluginError* error);

// The status a failed plugin call maps to: its code picks the status code (config and version
// errors are FailedPrecondition, "try again later" Unavailable, others Unknown), its message is
// `context: msg: details: stderr` (the parts that exist).
absl::Status ErrorStatus(absl::string_view context, const PluginError& error,
                         absl::string_view stderr_text);

// The pod's addresses in `result`, without prefix length: those of interface `ifname` inside
// the sandbox, and those tied to no interface. IPv4 addresses come first (the primary pod IP,
// as containerd picks it), then IPv6, each in the result's order. InvalidArgument for a result
// that is not one, or an address that does not parse.
absl::StatusOr<std::vector<std::string>> ResultIps(const nlohmann::json& result,
                                                   absl::string_view ifname);

}  // namespace crib::network::cni
