// Object ids: 64 hex digits from the kernel's random source, as containerd and CRI-O make them
// (crictl shows their first 13).
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace crib {

absl::StatusOr<std::string> NewObjectId();

}  // namespace crib
