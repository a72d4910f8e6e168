// CNI network configuration, as the CNI specification defines it: the pod network is the first
// .conflist, .conf or .json file of the conf directory in lexical order; a configuration list
// (a .conf is a list of one plugin); the spec versions crib executes; and the configuration
// each plugin gets on stdin (the list's name and cniVersion, runtimeConfig from the plugin's
// capabilities, prevResult). Pure logic over JSON and a directory listing: runs nothing.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace crib::network::cni {

// The spec versions crib can execute, oldest first: 0.1.0 to 1.0.0.
const std::vector<std::string>& SupportedVersions();
bool IsSupportedVersion(absl::string_view version);

// Compares "x.y.z" versions (missing parts count as 0); <0, 0 or >0. Unparsable parts count as 0.
int CompareVersions(absl::string_view a, absl::string_view b);

// prevResult on DEL and the CHECK command came with spec 0.4.0.
bool HasCheckAndDelPrevResult(absl::string_view version);

struct NetworkConfigList {
  std::string name;
  std::string cni_version;
  bool disable_check = false;
  std::vector<nlohmann::json> plugins;  // each plugin's object as written, "type" checked
  std::string source;                   // the file it came from, for messages

  // The list as a .conflist object (name, cniVersion, disableCheck, plugins), which
  // ParseConfigList reads back to the same list.
  nlohmann::json ToJson() const;
  // Each plugin's "type", in order.
  std::vector<std::string> PluginTypes() const;
};

// A .conflist. A spec 1.1 "cniVersions" array picks the newest version crib supports.
// InvalidArgument naming `source` and the problem.
absl::StatusOr<NetworkConfigList> ParseConfigList(absl::string_view text, absl::string_view source);

// A .conf or .json: a single plugin's configuration (a list of one), or a list written in such
// a file. A single configuration without cniVersion is 0.1.0, as in libcni.
absl::StatusOr<NetworkConfigList> ParseConfigFile(absl::string_view text, absl::string_view source);

// The network's file: the first name in lexical order among the entries of `dir` that end in
// .conflist, .conf or .json (hidden files are skipped). NotFound naming `dir` if there is none
// or the directory does not exist.
absl::StatusOr<std::string> FindConfigFile(const std::string& dir);

// What plugin `index` of `list` gets on stdin: its object with the list's name and cniVersion,
// without "capabilities", with "runtimeConfig" holding those of `capability_args` (an object)
// that the plugin declares as capabilities, and with "prevResult" when `prev_result` is not
// null.
nlohmann::json PluginExecConfig(const NetworkConfigList& list, size_t index,
                                const nlohmann::json& capability_args,
                                const nlohmann::json& prev_result);

}  // namespace crib::network::cni
