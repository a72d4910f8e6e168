// crib's configuration: the built-in defaults, the TOML file (/etc/crib/config.toml) and the
// command-line overrides, validated in one place. Knows nothing of gRPC or of the subsystems
// that read it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace crib {

inline constexpr char kDefaultConfigPath[] = "/etc/crib/config.toml";

// The documented sample etc/config.toml, compiled in; it parses to Config{}.
extern const char kDefaultConfigText[];

enum class CgroupDriver { kCgroupfs, kSystemd };
enum class NetworkBackendKind { kBridge, kCni };

absl::string_view CgroupDriverName(CgroupDriver driver);
absl::string_view NetworkBackendName(NetworkBackendKind kind);

struct NetworkConfig {
  NetworkBackendKind backend = NetworkBackendKind::kBridge;
  // The built-in bridge backend: its bridge, the pod CIDR it hands addresses from (kubelet's
  // UpdateRuntimeConfig replaces it for new pods), the MTU of the bridge and the pods' links,
  // and the nftables table (family inet) crib owns whole.
  std::string bridge = "crib0";
  std::string pod_cidr = "10.88.0.0/16";
  int mtu = 1500;
  std::string nft_table = "crib";
  bool operator==(const NetworkConfig&) const = default;
};

struct Config {
  std::string socket = "/run/crib/crib.sock";
  std::string root_dir = "/var/lib/crib";
  std::string state_dir = "/run/crib";
  std::string log_level = "info";
  CgroupDriver cgroup_driver = CgroupDriver::kCgroupfs;
  absl::Duration shutdown_timeout = absl::Seconds(10);
  std::string helper_dir;  // empty: beside the cribd executable
  int64_t pod_shm_size = 64 << 20;  // bytes of each pod's /dev/shm tmpfs
  NetworkConfig network;

  bool operator==(const Config&) const = default;
};

// Command-line flags; each one that is set replaces the file's value.
struct ConfigOverrides {
  std::optional<std::string> socket;
  std::optional<std::string> root_dir;
  std::optional<std::string> state_dir;
  std::optional<std::string> log_level;
  std::optional<std::string> cgroup_driver;
};

// Parses TOML text over the defaults. Unknown keys, wrong types and bad values are
// InvalidArgument naming `source`, the key and its line.
absl::StatusOr<Config> ParseConfig(absl::string_view text, absl::string_view source);

// Reads and parses `path`. A missing file gives the defaults unless `must_exist` (a path the
// user named), where it is NotFound.
absl::StatusOr<Config> LoadConfig(const std::string& path, bool must_exist);

// Applies the flags over `config` and validates the result.
absl::Status ApplyOverrides(const ConfigOverrides& overrides, Config& config);

// Checks the values that depend on each other or on their form (absolute paths, the socket
// path's length limit, ...).
absl::Status ValidateConfig(const Config& config);

// The effective configuration as a JSON object, as Status(verbose) reports it.
std::string ConfigToJson(const Config& config);

}  // namespace crib
