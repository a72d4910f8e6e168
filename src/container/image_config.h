// What a container takes from its image's config (the OCI image config JSON): the default
// process (Entrypoint, Cmd, Env, WorkingDir, User) and the stop signal. Pure parsing.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace crib::container {

struct ImageConfig {
  std::vector<std::string> entrypoint;
  std::vector<std::string> cmd;
  std::vector<std::string> env;  // KEY=value
  std::string working_dir;
  std::string user;         // "uid", "name", "uid:gid", "name:group", ...
  std::string stop_signal;  // "SIGQUIT", "QUIT", "3" or empty
};

// `json` is the config blob as stored; `image` names it in errors.
absl::StatusOr<ImageConfig> ParseImageConfig(absl::string_view json, absl::string_view image);

// A signal by name ("SIGTERM", "TERM", "SIGRTMIN+3") or number; InvalidArgument otherwise.
absl::StatusOr<int> ParseSignal(absl::string_view text);

}  // namespace crib::container
