// crib-fetch: performs cribd's HTTP exchanges with registries (curl_transport.cc), one at a
// time, on the socket cribd started it with (fd 3, fetch_protocol.h). It detaches from cribd at
// once (its own session; nobody's child to reap) and exits when cribd closes the socket or no
// request came for kFetchIdleTimeout. cribd runs as many as it has exchanges at once.
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "image/registry/curl_transport.h"
#include "image/registry/fetch_protocol.h"

namespace crib::image::registry {
namespace {

bool ReadRequest(const std::string& payload, HttpExchange* exchange, bool* streamed,
                 TlsOptions* tls, TransferLimits* limits) {
  FrameReader in(payload);
  int64_t count = 0, flag = 0, stall_ms = 0, window_ms = 0;
  if (!in.Str(&exchange->method) || !in.Str(&exchange->url) || !in.Int(&count) || count < 0) {
    return false;
  }
  for (int64_t i = 0; i < count; ++i) {
    std::string header;
    if (!in.Str(&header)) return false;
    exchange->headers.push_back(std::move(header));
  }
  if (!in.Str(&exchange->body) || !in.Int(&flag)) return false;
  *streamed = flag != 0;
  if (!in.Int(&exchange->max_body) || !in.Int(&flag) || !in.Str(&tls->ca_file)) return false;
  tls->verify = flag != 0;
  if (!in.Int(&stall_ms) || !in.Int(&limits->min_rate) || !in.Int(&window_ms)) return false;
  limits->stall_timeout = absl::Milliseconds(stall_ms);
  limits->min_rate_window = absl::Milliseconds(window_ms);
  return true;
}

std::string ResultFrame(const absl::StatusOr<HttpResponse>& result) {
  FrameWriter out;
  out.Int(static_cast<int64_t>(result.status().code()));
  out.Str(result.status().message());
  if (result.ok()) {
    out.Int(result->status);
    out.Int(static_cast<int64_t>(result->headers.size()));
    for (const auto& [name, value] : result->headers) {
      out.Str(name);
      out.Str(value);
    }
    out.Str(result->body);
    out.Int(result->streamed);
  }
  return out.Frame('R');
}

// Serves exchanges until cribd is done with this process; the exit status says why it ended
// (0: cribd closed the socket or left it idle; 1: cribd broke the protocol).
int Serve() {
  const int idle_ms = static_cast<int>(absl::ToInt64Milliseconds(kFetchIdleTimeout));
  for (;;) {
    struct pollfd wait = {kFetchSocketFd, POLLIN, 0};
    const int ready = ::poll(&wait, 1, idle_ms);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return ready == 0 ? 0 : 1;
    char type = 0;
    std::string payload;
    const int got = ReadFrame(kFetchSocketFd, &type, &payload);
    if (got <= 0) return got == 0 ? 0 : 1;
    if (type != 'Q') return 1;

    HttpExchange exchange;
    TlsOptions tls;
    TransferLimits limits;
    bool streamed = false;
    if (!ReadRequest(payload, &exchange, &streamed, &tls, &limits)) return 1;
    // cribd sends nothing while an exchange runs: its end readable means it closed the socket
    // (a cancel, or a sink that failed).
    limits.cancelled = [] {
      struct pollfd peer = {kFetchSocketFd, POLLIN, 0};
      return ::poll(&peer, 1, 0) > 0;
    };
    bool peer_gone = false;
    auto forward = [&peer_gone](absl::string_view bytes) -> absl::Status {
      if (SendAll(kFetchSocketFd, FrameHeader('B', bytes.size())) &&
          SendAll(kFetchSocketFd, bytes)) {
        return absl::OkStatus();
      }
      peer_gone = true;
      return absl::CancelledError("cribd closed the exchange");
    };
    absl::FunctionRef<absl::Status(absl::string_view)> sink(forward);
    if (streamed) exchange.sink = &sink;
    absl::StatusOr<HttpResponse> result = CurlPerform(exchange, tls, limits);
    if (peer_gone || limits.cancelled()) return 0;
    if (!SendAll(kFetchSocketFd, ResultFrame(result))) return 0;
  }
}

}  // namespace
}  // namespace crib::image::registry

int main() {
  ::signal(SIGPIPE, SIG_IGN);
  // Detach: the process cribd spawned exits at once; its child is adopted by init.
  const pid_t pid = ::fork();
  if (pid < 0) return 1;
  if (pid > 0) _exit(0);
  ::setsid();
  return crib::image::registry::Serve();
}
