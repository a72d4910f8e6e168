// What the streaming server needs from the runtime, in plain structs: the requests it prepares
// (no CRI or protobuf types), and the StreamBackend it calls when a client connects: run a
// process in a container, attach to one, dial a port in a pod's network namespace. The
// server pumps the fds it gets back; the backend knows containers, the server does not.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/unique_fd.h"

namespace crib::stream {

struct ExecRequest {
  std::string container_id;
  std::vector<std::string> cmd;
  bool tty = false;
  bool stdin = false;
  bool stdout = false;
  bool stderr = false;
};

struct AttachRequest {
  std::string container_id;
  bool tty = false;
  bool stdin = false;
  bool stdout = false;
  bool stderr = false;
};

struct PortForwardRequest {
  std::string pod_sandbox_id;
  // The ports a client may forward; empty: any (SPDY clients name the port per stream; a
  // WebSocket client then names them with the `ports` query parameter).
  std::vector<int> ports;
};

// The container's side of one exec or attach session. The fds are the server's to read,
// write and close (it makes them non-blocking):
//   stdin_fd  written with the client's stdin; closed when the client's stdin ends
//   stdout_fd the process's stdout (with a tty, the terminal's whole output)
//   stderr_fd the process's stderr
// An fd is invalid when the session has no such stream. Output the client did not ask for may
// still come (and is read and dropped): the session ends once every output reached EOF and,
// for an exec, the process has exited.
class ContainerStreams {
 public:
  virtual ~ContainerStreams() = default;  // an exec'd process still running is killed

  UniqueFd& stdin_fd() { return stdin_fd_; }
  UniqueFd& stdout_fd() { return stdout_fd_; }
  UniqueFd& stderr_fd() { return stderr_fd_; }

  // Readable when the exec'd process has exited; -1 for an attach (it ends with its output).
  virtual int exit_fd() const = 0;
  // After exit_fd() became readable: the exit code (128 + signal for a signal).
  virtual absl::StatusOr<int> ExitCode() = 0;
  // The terminal size (rows = Height, cols = Width of the client's resize event).
  virtual absl::Status Resize(int rows, int cols) = 0;
  // stdin_fd is a terminal of its own (an exec with a tty): a terminal cannot be half-closed,
  // so when the client's stdin ends the server writes the end-of-file character, then closes.
  virtual bool stdin_is_terminal() const = 0;

 protected:
  UniqueFd stdin_fd_, stdout_fd_, stderr_fd_;
};

class StreamBackend {
 public:
  virtual ~StreamBackend() = default;

  // NotFound when the container does not exist, FailedPrecondition when it does not run.
  // Called when a request is prepared and again when its client connects.
  virtual absl::Status CheckContainer(absl::string_view container_id) = 0;
  // NotFound when the pod sandbox does not exist, FailedPrecondition when it is not ready.
  virtual absl::Status CheckPodSandbox(absl::string_view pod_sandbox_id) = 0;

  // Starts the exec'd process (returns once it runs, or why it could not).
  virtual absl::StatusOr<std::unique_ptr<ContainerStreams>> Exec(const ExecRequest& request) = 0;
  virtual absl::StatusOr<std::unique_ptr<ContainerStreams>> Attach(
      const AttachRequest& request) = 0;
  // A connected TCP socket to localhost:`port` inside the pod's network namespace.
  virtual absl::StatusOr<UniqueFd> DialPort(absl::string_view pod_sandbox_id, int port) = 0;
};

}  // namespace crib::stream
