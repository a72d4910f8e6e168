#include "stream/http.h"

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace crib::stream {
namespace {

std::string PercentDecode(absl::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out.push_back(' ');
    } else if (s[i] == '%' && i + 2 < s.size() && absl::ascii_isxdigit(s[i + 1]) &&
               absl::ascii_isxdigit(s[i + 2])) {
      auto hex = [](char c) {
        return absl::ascii_isdigit(c) ? c - '0' : absl::ascii_tolower(c) - 'a' + 10;
      };
      out.push_back(static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

absl::string_view ReasonPhrase(int code) {
  switch (code) {
    case 101:
      return "Switching Protocols";
    case 400:
      return "Bad Request";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Error";
  }
}

}  // namespace

std::vector<std::string> HttpRequest::Values(absl::string_view name) const {
  std::vector<std::string> out;
  for (const auto& [n, v] : headers) {
    if (absl::EqualsIgnoreCase(n, name)) out.push_back(v);
  }
  return out;
}

std::string HttpRequest::Value(absl::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (absl::EqualsIgnoreCase(n, name)) return v;
  }
  return "";
}

bool HttpRequest::HasToken(absl::string_view name, absl::string_view token) const {
  for (const std::string& value : Values(name)) {
    for (absl::string_view part : absl::StrSplit(value, ',')) {
      if (absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(part), token)) return true;
    }
  }
  return false;
}

std::vector<std::string> HttpRequest::QueryValues(absl::string_view key) const {
  std::vector<std::string> out;
  for (absl::string_view pair : absl::StrSplit(query, '&', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(pair, absl::MaxSplits('=', 1));
    if (PercentDecode(kv.first) == key) out.push_back(PercentDecode(kv.second));
  }
  return out;
}

size_t HeadEnd(absl::string_view data) {
  size_t at = data.find("\r\n\r\n");
  return at == absl::string_view::npos ? absl::string_view::npos : at + 4;
}

absl::StatusOr<HttpRequest> ParseRequestHead(absl::string_view head) {
  std::vector<absl::string_view> lines = absl::StrSplit(head, "\r\n");
  if (lines.empty()) return absl::InvalidArgumentError("http: empty request");
  std::vector<absl::string_view> parts = absl::StrSplit(lines[0], ' ', absl::SkipEmpty());
  if (parts.size() != 3 || !absl::StartsWith(parts[2], "HTTP/1.")) {
    return absl::InvalidArgumentError(
        absl::StrCat("http: bad request line \"", absl::CEscape(lines[0].substr(0, 200)), "\""));
  }
  HttpRequest request;
  request.method = std::string(parts[0]);
  absl::string_view target = parts[1];
  size_t q = target.find('?');
  request.path = std::string(target.substr(0, q));
  if (q != absl::string_view::npos) request.query = std::string(target.substr(q + 1));
  request.version = std::string(parts[2]);
  for (size_t i = 1; i < lines.size(); ++i) {
    if (lines[i].empty()) continue;
    size_t colon = lines[i].find(':');
    if (colon == absl::string_view::npos || colon == 0) {
      return absl::InvalidArgumentError("http: bad header line");
    }
    request.headers.emplace_back(
        std::string(absl::StripAsciiWhitespace(lines[i].substr(0, colon))),
        std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1))));
  }
  return request;
}

std::string HttpResponse(int code, absl::string_view body,
                         const std::vector<std::pair<std::string, std::string>>& headers) {
  std::string out = absl::StrCat("HTTP/1.1 ", code, " ", ReasonPhrase(code), "\r\n");
  for (const auto& [name, value] : headers) absl::StrAppend(&out, name, ": ", value, "\r\n");
  if (code != 101) {
    absl::StrAppend(&out,
                    "Content-Type: text/plain; charset=utf-8\r\nContent-Length: ", body.size(),
                    "\r\nConnection: close\r\n");
  }
  absl::StrAppend(&out, "\r\n", body);
  return out;
}

}  // namespace crib::stream
