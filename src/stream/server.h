// crib's streaming server for the CRI Exec, Attach and PortForward RPCs: the RPC handlers call
// Prepare*, which validates the request and returns the URL of a single-use token; kubelet's
// proxy, kubectl, crictl or any client then connects to that URL and speaks SPDY/3.1 or
// WebSocket with the Kubernetes remotecommand or portforward protocols. One thread per
// connection (bounded in number), each with its own poll loop; the runtime work is the
// StreamBackend's. Knows no CRI or protobuf types.
#pragma once

#include <atomic>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/unique_fd.h"
#include "config/config.h"
#include "stream/backend.h"
#include "stream/token_cache.h"

namespace crib::stream {

struct ServerOptions {
  std::string address = "127.0.0.1";
  int port = 0;  // 0: an ephemeral port
  bool tls = false;
  std::string tls_cert_file;  // with tls: PEM files; both empty: a self-signed certificate
  std::string tls_key_file;
  absl::Duration idle_timeout = absl::Hours(4);  // no traffic either way: closed
  absl::Duration stream_creation_timeout = absl::Seconds(30);
  absl::Duration token_ttl = absl::Minutes(1);
  int max_streams = 128;               // connections and sessions at once, in total
  int max_streams_per_container = 32;  // sessions at once per container (or pod sandbox)
  size_t max_tokens = 1000;            // prepared, unused requests
  size_t buffer_bytes = 1 << 20;       // per direction and stream before back-pressure
};

// The options of the [stream] section of crib's configuration.
ServerOptions ServerOptionsFromConfig(const StreamConfig& config);

class Server {
 public:
  // Listens on the options' address and port and starts serving. `backend` must outlive it.
  static absl::StatusOr<std::unique_ptr<Server>> Start(const ServerOptions& options,
                                                       StreamBackend* backend);
  // Stops: no new connections, open ones are closed (exec'd processes killed).
  ~Server();
  void Stop();

  // Validate the request (InvalidArgument; NotFound or FailedPrecondition from the backend;
  // ResourceExhausted at the limits) and return the URL a client connects to.
  absl::StatusOr<std::string> PrepareExec(const ExecRequest& request);
  absl::StatusOr<std::string> PrepareAttach(const AttachRequest& request);
  absl::StatusOr<std::string> PreparePortForward(const PortForwardRequest& request);

  // "http://127.0.0.1:41234" (https with TLS).
  const std::string& base_url() const { return base_url_; }
  int port() const { return port_; }
  // With TLS: the server's certificate (PEM), e.g. for a client to pin a self-signed one.
  std::string certificate_pem() const;
  // Sessions running now, in total and for one container or pod sandbox.
  int active_sessions() const;
  int active_sessions_for(const std::string& target) const;

  // The connection threads' view of the server (defined in server.cc).
  class Core;

 private:
  explicit Server(std::unique_ptr<Core> core);
  void AcceptLoop();
  // The per-target limit, a token, the URL.
  absl::StatusOr<std::string> Prepare(const std::string& target, absl::string_view path,
                                      PreparedRequest request);

  std::unique_ptr<Core> core_;
  std::string base_url_;
  int port_ = 0;
  std::thread accept_thread_;
};

}  // namespace crib::stream
