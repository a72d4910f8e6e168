// The registry client: Registry API v2 over libcurl. Resolves a reference to the node's image
// manifest and config (manifest negotiation, platform selection, digests verified), streams
// blobs to a caller's sink, and handles auth (bearer tokens, basic, identity and registry
// tokens), mirrors, plain-HTTP hosts, CA files, stall and floor-rate limits.
// It stores nothing on disk and never logs or returns a credential.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "config/config.h"
#include "image/reference.h"
#include "image/registry/transport.h"

namespace crib::image::registry {

inline constexpr char kOciIndex[] = "application/vnd.oci.image.index.v1+json";
inline constexpr char kOciManifest[] = "application/vnd.oci.image.manifest.v1+json";
inline constexpr char kDockerManifestList[] =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr char kDockerManifest[] = "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr char kDockerSchema1Manifest[] =
    "application/vnd.docker.distribution.manifest.v1+json";
inline constexpr char kDockerSchema1Signed[] =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";

struct Descriptor {
  std::string media_type;
  std::string digest;  // "sha256:..."
  int64_t size = 0;
};

// From CRI's AuthConfig; never logged, never in an error message.
struct Credentials {
  std::string username, password, auth /* base64 user:pass */, identity_token, registry_token;
};

struct PullOptions {
  Credentials credentials;
  std::function<bool()> cancelled;  // polled during transfers; true aborts with Cancelled
};

struct ResolvedImage {
  std::string digest;      // what the reference resolved to (index or manifest): the repo digest
  std::string index_json;  // its bytes when it is an index, verified against digest
  std::string manifest_digest;      // the chosen platform's image manifest
  std::string manifest_json;        // its bytes, verified against manifest_digest
  Descriptor config;                // the image config blob
  std::string config_json;          // its bytes, verified against config.digest
  std::vector<Descriptor> layers;   // in order, base first
  std::string media_type;           // of what the reference resolved to
};

// The platform images are chosen for: the node's own by default.
struct Platform {
  std::string os = "linux";
  std::string architecture;  // OCI names: amd64, arm64, arm, ...
  std::string variant;       // "v8", "v7", or empty
  static Platform Host();
};

class Client {
 public:
  explicit Client(
      const Config& config);  // crib's Config: registry mirrors, insecure hosts, CAs, timeouts
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // For tests and other nodes: choose images for `platform` instead of the host's.
  void set_platform(Platform platform) { platform_ = std::move(platform); }

  // Manifest negotiation and platform selection; fetches and verifies the config.
  absl::StatusOr<ResolvedImage> Resolve(const Reference& ref, const PullOptions& options);
  // Streams blob bytes to `sink` as they arrive (the caller verifies the digest while storing).
  // NotFound, Unauthenticated, PermissionDenied, Unavailable, DeadlineExceeded (stalled or too
  // slow), Cancelled.
  absl::Status FetchBlob(const Reference& ref, const Descriptor& blob, const PullOptions& options,
                         absl::FunctionRef<absl::Status(absl::string_view chunk)> sink);

  // The endpoints tried for a registry host, in order: its mirrors, then the registry itself
  // ("https://registry-1.docker.io" for docker.io, "http://127.0.0.1:5000" for loopback, but
  // "https://127.0.0.1:5000" when registry.ca_files or insecure_skip_verify names the host).
  std::vector<std::string> Endpoints(absl::string_view domain) const;

  // How `host` ("host:port") is verified: registry.ca_files and insecure_skip_verify.
  TlsOptions TlsFor(absl::string_view host) const;

  struct Session;  // auth state per endpoint and repository

 private:
  RegistryConfig config_;
  Platform platform_;
  std::mutex mu_;
  // Tokens cached per endpoint + scope.
  std::map<std::string, std::string> tokens_;
  friend struct Session;
};

}  // namespace crib::image::registry
