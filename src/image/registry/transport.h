// One HTTP exchange for the registry client: redirects followed, TLS options per host, the body
// buffered or streamed to a sink, and a transfer aborted when it is cancelled, stalls or
// trickles below the floor rate. Knows nothing of registries or auth. The exchange runs in a
// crib-fetch process (libcurl, curl_transport.h) that streams the response back: cribd never
// loads libcurl and the TLS stacks and protocol libraries that come with it.
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
  std::string Header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

// Performs `exchange`. A status from the server (404, 500...) is a response, not an error;
// errors are Unavailable (connect, TLS, an untrusted certificate, a dropped connection),
// FailedPrecondition (an unusable CA file), DeadlineExceeded (stalled, too slow), Cancelled,
// or the sink's own error; Unavailable also when crib-fetch cannot be started or dies mid-way.
// Messages name the method and URL only.
absl::StatusOr<HttpResponse> Perform(const HttpExchange& exchange, const TlsOptions& tls,
                                     const TransferLimits& limits);

// Where crib-fetch is (config.helper_dir, or beside the executable): set by the registry
// client before its first exchange.
void SetFetchHelperPath(std::string path);

// "host:port" of a URL ("https://a.example:5000/v2/" -> "a.example:5000").
inline std::string UrlHost(absl::string_view url) {
  if (const size_t scheme = url.find("://"); scheme != absl::string_view::npos) {
    url.remove_prefix(scheme + 3);
  }
  return std::string(url.substr(0, url.find_first_of("/?#")));
}

}  // namespace crib::image::registry
