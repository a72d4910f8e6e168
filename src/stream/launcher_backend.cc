#include "stream/launcher_backend.h"

#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/status_macros.h"

namespace crib::stream {
namespace {

class ExecStreams : public ContainerStreams {
 public:
  explicit ExecStreams(std::unique_ptr<runtime::ExecProcess> process, bool tty)
      : process_(std::move(process)), tty_(tty) {
    stdin_fd_ = std::move(process_->stdin_fd());
    stdout_fd_ = std::move(process_->stdout_fd());
    stderr_fd_ = std::move(process_->stderr_fd());
  }
  ~ExecStreams() override {
    // The process dies with its handle; its terminal closes after that.
    process_.reset();
  }

  int exit_fd() const override { return process_->exit_fd(); }
  absl::StatusOr<int> ExitCode() override { return process_->ExitCode(); }
  absl::Status Resize(int rows, int cols) override { return process_->Resize(rows, cols); }
  bool stdin_is_terminal() const override { return tty_; }

 private:
  std::unique_ptr<runtime::ExecProcess> process_;
  bool tty_;
};

class AttachStreams : public ContainerStreams {
 public:
  AttachStreams(const runtime::Launcher& launcher, std::string bundle,
                runtime::Attachment attachment)
      : launcher_(launcher), bundle_(std::move(bundle)) {
    stdin_fd_ = std::move(attachment.stdin_fd);
    stdout_fd_ = std::move(attachment.stdout_fd);
    stderr_fd_ = std::move(attachment.stderr_fd);
  }

  int exit_fd() const override { return -1; }
  absl::StatusOr<int> ExitCode() override {
    return absl::FailedPreconditionError("an attach has no exit code");
  }
  absl::Status Resize(int rows, int cols) override { return launcher_.Resize(bundle_, rows, cols); }
  // A socket to the monitor: its end is this attacher's, stdin_once is the monitor's call.
  bool stdin_is_terminal() const override { return false; }

 private:
  const runtime::Launcher& launcher_;
  std::string bundle_;
};

}  // namespace

absl::StatusOr<std::string> LauncherBackend::RunningBundle(absl::string_view container_id) {
  ASSIGN_OR_RETURN(std::string bundle, resolvers_.container_bundle(container_id));
  absl::StatusOr<runtime::ContainerStatus> status = launcher_.Status(bundle);
  if (!status.ok()) {
    return Annotate(status.status(), absl::StrCat("state of container ", container_id));
  }
  if (status->state != runtime::ContainerState::kRunning) {
    return absl::FailedPreconditionError(
        absl::StrCat("container ", container_id, " is not running"));
  }
  return bundle;
}

absl::Status LauncherBackend::CheckContainer(absl::string_view container_id) {
  return RunningBundle(container_id).status();
}

absl::Status LauncherBackend::CheckPodSandbox(absl::string_view pod_sandbox_id) {
  return resolvers_.sandbox_netns(pod_sandbox_id).status();
}

absl::StatusOr<std::unique_ptr<ContainerStreams>> LauncherBackend::Exec(
    const ExecRequest& request) {
  ASSIGN_OR_RETURN(std::string bundle, RunningBundle(request.container_id));
  runtime::StreamExecOptions options;
  options.args = request.cmd;
  options.tty = request.tty;
  options.stdin = request.stdin;
  options.stdout = request.stdout;
  options.stderr = request.stderr && !request.tty;
  ASSIGN_OR_RETURN(std::unique_ptr<runtime::ExecProcess> process,
                   launcher_.StartExec(bundle, options));
  return std::make_unique<ExecStreams>(std::move(process), request.tty);
}

absl::StatusOr<std::unique_ptr<ContainerStreams>> LauncherBackend::Attach(
    const AttachRequest& request) {
  ASSIGN_OR_RETURN(std::string bundle, RunningBundle(request.container_id));
  runtime::AttachOptions options;
  options.stdin = request.stdin;
  // stdout always: its end is how the session learns that the container has exited.
  options.stdout = true;
  options.stderr = request.stderr;
  ASSIGN_OR_RETURN(runtime::Attachment attachment, launcher_.Attach(bundle, options));
  return std::make_unique<AttachStreams>(launcher_, std::move(bundle), std::move(attachment));
}

absl::StatusOr<UniqueFd> LauncherBackend::DialPort(absl::string_view pod_sandbox_id, int port) {
  ASSIGN_OR_RETURN(std::string netns, resolvers_.sandbox_netns(pod_sandbox_id));
  return runtime::DialInNetns(netns, port);
}

}  // namespace crib::stream
