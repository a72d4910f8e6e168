#include "stream/token_cache.h"

#include <sys/random.h>

#include <cerrno>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/errors.h"

namespace crib::stream {

absl::StatusOr<std::string> NewToken() {
  char bytes[32];
  size_t got = 0;
  while (got < sizeof(bytes)) {
    ssize_t n = ::getrandom(bytes + got, sizeof(bytes) - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, "stream token: getrandom");
    got += static_cast<size_t>(n);
  }
  return absl::WebSafeBase64Escape(absl::string_view(bytes, sizeof(bytes)));
}

void TokenCache::Expire(absl::Time now) {
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->second.expires <= now) {
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
}

absl::StatusOr<std::string> TokenCache::Insert(PreparedRequest request) {
  absl::StatusOr<std::string> token = NewToken();
  if (!token.ok()) return token.status();
  std::lock_guard<std::mutex> lock(mu_);
  absl::Time now = clock_();
  Expire(now);
  if (entries_.size() >= capacity_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("stream token cache: ", capacity_, " requests are already waiting"));
  }
  entries_.emplace(*token, Entry{std::move(request), now + ttl_});
  return token;
}

absl::StatusOr<PreparedRequest> TokenCache::Consume(const std::string& token) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(token);
  if (it == entries_.end()) return CriNotFound("stream token: unknown or already used");
  Entry entry = std::move(it->second);
  entries_.erase(it);
  if (entry.expires <= clock_()) return CriNotFound("stream token: expired");
  return std::move(entry.request);
}

size_t TokenCache::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

}  // namespace crib::stream
