// Image references: parsing and normalization as Docker and containerd do them
// ("busybox" -> docker.io/library/busybox:latest), following the distribution grammar.
// Pure string logic: no I/O, no registry access.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace crib::image {

// A normalized image reference, as Docker and containerd normalize them:
// "busybox" -> domain "docker.io", path "library/busybox", tag "latest".
struct Reference {
  std::string domain;        // "docker.io", "localhost:5000", "127.0.0.1:41234"
  std::string path;          // "library/busybox"
  std::string tag;           // "latest" when neither a tag nor a digest was given; may be empty
  std::string digest;        // "sha256:<64 hex>" or empty
  std::string Name() const;  // domain + "/" + path
  std::string String()
      const;  // Name() + (tag.empty() ? "" : ":" + tag) + (digest.empty() ? "" : "@" + digest)
  // The short form Docker shows: "busybox:latest" for docker.io/library/busybox:latest.
  std::string Familiar() const;

  bool operator==(const Reference&) const = default;
};

inline constexpr char kDefaultDomain[] = "docker.io";

// InvalidArgument naming `text` when it is malformed.
absl::StatusOr<Reference> ParseReference(absl::string_view text);

// Checks a digest string ("sha256:<64 hex>", "sha512:<128 hex>"); InvalidArgument otherwise.
absl::Status ValidateDigest(absl::string_view digest);

}  // namespace crib::image
