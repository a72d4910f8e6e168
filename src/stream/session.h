// The work behind one upgraded connection: a remote command (exec or attach) or port
// forwarding. A session is a MuxHandler for what the client sends, and adds the container side
// (process fds, forwarded sockets) to the connection's poll loop. Everything runs on the
// connection's thread; nothing blocks but the backend calls that start a process or dial.
#pragma once

#include <poll.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "stream/backend.h"
#include "stream/k8s_protocol.h"
#include "stream/mux.h"

namespace crib::stream {

struct SessionLimits {
  size_t buffer_bytes = 1 << 20;  // input held for one container fd before reading pauses
  absl::Duration stream_creation_timeout = absl::Seconds(30);
  // After an exec'd process exited, output is still read until EOF, or until nothing came
  // for this long (a background process may hold the pipe).
  absl::Duration drain_timeout = absl::Seconds(1);
};

class Session : public MuxHandler {
 public:
  ~Session() override = default;

  // Appends the fds to poll for the container side; OnPoll gets the same entries back.
  virtual void AddPollFds(std::vector<struct pollfd>* fds) = 0;
  virtual void OnPoll(const struct pollfd* fds, size_t count) = 0;
  // The next time OnTimer must run (InfiniteFuture: none).
  virtual absl::Time NextDeadline() const = 0;
  virtual void OnTimer(absl::Time now) = 0;
  // False while input for the container is piling up: the connection stops reading the
  // client until it drains (back-pressure).
  virtual bool WantsInput() const = 0;
  // Everything is said: the connection flushes its output and closes.
  virtual bool Done() const = 0;
  // The client is gone or the connection is being torn down: stop the container side now.
  virtual void Abort() = 0;
};

// Exec or attach. `wait_for_streams`: SPDY (the client opens the streams it needs, typed by
// headers); otherwise WebSocket (channels are there from the start).
struct RemoteCommandParams {
  bool exec = true;
  ExecRequest exec_request;      // exec
  AttachRequest attach_request;  // attach
  int version = 4;               // remote command protocol version (1 to 5)
  bool websocket = false;
};
std::unique_ptr<Session> NewRemoteCommandSession(const RemoteCommandParams& params,
                                                 StreamBackend* backend, Mux* mux,
                                                 const SessionLimits& limits);

// Port forwarding: SPDY pairs a data and an error stream per request id; WebSocket has two
// channels per port of `ports`, connected at once.
struct PortForwardParams {
  std::string pod_sandbox_id;
  std::vector<int> allowed_ports;  // empty: any (SPDY)
  bool websocket = false;
  std::vector<int> ports;  // WebSocket: the channels' ports
};
std::unique_ptr<Session> NewPortForwardSession(const PortForwardParams& params,
                                               StreamBackend* backend, Mux* mux,
                                               const SessionLimits& limits);

}  // namespace crib::stream
