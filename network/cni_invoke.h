// Running one CNI plugin executable as the CNI specification says: the CNI_* variables in its
// environment, its configuration on stdin, its result or error on stdout, logs on stderr.
// cribd is multi-threaded, so the plugin is started with posix_spawn (never a bare fork), in a
// process group of its own with default signal handling; a call that outlives its timeout has
// its whole group killed (plugins run their IPAM plugin as a child). Knows nothing of pods.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace crib::network::cni {

struct PluginCall {
  std::string type;        // the plugin's name, for messages
  std::string executable;  // its path
  std::string command;     // ADD, DEL, CHECK or VERSION
  std::string container_id;
  std::string netns;  // may be empty on DEL
  std::string ifname;
  std::string args;  // CNI_ARGS
  std::string path;  // CNI_PATH
  std::string stdin_data;
  absl::Duration timeout = absl::Seconds(30);
};

struct PluginOutput {
  int exit_code = -1;  // -1: killed by a signal
  std::string stdout_data;
  std::string stderr_data;
};

// The first `dir`/`type` that is an executable file. NotFound naming the plugin and the
// directories.
absl::StatusOr<std::string> FindPlugin(absl::string_view type,
                                       const std::vector<std::string>& dirs);

// Runs the plugin to its exit. Fails only if it cannot be started, or with DeadlineExceeded
// when it ran past `call.timeout` (it is killed then). Its output is capped at 1 MiB.
absl::StatusOr<PluginOutput> RunPlugin(const PluginCall& call);

// Runs the plugin and interprets the outcome: its stdout as JSON on success (null when it
// printed nothing, as DEL and CHECK may), and on failure a status whose message is
// "cni plugin <type> <command>: <msg>: <details>: <stderr>" (see ErrorStatus).
absl::StatusOr<nlohmann::json> InvokePlugin(const PluginCall& call);

}  // namespace crib::network::cni
