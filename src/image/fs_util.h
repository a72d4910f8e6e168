// File-system helpers the image room shares between the content store, the unpacker and the
// snapshot store: recursive removal and disk usage. Nothing here knows images or layers.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace crib::image {

// rm -rf without following symlinks; a missing path is OK.
absl::Status RemoveAll(const std::string& path);

struct DiskUsage {
  uint64_t bytes = 0;   // allocated blocks, hard links counted once
  uint64_t inodes = 0;  // distinct inodes, the top directory included
};

// du over `path` without following symlinks; a missing path is zero.
absl::StatusOr<DiskUsage> MeasureUsage(const std::string& path);

}  // namespace crib::image
