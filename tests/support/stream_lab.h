// A workbench for the streaming server, shared by its tests and its benchmark: a busybox root
// filesystem, containers launched through the Launcher, "pods" (a network namespace made with
// `ip netns add`, a busybox httpd container in it), the LauncherBackend over them, and a
// server on 127.0.0.1. It removes everything it made when destroyed. Plus client helpers that
// run a whole remote command over SPDY or WebSocket.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/launcher.h"
#include "stream/launcher_backend.h"
#include "stream/server.h"

namespace crib::testing {

class StreamLab {
 public:
  // `monitor_path`: crib-monitor. The rootfs goes under a new directory in /tmp.
  explicit StreamLab(std::string monitor_path);
  ~StreamLab();  // removes containers, pods, network namespaces and the directory

  absl::Status StartServer(const stream::ServerOptions& options);
  stream::Server& server() { return *server_; }
  stream::LauncherBackend& backend() { return *backend_; }
  runtime::Launcher& launcher() { return launcher_; }

  // Creates and starts a busybox container; returns its id.
  absl::StatusOr<std::string> StartContainer(std::vector<std::string> args,
                                             const runtime::CreateOptions& create = {},
                                             bool terminal = false,
                                             const std::string& netns_path = "");
  std::string bundle(const std::string& id);
  std::string cgroup(const std::string& id);
  // Processes in the container's cgroup (pids hierarchy).
  int ProcessCount(const std::string& id);

  // A network namespace with lo up; returns the pod sandbox id the backend resolves to it.
  absl::StatusOr<std::string> CreatePod();
  // A pod whose busybox httpd serves `content` as /index.html on `port`.
  absl::StatusOr<std::string> StartHttpdPod(int port, const std::string& content);
  std::string netns_path(const std::string& pod);
  const std::string& rootfs() const { return rootfs_; }

  // Every pid the lab started (monitors and inits), for leak checks.
  std::vector<int> pids();
  // Names of the cgroups and network namespaces it made.
  std::string cgroup_prefix() const { return prefix_; }

 private:
  std::string monitor_path_;
  std::string dir_, rootfs_, prefix_;
  runtime::Launcher launcher_;
  std::unique_ptr<stream::LauncherBackend> backend_;
  std::unique_ptr<stream::Server> server_;
  std::mutex mu_;
  std::map<std::string, std::string> bundles_;  // container id -> bundle
  std::map<std::string, std::string> netns_;    // pod id -> netns name
  std::vector<int> pids_;
  int next_ = 0;
};

struct RemoteCommandResult {
  std::string protocol;
  std::string out, err, error;  // error: the error stream / channel 3
  bool goaway = false;          // SPDY: the server said GOAWAY
  std::string failure;          // what went wrong on the client side, if anything
};

// A remote command over SPDY like kubectl: opens error, stdin, stdout, stderr and resize
// streams as asked, sends a resize event and `input`, closes stdin (if `close_stdin`) and reads
// until the error stream ends.
RemoteCommandResult RunSpdy(const std::string& url, const std::string& protocol, bool in, bool out,
                            bool err, bool tty, const std::string& input = "",
                            bool close_stdin = true,
                            std::optional<std::pair<int, int>> resize = std::nullopt);
// The same over WebSocket (stdout and stderr as they come, until the server closes).
RemoteCommandResult RunWebSocket(const std::string& url, const std::string& protocol,
                                 const std::string& input = "");

// This process's resident set.
long SelfRssKib();

}  // namespace crib::testing
