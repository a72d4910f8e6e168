// Test fixtures for the registry side: a real Debian docker-registry on a free loopback port
// (optionally behind htpasswd basic auth, optionally over TLS with a test CA) with its own
// storage, the project's test images built and pushed to it, and a tiny scripted HTTP server
// for faults a real registry will not produce (dropped connections, stalls, token realms).
// Everything is removed on destruction.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace crib::testing {

// A TCP port on 127.0.0.1 that was free a moment ago (bind port 0, read it back, close).
int FreeLoopbackPort();

// What build_images.py pushed for one "repo:tag".
struct TestImage {
  std::string digest;      // the tag's manifest or index digest
  std::string media_type;  // of that manifest or index
  int64_t size = 0;
  std::string config;  // config digest (manifests only)
  std::vector<std::string> layers;
  std::vector<int64_t> layer_sizes;
  std::vector<std::string> diff_ids;
  std::map<std::string, TestImage> manifests;  // indexes: "linux/amd64", "linux/arm64/v8"
};
using TestImages = std::map<std::string, TestImage>;

// The images build_images.py knows; "big:latest" (~100 MB) is built only when named.
inline constexpr const char* kTestImageNames[] = {
    "busybox:latest",    "layers:latest",         "zstd:latest",          "user:latest",
    "username:latest",   "multiarch:latest",      "armonly:latest",       "dockerlist:latest",
    "docker:latest",     "evil-traversal:latest", "evil-absolute:latest", "evil-symlink:latest",
    "app:latest",        "groups:latest",         "nocmd:latest",         "evil-etc:latest",
    "manylayers:latest", "tenmb:latest",
};

// Runs tests/images/build_images.py against `host` ("127.0.0.1:port"); `only` empty: all the
// small images. Credentials are passed for a basic-auth registry, a CA file for a TLS one.
absl::StatusOr<TestImages> BuildAndPushTestImages(const std::string& host,
                                                  const std::vector<std::string>& only = {},
                                                  const std::string& username = "",
                                                  const std::string& password = "",
                                                  const std::string& ca_file = "");

// A self-signed test CA and a server certificate it signed, made with the openssl CLI in `dir`:
// ca.pem, ca.key, server.pem (subjectAltName IP:127.0.0.1 and DNS:localhost), server.key.
struct TestCertificates {
  std::string ca_file, ca_key, cert_file, key_file;
};
absl::StatusOr<TestCertificates> MakeTestCertificates(const std::string& dir);

struct LocalRegistryOptions {
  bool basic_auth = false;  // htpasswd (bcrypt) with the user and password below
  std::string username = "crib-test-user";
  std::string password = "crib-test-Pa55word";
  bool tls = false;  // HTTPS with a certificate from MakeTestCertificates
};

// A docker-registry process serving plain HTTP (or HTTPS) on 127.0.0.1:<free port>.
class LocalRegistry {
 public:
  // Starts it and waits until /v2/ answers (200, or 401 with auth).
  static absl::StatusOr<std::unique_ptr<LocalRegistry>> Start(LocalRegistryOptions options = {});
  ~LocalRegistry();
  LocalRegistry(const LocalRegistry&) = delete;
  LocalRegistry& operator=(const LocalRegistry&) = delete;

  const std::string& host() const { return host_; }  // "127.0.0.1:41234"
  int port() const { return port_; }
  const std::string& dir() const { return dir_; }
  const LocalRegistryOptions& options() const { return options_; }
  pid_t pid() const { return pid_; }
  // With tls: the CA that signed the registry's certificate, and that certificate.
  const TestCertificates& certificates() const { return certificates_; }

  // Builds and pushes the test images (with the fixture's credentials when it has auth).
  absl::StatusOr<TestImages> Push(const std::vector<std::string>& only = {}) const;

  // What the registry has written to its log so far.
  std::string Log() const;

 private:
  LocalRegistry() = default;
  LocalRegistryOptions options_;
  TestCertificates certificates_;
  std::string dir_;
  std::string host_;
  int port_ = 0;
  pid_t pid_ = -1;
};

// A request as the scripted server read it.
struct HttpRequest {
  std::string method;
  std::string target;                          // path and query
  std::map<std::string, std::string> headers;  // lowercase names
  std::string body;
  std::string Header(const std::string& name) const;
};

// One accepted connection; the handler writes raw bytes to it.
class HttpConnection {
 public:
  HttpConnection(int fd, const std::atomic<bool>* stopping) : fd_(fd), stopping_(stopping) {}
  // Writes all of `data`; false when the peer is gone.
  bool Write(absl::string_view data);
  // Writes a whole response with Content-Length.
  bool Respond(int status, absl::string_view body,
               const std::vector<std::pair<std::string, std::string>>& headers = {});
  // Sleeps up to `d`, returning early when the server stops or the peer closes.
  void Stall(absl::Duration d);

 private:
  int fd_;
  const std::atomic<bool>* stopping_;
};

// A loopback HTTP/1.1 server that hands each request to `handler` and closes the connection
// after it returns.
class ScriptedHttpServer {
 public:
  using Handler = std::function<void(const HttpRequest&, HttpConnection&)>;
  explicit ScriptedHttpServer(Handler handler);
  ~ScriptedHttpServer();
  ScriptedHttpServer(const ScriptedHttpServer&) = delete;
  ScriptedHttpServer& operator=(const ScriptedHttpServer&) = delete;

  int port() const { return port_; }
  std::string host() const;                   // "127.0.0.1:port"
  std::vector<HttpRequest> Requests() const;  // those seen so far, in order

 private:
  void AcceptLoop();
  void Serve(int fd);

  Handler handler_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mu_;
  std::vector<HttpRequest> requests_;
  std::vector<std::thread> connections_;
  std::thread acceptor_;
};

}  // namespace crib::testing
