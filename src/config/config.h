// crib's configuration: the built-in defaults, the TOML file (/etc/crib/config.toml) and the
// command-line overrides, validated in one place. Knows nothing of gRPC or of the subsystems
// that read it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

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
  // The CNI backend: the directory whose first .conflist, .conf or .json (in lexical order) is
  // the pod network, re-read when it changes; the directories searched for plugin executables,
  // in order (CNI_PATH); and how long one plugin call may take before it is killed. Each pod's
  // attachment is cached under <root_dir>/cni/results, so DEL works after a restart.
  std::string cni_conf_dir = "/etc/cni/net.d";
  std::vector<std::string> cni_plugin_dirs = {"/opt/cni/bin", "/usr/lib/cni"};
  absl::Duration cni_plugin_timeout = absl::Seconds(30);
  bool operator==(const NetworkConfig&) const = default;
};

// Registry access for image pulls. Host keys are registry hosts as written in image references
// ("docker.io", "registry.example.com:5000").
struct RegistryConfig {
  // Per registry host, mirror endpoints ("https://mirror.example.com" or "host:port") tried in
  // order before the registry itself.
  std::map<std::string, std::vector<std::string>> mirrors;
  // Hosts reached over plain HTTP. So are localhost and 127.0.0.0/8, unless they are named in
  // insecure_skip_verify or ca_files, which mean HTTPS; a host may not be in both kinds.
  std::vector<std::string> plain_http;
  // Hosts reached over HTTPS whose TLS certificate is not verified.
  std::vector<std::string> insecure_skip_verify;
  // Per host, a PEM file of CA certificates to verify it with instead of the system's.
  std::map<std::string, std::string> ca_files;
  // A transfer that receives nothing for this long is aborted.
  absl::Duration stall_timeout = absl::Minutes(1);
  // A transfer slower than min_rate bytes/s over min_rate_window is aborted; 0 disables.
  int64_t min_rate = 1024;
  absl::Duration min_rate_window = absl::Minutes(1);
  // Layers of one pull fetched and unpacked at the same time (1 to 64).
  int max_concurrent_downloads = 2;
  bool operator==(const RegistryConfig&) const = default;
};

// The streaming server for Exec, Attach and PortForward (src/stream).
struct StreamConfig {
  // The address and port it listens on; port 0 picks an ephemeral port (as containerd does).
  std::string address = "127.0.0.1";
  int port = 0;
  // TLS; without a certificate and key file, a self-signed certificate made at start.
  bool tls = false;
  std::string tls_cert_file;
  std::string tls_key_file;
  // A streaming connection with no traffic either way for this long is closed.
  absl::Duration idle_timeout = absl::Hours(4);
  // How long a SPDY client has to open its streams after the upgrade.
  absl::Duration stream_creation_timeout = absl::Seconds(30);
  // Connections and sessions at once, in total and per container or pod sandbox.
  int max_streams = 128;
  int max_streams_per_container = 32;
  bool operator==(const StreamConfig&) const = default;
};

// An OCI runtime that pods of a RuntimeClass run under (`[runtimes.<handler>]`).
struct RuntimeHandlerConfig {
  std::string path;               // the executable (runc, crun, runsc, ...)
  std::string root;               // its state (--root); empty: <state_dir>/runtimes/<handler>
  std::vector<std::string> args;  // more global flags, given after --root
  absl::Duration timeout = absl::Minutes(1);  // one call (create, start, exec, ...) at most
  // What Status reports as this handler's features (the kernel must allow them too).
  bool recursive_read_only_mounts = false;
  bool operator==(const RuntimeHandlerConfig&) const = default;
};

struct Config {
  std::string socket = "/run/crib/crib.sock";
  std::string root_dir = "/var/lib/crib";
  std::string state_dir = "/run/crib";
  std::string log_level = "info";
  CgroupDriver cgroup_driver = CgroupDriver::kCgroupfs;
  // The cgroup parent of pods that name none: a path (cgroupfs) or a slice (systemd); empty:
  // crib's own, /crib or crib.slice.
  std::string cgroup_parent;
  absl::Duration shutdown_timeout = absl::Seconds(10);
  std::string helper_dir;           // empty: beside the cribd executable
  int64_t pod_shm_size = 64 << 20;  // bytes of each pod's /dev/shm tmpfs
  std::string metrics_address;      // the Prometheus endpoint's host:port; empty: none
  // The name crib's own launcher answers to as a runtime handler, besides "".
  std::string default_runtime_name = "crib";
  std::map<std::string, RuntimeHandlerConfig> runtimes;  // by handler name
  NetworkConfig network;
  RegistryConfig registry;
  StreamConfig stream;

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

struct HostPort {
  std::string host;  // empty: every address
  int port = 0;
};

// "host:port", "[ipv6]:port" or ":port", with a port of 0 to 65535.
absl::StatusOr<HostPort> ParseHostPort(absl::string_view address);

// The configured OCI runtime of `handler`; nullptr for crib's own launcher ("" or
// default_runtime_name) and for a handler that is not configured (see KnownRuntimeHandler).
const RuntimeHandlerConfig* FindRuntimeHandler(const Config& config, const std::string& handler);
// InvalidArgument naming `handler` and the configured ones when it is neither crib's own
// launcher nor a configured runtime.
absl::Status KnownRuntimeHandler(const Config& config, const std::string& handler);
// The executable and global flags of `handler`'s runtime: path, --root, args.
std::vector<std::string> RuntimeHandlerArgv(const Config& config, const std::string& handler);

// The effective configuration as a JSON object, as Status(verbose) reports it.
std::string ConfigToJson(const Config& config);

}  // namespace crib
