#include "cribd/flags.h"

#include <getopt.h>

#include "absl/strings/str_cat.h"

namespace crib {

const char kUsage[] = R"(usage: cribd [flags]

crib's CRI v1 daemon: serves RuntimeService and ImageService on a unix socket.

  --config PATH           config file (default /etc/crib/config.toml; may be absent)
  --socket PATH           unix socket to serve on (config key socket)
  --root DIR              persistent data directory (config key root_dir)
  --state DIR             runtime state directory (config key state_dir)
  --log-level LEVEL       trace, debug, info, warn, error or off (config key log_level)
  --cgroup-driver NAME    cgroupfs or systemd (config key cgroup_driver)
  --print-default-config  print the documented default configuration and exit
  --version               print the version and exit
  --help                  print this text and exit
)";

absl::StatusOr<Flags> ParseFlags(int argc, char** argv) {
  enum : int {
    kConfig = 1000,
    kSocket,
    kRoot,
    kState,
    kLogLevel,
    kCgroupDriver,
    kPrintDefaultConfig,
    kVersion,
    kHelp
  };
  static const option kOptions[] = {
      {"config", required_argument, nullptr, kConfig},
      {"socket", required_argument, nullptr, kSocket},
      {"root", required_argument, nullptr, kRoot},
      {"state", required_argument, nullptr, kState},
      {"log-level", required_argument, nullptr, kLogLevel},
      {"cgroup-driver", required_argument, nullptr, kCgroupDriver},
      {"print-default-config", no_argument, nullptr, kPrintDefaultConfig},
      {"version", no_argument, nullptr, kVersion},
      {"help", no_argument, nullptr, kHelp},
      {nullptr, 0, nullptr, 0},
  };
  Flags flags;
  optind = 0;  // restart scanning, so that the parser can be called more than once
  opterr = 0;
  for (;;) {
    const int c = getopt_long(argc, argv, ":", kOptions, nullptr);
    if (c == -1) break;
    switch (c) {
      case kConfig:
        flags.config_path = optarg;
        flags.config_path_given = true;
        break;
      case kSocket:
        flags.overrides.socket = optarg;
        break;
      case kRoot:
        flags.overrides.root_dir = optarg;
        break;
      case kState:
        flags.overrides.state_dir = optarg;
        break;
      case kLogLevel:
        flags.overrides.log_level = optarg;
        break;
      case kCgroupDriver:
        flags.overrides.cgroup_driver = optarg;
        break;
      case kPrintDefaultConfig:
        flags.print_default_config = true;
        break;
      case kVersion:
        flags.print_version = true;
        break;
      case kHelp:
        flags.help = true;
        break;
      case ':':
        return absl::InvalidArgumentError(
            absl::StrCat("flag ", argv[optind - 1], " needs a value"));
      default:
        return absl::InvalidArgumentError(absl::StrCat("unknown flag ", argv[optind - 1]));
    }
  }
  if (optind < argc) {
    return absl::InvalidArgumentError(absl::StrCat("unexpected argument ", argv[optind]));
  }
  return flags;
}

}  // namespace crib
