// Content digests as OCI names them ("sha256:<64 lowercase hex>"): validation and a streaming
// sha256 over OpenSSL. Knows nothing of files, registries or the store.
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace crib::image {

inline constexpr absl::string_view kSha256Prefix = "sha256:";

// OK for "sha256:" followed by exactly 64 lowercase hex digits; InvalidArgument naming
// `digest` otherwise (other algorithms are refused: crib verifies only sha256).
absl::Status ValidateSha256(absl::string_view digest);

// The hex part of a valid digest.
absl::string_view DigestHex(absl::string_view digest);

// sha256 of bytes fed in pieces.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(absl::string_view bytes);
  // "sha256:<hex>"; the hasher must not be updated afterwards.
  std::string Finish();

 private:
  struct Context;
  std::unique_ptr<Context> context_;
};

// "sha256:<hex>" of `bytes`.
std::string Sha256Digest(absl::string_view bytes);

}  // namespace crib::image
