#include "image/registry/client.h"

#include <sys/utsname.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/errors.h"
#include "common/logging.h"
#include "common/spawn.h"
#include "common/status_macros.h"
#include "image/digest.h"
#include "image/registry/auth.h"
#include "image/registry/transport.h"
#include "nlohmann/json.hpp"

namespace crib::image::registry {
namespace {

constexpr int64_t kMaxManifestSize = 4 << 20;
constexpr int64_t kMaxConfigSize = 16 << 20;

// localhost, 127.0.0.0/8 and ::1, with or without a port.
bool IsLoopback(absl::string_view host) {
  absl::string_view name = host;
  if (absl::StartsWith(name, "[")) {
    return absl::StartsWith(name, "[::1]");
  }
  name = name.substr(0, name.find(':'));
  return name == "localhost" || absl::StartsWith(name, "127.");
}

bool Contains(const std::vector<std::string>& list, absl::string_view value) {
  for (const std::string& item : list) {
    if (item == value) return true;
  }
  return false;
}

// The registry's error codes, if the body is the API's {"errors": [...]} form.
std::string RegistryErrors(const std::string& body, std::vector<std::string>* codes) {
  const nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("errors") || !j["errors"].is_array()) {
    return "";
  }
  std::vector<std::string> parts;
  for (const auto& e : j["errors"]) {
    if (!e.is_object()) continue;
    const std::string code = e.value("code", "");
    codes->push_back(code);
    parts.push_back(absl::StrCat(code, ": ", e.value("message", "")));
  }
  return absl::StrJoin(parts, "; ");
}

std::string Accept() {
  return absl::StrCat("Accept: ", kOciIndex, ", ", kOciManifest, ", ", kDockerManifestList, ", ",
                      kDockerManifest);
}

bool IsIndex(absl::string_view media_type) {
  return media_type == kOciIndex || media_type == kDockerManifestList;
}
bool IsManifest(absl::string_view media_type) {
  return media_type == kOciManifest || media_type == kDockerManifest;
}

std::string NormalizeVariant(absl::string_view arch, absl::string_view variant) {
  if (arch == "arm64" && variant.empty()) return "v8";
  if (arch == "amd64" && variant == "v1") return "";
  if (arch == "arm" && variant.empty()) return "v7";
  return std::string(variant);
}

// How well an index entry fits the platform: 0 not at all; higher is better.
int PlatformScore(const nlohmann::json& entry, const Platform& want) {
  if (!entry.contains("platform") || !entry["platform"].is_object()) return 0;
  const nlohmann::json& p = entry["platform"];
  if (p.value("os", "") != want.os || p.value("architecture", "") != want.architecture) return 0;
  const std::string have = NormalizeVariant(want.architecture, p.value("variant", ""));
  const std::string need = NormalizeVariant(want.architecture, want.variant);
  if (have == need) return 3;
  // arm: an older variant runs on a newer CPU (v6 on v7), as containerd's matcher allows.
  if (want.architecture == "arm" && have.size() == 2 && need.size() == 2 && have < need) return 2;
  if (want.architecture == "amd64" && need.empty()) return 0;
  return 0;
}

absl::StatusOr<Descriptor> ParseDescriptor(const nlohmann::json& j, absl::string_view what) {
  if (!j.is_object() || !j.contains("digest") || !j["digest"].is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " has no digest"));
  }
  Descriptor d;
  d.media_type = j.value("mediaType", "");
  d.digest = j["digest"].get<std::string>();
  d.size = j.value("size", int64_t{0});
  RETURN_IF_ERROR(ValidateDigest(d.digest));
  return d;
}

}  // namespace

Platform Platform::Host() {
  Platform p;
  utsname u{};
  ::uname(&u);
  const absl::string_view machine = u.machine;
  if (machine == "x86_64") {
    p.architecture = "amd64";
  } else if (machine == "aarch64" || machine == "arm64") {
    p.architecture = "arm64";
    p.variant = "v8";
  } else if (absl::StartsWith(machine, "armv7")) {
    p.architecture = "arm";
    p.variant = "v7";
  } else if (absl::StartsWith(machine, "armv6")) {
    p.architecture = "arm";
    p.variant = "v6";
  } else if (machine == "i686" || machine == "i386") {
    p.architecture = "386";
  } else {
    p.architecture = std::string(machine);
  }
  return p;
}

Client::Client(const Config& config) : config_(config.registry), platform_(Platform::Host()) {
  absl::StatusOr<std::string> fetch = HelperPath(config.helper_dir, "crib-fetch");
  SetFetchHelperPath(fetch.ok() ? *fetch : "");
}

Client::~Client() = default;

std::vector<std::string> Client::Endpoints(absl::string_view domain) const {
  // Loopback registries are plain HTTP unless the config names their TLS (a CA file or
  // insecure_skip_verify); a mirror written with its scheme keeps it.
  auto scheme_for = [this](absl::string_view host) {
    if (Contains(config_.plain_http, host)) return "http://";
    if (config_.ca_files.count(std::string(host)) > 0 ||
        Contains(config_.insecure_skip_verify, host)) {
      return "https://";
    }
    return IsLoopback(host) ? "http://" : "https://";
  };
  std::vector<std::string> endpoints;
  if (auto it = config_.mirrors.find(std::string(domain)); it != config_.mirrors.end()) {
    for (const std::string& mirror : it->second) {
      std::string url = absl::StrContains(mirror, "://")
                            ? mirror
                            : absl::StrCat(scheme_for(UrlHost(mirror)), mirror);
      absl::string_view trimmed = url;
      absl::ConsumeSuffix(&trimmed, "/");
      absl::ConsumeSuffix(&trimmed, "/v2");
      endpoints.emplace_back(trimmed);
    }
  }
  const std::string host = domain == kDefaultDomain ? "registry-1.docker.io" : std::string(domain);
  endpoints.push_back(absl::StrCat(scheme_for(domain), host));
  return endpoints;
}

TlsOptions Client::TlsFor(absl::string_view host) const {
  TlsOptions tls;
  tls.verify = !Contains(config_.insecure_skip_verify, host);
  if (auto it = config_.ca_files.find(std::string(host)); it != config_.ca_files.end()) {
    tls.ca_file = it->second;
  }
  return tls;
}

// Everything one call needs about one endpoint: its URL, TLS, limits and the auth state.
struct Client::Session {
  Client& client;
  std::string endpoint;  // "https://registry-1.docker.io"
  std::string host;
  std::string query;  // "?ns=docker.io" for a mirror
  const Reference& ref;
  const PullOptions& options;
  TlsOptions tls;
  TransferLimits limits;
  std::string auth_key;  // endpoint + scope + who: tokens are never shared between callers

  Session(Client& c, std::string e, bool mirror, const Reference& r, const PullOptions& o)
      : client(c), endpoint(std::move(e)), host(UrlHost(endpoint)), ref(r), options(o) {
    if (mirror) query = absl::StrCat("?ns=", ref.domain);
    tls = client.TlsFor(host);
    limits.stall_timeout = client.config_.stall_timeout;
    limits.min_rate = client.config_.min_rate;
    limits.min_rate_window = client.config_.min_rate_window;
    limits.cancelled = options.cancelled;
    auth_key = absl::StrCat(endpoint, " ", Scope(ref), " ", CredentialsKey(options.credentials));
  }

  std::string CachedAuthorization() {
    std::lock_guard<std::mutex> lock(client.mu_);
    auto it = client.tokens_.find(auth_key);
    return it == client.tokens_.end() ? "" : it->second;
  }

  // A GET of `path` under /v2/<repo>/, authenticating on a 401 and retrying once.
  absl::StatusOr<HttpResponse> Get(const std::string& path, std::vector<std::string> headers,
                                   absl::FunctionRef<absl::Status(absl::string_view)>* sink,
                                   int64_t max_body) {
    HttpExchange exchange;
    exchange.url = absl::StrCat(endpoint, "/v2/", ref.path, "/", path, query);
    exchange.sink = sink;
    exchange.max_body = max_body;
    for (int attempt = 0; attempt < 2; ++attempt) {
      exchange.headers = headers;
      const std::string authorization = CachedAuthorization();
      if (!authorization.empty()) exchange.headers.push_back("Authorization: " + authorization);
      ASSIGN_OR_RETURN(HttpResponse response, Perform(exchange, tls, limits));
      if (response.status != 401 || attempt == 1) {
        if (response.status == 401) {
          return absl::UnauthenticatedError(absl::StrCat(
              "GET ", exchange.url, ": 401 unauthorized: ",
              HasCredentials(options.credentials) ? "the registry refused the credentials"
                                                  : "the registry wants credentials"));
        }
        return response;
      }
      ASSIGN_OR_RETURN(
          std::string authorization_value,
          Authorize(
              ParseChallenge(response.Header("www-authenticate")), options.credentials, ref,
              [this](absl::string_view h) { return client.TlsFor(h); }, limits, host));
      if (authorization_value.empty()) {
        return absl::UnauthenticatedError(absl::StrCat(
            "GET ", exchange.url, ": 401 unauthorized: the registry wants credentials"));
      }
      std::lock_guard<std::mutex> lock(client.mu_);
      client.tokens_[auth_key] = std::move(authorization_value);
    }
    return absl::InternalError("unreachable");
  }

  // An error for a non-2xx response, with the code kubelet can act on.
  absl::Status ResponseError(const HttpResponse& response, const std::string& what) {
    std::vector<std::string> codes;
    std::string detail = RegistryErrors(response.body, &codes);
    const std::string message = absl::StrCat(what, " on ", endpoint, ": HTTP ", response.status,
                                             detail.empty() ? "" : absl::StrCat(" ", detail));
    // Go's HTTP server (docker-registry's) answers plain HTTP on a TLS port this way.
    if (response.status == 400 && absl::StartsWith(endpoint, "http://") &&
        absl::StrContains(response.body, "HTTP request to an HTTPS server")) {
      return absl::UnavailableError(
          absl::StrCat(what, " on ", endpoint, ": the registry at ", host,
                       " speaks HTTPS; name its CA in registry.ca_files (or list it in "
                       "registry.insecure_skip_verify) to reach it over TLS"));
    }
    for (const std::string& code : codes) {
      // The image the request names does not exist: the one NotFound a client sees.
      if (code == "NAME_UNKNOWN" || code == "MANIFEST_UNKNOWN") return CriNotFound(message);
      if (code == "BLOB_UNKNOWN") return absl::NotFoundError(message);
      if (code == "DENIED") return absl::PermissionDeniedError(message);
      if (code == "UNAUTHORIZED") return absl::UnauthenticatedError(message);
      if (code == "TOOMANYREQUESTS") return absl::UnavailableError(message);
    }
    switch (response.status) {
      case 404:
        return absl::NotFoundError(message);
      case 401:
        return absl::UnauthenticatedError(message);
      case 403:
        return absl::PermissionDeniedError(message);
      case 429:
      case 502:
      case 503:
      case 504:
        return absl::UnavailableError(message);
      default:
        return response.status >= 500 ? absl::UnavailableError(message)
                                      : absl::UnknownError(message);
    }
  }

  // Fetches a manifest or index by tag or digest; verifies it against `want_digest` if set.
  absl::Status FetchManifest(const std::string& reference, const std::string& want_digest,
                             std::string* body, std::string* media_type, std::string* digest) {
    const std::string what = absl::StrCat("manifest ", ref.path, ":", reference);
    ASSIGN_OR_RETURN(HttpResponse response, Get(absl::StrCat("manifests/", reference), {Accept()},
                                                nullptr, kMaxManifestSize));
    if (response.status != 200) return ResponseError(response, absl::StrCat("get ", what));
    *body = std::move(response.body);
    *digest = Sha256Digest(*body);
    if (!want_digest.empty() && *digest != want_digest) {
      return absl::FailedPreconditionError(
          absl::StrCat(what, " from ", endpoint, ": digest is ", *digest, ", want ", want_digest));
    }
    const std::string header_digest = response.Header("docker-content-digest");
    if (want_digest.empty() && absl::StartsWith(header_digest, "sha256:") &&
        header_digest != *digest) {
      return absl::FailedPreconditionError(absl::StrCat(what, " from ", endpoint, ": digest is ",
                                                        *digest, ", the registry says ",
                                                        header_digest));
    }
    const nlohmann::json j = nlohmann::json::parse(*body, nullptr, false);
    std::string content_type(
        absl::StripAsciiWhitespace(absl::string_view(response.Header("content-type"))
                                       .substr(0, response.Header("content-type").find(';'))));
    if (j.is_object() && j.value("schemaVersion", 0) == 1) content_type = kDockerSchema1Manifest;
    if (content_type == kDockerSchema1Manifest || content_type == kDockerSchema1Signed) {
      return absl::FailedPreconditionError(absl::StrCat(
          what,
          " is a Docker image manifest v2 schema 1, which is deprecated and not supported; "
          "push the image again with a current client"));
    }
    if (!j.is_object()) {
      return absl::FailedPreconditionError(absl::StrCat(what, ": not a JSON object"));
    }
    *media_type = j.value("mediaType", "");
    if (media_type->empty()) {
      *media_type = content_type;
      // An OCI document without mediaType: an index has "manifests", a manifest "config".
      if (!IsIndex(*media_type) && !IsManifest(*media_type)) {
        *media_type = j.contains("manifests") ? kOciIndex : kOciManifest;
      }
    }
    if (!IsIndex(*media_type) && !IsManifest(*media_type)) {
      return absl::FailedPreconditionError(
          absl::StrCat(what, ": unsupported media type \"", *media_type, "\""));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<ResolvedImage> Resolve(const Platform& platform) {
    ResolvedImage image;
    std::string body, media_type, digest;
    const std::string reference = ref.digest.empty() ? ref.tag : ref.digest;
    RETURN_IF_ERROR(FetchManifest(reference, ref.digest, &body, &media_type, &digest));
    image.digest = digest;
    image.media_type = media_type;
    if (IsIndex(media_type)) {
      image.index_json = body;
      const nlohmann::json index = nlohmann::json::parse(body);
      const nlohmann::json* best = nullptr;
      int best_score = 0;
      std::vector<std::string> offered;
      if (index.contains("manifests") && index["manifests"].is_array()) {
        for (const nlohmann::json& entry : index["manifests"]) {
          if (entry.contains("platform") && entry["platform"].is_object()) {
            const nlohmann::json& p = entry["platform"];
            offered.push_back(absl::StrJoin(
                {p.value("os", ""), p.value("architecture", ""), p.value("variant", "")}, "/"));
            absl::string_view o = offered.back();
            absl::ConsumeSuffix(&o, "/");
            offered.back() = std::string(o);
          }
          const int score = PlatformScore(entry, platform);
          if (score > best_score) {
            best_score = score;
            best = &entry;
          }
        }
      }
      const std::string want = absl::StrCat(platform.os, "/", platform.architecture,
                                            platform.variant.empty() ? "" : "/", platform.variant);
      if (best == nullptr) {
        return CriNotFound(absl::StrCat("image ", ref.String(), " has no manifest for ", want,
                                        " (it has ", absl::StrJoin(offered, ", "), ")"));
      }
      ASSIGN_OR_RETURN(Descriptor chosen, ParseDescriptor(*best, "index entry"));
      RETURN_IF_ERROR(FetchManifest(chosen.digest, chosen.digest, &body, &media_type, &digest));
      if (!IsManifest(media_type)) {
        return absl::FailedPreconditionError(absl::StrCat(
            "image ", ref.String(), ": the index entry for ", want, " is not an image manifest"));
      }
    }
    image.manifest_digest = digest;
    image.manifest_json = body;
    const nlohmann::json manifest = nlohmann::json::parse(image.manifest_json);
    ASSIGN_OR_RETURN(image.config, ParseDescriptor(manifest.value("config", nlohmann::json()),
                                                   "manifest config"));
    if (manifest.contains("layers") && manifest["layers"].is_array()) {
      for (const nlohmann::json& layer : manifest["layers"]) {
        ASSIGN_OR_RETURN(Descriptor d, ParseDescriptor(layer, "manifest layer"));
        image.layers.push_back(std::move(d));
      }
    }
    std::string config;
    auto append = [&config](absl::string_view chunk) -> absl::Status {
      if (config.size() + chunk.size() > kMaxConfigSize) {
        return absl::FailedPreconditionError("image config larger than 16 MiB");
      }
      config.append(chunk.data(), chunk.size());
      return absl::OkStatus();
    };
    absl::FunctionRef<absl::Status(absl::string_view)> sink(append);
    RETURN_IF_ERROR(Blob(image.config, &sink));
    if (const std::string got = Sha256Digest(config); got != image.config.digest) {
      return absl::FailedPreconditionError(absl::StrCat("config ", image.config.digest, " of ",
                                                        ref.String(), " from ", endpoint,
                                                        ": digest is ", got));
    }
    image.config_json = std::move(config);
    return image;
  }

  absl::Status Blob(const Descriptor& blob,
                    absl::FunctionRef<absl::Status(absl::string_view)>* sink,
                    int64_t* streamed = nullptr) {
    ASSIGN_OR_RETURN(HttpResponse response,
                     Get(absl::StrCat("blobs/", blob.digest), {}, sink, 1 << 20));
    if (streamed != nullptr) *streamed = response.streamed;
    if (response.status < 200 || response.status >= 300) {
      return ResponseError(response, absl::StrCat("get blob ", blob.digest));
    }
    if (blob.size > 0 && response.streamed != blob.size) {
      return absl::UnavailableError(absl::StrCat("blob ", blob.digest, " from ", endpoint, ": got ",
                                                 response.streamed, " of ", blob.size, " bytes"));
    }
    return absl::OkStatus();
  }
};

absl::StatusOr<ResolvedImage> Client::Resolve(const Reference& ref, const PullOptions& options) {
  const std::vector<std::string> endpoints = Endpoints(ref.domain);
  absl::Status last;
  for (size_t i = 0; i < endpoints.size(); ++i) {
    Session session(*this, endpoints[i], i + 1 < endpoints.size(), ref, options);
    absl::StatusOr<ResolvedImage> image = session.Resolve(platform_);
    if (image.ok()) return image;
    last = image.status();
    if (absl::IsCancelled(last) || i + 1 == endpoints.size()) break;
    spdlog::warn("resolve {}: mirror {} failed, trying the next endpoint: {}", ref.String(),
                 endpoints[i], last.message());
  }
  return Annotate(last, absl::StrCat("resolve ", ref.String()));
}

absl::Status Client::FetchBlob(const Reference& ref, const Descriptor& blob,
                               const PullOptions& options,
                               absl::FunctionRef<absl::Status(absl::string_view chunk)> sink) {
  const std::vector<std::string> endpoints = Endpoints(ref.domain);
  absl::Status last;
  for (size_t i = 0; i < endpoints.size(); ++i) {
    Session session(*this, endpoints[i], i + 1 < endpoints.size(), ref, options);
    int64_t streamed = 0;
    const absl::Time start = absl::Now();
    last = session.Blob(blob, &sink, &streamed);
    if (last.ok()) {
      spdlog::debug("fetched blob {} of {} from {}: {} bytes in {}", blob.digest, ref.Name(),
                    endpoints[i], streamed, absl::FormatDuration(absl::Now() - start));
      return last;
    }
    // Bytes already went to the sink: another endpoint cannot continue the same stream.
    if (absl::IsCancelled(last) || streamed > 0 || i + 1 == endpoints.size()) break;
    spdlog::warn("fetch {} of {}: mirror {} failed, trying the next endpoint: {}", blob.digest,
                 ref.String(), endpoints[i], last.message());
  }
  return Annotate(last, absl::StrCat("fetch blob ", blob.digest, " of ", ref.Name()));
}

}  // namespace crib::image::registry
