#include "image/registry/auth.h"

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "image/digest.h"
#include "nlohmann/json.hpp"

namespace crib::image::registry {
namespace {

std::string UrlEncode(absl::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      absl::StrAppend(&out, "%",
                      absl::AsciiStrToUpper(absl::BytesToHexString(
                          absl::string_view(reinterpret_cast<char*>(&c), 1))));
    }
  }
  return out;
}

// The user name and password, from username/password or from `auth` (base64 "user:pass").
bool UserPassword(const Credentials& c, std::string* user, std::string* password) {
  if (!c.username.empty()) {
    *user = c.username;
    *password = c.password;
    return true;
  }
  if (c.auth.empty()) return false;
  std::string decoded;
  if (!absl::Base64Unescape(c.auth, &decoded)) return false;
  const size_t colon = decoded.find(':');
  if (colon == std::string::npos) return false;
  *user = decoded.substr(0, colon);
  *password = decoded.substr(colon + 1);
  return true;
}

absl::Status TokenError(const HttpResponse& response, const std::string& what) {
  const std::string message = absl::StrCat(what, ": HTTP ", response.status);
  switch (response.status) {
    case 400:
    case 401:
      return absl::UnauthenticatedError(
          absl::StrCat(message, ": the token server refused the credentials"));
    case 403:
      return absl::PermissionDeniedError(message);
    default:
      return response.status >= 500 ? absl::UnavailableError(message) : absl::UnknownError(message);
  }
}

}  // namespace

Challenge ParseChallenge(absl::string_view header) {
  Challenge challenge;
  header = absl::StripAsciiWhitespace(header);
  const size_t space = header.find(' ');
  challenge.scheme = absl::AsciiStrToLower(header.substr(0, space));
  if (space == absl::string_view::npos) return challenge;
  absl::string_view rest = header.substr(space + 1);
  while (!rest.empty()) {
    rest = absl::StripLeadingAsciiWhitespace(rest);
    const size_t eq = rest.find('=');
    if (eq == absl::string_view::npos) break;
    std::string key = absl::AsciiStrToLower(absl::StripAsciiWhitespace(rest.substr(0, eq)));
    rest.remove_prefix(eq + 1);
    std::string value;
    if (absl::StartsWith(rest, "\"")) {
      size_t i = 1;
      for (; i < rest.size() && rest[i] != '"'; ++i) {
        if (rest[i] == '\\' && i + 1 < rest.size()) ++i;
        value.push_back(rest[i]);
      }
      rest.remove_prefix(std::min(rest.size(), i + 1));
    } else {
      const size_t comma = rest.find(',');
      value = std::string(absl::StripAsciiWhitespace(rest.substr(0, comma)));
      rest.remove_prefix(comma == absl::string_view::npos ? rest.size() : comma);
    }
    challenge.params[key] = value;
    rest = absl::StripLeadingAsciiWhitespace(rest);
    if (absl::StartsWith(rest, ",")) rest.remove_prefix(1);
  }
  return challenge;
}

std::string Scope(const Reference& ref) { return absl::StrCat("repository:", ref.path, ":pull"); }

bool HasCredentials(const Credentials& c) {
  return !c.username.empty() || !c.auth.empty() || !c.identity_token.empty() ||
         !c.registry_token.empty();
}

std::string CredentialsKey(const Credentials& c) {
  if (!HasCredentials(c)) return "anonymous";
  return Sha256Digest(absl::StrCat(c.username.size(), ":", c.username, c.password.size(), ":",
                                   c.password, c.auth.size(), ":", c.auth, c.identity_token.size(),
                                   ":", c.identity_token, c.registry_token.size(), ":",
                                   c.registry_token));
}

absl::StatusOr<std::string> Authorize(const Challenge& challenge, const Credentials& credentials,
                                      const Reference& ref, const TlsFor& tls_for,
                                      const TransferLimits& limits, absl::string_view host) {
  std::string user, password;
  const bool has_user = UserPassword(credentials, &user, &password);
  if (challenge.scheme == "basic") {
    if (!has_user) return std::string();
    return absl::StrCat("Basic ", absl::Base64Escape(absl::StrCat(user, ":", password)));
  }
  if (challenge.scheme != "bearer") {
    return absl::UnauthenticatedError(absl::StrCat(
        "registry ", host, ": unsupported authentication scheme \"", challenge.scheme, "\""));
  }
  if (!credentials.registry_token.empty()) {
    return absl::StrCat("Bearer ", credentials.registry_token);
  }
  auto it = challenge.params.find("realm");
  if (it == challenge.params.end() ||
      !(absl::StartsWith(it->second, "https://") || absl::StartsWith(it->second, "http://"))) {
    return absl::UnauthenticatedError(
        absl::StrCat("registry ", host, ": bearer challenge without an http(s) realm"));
  }
  const std::string& realm = it->second;
  const std::string service =
      challenge.params.count("service") ? challenge.params.at("service") : "";
  const std::string scope =
      challenge.params.count("scope") ? challenge.params.at("scope") : Scope(ref);

  HttpExchange exchange;
  exchange.max_body = 1 << 20;
  std::string what;
  if (!credentials.identity_token.empty()) {
    // OAuth2: exchange the refresh token at the realm, as docker and containerd do.
    exchange.method = "POST";
    exchange.url = realm;
    exchange.headers = {"Content-Type: application/x-www-form-urlencoded"};
    exchange.body = absl::StrCat(
        "grant_type=refresh_token&client_id=crib&service=", UrlEncode(service),
        "&scope=", UrlEncode(scope), "&refresh_token=", UrlEncode(credentials.identity_token));
    what = absl::StrCat("POST ", realm, " (token for ", scope, ")");
  } else {
    exchange.url = absl::StrCat(realm, absl::StrContains(realm, "?") ? "&" : "?",
                                "service=", UrlEncode(service), "&scope=", UrlEncode(scope));
    if (has_user) {
      exchange.headers.push_back(absl::StrCat(
          "Authorization: Basic ", absl::Base64Escape(absl::StrCat(user, ":", password))));
    }
    what = absl::StrCat("GET ", realm, " (token for ", scope, ")");
  }
  absl::StatusOr<HttpResponse> response = Perform(exchange, tls_for(UrlHost(realm)), limits);
  if (!response.ok()) {
    // The transport's message names the URL, which carries no secret.
    return response.status();
  }
  if (response->status != 200) return TokenError(*response, what);
  const nlohmann::json j = nlohmann::json::parse(response->body, nullptr, false);
  std::string token;
  if (j.is_object()) {
    if (j.contains("token") && j["token"].is_string()) token = j["token"].get<std::string>();
    if (token.empty() && j.contains("access_token") && j["access_token"].is_string()) {
      token = j["access_token"].get<std::string>();
    }
  }
  if (token.empty()) {
    return absl::UnauthenticatedError(absl::StrCat(what, ": the answer holds no token"));
  }
  return absl::StrCat("Bearer ", token);
}

}  // namespace crib::image::registry
