// The HTTP/1.1 the streaming server speaks before a connection upgrades: one request head
// (bounded), the path and query split, and plain responses. Nothing else of HTTP is served.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace crib::stream {

struct HttpRequest {
  std::string method;
  std::string path;   // without the query
  std::string query;  // after '?', undecoded
  std::string version;
  std::vector<std::pair<std::string, std::string>> headers;

  // Every value of a header (names compare case-insensitively), in order.
  std::vector<std::string> Values(absl::string_view name) const;
  // The first value, or "".
  std::string Value(absl::string_view name) const;
  // Whether a comma-separated header (Connection, Upgrade) holds `token`, case-insensitively.
  bool HasToken(absl::string_view name, absl::string_view token) const;
  // Values of a query parameter (percent-decoded), in order.
  std::vector<std::string> QueryValues(absl::string_view key) const;
};

// Where a request head ends: the offset after "\r\n\r\n", or npos while incomplete.
size_t HeadEnd(absl::string_view data);

// Parses a complete head (through the blank line).
absl::StatusOr<HttpRequest> ParseRequestHead(absl::string_view head);

// "HTTP/1.1 <code> <reason>" with a text body, closing the connection.
std::string HttpResponse(int code, absl::string_view body,
                         const std::vector<std::pair<std::string, std::string>>& headers = {});

}  // namespace crib::stream
