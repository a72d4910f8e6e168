#include "image/digest.h"

// The one-shot sha256 functions, which OpenSSL 3 marks deprecated in favour of EVP: they run
// the same assembly, while the first EVP digest loads OpenSSL's configuration and its default
// provider, about 2 MiB of libcrypto that would stay resident in cribd for good.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace crib::image {

absl::Status ValidateSha256(absl::string_view digest) {
  if (!absl::StartsWith(digest, kSha256Prefix)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid digest \"", digest, "\": want sha256:<64 hex digits>"));
  }
  absl::string_view hex = digest.substr(kSha256Prefix.size());
  if (hex.size() != 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid digest \"", digest, "\": want ", "64 hex digits, got ", hex.size()));
  }
  for (char c : hex) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid digest \"", digest, "\": not lowercase hex"));
    }
  }
  return absl::OkStatus();
}

absl::string_view DigestHex(absl::string_view digest) {
  return absl::StartsWith(digest, kSha256Prefix) ? digest.substr(kSha256Prefix.size()) : digest;
}

struct Sha256::Context {
  SHA256_CTX ctx;
};

Sha256::Sha256() : context_(std::make_unique<Context>()) {
  // Failing to set up sha256 means OpenSSL itself is broken; nothing can be verified then.
  if (SHA256_Init(&context_->ctx) != 1) std::abort();
}

Sha256::~Sha256() = default;

void Sha256::Update(absl::string_view bytes) {
  if (!bytes.empty()) SHA256_Update(&context_->ctx, bytes.data(), bytes.size());
}

std::string Sha256::Finish() {
  unsigned char md[SHA256_DIGEST_LENGTH];
  const unsigned int len = SHA256_DIGEST_LENGTH;
  SHA256_Final(md, &context_->ctx);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(kSha256Prefix);
  out.reserve(kSha256Prefix.size() + 2 * len);
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 0xf]);
  }
  return out;
}

std::string Sha256Digest(absl::string_view bytes) {
  Sha256 hash;
  hash.Update(bytes);
  return hash.Finish();
}

}  // namespace crib::image
