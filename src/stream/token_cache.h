// The prepared streaming requests, each behind a token that goes into the URL: single use,
// unguessable (32 bytes from getrandom, base64url), expiring after a TTL. A used, unknown or
// expired token is simply not there, which the server answers with 404.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <variant>

#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "stream/backend.h"

namespace crib::stream {

// What a token stands for.
using PreparedRequest = std::variant<ExecRequest, AttachRequest, PortForwardRequest>;

class TokenCache {
 public:
  using Clock = std::function<absl::Time()>;

  // `capacity`: live tokens at most (more is ResourceExhausted, as kubelet's cache does).
  TokenCache(absl::Duration ttl, size_t capacity, Clock clock = absl::Now)
      : ttl_(ttl), capacity_(capacity), clock_(std::move(clock)) {}

  // Stores `request` and returns its token.
  absl::StatusOr<std::string> Insert(PreparedRequest request);
  // Takes the request out (a token works once); NotFound when unknown, used or expired.
  absl::StatusOr<PreparedRequest> Consume(const std::string& token);

  size_t size() const;

 private:
  struct Entry {
    PreparedRequest request;
    absl::Time expires;
  };
  void Expire(absl::Time now);  // mu_ held

  absl::Duration ttl_;
  size_t capacity_;
  Clock clock_;
  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_;
};

// A random token of 32 bytes in base64url (43 characters, no padding).
absl::StatusOr<std::string> NewToken();

}  // namespace crib::stream
