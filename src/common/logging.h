// Process-wide logging: spdlog to stderr, one line per event. Never log a credential or a
// full environment.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "spdlog/spdlog.h"

// Debian's abseil has its own absl::string_view (not an alias of std::string_view); crib uses
// it throughout, so teach fmt, and with it spdlog, to print it.
template <>
struct fmt::formatter<absl::string_view> : fmt::formatter<fmt::string_view> {
  auto format(absl::string_view s, fmt::format_context& ctx) const {
    return fmt::formatter<fmt::string_view>::format(fmt::string_view(s.data(), s.size()), ctx);
  }
};

namespace crib {

// Parses trace, debug, info, warn, error or off.
absl::StatusOr<spdlog::level::level_enum> ParseLogLevel(absl::string_view name);

// Sends the default logger to stderr with crib's line format at `level`.
void SetupLogging(spdlog::level::level_enum level);

}  // namespace crib
