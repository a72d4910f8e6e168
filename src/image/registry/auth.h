// Registry authentication: WWW-Authenticate challenges, the bearer-token flow (anonymous,
// basic credentials, OAuth2 refresh with an identity token), registry tokens and basic auth.
// Credentials and tokens go only into Authorization headers and token requests: never into a
// log line or a Status message.
#pragma once

#include <functional>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "image/reference.h"
#include "image/registry/client.h"
#include "image/registry/transport.h"

namespace crib::image::registry {

struct Challenge {
  std::string scheme;                         // lowercase: "bearer", "basic"
  std::map<std::string, std::string> params;  // lowercase keys: realm, service, scope
};

// Parses `Bearer realm="https://auth.example/token",service="registry",scope="..."`.
Challenge ParseChallenge(absl::string_view header);

// "repository:<path>:pull".
std::string Scope(const Reference& ref);

bool HasCredentials(const Credentials& credentials);

// A digest of the credentials, so cached tokens are never shared between different callers.
std::string CredentialsKey(const Credentials& credentials);

// How to verify a host's TLS certificate ("host:port" as in URLs).
using TlsFor = std::function<TlsOptions(absl::string_view host)>;

// The Authorization header value answering `challenge` ("Bearer <token>", "Basic <b64>"), or
// empty when it cannot be answered without credentials the caller did not give. The token
// realm, often another host than the registry, is verified with `tls_for` of its own host.
absl::StatusOr<std::string> Authorize(const Challenge& challenge, const Credentials& credentials,
                                      const Reference& ref, const TlsFor& tls_for,
                                      const TransferLimits& limits, absl::string_view host);

}  // namespace crib::image::registry
