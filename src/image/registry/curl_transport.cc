#include "image/registry/curl_transport.h"

#include <curl/curl.h>

#include <memory>
#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace crib::image::registry {
namespace {

enum class Abort { kNone, kCancelled, kStalled, kTooSlow, kTooBig, kSink };

struct TransferState {
  const HttpExchange* exchange;
  const TransferLimits* limits;
  HttpResponse* response;
  Abort abort = Abort::kNone;
  absl::Status sink_status;
  absl::Time last_progress;
  absl::Time window_start;
  int64_t window_bytes = 0;
  absl::Duration window_sink_time;
};

size_t OnHeader(char* data, size_t size, size_t count, void* user) {
  auto* state = static_cast<TransferState*>(user);
  const size_t n = size * count;
  absl::string_view line(data, n);
  line = absl::StripTrailingAsciiWhitespace(line);
  if (absl::StartsWith(line, "HTTP/")) {
    // A new response (after a redirect or a 100): forget the previous one's headers.
    state->response->headers.clear();
    const size_t space = line.find(' ');
    long status = 0;
    if (space != absl::string_view::npos && line.size() >= space + 4) {
      absl::SimpleAtoi(line.substr(space + 1, 3), &status);
    }
    state->response->status = status;
    return n;
  }
  const size_t colon = line.find(':');
  if (colon != absl::string_view::npos) {
    state->response->headers[absl::AsciiStrToLower(line.substr(0, colon))] =
        std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
  }
  return n;
}

size_t OnBody(char* data, size_t size, size_t count, void* user) {
  auto* state = static_cast<TransferState*>(user);
  const size_t n = size * count;
  HttpResponse& response = *state->response;
  const absl::Time arrived = absl::Now();
  state->window_bytes += n;
  if (state->exchange->sink != nullptr && response.status >= 200 && response.status < 300) {
    absl::Status s = (*state->exchange->sink)(absl::string_view(data, n));
    const absl::Time done = absl::Now();
    state->window_sink_time += done - arrived;
    state->last_progress = done;  // the sink's own work (unpacking) counts as progress
    if (!s.ok()) {
      state->sink_status = std::move(s);
      state->abort = Abort::kSink;
      return 0;
    }
    response.streamed += n;
    return n;
  }
  state->last_progress = arrived;
  if (static_cast<int64_t>(response.body.size() + n) > state->exchange->max_body) {
    state->abort = Abort::kTooBig;
    return 0;
  }
  response.body.append(data, n);
  return n;
}

int OnProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* state = static_cast<TransferState*>(user);
  const TransferLimits& limits = *state->limits;
  if (limits.cancelled && limits.cancelled()) {
    state->abort = Abort::kCancelled;
    return 1;
  }
  const absl::Time now = absl::Now();
  if (now - state->last_progress > limits.stall_timeout) {
    state->abort = Abort::kStalled;
    return 1;
  }
  if (limits.min_rate > 0 && now - state->window_start >= limits.min_rate_window) {
    const double seconds =
        absl::ToDoubleSeconds(now - state->window_start - state->window_sink_time);
    if (seconds > 0 && state->window_bytes < limits.min_rate * seconds) {
      state->abort = Abort::kTooSlow;
      return 1;
    }
    state->window_start = now;
    state->window_bytes = 0;
    state->window_sink_time = absl::ZeroDuration();
  }
  return 0;
}

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

void InitCurl() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace

absl::StatusOr<HttpResponse> CurlPerform(const HttpExchange& exchange, const TlsOptions& tls,
                                         const TransferLimits& limits) {
  InitCurl();
  const std::string what = absl::StrCat(exchange.method, " ", exchange.url);
  std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
  if (!curl) return absl::InternalError(absl::StrCat(what, ": curl_easy_init failed"));
  CURL* c = curl.get();
  curl_slist* list = nullptr;
  for (const std::string& h : exchange.headers) list = curl_slist_append(list, h.c_str());
  std::unique_ptr<curl_slist, SlistDeleter> header_list(list);

  HttpResponse response;
  TransferState state;
  state.exchange = &exchange;
  state.limits = &limits;
  state.response = &response;
  state.last_progress = state.window_start = absl::Now();
  char error[CURL_ERROR_SIZE] = {};

  curl_easy_setopt(c, CURLOPT_URL, exchange.url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
  // Authorization is never sent on to a redirect target on another host (storage backends).
  curl_easy_setopt(c, CURLOPT_UNRESTRICTED_AUTH, 0L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "crib");
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &state);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &state);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, OnProgress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &state);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(
                       std::min(limits.stall_timeout, absl::Seconds(30)))));
  curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
  if (!tls.verify) {
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (!tls.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, tls.ca_file.c_str());
  if (exchange.method == "HEAD") {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (exchange.method == "POST") {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, exchange.body.c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(exchange.body.size()));
  }

  const CURLcode code = curl_easy_perform(c);
  if (code == CURLE_OK) return response;
  switch (state.abort) {
    case Abort::kCancelled:
      return absl::CancelledError(absl::StrCat(what, ": cancelled"));
    case Abort::kStalled:
      return absl::DeadlineExceededError(absl::StrCat(
          what, ": no progress for ", absl::FormatDuration(limits.stall_timeout),
          " (registry.stall_timeout), transfer aborted after ", response.streamed, " bytes"));
    case Abort::kTooSlow:
      return absl::DeadlineExceededError(absl::StrCat(
          what, ": slower than ", limits.min_rate, " bytes/s over ",
          absl::FormatDuration(limits.min_rate_window),
          " (registry.min_rate), transfer aborted after ", response.streamed, " bytes"));
    case Abort::kTooBig:
      return absl::FailedPreconditionError(
          absl::StrCat(what, ": response larger than ", exchange.max_body, " bytes"));
    case Abort::kSink:
      return state.sink_status;
    case Abort::kNone:
      break;
  }
  const std::string detail = error[0] != '\0' ? error : curl_easy_strerror(code);
  if (code == CURLE_PEER_FAILED_VERIFICATION) {
    return absl::UnavailableError(absl::StrCat(
        what, ": the TLS certificate of ", UrlHost(exchange.url), " is not trusted: ", detail,
        tls.ca_file.empty()
            ? " (checked against the system's CAs; registry.ca_files names a "
              "host's own CA)"
            : absl::StrCat(" (checked against ", tls.ca_file, " from registry.ca_files)")));
  }
  if (code == CURLE_SSL_CACERT_BADFILE) {
    return absl::FailedPreconditionError(absl::StrCat(
        what, ": cannot use the CA file ", tls.ca_file, " (registry.ca_files): ", detail));
  }
  if (code == CURLE_PARTIAL_FILE || code == CURLE_RECV_ERROR || code == CURLE_GOT_NOTHING) {
    return absl::UnavailableError(absl::StrCat(what, ": connection lost after ",
                                               response.streamed + response.body.size(),
                                               " bytes: ", detail));
  }
  return absl::UnavailableError(absl::StrCat(what, ": ", detail));
}

}  // namespace crib::image::registry
