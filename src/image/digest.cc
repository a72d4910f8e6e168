#include "image/digest.h"

#include <openssl/evp.h>

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
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~Context() { EVP_MD_CTX_free(ctx); }
};

Sha256::Sha256() : context_(std::make_unique<Context>()) {
  // Failing to set up sha256 means OpenSSL itself is broken; nothing can be verified then.
  if (context_->ctx == nullptr || EVP_DigestInit_ex(context_->ctx, EVP_sha256(), nullptr) != 1) {
    std::abort();
  }
}

Sha256::~Sha256() = default;

void Sha256::Update(absl::string_view bytes) {
  if (!bytes.empty()) EVP_DigestUpdate(context_->ctx, bytes.data(), bytes.size());
}

std::string Sha256::Finish() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(context_->ctx, md, &len);
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
