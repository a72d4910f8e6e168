#include "network/cni_config.h"

#include <dirent.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/errors.h"

namespace crib::network::cni {
namespace {

using nlohmann::json;

absl::Status Invalid(absl::string_view source, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("cni config ", source, ": ", what));
}

absl::StatusOr<json> ParseObject(absl::string_view text, absl::string_view source) {
  json parsed = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return Invalid(source, "not valid JSON");
  if (!parsed.is_object()) return Invalid(source, "not a JSON object");
  return parsed;
}

// The spec's rule for network names: an alphanumeric, then alphanumerics, '_', '.' or '-'.
bool ValidNetworkName(absl::string_view name) {
  if (name.empty() || !absl::ascii_isalnum(name[0])) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return absl::ascii_isalnum(c) || c == '_' || c == '.' || c == '-';
  });
}

absl::Status CheckPlugin(const json& plugin, size_t index, absl::string_view source) {
  const std::string where = absl::StrCat("plugin ", index, ": ");
  if (!plugin.is_object()) return Invalid(source, absl::StrCat(where, "not a JSON object"));
  auto type = plugin.find("type");
  if (type == plugin.end() || !type->is_string() || type->get<std::string>().empty()) {
    return Invalid(source, absl::StrCat(where, "has no \"type\" naming its plugin executable"));
  }
  const std::string name = type->get<std::string>();
  // The type names a file in the plugin directories, never a path.
  if (name.find('/') != std::string::npos || name == "." || name == "..") {
    return Invalid(source, absl::StrCat(where, "type \"", name, "\" is not a plain file name"));
  }
  auto capabilities = plugin.find("capabilities");
  if (capabilities != plugin.end() && !capabilities->is_object()) {
    return Invalid(source, absl::StrCat(where, "\"capabilities\" is not an object"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ChooseVersion(const json& list, absl::string_view source) {
  if (auto versions = list.find("cniVersions"); versions != list.end()) {
    if (!versions->is_array()) return Invalid(source, "\"cniVersions\" is not an array");
    std::string best;
    for (const json& v : *versions) {
      if (!v.is_string()) return Invalid(source, "\"cniVersions\" holds a non-string");
      const std::string version = v.get<std::string>();
      if (IsSupportedVersion(version) && (best.empty() || CompareVersions(version, best) > 0)) {
        best = version;
      }
    }
    if (!best.empty()) return best;
    return Invalid(source, absl::StrCat("none of \"cniVersions\" ", versions->dump(),
                                        " is supported (crib supports 0.1.0 to 1.0.0)"));
  }
  auto version = list.find("cniVersion");
  if (version == list.end() || !version->is_string() || version->get<std::string>().empty()) {
    return Invalid(source, "has no \"cniVersion\"");
  }
  return version->get<std::string>();
}

absl::Status CheckVersion(const std::string& version, absl::string_view source) {
  if (IsSupportedVersion(version)) return absl::OkStatus();
  return Invalid(source, absl::StrCat("cniVersion \"", version,
                                      "\" is not supported (crib supports 0.1.0 to 1.0.0)"));
}

absl::StatusOr<NetworkConfigList> ListFromObject(const json& list, absl::string_view source) {
  NetworkConfigList out;
  out.source = std::string(source);
  auto name = list.find("name");
  if (name == list.end() || !name->is_string() || !ValidNetworkName(name->get<std::string>())) {
    return Invalid(source,
                   "\"name\" is missing or not a network name (a letter or digit, then letters, "
                   "digits, '_', '.' or '-')");
  }
  out.name = name->get<std::string>();
  auto version = ChooseVersion(list, source);
  if (!version.ok()) return version.status();
  out.cni_version = *version;
  if (absl::Status s = CheckVersion(out.cni_version, source); !s.ok()) return s;
  if (auto disable = list.find("disableCheck"); disable != list.end()) {
    // libcni also takes the strings "true" and "false" here.
    if (disable->is_boolean()) {
      out.disable_check = disable->get<bool>();
    } else if (disable->is_string() && (*disable == "true" || *disable == "false")) {
      out.disable_check = *disable == "true";
    } else {
      return Invalid(source, "\"disableCheck\" is not a boolean");
    }
  }
  auto plugins = list.find("plugins");
  if (plugins == list.end() || !plugins->is_array() || plugins->empty()) {
    return Invalid(source, "\"plugins\" is missing or empty");
  }
  for (size_t i = 0; i < plugins->size(); ++i) {
    if (absl::Status s = CheckPlugin((*plugins)[i], i, source); !s.ok()) return s;
    out.plugins.push_back((*plugins)[i]);
  }
  return out;
}

std::vector<int> VersionParts(absl::string_view version) {
  std::vector<int> parts;
  for (absl::string_view part : absl::StrSplit(version, '.')) {
    int n = 0;
    if (!absl::SimpleAtoi(part, &n)) n = 0;
    parts.push_back(n);
  }
  while (parts.size() < 3) parts.push_back(0);
  return parts;
}

}  // namespace

const std::vector<std::string>& SupportedVersions() {
  static const auto* versions =
      new std::vector<std::string>{"0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"};
  return *versions;
}

bool IsSupportedVersion(absl::string_view version) {
  const std::vector<std::string>& all = SupportedVersions();
  return std::find(all.begin(), all.end(), version) != all.end();
}

int CompareVersions(absl::string_view a, absl::string_view b) {
  const std::vector<int> x = VersionParts(a), y = VersionParts(b);
  for (size_t i = 0; i < std::max(x.size(), y.size()); ++i) {
    const int p = i < x.size() ? x[i] : 0, q = i < y.size() ? y[i] : 0;
    if (p != q) return p < q ? -1 : 1;
  }
  return 0;
}

bool HasCheckAndDelPrevResult(absl::string_view version) {
  return CompareVersions(version, "0.4.0") >= 0;
}

json NetworkConfigList::ToJson() const {
  return json{{"cniVersion", cni_version},
              {"name", name},
              {"disableCheck", disable_check},
              {"plugins", plugins}};
}

std::vector<std::string> NetworkConfigList::PluginTypes() const {
  std::vector<std::string> out;
  for (const json& plugin : plugins) out.push_back(plugin.at("type").get<std::string>());
  return out;
}

absl::StatusOr<NetworkConfigList> ParseConfigList(absl::string_view text,
                                                  absl::string_view source) {
  absl::StatusOr<json> list = ParseObject(text, source);
  if (!list.ok()) return list.status();
  return ListFromObject(*list, source);
}

absl::StatusOr<NetworkConfigList> ParseConfigFile(absl::string_view text,
                                                  absl::string_view source) {
  if (absl::EndsWith(source, ".conflist")) return ParseConfigList(text, source);
  absl::StatusOr<json> conf = ParseObject(text, source);
  if (!conf.ok()) return conf.status();
  if (!conf->contains("type") && conf->contains("plugins")) return ListFromObject(*conf, source);
  if (!conf->contains("cniVersion") && !conf->contains("cniVersions")) {
    (*conf)["cniVersion"] = "0.1.0";
  }
  // The single configuration is both the list (name, version) and its one plugin.
  json list = {{"name", conf->value("name", json())}, {"plugins", json::array({*conf})}};
  if (conf->contains("cniVersion")) list["cniVersion"] = (*conf)["cniVersion"];
  if (conf->contains("cniVersions")) list["cniVersions"] = (*conf)["cniVersions"];
  return ListFromObject(list, source);
}

absl::StatusOr<std::string> FindConfigFile(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    const int err = errno;
    if (err == ENOENT) {
      return absl::NotFoundError(
          absl::StrCat("no cni network config in ", dir, ": the directory does not exist"));
    }
    return ErrnoStatus(err, absl::StrCat("list cni config directory ", dir));
  }
  std::vector<std::string> names;
  while (dirent* entry = ::readdir(d)) {
    const absl::string_view name = entry->d_name;
    if (name.empty() || name[0] == '.') continue;
    if (absl::EndsWith(name, ".conflist") || absl::EndsWith(name, ".conf") ||
        absl::EndsWith(name, ".json")) {
      names.emplace_back(name);
    }
  }
  ::closedir(d);
  if (names.empty()) {
    return absl::NotFoundError(
        absl::StrCat("no cni network config (.conflist, .conf or .json) in ", dir));
  }
  return absl::StrCat(dir, "/", *std::min_element(names.begin(), names.end()));
}

json PluginExecConfig(const NetworkConfigList& list, size_t index, const json& capability_args,
                      const json& prev_result) {
  json config = list.plugins.at(index);
  config["name"] = list.name;
  config["cniVersion"] = list.cni_version;
  json runtime_config = json::object();
  if (auto capabilities = config.find("capabilities"); capabilities != config.end()) {
    if (capabilities->is_object()) {
      for (const auto& [capability, enabled] : capabilities->items()) {
        if (!enabled.is_boolean() || !enabled.get<bool>()) continue;
        if (auto arg = capability_args.find(capability); arg != capability_args.end()) {
          runtime_config[capability] = *arg;
        }
      }
    }
    config.erase("capabilities");
  }
  if (!runtime_config.empty()) config["runtimeConfig"] = std::move(runtime_config);
  if (!prev_result.is_null()) config["prevResult"] = prev_result;
  return config;
}

}  // namespace crib::network::cni
