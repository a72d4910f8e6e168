#include "image/reference.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace crib::image {
namespace {

constexpr size_t kMaxNameLength = 255;
constexpr size_t kMaxTagLength = 128;

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool IsHexLower(char c) { return (c >= 'a' && c <= 'f') || (c >= '0' && c <= '9'); }
bool IsWordChar(char c) { return absl::ascii_isalnum(c) || c == '_'; }

// path-component := [a-z0-9]+ (separator [a-z0-9]+)*, separator := [_.] | "__" | "-"+
bool IsPathComponent(absl::string_view s) {
  if (s.empty() || !IsLowerAlnum(s.front()) || !IsLowerAlnum(s.back())) return false;
  size_t i = 0;
  while (i < s.size()) {
    if (IsLowerAlnum(s[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < s.size() && !IsLowerAlnum(s[j])) ++j;
    absl::string_view sep = s.substr(i, j - i);
    const bool dashes = sep.find_first_not_of('-') == absl::string_view::npos;
    if (!(sep == "." || sep == "_" || sep == "__" || dashes)) return false;
    i = j;
  }
  return true;
}

// domain-component := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
bool IsDomainComponent(absl::string_view s) {
  if (s.empty() || !absl::ascii_isalnum(s.front()) || !absl::ascii_isalnum(s.back())) return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(c) && c != '-') return false;
  }
  return true;
}

bool IsPort(absl::string_view s) {
  if (s.empty() || s.size() > 5) return false;
  for (char c : s) {
    if (!absl::ascii_isdigit(c)) return false;
  }
  return true;
}

// domain := host [":" port], host := domain-name | "[" IPv6 "]"
bool IsDomain(absl::string_view s) {
  absl::string_view host = s;
  if (absl::StartsWith(s, "[")) {
    const size_t close = s.find(']');
    if (close == absl::string_view::npos || close < 3) return false;
    for (char c : s.substr(1, close - 1)) {
      if (!absl::ascii_isxdigit(c) && c != ':' && c != '.') return false;
    }
    absl::string_view rest = s.substr(close + 1);
    if (rest.empty()) return true;
    return rest[0] == ':' && IsPort(rest.substr(1));
  }
  if (const size_t colon = s.find(':'); colon != absl::string_view::npos) {
    if (!IsPort(s.substr(colon + 1))) return false;
    host = s.substr(0, colon);
  }
  for (absl::string_view part : absl::StrSplit(host, '.')) {
    if (!IsDomainComponent(part)) return false;
  }
  return true;
}

// tag := [\w][\w.-]{0,127}
bool IsTag(absl::string_view s) {
  if (s.empty() || s.size() > kMaxTagLength || !IsWordChar(s[0])) return false;
  for (char c : s) {
    if (!IsWordChar(c) && c != '.' && c != '-') return false;
  }
  return true;
}

absl::Status Malformed(absl::string_view text, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("invalid image reference \"", text, "\": ", why));
}

}  // namespace

absl::Status ValidateDigest(absl::string_view digest) {
  const size_t colon = digest.find(':');
  if (colon == absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid digest \"", digest, "\": want algorithm:hex"));
  }
  absl::string_view algorithm = digest.substr(0, colon);
  absl::string_view hex = digest.substr(colon + 1);
  size_t want = 0;
  if (algorithm == "sha256") {
    want = 64;
  } else if (algorithm == "sha512") {
    want = 128;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("invalid digest \"", digest,
                                                   "\": unsupported algorithm \"", algorithm,
                                                   "\" (want sha256 or sha512)"));
  }
  if (hex.size() != want) {
    return absl::InvalidArgumentError(absl::StrCat("invalid digest \"", digest, "\": ", algorithm,
                                                   " wants ", want, " hex digits, got ",
                                                   hex.size()));
  }
  for (char c : hex) {
    if (!IsHexLower(c)) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid digest \"", digest, "\": not lowercase hex"));
    }
  }
  return absl::OkStatus();
}

std::string Reference::Name() const { return absl::StrCat(domain, "/", path); }

std::string Reference::String() const {
  std::string s = Name();
  if (!tag.empty()) absl::StrAppend(&s, ":", tag);
  if (!digest.empty()) absl::StrAppend(&s, "@", digest);
  return s;
}

std::string Reference::Familiar() const {
  std::string s;
  if (domain == kDefaultDomain) {
    s = absl::StartsWith(path, "library/") && path.find('/', 8) == std::string::npos
            ? path.substr(8)
            : path;
  } else {
    s = Name();
  }
  if (!tag.empty()) absl::StrAppend(&s, ":", tag);
  if (!digest.empty()) absl::StrAppend(&s, "@", digest);
  return s;
}

absl::StatusOr<Reference> ParseReference(absl::string_view text) {
  if (text.empty()) return absl::InvalidArgumentError("invalid image reference \"\": empty");
  Reference ref;
  absl::string_view rest = text;

  if (const size_t at = rest.find('@'); at != absl::string_view::npos) {
    absl::string_view digest = rest.substr(at + 1);
    if (absl::Status s = ValidateDigest(digest); !s.ok()) return Malformed(text, s.message());
    ref.digest = std::string(digest);
    rest = rest.substr(0, at);
  }

  // A tag follows the last ':' after the last '/'; an earlier ':' is a port.
  const size_t last_slash = rest.rfind('/');
  const size_t colon = rest.rfind(':');
  if (colon != absl::string_view::npos &&
      (last_slash == absl::string_view::npos || colon > last_slash)) {
    absl::string_view tag = rest.substr(colon + 1);
    if (!IsTag(tag)) {
      return Malformed(
          text, absl::StrCat("invalid tag \"", tag, "\" (want [A-Za-z0-9_][A-Za-z0-9_.-]{0,127})"));
    }
    ref.tag = std::string(tag);
    rest = rest.substr(0, colon);
  }
  if (rest.empty()) return Malformed(text, "empty repository name");

  // The first component is a domain when it has a '.' or ':' or is "localhost" (Docker's rule).
  absl::string_view path = rest;
  const size_t first_slash = rest.find('/');
  if (first_slash != absl::string_view::npos) {
    absl::string_view first = rest.substr(0, first_slash);
    if (absl::StrContains(first, '.') || absl::StrContains(first, ':') || first == "localhost") {
      if (!IsDomain(first)) {
        return Malformed(text, absl::StrCat("invalid registry host \"", first, "\""));
      }
      ref.domain = std::string(first);
      path = rest.substr(first_slash + 1);
    }
  }
  if (ref.domain.empty()) ref.domain = kDefaultDomain;
  if (ref.domain == "index.docker.io") ref.domain = kDefaultDomain;

  if (path.empty()) return Malformed(text, "empty repository path");
  for (absl::string_view component : absl::StrSplit(path, '/')) {
    if (component.empty()) return Malformed(text, "empty path component");
    if (!IsPathComponent(component)) {
      if (absl::AsciiStrToLower(component) != component) {
        return Malformed(text, "repository name must be lowercase");
      }
      return Malformed(text, absl::StrCat("invalid path component \"", component,
                                          "\" (want [a-z0-9] separated by '.', '_', '__' or '-')"));
    }
  }
  // Docker refuses a bare 64-hex name: it would be confused with an image id.
  if (ref.domain == kDefaultDomain && path.size() == 64 &&
      path.find_first_not_of("0123456789abcdef") == absl::string_view::npos) {
    return Malformed(text, "a 64-digit hex string is an image id, not a repository name");
  }
  ref.path = std::string(path);
  if (ref.domain == kDefaultDomain && !absl::StrContains(ref.path, '/')) {
    ref.path = absl::StrCat("library/", ref.path);
  }
  if (ref.Name().size() > kMaxNameLength) {
    return Malformed(text, absl::StrCat("repository name longer than ", kMaxNameLength, " bytes"));
  }
  if (ref.tag.empty() && ref.digest.empty()) ref.tag = "latest";
  return ref;
}

}  // namespace crib::image
