// cribd's command line. Flags override the config file, key by key.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "config/config.h"

namespace crib {

struct Flags {
  std::string config_path = kDefaultConfigPath;
  bool config_path_given = false;  // a named file must exist; the default one may not
  ConfigOverrides overrides;
  bool print_default_config = false;
  bool print_version = false;
  bool help = false;
};

absl::StatusOr<Flags> ParseFlags(int argc, char** argv);

extern const char kUsage[];

}  // namespace crib
