#include "config/config.h"

#include <arpa/inet.h>
#include <sys/un.h>

#include <algorithm>
#include <cctype>
#include <functional>
#include <map>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/errors.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "toml++/toml.h"

namespace crib {
namespace {

// Each key's parser takes the TOML node and sets the field, or says what is wrong with the
// value; the caller adds the file, key and line.
using KeySetter = std::function<absl::Status(const toml::node&, Config&)>;

absl::string_view TypeName(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    default:
      return "a date or time";
  }
}

absl::StatusOr<std::string> AsString(const toml::node& node) {
  if (const auto* s = node.as_string()) return s->get();
  return absl::InvalidArgumentError(absl::StrCat("want a string, got ", TypeName(node)));
}

KeySetter StringKey(std::string Config::*field) {
  return [field](const toml::node& node, Config& config) -> absl::Status {
    ASSIGN_OR_RETURN(config.*field, AsString(node));
    return absl::OkStatus();
  };
}

absl::StatusOr<CgroupDriver> ParseCgroupDriver(absl::string_view name) {
  if (name == "cgroupfs") return CgroupDriver::kCgroupfs;
  if (name == "systemd") return CgroupDriver::kSystemd;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown cgroup driver \"", name, "\" (want cgroupfs or systemd)"));
}

absl::StatusOr<NetworkBackendKind> ParseNetworkBackend(absl::string_view name) {
  if (name == "bridge") return NetworkBackendKind::kBridge;
  if (name == "cni") return NetworkBackendKind::kCni;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown network backend \"", name, "\" (want bridge or cni)"));
}

const std::map<std::string, KeySetter, std::less<>>& TopLevelKeys() {
  static const auto* keys = new std::map<std::string, KeySetter, std::less<>>{
      {"socket", StringKey(&Config::socket)},
      {"root_dir", StringKey(&Config::root_dir)},
      {"state_dir", StringKey(&Config::state_dir)},
      {"log_level", StringKey(&Config::log_level)},
      {"helper_dir", StringKey(&Config::helper_dir)},
      {"metrics_address", StringKey(&Config::metrics_address)},
      {"cgroup_driver",
       [](const toml::node& node, Config& config) -> absl::Status {
         ASSIGN_OR_RETURN(std::string name, AsString(node));
         ASSIGN_OR_RETURN(config.cgroup_driver, ParseCgroupDriver(name));
         return absl::OkStatus();
       }},
      {"cgroup_parent", StringKey(&Config::cgroup_parent)},
      {"default_runtime_name", StringKey(&Config::default_runtime_name)},
      {"pod_shm_size",
       [](const toml::node& node, Config& config) -> absl::Status {
         const auto* value = node.as_integer();
         if (value == nullptr) {
           return absl::InvalidArgumentError(
               absl::StrCat("want an integer (bytes), got ", TypeName(node)));
         }
         if (value->get() < 4096) {
           return absl::InvalidArgumentError(
               absl::StrCat("bad size ", value->get(), " (want at least 4096 bytes)"));
         }
         config.pod_shm_size = value->get();
         return absl::OkStatus();
       }},
      {"shutdown_timeout",
       [](const toml::node& node, Config& config) -> absl::Status {
         ASSIGN_OR_RETURN(std::string text, AsString(node));
         absl::Duration d;
         if (!absl::ParseDuration(text, &d) || d < absl::ZeroDuration()) {
           return absl::InvalidArgumentError(
               absl::StrCat("bad duration \"", text, "\" (want e.g. \"10s\" or \"1m30s\")"));
         }
         config.shutdown_timeout = d;
         return absl::OkStatus();
       }},
  };
  return *keys;
}

absl::StatusOr<absl::Duration> AsDuration(const toml::node& node);
absl::StatusOr<std::vector<std::string>> AsStringArray(const toml::node& node);

KeySetter NetworkStringKey(std::string NetworkConfig::*field) {
  return [field](const toml::node& node, Config& config) -> absl::Status {
    ASSIGN_OR_RETURN(config.network.*field, AsString(node));
    return absl::OkStatus();
  };
}

const std::map<std::string, KeySetter, std::less<>>& NetworkKeys() {
  static const auto* keys = new std::map<std::string, KeySetter, std::less<>>{
      {"bridge", NetworkStringKey(&NetworkConfig::bridge)},
      {"pod_cidr", NetworkStringKey(&NetworkConfig::pod_cidr)},
      {"nft_table", NetworkStringKey(&NetworkConfig::nft_table)},
      {"cni_conf_dir", NetworkStringKey(&NetworkConfig::cni_conf_dir)},
      {"cni_plugin_dirs",
       [](const toml::node& node, Config& config) -> absl::Status {
         ASSIGN_OR_RETURN(config.network.cni_plugin_dirs, AsStringArray(node));
         return absl::OkStatus();
       }},
      {"cni_plugin_timeout",
       [](const toml::node& node, Config& config) -> absl::Status {
         ASSIGN_OR_RETURN(config.network.cni_plugin_timeout, AsDuration(node));
         return absl::OkStatus();
       }},
      {"mtu",
       [](const toml::node& node, Config& config) -> absl::Status {
         const auto* value = node.as_integer();
         if (value == nullptr) {
           return absl::InvalidArgumentError(absl::StrCat("want an integer, got ", TypeName(node)));
         }
         if (value->get() < 68 || value->get() > 65535) {
           return absl::InvalidArgumentError(
               absl::StrCat("mtu ", value->get(), " is outside 68..65535"));
         }
         config.network.mtu = static_cast<int>(value->get());
         return absl::OkStatus();
       }},
      {"backend",
       [](const toml::node& node, Config& config) -> absl::Status {
         ASSIGN_OR_RETURN(std::string name, AsString(node));
         ASSIGN_OR_RETURN(config.network.backend, ParseNetworkBackend(name));
         return absl::OkStatus();
       }},
  };
  return *keys;
}

absl::StatusOr<absl::Duration> AsDuration(const toml::node& node) {
  ASSIGN_OR_RETURN(std::string text, AsString(node));
  absl::Duration d;
  if (!absl::ParseDuration(text, &d) || d <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad duration \"", text, "\" (want a positive one, e.g. \"30s\" or \"1m\")"));
  }
  return d;
}

absl::StatusOr<std::vector<std::string>> AsStringArray(const toml::node& node) {
  const toml::array* array = node.as_array();
  if (array == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("want an array of strings, got ", TypeName(node)));
  }
  std::vector<std::string> out;
  for (const toml::node& element : *array) {
    ASSIGN_OR_RETURN(std::string value, AsString(element));
    out.push_back(std::move(value));
  }
  return out;
}

// A table of host = value entries.
template <typename T>
absl::StatusOr<std::map<std::string, T>> AsHostTable(
    const toml::node& node, const std::function<absl::StatusOr<T>(const toml::node&)>& parse) {
  const toml::table* table = node.as_table();
  if (table == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("want a table of hosts, got ", TypeName(node)));
  }
  std::map<std::string, T> out;
  for (const auto& [key, value] : *table) {
    absl::StatusOr<T> parsed = parse(value);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("host \"", std::string(key.str()), "\": ", parsed.status().message()));
    }
    out.emplace(std::string(key.str()), *std::move(parsed));
  }
  return out;
}

const std::map<std::string, KeySetter, std::less<>>& RegistryKeys() {
  static const auto* keys = new std::map<std::string, KeySetter, std::less<>>{
      {"mirrors",
       [](const toml::node& node, Config& config) -> absl::Status {
         ASSIGN_OR_RETURN(config.registry.mirrors,
                          AsHostTable<std::vector<std::string>>(node, AsStringArray));
         return absl::OkStatus();
       }},
      {"plain_http",
       [](const toml::node& node, Config& config) -> absl::Status {
         ASSIGN_OR_RETURN(config.registry.plain_http, AsStringArray(node));
         return absl::OkStatus();
       }},
      {"insecure_skip_verify",
       [](const toml::node& node, Config& config) -> absl::Status {
         ASSIGN_OR_RETURN(config.registry.insecure_skip_verify, AsStringArray(node));
         return absl::OkStatus();
       }},
      {"ca_files",
       [](const toml::node& node, Config& config) -> absl::Status {
         ASSIGN_OR_RETURN(config.registry.ca_files, AsHostTable<std::string>(node, AsString));
         return absl::OkStatus();
       }},
      {"stall_timeout",
       [](const toml::node& node, Config& config) -> absl::Status {
         ASSIGN_OR_RETURN(config.registry.stall_timeout, AsDuration(node));
         return absl::OkStatus();
       }},
      {"min_rate",
       [](const toml::node& node, Config& config) -> absl::Status {
         const auto* value = node.as_integer();
         if (value == nullptr || value->get() < 0) {
           return absl::InvalidArgumentError("want a non-negative integer (bytes per second)");
         }
         config.registry.min_rate = value->get();
         return absl::OkStatus();
       }},
      {"min_rate_window",
       [](const toml::node& node, Config& config) -> absl::Status {
         ASSIGN_OR_RETURN(config.registry.min_rate_window, AsDuration(node));
         return absl::OkStatus();
       }},
      {"max_concurrent_downloads",
       [](const toml::node& node, Config& config) -> absl::Status {
         const auto* value = node.as_integer();
         if (value == nullptr || value->get() < 1 || value->get() > 64) {
           return absl::InvalidArgumentError("want an integer from 1 to 64 (layers at a time)");
         }
         config.registry.max_concurrent_downloads = static_cast<int>(value->get());
         return absl::OkStatus();
       }},
  };
  return *keys;
}

KeySetter StreamStringKey(std::string StreamConfig::*field) {
  return [field](const toml::node& node, Config& config) -> absl::Status {
    ASSIGN_OR_RETURN(config.stream.*field, AsString(node));
    return absl::OkStatus();
  };
}

KeySetter StreamDurationKey(absl::Duration StreamConfig::*field) {
  return [field](const toml::node& node, Config& config) -> absl::Status {
    ASSIGN_OR_RETURN(config.stream.*field, AsDuration(node));
    return absl::OkStatus();
  };
}

KeySetter StreamIntKey(int StreamConfig::*field, int64_t min, int64_t max) {
  return [field, min, max](const toml::node& node, Config& config) -> absl::Status {
    const auto* value = node.as_integer();
    if (value == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("want an integer, got ", TypeName(node)));
    }
    if (value->get() < min || value->get() > max) {
      return absl::InvalidArgumentError(absl::StrCat(value->get(), " is outside ", min, "..", max));
    }
    config.stream.*field = static_cast<int>(value->get());
    return absl::OkStatus();
  };
}

const std::map<std::string, KeySetter, std::less<>>& StreamKeys() {
  static const auto* keys = new std::map<std::string, KeySetter, std::less<>>{
      {"address", StreamStringKey(&StreamConfig::address)},
      {"port", StreamIntKey(&StreamConfig::port, 0, 65535)},
      {"tls",
       [](const toml::node& node, Config& config) -> absl::Status {
         const auto* value = node.as_boolean();
         if (value == nullptr) {
           return absl::InvalidArgumentError(absl::StrCat("want a boolean, got ", TypeName(node)));
         }
         config.stream.tls = value->get();
         return absl::OkStatus();
       }},
      {"tls_cert_file", StreamStringKey(&StreamConfig::tls_cert_file)},
      {"tls_key_file", StreamStringKey(&StreamConfig::tls_key_file)},
      {"idle_timeout", StreamDurationKey(&StreamConfig::idle_timeout)},
      {"stream_creation_timeout", StreamDurationKey(&StreamConfig::stream_creation_timeout)},
      {"max_streams", StreamIntKey(&StreamConfig::max_streams, 1, 100000)},
      {"max_streams_per_container",
       StreamIntKey(&StreamConfig::max_streams_per_container, 1, 100000)},
  };
  return *keys;
}

absl::Status KeyError(absl::string_view source, absl::string_view key, const toml::node& node,
                      absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("config ", source, ": key ", key, " (line ",
                                                 node.source().begin.line, "): ", what));
}

absl::StatusOr<bool> AsBool(const toml::node& node) {
  const auto* value = node.as_boolean();
  if (value == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("want a boolean, got ", TypeName(node)));
  }
  return value->get();
}

// [runtimes.<handler>] tables.
absl::Status ParseRuntimes(absl::string_view source, const toml::node& node, Config& config) {
  const toml::table* handlers = node.as_table();
  if (handlers == nullptr) {
    return KeyError(source, "runtimes", node, absl::StrCat("want a table, got ", TypeName(node)));
  }
  for (const auto& [name_key, handler_node] : *handlers) {
    const std::string name(name_key.str());
    const std::string prefix = absl::StrCat("runtimes.", name);
    const toml::table* table = handler_node.as_table();
    if (table == nullptr) {
      return KeyError(source, prefix, handler_node,
                      absl::StrCat("want a table, got ", TypeName(handler_node)));
    }
    RuntimeHandlerConfig handler;
    for (const auto& [key_key, value] : *table) {
      const std::string key(key_key.str());
      absl::Status parsed = [&]() -> absl::Status {
        if (key == "path") {
          ASSIGN_OR_RETURN(handler.path, AsString(value));
          return absl::OkStatus();
        }
        if (key == "root") {
          ASSIGN_OR_RETURN(handler.root, AsString(value));
          return absl::OkStatus();
        }
        if (key == "args") {
          ASSIGN_OR_RETURN(handler.args, AsStringArray(value));
          return absl::OkStatus();
        }
        if (key == "timeout") {
          ASSIGN_OR_RETURN(handler.timeout, AsDuration(value));
          return absl::OkStatus();
        }
        if (key == "recursive_read_only_mounts") {
          ASSIGN_OR_RETURN(handler.recursive_read_only_mounts, AsBool(value));
          return absl::OkStatus();
        }
        return absl::InvalidArgumentError("unknown key");
      }();
      if (!parsed.ok()) {
        return KeyError(source, absl::StrCat(prefix, ".", key), value, parsed.message());
      }
    }
    config.runtimes[name] = std::move(handler);
  }
  return absl::OkStatus();
}

absl::Status ApplyKey(absl::string_view source, absl::string_view prefix, absl::string_view key,
                      const toml::node& node,
                      const std::map<std::string, KeySetter, std::less<>>& keys, Config& config) {
  const std::string name = absl::StrCat(prefix, key);
  auto it = keys.find(key);
  if (it == keys.end()) return KeyError(source, name, node, "unknown key");
  if (absl::Status s = it->second(node, config); !s.ok()) {
    return KeyError(source, name, node, s.message());
  }
  return absl::OkStatus();
}

absl::Status CheckAbsolute(absl::string_view key, const std::string& path) {
  if (path.empty() || path[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("key ", key, ": \"", path, "\" is not an absolute path"));
  }
  return absl::OkStatus();
}

// Names that end up in netlink and nftables: an interface name has at most 15 bytes, and
// both are kept to characters that need no quoting.
absl::Status CheckName(absl::string_view key, const std::string& name, size_t max_length) {
  const bool ok = !name.empty() && name.size() <= max_length &&
                  std::all_of(name.begin(), name.end(), [](char c) {
                    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
                  });
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat("key ", key, ": \"", name, "\" is not 1 to ",
                                                   max_length, " letters, digits, _ or -"));
  }
  return absl::OkStatus();
}

absl::Status ValidateNetwork(const NetworkConfig& network) {
  RETURN_IF_ERROR(CheckName("network.bridge", network.bridge, 15));
  RETURN_IF_ERROR(CheckAbsolute("network.cni_conf_dir", network.cni_conf_dir));
  if (network.cni_plugin_dirs.empty()) {
    return absl::InvalidArgumentError("key network.cni_plugin_dirs: want at least one directory");
  }
  for (const std::string& dir : network.cni_plugin_dirs) {
    RETURN_IF_ERROR(CheckAbsolute("network.cni_plugin_dirs", dir));
    // CNI_PATH separates its directories with ':'.
    if (dir.find(':') != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("key network.cni_plugin_dirs: \"", dir, "\" contains ':'"));
    }
  }
  RETURN_IF_ERROR(CheckName("network.nft_table", network.nft_table, 64));
  // The backend checks the CIDR's details; here only its form: a.b.c.d/len.
  const size_t slash = network.pod_cidr.find('/');
  in_addr addr{};
  int prefix = -1;
  if (slash == std::string::npos ||
      ::inet_pton(AF_INET, network.pod_cidr.substr(0, slash).c_str(), &addr) != 1 ||
      !absl::SimpleAtoi(network.pod_cidr.substr(slash + 1), &prefix) || prefix < 0 || prefix > 30) {
    return absl::InvalidArgumentError(
        absl::StrCat("key network.pod_cidr: \"", network.pod_cidr,
                     "\" is not an IPv4 CIDR with a prefix of at most 30 bits"));
  }
  return absl::OkStatus();
}

// A handler's name is a DNS label, as a RuntimeClass's handler must be.
bool IsHandlerName(const std::string& name) {
  if (name.empty() || name.size() > 63 || name.front() == '-' || name.back() == '-') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

absl::Status ValidateRuntimes(const Config& config) {
  if (!IsHandlerName(config.default_runtime_name)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "key default_runtime_name: \"", config.default_runtime_name,
        "\" is not a runtime handler name (lower-case letters, digits and -, at most 63)"));
  }
  for (const auto& [name, handler] : config.runtimes) {
    const std::string key = absl::StrCat("runtimes.", name);
    if (!IsHandlerName(name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "key ", key, ": \"", name,
          "\" is not a runtime handler name (lower-case letters, digits and -, at most 63)"));
    }
    if (name == config.default_runtime_name) {
      return absl::InvalidArgumentError(
          absl::StrCat("key ", key, ": \"", name,
                       "\" is crib's own launcher (default_runtime_name); pick another name"));
    }
    RETURN_IF_ERROR(CheckAbsolute(absl::StrCat(key, ".path"), handler.path));
    if (!handler.root.empty())
      RETURN_IF_ERROR(CheckAbsolute(absl::StrCat(key, ".root"), handler.root));
    if (handler.timeout <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError(absl::StrCat("key ", key, ".timeout: want more than 0"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateStream(const StreamConfig& stream) {
  in6_addr addr{};
  if (::inet_pton(AF_INET, stream.address.c_str(), &addr) != 1 &&
      ::inet_pton(AF_INET6, stream.address.c_str(), &addr) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("key stream.address: \"", stream.address, "\" is not an IP address"));
  }
  if (stream.tls_cert_file.empty() != stream.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "keys stream.tls_cert_file and stream.tls_key_file: set both or neither");
  }
  if (!stream.tls_cert_file.empty()) {
    RETURN_IF_ERROR(CheckAbsolute("stream.tls_cert_file", stream.tls_cert_file));
    RETURN_IF_ERROR(CheckAbsolute("stream.tls_key_file", stream.tls_key_file));
  }
  return absl::OkStatus();
}

// A host is reached either over plain HTTP or over TLS: naming it for both is a mistake.
absl::Status ValidateRegistry(const RegistryConfig& registry) {
  for (const std::string& host : registry.plain_http) {
    const bool tls =
        registry.ca_files.count(host) > 0 ||
        std::find(registry.insecure_skip_verify.begin(), registry.insecure_skip_verify.end(),
                  host) != registry.insecure_skip_verify.end();
    if (tls) {
      return absl::InvalidArgumentError(absl::StrCat(
          "key registry.plain_http: host \"", host,
          "\" is also in registry.ca_files or registry.insecure_skip_verify, which mean TLS"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::string_view CgroupDriverName(CgroupDriver driver) {
  return driver == CgroupDriver::kSystemd ? "systemd" : "cgroupfs";
}

absl::string_view NetworkBackendName(NetworkBackendKind kind) {
  return kind == NetworkBackendKind::kCni ? "cni" : "bridge";
}

absl::StatusOr<Config> ParseConfig(absl::string_view text, absl::string_view source) {
  toml::table root;
  try {
    root = toml::parse(std::string_view(text.data(), text.size()),
                       std::string_view(source.data(), source.size()));
  } catch (const toml::parse_error& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config ", source, " (line ", e.source().begin.line, "): ", std::string(e.description())));
  }
  Config config;
  for (const auto& [toml_key, node] : root) {
    const absl::string_view key(toml_key.str().data(), toml_key.str().size());
    if (key == "runtimes") {
      RETURN_IF_ERROR(ParseRuntimes(source, node, config));
      continue;
    }
    if (key != "network" && key != "registry" && key != "stream") {
      RETURN_IF_ERROR(ApplyKey(source, "", key, node, TopLevelKeys(), config));
      continue;
    }
    const toml::table* section = node.as_table();
    if (section == nullptr) {
      return KeyError(source, key, node, absl::StrCat("want a table, got ", TypeName(node)));
    }
    const std::string prefix = absl::StrCat(key, ".");
    for (const auto& [section_key, section_node] : *section) {
      RETURN_IF_ERROR(ApplyKey(
          source, prefix, absl::string_view(section_key.str().data(), section_key.str().size()),
          section_node,
          key == "network"    ? NetworkKeys()
          : key == "registry" ? RegistryKeys()
                              : StreamKeys(),
          config));
    }
  }
  if (absl::Status s = ValidateConfig(config); !s.ok()) {
    return Annotate(s, absl::StrCat("config ", source));
  }
  return config;
}

absl::StatusOr<Config> LoadConfig(const std::string& path, bool must_exist) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) {
    if (absl::IsNotFound(text.status()) && !must_exist) return Config{};
    return text.status();
  }
  return ParseConfig(*text, path);
}

absl::Status ApplyOverrides(const ConfigOverrides& overrides, Config& config) {
  if (overrides.socket) config.socket = *overrides.socket;
  if (overrides.root_dir) config.root_dir = *overrides.root_dir;
  if (overrides.state_dir) config.state_dir = *overrides.state_dir;
  if (overrides.log_level) config.log_level = *overrides.log_level;
  if (overrides.cgroup_driver) {
    absl::StatusOr<CgroupDriver> driver = ParseCgroupDriver(*overrides.cgroup_driver);
    if (!driver.ok()) return Annotate(driver.status(), "flag --cgroup-driver");
    config.cgroup_driver = *driver;
  }
  return ValidateConfig(config);
}

absl::Status ValidateConfig(const Config& config) {
  RETURN_IF_ERROR(CheckAbsolute("socket", config.socket));
  // sun_path holds the path and its terminating NUL.
  if (config.socket.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("key socket: \"", config.socket, "\" is longer than the ",
                     sizeof(sockaddr_un{}.sun_path) - 1, " bytes a unix socket path may have"));
  }
  RETURN_IF_ERROR(CheckAbsolute("root_dir", config.root_dir));
  RETURN_IF_ERROR(CheckAbsolute("state_dir", config.state_dir));
  if (!config.helper_dir.empty()) RETURN_IF_ERROR(CheckAbsolute("helper_dir", config.helper_dir));
  if (absl::Status s = ParseLogLevel(config.log_level).status(); !s.ok()) {
    return Annotate(s, "key log_level");
  }
  RETURN_IF_ERROR(ValidateNetwork(config.network));
  RETURN_IF_ERROR(ValidateRegistry(config.registry));
  RETURN_IF_ERROR(ValidateStream(config.stream));
  RETURN_IF_ERROR(ValidateRuntimes(config));
  if (!config.metrics_address.empty()) {
    if (absl::Status s = ParseHostPort(config.metrics_address).status(); !s.ok()) {
      return Annotate(s, "key metrics_address");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<HostPort> ParseHostPort(absl::string_view address) {
  HostPort out;
  absl::string_view port;
  if (absl::ConsumePrefix(&address, "[")) {
    const size_t close = address.find(']');
    if (close == absl::string_view::npos || address.substr(close + 1, 1) != ":") {
      return absl::InvalidArgumentError(absl::StrCat("\"[", address, "\" is not [ipv6]:port"));
    }
    out.host = std::string(address.substr(0, close));
    port = address.substr(close + 2);
  } else {
    const size_t colon = address.rfind(':');
    if (colon == absl::string_view::npos ||
        address.substr(0, colon).find(':') != absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "\"", address, "\" is not host:port (an IPv6 address goes in brackets: [::1]:9400)"));
    }
    out.host = std::string(address.substr(0, colon));
    port = address.substr(colon + 1);
  }
  if (!absl::SimpleAtoi(port, &out.port) || out.port < 0 || out.port > 65535 ||
      port.find_first_not_of("0123456789") != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("port \"", port, "\" is not a number from 0 to 65535"));
  }
  return out;
}

const RuntimeHandlerConfig* FindRuntimeHandler(const Config& config, const std::string& handler) {
  auto it = config.runtimes.find(handler);
  return it == config.runtimes.end() ? nullptr : &it->second;
}

absl::Status KnownRuntimeHandler(const Config& config, const std::string& handler) {
  if (handler.empty() || handler == config.default_runtime_name ||
      config.runtimes.count(handler) > 0) {
    return absl::OkStatus();
  }
  std::vector<std::string> known = {
      absl::StrCat("\"\" and \"", config.default_runtime_name, "\" (crib's own launcher)")};
  for (const auto& [name, unused] : config.runtimes)
    known.push_back(absl::StrCat("\"", name, "\""));
  return absl::InvalidArgumentError(absl::StrCat("runtime handler \"", handler,
                                                 "\" is not configured; the handlers are ",
                                                 absl::StrJoin(known, ", ")));
}

std::vector<std::string> RuntimeHandlerArgv(const Config& config, const std::string& handler) {
  const RuntimeHandlerConfig* runtime = FindRuntimeHandler(config, handler);
  if (runtime == nullptr) return {};
  std::vector<std::string> argv = {runtime->path, "--root",
                                   runtime->root.empty()
                                       ? absl::StrCat(config.state_dir, "/runtimes/", handler)
                                       : runtime->root};
  // With the systemd driver the runtime has systemd start each container's scope, as crib
  // does for its own containers (the spec names it as <slice>:crib:<id>).
  if (config.cgroup_driver == CgroupDriver::kSystemd) argv.push_back("--systemd-cgroup");
  argv.insert(argv.end(), runtime->args.begin(), runtime->args.end());
  return argv;
}

std::string ConfigToJson(const Config& config) {
  nlohmann::json runtimes = nlohmann::json::object();
  for (const auto& [name, handler] : config.runtimes) {
    runtimes[name] = {{"path", handler.path},
                      {"root", handler.root},
                      {"args", handler.args},
                      {"timeout", absl::FormatDuration(handler.timeout)},
                      {"recursive_read_only_mounts", handler.recursive_read_only_mounts}};
  }
  nlohmann::json j = {
      {"socket", config.socket},
      {"root_dir", config.root_dir},
      {"state_dir", config.state_dir},
      {"log_level", config.log_level},
      {"cgroup_driver", CgroupDriverName(config.cgroup_driver)},
      {"cgroup_parent", config.cgroup_parent},
      {"shutdown_timeout", absl::FormatDuration(config.shutdown_timeout)},
      {"helper_dir", config.helper_dir},
      {"pod_shm_size", config.pod_shm_size},
      {"metrics_address", config.metrics_address},
      {"default_runtime_name", config.default_runtime_name},
      {"runtimes", runtimes},
      {"network",
       {{"backend", NetworkBackendName(config.network.backend)},
        {"bridge", config.network.bridge},
        {"pod_cidr", config.network.pod_cidr},
        {"mtu", config.network.mtu},
        {"nft_table", config.network.nft_table},
        {"cni_conf_dir", config.network.cni_conf_dir},
        {"cni_plugin_dirs", config.network.cni_plugin_dirs},
        {"cni_plugin_timeout", absl::FormatDuration(config.network.cni_plugin_timeout)}}},
      {"registry",
       {{"mirrors", config.registry.mirrors},
        {"plain_http", config.registry.plain_http},
        {"insecure_skip_verify", config.registry.insecure_skip_verify},
        {"ca_files", config.registry.ca_files},
        {"stall_timeout", absl::FormatDuration(config.registry.stall_timeout)},
        {"min_rate", config.registry.min_rate},
        {"min_rate_window", absl::FormatDuration(config.registry.min_rate_window)},
        {"max_concurrent_downloads", config.registry.max_concurrent_downloads}}},
      {"stream",
       {{"address", config.stream.address},
        {"port", config.stream.port},
        {"tls", config.stream.tls},
        {"tls_cert_file", config.stream.tls_cert_file},
        {"tls_key_file", config.stream.tls_key_file},
        {"idle_timeout", absl::FormatDuration(config.stream.idle_timeout)},
        {"stream_creation_timeout", absl::FormatDuration(config.stream.stream_creation_timeout)},
        {"max_streams", config.stream.max_streams},
        {"max_streams_per_container", config.stream.max_streams_per_container}}},
  };
  return j.dump();
}

}  // namespace crib
