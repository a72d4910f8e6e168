// Making the socket path ready to bind: its directory exists, a stale socket left by a crash
// is removed, and a socket that another live server answers on is never taken over.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace crib {

absl::Status PrepareSocketPath(const std::string& path);

}  // namespace crib
