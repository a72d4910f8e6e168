#include "image/registry/transport.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <cerrno>
#include <mutex>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/spawn.h"
#include "common/unique_fd.h"
#include "image/registry/fetch_protocol.h"

namespace crib::image::registry {
namespace {

// crib-fetch processes: idle ones wait for the next exchange; an exchange takes one (or starts
// one) and gives it back when it ended cleanly.
class FetchHelpers {
 public:
  static FetchHelpers& Global() {
    static FetchHelpers* helpers = new FetchHelpers();
    return *helpers;
  }

  void SetPath(std::string path) {
    std::lock_guard<std::mutex> lock(mu_);
    path_ = std::move(path);
  }

  // An idle helper (`reused`), or a new one.
  absl::StatusOr<UniqueFd> Take(bool* reused) {
    std::string path;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!idle_.empty()) {
        UniqueFd fd = std::move(idle_.back());
        idle_.pop_back();
        *reused = true;
        return fd;
      }
      path = path_;
    }
    *reused = false;
    if (path.empty()) return absl::InternalError("crib-fetch: no path set");
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
      return ErrnoStatus(errno, "crib-fetch: socketpair");
    }
    UniqueFd ours(sv[0]), theirs(sv[1]);
    absl::StatusOr<pid_t> pid = Spawn({.path = path,
                                       .args = {path},
                                       .fds = {{kFetchSocketFd, theirs.get()}},
                                       .group = SpawnOptions::Group::kNewSession});
    if (!pid.ok()) return absl::UnavailableError(absl::StrCat("start ", pid.status().message()));
    // The spawned process exits once it has detached.
    int wstatus = 0;
    while (::waitpid(*pid, &wstatus, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
      return absl::UnavailableError(absl::StrCat("start ", path, ": it exited with status ",
                                                 WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1));
    }
    return ours;
  }

  void Put(UniqueFd fd) {
    std::lock_guard<std::mutex> lock(mu_);
    if (idle_.size() < kMaxIdle) idle_.push_back(std::move(fd));
  }

 private:
  static constexpr size_t kMaxIdle = 4;  // more end with their socket
  std::mutex mu_;
  std::string path_;
  std::vector<UniqueFd> idle_;
};

std::string RequestFrame(const HttpExchange& exchange, const TlsOptions& tls,
                         const TransferLimits& limits) {
  FrameWriter out;
  out.Str(exchange.method);
  out.Str(exchange.url);
  out.Int(static_cast<int64_t>(exchange.headers.size()));
  for (const std::string& header : exchange.headers) out.Str(header);
  out.Str(exchange.body);
  out.Int(exchange.sink != nullptr ? 1 : 0);
  out.Int(exchange.max_body);
  out.Int(tls.verify ? 1 : 0);
  out.Str(tls.ca_file);
  out.Int(absl::ToInt64Milliseconds(limits.stall_timeout));
  out.Int(limits.min_rate);
  out.Int(absl::ToInt64Milliseconds(limits.min_rate_window));
  return out.Frame('Q');
}

absl::StatusOr<HttpResponse> ReadResult(const std::string& payload, const std::string& what) {
  FrameReader in(payload);
  int64_t code = 0, status = 0, count = 0;
  std::string message;
  auto bad = [&] { return absl::InternalError(absl::StrCat(what, ": crib-fetch: bad reply")); };
  if (!in.Int(&code) || !in.Str(&message) || code < 0 || code > 16) return bad();
  if (code != 0) return absl::Status(static_cast<absl::StatusCode>(code), message);
  HttpResponse response;
  if (!in.Int(&status) || !in.Int(&count) || count < 0) return bad();
  response.status = static_cast<long>(status);
  for (int64_t i = 0; i < count; ++i) {
    std::string name, value;
    if (!in.Str(&name) || !in.Str(&value)) return bad();
    response.headers[name] = value;
  }
  if (!in.Str(&response.body) || !in.Int(&response.streamed)) return bad();
  return response;
}

// How one exchange with one helper ended.
enum class Ended { kDone, kGoneBeforeReply, kBroken };

// Sends the request and reads the replies, handing 'B' frames to the sink. kDone with the
// result (the helper may serve again); kGoneBeforeReply when the helper was gone before it
// read the request or sent anything (it may have ended while idle); kBroken otherwise.
Ended Exchange(int fd, const std::string& request, const HttpExchange& exchange,
               const TransferLimits& limits, const std::string& what,
               absl::StatusOr<HttpResponse>* result) {
  if (!SendAll(fd, request)) {
    *result = absl::UnavailableError(absl::StrCat(what, ": crib-fetch is gone"));
    return Ended::kGoneBeforeReply;
  }
  bool replied = false;
  for (;;) {
    struct pollfd p = {fd, POLLIN, 0};
    const int ready = ::poll(&p, 1, 100);
    if (ready < 0 && errno != EINTR) {
      *result = ErrnoStatus(errno, absl::StrCat(what, ": poll crib-fetch"));
      return Ended::kBroken;
    }
    if (limits.cancelled && limits.cancelled()) {
      *result = absl::CancelledError(absl::StrCat(what, ": cancelled"));
      return Ended::kBroken;
    }
    if (ready <= 0) continue;
    char type = 0;
    std::string payload;
    const int got = ReadFrame(fd, &type, &payload);
    if (got <= 0) {
      *result = absl::UnavailableError(
          absl::StrCat(what, replied || got < 0 ? ": crib-fetch ended during the transfer"
                                                : ": crib-fetch ended"));
      return got == 0 && !replied ? Ended::kGoneBeforeReply : Ended::kBroken;
    }
    replied = true;
    if (type == 'B' && exchange.sink != nullptr) {
      if (absl::Status s = (*exchange.sink)(payload); !s.ok()) {
        *result = std::move(s);
        return Ended::kBroken;
      }
      continue;
    }
    if (type != 'R') {
      *result = absl::InternalError(absl::StrCat(what, ": crib-fetch: unexpected frame"));
      return Ended::kBroken;
    }
    *result = ReadResult(payload, what);
    return Ended::kDone;
  }
}

}  // namespace

void SetFetchHelperPath(std::string path) { FetchHelpers::Global().SetPath(std::move(path)); }

absl::StatusOr<HttpResponse> Perform(const HttpExchange& exchange, const TlsOptions& tls,
                                     const TransferLimits& limits) {
  const std::string what = absl::StrCat(exchange.method, " ", exchange.url);
  const std::string request = RequestFrame(exchange, tls, limits);
  FetchHelpers& helpers = FetchHelpers::Global();
  for (;;) {
    bool reused = false;
    absl::StatusOr<UniqueFd> fd = helpers.Take(&reused);
    if (!fd.ok()) return Annotate(fd.status(), what);
    absl::StatusOr<HttpResponse> result;
    switch (Exchange(fd->get(), request, exchange, limits, what, &result)) {
      case Ended::kDone:
        helpers.Put(std::move(*fd));
        return result;
      case Ended::kGoneBeforeReply:
        // An idle helper may have ended just as the request came: ask another. A new one that
        // ends at once is an error.
        if (reused) continue;
        return result;
      case Ended::kBroken:
        return result;  // closing the socket ends the helper's transfer
    }
  }
}

}  // namespace crib::image::registry
