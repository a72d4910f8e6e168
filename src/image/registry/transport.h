// One HTTP exchange over libcurl for the registry client: redirects followed, TLS options per
// host, the body buffered or streamed to a sink, and a transfer aborted when it is cancelled,
// stalls or trickles below the floor rate. Knows nothing of registries or auth.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace crib::image::registry {

struct TransferLimits {
  absl::Duration stall_timeout = absl::Minutes(1);
  int64_t min_rate = 0;  // bytes/s; 0: no floor
  absl::Duration min_rate_window = absl::Minutes(1);
  std::function<bool()> cancelled;
};

struct TlsOptions {
  bool verify = true;
  std::string ca_file;  // empty: the system's CAs
};

struct HttpExchange {
  std::string method = "GET";
  std::string url;
  std::vector<std::string> headers;  // "Name: value"; may hold credentials, never logged
  std::string body;                  // for POST
  // When set, a 2xx body is streamed to it; any other body is buffered for the error.
  absl::FunctionRef<absl::Status(absl::string_view)>* sink = nullptr;
  int64_t max_body = 8 << 20;  // cap on a buffered body
};

struct HttpResponse {
  long status = 0;
  std::map<std::string, std::string> headers;  // lowercase names, of the final response
  std::string body;                            // unless streamed
  int64_t streamed = 0;                        // bytes handed to the sink
  std::string Header(const std::string& name) const;
};

// Performs `exchange`. A status from the server (404, 500...) is a response, not an error;
// errors are Unavailable (connect, TLS, an untrusted certificate, a dropped connection),
// FailedPrecondition (an unusable CA file), DeadlineExceeded (stalled, too slow), Cancelled,
// or the sink's own error. Messages name the method and URL only.
absl::StatusOr<HttpResponse> Perform(const HttpExchange& exchange, const TlsOptions& tls,
                                     const TransferLimits& limits);

// Initializes libcurl once per process.
void InitCurl();

// "host:port" of a URL ("https://a.example:5000/v2/" -> "a.example:5000").
std::string UrlHost(absl::string_view url);

}  // namespace crib::image::registry
