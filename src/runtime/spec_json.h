// Reading and writing the OCI runtime-spec config.json (cribd side only, with nlohmann-json):
// crib-monitor reads the compact digest of spec.h instead.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "runtime/spec.h"

namespace crib::runtime {

// Parses config.json text. Unknown fields are ignored, as runc and crun do.
absl::StatusOr<Spec> ParseSpecJson(absl::string_view json);

// An OCI seccomp profile (the linux.seccomp object, as Localhost profiles are written).
absl::StatusOr<Seccomp> ParseSeccompJson(absl::string_view json);

// The config.json text of `spec` (indented, stable key order).
std::string SpecToJson(const Spec& spec);

}  // namespace crib::runtime
