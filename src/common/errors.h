// Building absl::Status values whose messages read like a sentence: lowercase, naming the
// object and the failing call, with each layer adding its context in front.
#pragma once

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace crib {

// `what` failed with errno `err`: "open /run/crib/x: no such file or directory", with the
// status code that fits the errno (ENOENT is NotFound, EEXIST AlreadyExists, ...).
absl::Status ErrnoStatus(int err, absl::string_view what);

// The same status with "context: " put in front of its message.
absl::Status Annotate(const absl::Status& status, absl::string_view context);

}  // namespace crib
