// A real cribd for integration tests: its own temporary root, state dir and socket, stderr
// captured to a file, stopped (SIGKILL if need be) and its directory removed by the
// destructor, whatever the test's outcome.
#pragma once

#include <grpcpp/grpcpp.h>
#include <sys/types.h>

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "api/cri/api.grpc.pb.h"
#include "support/temp_dir.h"

namespace crib::testing {

namespace cri = ::runtime::v1;

struct CribdOptions {
  std::string root_dir;
  std::string state_dir;
  std::string socket;
  std::optional<std::string> config_text;  // written to a file and passed with --config
  std::vector<std::string> extra_args;
  // A command (looked up in PATH) run instead of cribd, with cribd's command line after its
  // own arguments, that ends by exec'ing it: e.g. to start cribd in namespaces of its own.
  std::vector<std::string> wrapper;
};

class CribdProcess {
 public:
  // Options with the paths under `dir`: root/, state/, state/crib.sock.
  static CribdOptions OptionsIn(const std::string& dir);

  // Starts cribd and waits until its socket accepts calls.
  static absl::StatusOr<std::unique_ptr<CribdProcess>> Start(const CribdOptions& options);

  // Runs cribd to completion (for start-up failures); returns its exit code and stderr.
  static std::pair<int, std::string> RunToExit(const CribdOptions& options,
                                               absl::Duration timeout = absl::Seconds(20));

  ~CribdProcess();

  pid_t pid() const { return pid_; }
  const CribdOptions& options() const { return options_; }

  std::unique_ptr<cri::RuntimeService::Stub> Runtime();
  std::unique_ptr<cri::ImageService::Stub> Image();

  // Sends `signal` and waits for the exit; returns the wait status.
  int SignalAndWait(int signal, absl::Duration timeout = absl::Seconds(30));

  // What cribd has written to stderr so far.
  std::string Log() const;

 private:
  CribdProcess(CribdOptions options, pid_t pid, std::string log_path)
      : options_(std::move(options)), pid_(pid), log_path_(std::move(log_path)) {}

  CribdOptions options_;
  pid_t pid_;
  std::string log_path_;
  std::shared_ptr<grpc::Channel> channel_;
};

// The crib-pause of this build (beside cribd), and its live processes (zombies do not count).
std::string PausePath();
// With `state_dir`, only those of the cribd with that state dir (crib-pause names its pod
// directory, <state_dir>/pods/<id>, on its command line).
std::set<pid_t> PauseProcesses(const std::string& state_dir = "");

// gRPC client context with a deadline, for calls that must not hang a test.
std::unique_ptr<grpc::ClientContext> ContextWithDeadline(absl::Duration d = absl::Seconds(10));

}  // namespace crib::testing
