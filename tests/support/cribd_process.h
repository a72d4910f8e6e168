// A real cribd for integration tests: its own temporary root, state dir and socket, stderr
// captured to a file, stopped (SIGKILL if need be) and its directory removed by the
// destructor, whatever the test's outcome.
#pragma once

#include <grpcpp/grpcpp.h>
#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "api/cri/api.grpc.pb.h"

namespace crib::testing {

namespace cri = ::runtime::v1;

// A temporary directory removed (recursively, after unmounting nothing) on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

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

// gRPC client context with a deadline, for calls that must not hang a test.
std::unique_ptr<grpc::ClientContext> ContextWithDeadline(absl::Duration d = absl::Seconds(10));

}  // namespace crib::testing
