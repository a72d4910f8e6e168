// Exec and attach sessions: the client's stdin, stdout, stderr, error and resize streams on
// one side, the container's stdio on the other. The exit status goes on the error stream as
// Kubernetes clients of the negotiated version expect it, after all output.
#include <fcntl.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "stream/session.h"

namespace crib::stream {
namespace {

constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();
constexpr size_t kReadChunk = 32 * 1024;

// WebSocket channel numbers (fixed by the protocol).
enum Channel : uint32_t { kStdin = 0, kStdout = 1, kStderr = 2, kError = 3, kResize = 4 };

void SetNonBlocking(const UniqueFd& fd) {
  if (fd) ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) | O_NONBLOCK);
}

class RemoteCommandSession : public Session {
 public:
  RemoteCommandSession(const RemoteCommandParams& params, StreamBackend* backend, Mux* mux,
                       const SessionLimits& limits)
      : params_(params), backend_(backend), mux_(mux), limits_(limits) {
    const bool tty = params.exec ? params.exec_request.tty : params.attach_request.tty;
    want_stdin_ = params.exec ? params.exec_request.stdin : params.attach_request.stdin;
    want_stdout_ = params.exec ? params.exec_request.stdout : params.attach_request.stdout;
    want_stderr_ = params.exec ? params.exec_request.stderr : params.attach_request.stderr;
    want_resize_ = tty && (params.websocket || params.version >= 3);
    expected_ = 1 + want_stdin_ + want_stdout_ + want_stderr_ + want_resize_;
    creation_deadline_ = absl::Now() + limits.stream_creation_timeout;
  }

  bool OnStreamOpened(uint32_t id, const StreamInfo& info) override {
    if (phase_ != Phase::kWaiting) return true;  // a latecomer: accepted, and ignored
    uint32_t* slot = nullptr;
    if (info.type == "error") {
      slot = &error_;
    } else if (info.type == "stdin" && want_stdin_) {
      slot = &stdin_;
    } else if (info.type == "stdout" && want_stdout_) {
      slot = &stdout_;
    } else if (info.type == "stderr" && want_stderr_) {
      slot = &stderr_;
    } else if (info.type == "resize" && want_resize_) {
      slot = &resize_;
    }
    if (slot == nullptr) return true;  // a type this session has no use for
    if (*slot == kNone) ++received_;
    *slot = id;
    if (received_ == expected_) StartProcess();
    return true;
  }

  void OnData(uint32_t id, absl::string_view data) override {
    if (id == stdin_ && stdin_ != kNone) {
      if (phase_ == Phase::kDone || (streams_ != nullptr && !streams_->stdin_fd())) {
        mux_->Consumed(id, data.size());  // nowhere to go
        return;
      }
      stdin_buf_.append(data.data(), data.size());
      if (phase_ == Phase::kRunning) WriteStdin();
      return;
    }
    if (id == resize_ && resize_ != kNone) {
      for (const auto& [rows, cols] : resize_decoder_.Feed(data)) {
        if (streams_ != nullptr) {
          absl::Status resized = streams_->Resize(rows, cols);
          if (!resized.ok()) spdlog::debug("stream: {}", resized.message());
        } else {
          pending_resize_ = {rows, cols};
        }
      }
    }
    mux_->Consumed(id, data.size());
  }

  void OnStreamEnd(uint32_t id, bool reset) override {
    if (id == stdin_ && stdin_ != kNone) {
      stdin_eof_ = true;
      if (phase_ == Phase::kRunning) WriteStdin();
    }
    if (!reset) return;
    // The client no longer reads this one: its output is read and dropped.
    if (id == stdout_) stdout_ = kNone;
    if (id == stderr_) stderr_ = kNone;
    if (id == error_) error_ = kNone;
  }

  void AddPollFds(std::vector<struct pollfd>* fds) override {
    slots_.clear();
    if (phase_ != Phase::kRunning) return;
    auto add = [&](int fd, short events, Slot slot) {
      fds->push_back({fd, events, 0});
      slots_.push_back(slot);
    };
    if (streams_->stdout_fd() && Room(stdout_) > 0) {
      add(streams_->stdout_fd().get(), POLLIN, Slot::kStdout);
    }
    if (streams_->stderr_fd() && Room(stderr_) > 0) {
      add(streams_->stderr_fd().get(), POLLIN, Slot::kStderr);
    }
    if (streams_->stdin_fd() && stdin_off_ < stdin_buf_.size()) {
      add(streams_->stdin_fd().get(), POLLOUT, Slot::kStdin);
    }
    if (!exit_code_ && streams_->exit_fd() >= 0) add(streams_->exit_fd(), POLLIN, Slot::kExit);
  }

  void OnPoll(const struct pollfd* fds, size_t count) override {
    for (size_t i = 0; i < count && phase_ == Phase::kRunning; ++i) {
      if (fds[i].revents == 0) continue;
      switch (slots_[i]) {
        case Slot::kStdout:
          ReadOutput(streams_->stdout_fd(), stdout_);
          break;
        case Slot::kStderr:
          ReadOutput(streams_->stderr_fd(), stderr_);
          break;
        case Slot::kStdin:
          WriteStdin();
          break;
        case Slot::kExit: {
          absl::StatusOr<int> code = streams_->ExitCode();
          if (!code.ok()) {
            Fail(code.status());
            return;
          }
          exit_code_ = *code;
          break;
        }
      }
    }
    MaybeFinish(absl::Now());
  }

  absl::Time NextDeadline() const override {
    if (phase_ == Phase::kWaiting) return creation_deadline_;
    if (phase_ == Phase::kRunning && exit_code_) return last_output_ + limits_.drain_timeout;
    return absl::InfiniteFuture();
  }

  void OnTimer(absl::Time now) override {
    if (phase_ == Phase::kWaiting && now >= creation_deadline_) {
      spdlog::warn("stream: the client created {} of {} streams in {}; closing", received_,
                   expected_, absl::FormatDuration(limits_.stream_creation_timeout));
      phase_ = Phase::kDone;
      return;
    }
    MaybeFinish(now);
  }

  bool WantsInput() const override { return stdin_buf_.size() - stdin_off_ < limits_.buffer_bytes; }

  bool Done() const override { return phase_ == Phase::kDone; }

  void Abort() override {
    streams_.reset();  // kills an exec'd process, detaches an attach
    phase_ = Phase::kDone;
  }

 private:
  enum class Phase { kWaiting, kRunning, kDone };
  enum class Slot { kStdout, kStderr, kStdin, kExit };

  // What may be read for `stream` now: its room, or a chunk when nobody reads it (dropped).
  size_t Room(uint32_t stream) const {
    return stream == kNone ? kReadChunk : std::min(mux_->SendRoom(stream), kReadChunk);
  }

  void StartProcess() {
    absl::StatusOr<std::unique_ptr<ContainerStreams>> streams =
        params_.exec ? backend_->Exec(params_.exec_request)
                     : backend_->Attach(params_.attach_request);
    if (!streams.ok()) {
      Fail(streams.status());
      return;
    }
    streams_ = *std::move(streams);
    SetNonBlocking(streams_->stdin_fd());
    SetNonBlocking(streams_->stdout_fd());
    SetNonBlocking(streams_->stderr_fd());
    phase_ = Phase::kRunning;
    last_output_ = absl::Now();
    if (pending_resize_) {
      (void)streams_->Resize(pending_resize_->first, pending_resize_->second);
    }
    if (params_.websocket) {
      // An empty message on the lowest writable channel tells the client the streams are up.
      uint32_t first = stdout_ != kNone ? stdout_ : stderr_ != kNone ? stderr_ : error_;
      mux_->Send(first, "");
    }
    if (!stdin_buf_.empty() || stdin_eof_) WriteStdin();
  }

  void ReadOutput(UniqueFd& fd, uint32_t stream) {
    size_t room = Room(stream);
    if (room == 0) return;
    char buf[kReadChunk];
    ssize_t n = ::read(fd.get(), buf, room);
    if (n > 0) {
      if (stream != kNone) mux_->Send(stream, absl::string_view(buf, n));
      last_output_ = absl::Now();
      return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    // EOF, or EIO from a terminal whose last user closed it.
    fd.Reset();
    if (stream != kNone) mux_->Finish(stream);
  }

  void WriteStdin() {
    UniqueFd& fd = streams_->stdin_fd();
    while (fd && stdin_off_ < stdin_buf_.size()) {
      ssize_t n = ::write(fd.get(), stdin_buf_.data() + stdin_off_, stdin_buf_.size() - stdin_off_);
      if (n > 0) {
        stdin_off_ += n;
        mux_->Consumed(stdin_, n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return;
      // The process closed its stdin (or exited): the rest is dropped.
      mux_->Consumed(stdin_, stdin_buf_.size() - stdin_off_);
      fd.Reset();
    }
    stdin_buf_.clear();
    stdin_off_ = 0;
    if (stdin_eof_ && fd) {
      if (streams_->stdin_is_terminal()) {
        // A terminal cannot be half-closed: the end-of-file character says the same.
        struct termios t;
        char eof = 4;
        if (::tcgetattr(fd.get(), &t) == 0 && t.c_cc[VEOF] != 0)
          eof = static_cast<char>(t.c_cc[VEOF]);
        (void)!::write(fd.get(), &eof, 1);
      }
      fd.Reset();
    }
  }

  // Output waits on the client (no room): the drain timer must not run.
  bool BlockedOnClient() const {
    return (streams_->stdout_fd() && stdout_ != kNone && mux_->SendRoom(stdout_) == 0) ||
           (streams_->stderr_fd() && stderr_ != kNone && mux_->SendRoom(stderr_) == 0);
  }

  void MaybeFinish(absl::Time now) {
    if (phase_ != Phase::kRunning) return;
    bool outputs_open = streams_->stdout_fd() || streams_->stderr_fd();
    if (!params_.exec) {
      if (!outputs_open) Complete(SuccessStatusJson(), "");
      return;
    }
    if (!exit_code_) return;
    if (outputs_open) {
      if (BlockedOnClient()) {
        last_output_ = now;
        return;
      }
      if (now - last_output_ < limits_.drain_timeout) return;
    }
    Complete(ExitCodeStatusJson(*exit_code_), *exit_code_ == 0 ? "" : ExitCodeMessage(*exit_code_));
  }

  void Fail(const absl::Status& status) {
    std::string message = absl::StrCat(
        params_.exec ? "error executing command in container: " : "error attaching to container: ",
        status.message());
    spdlog::warn("stream: {}", message);
    Complete(InternalErrorStatusJson(message), absl::StrCat("Internal error occurred: ", message));
  }

  // Sends the status (after all output, which went out already) and ends every stream.
  void Complete(const std::string& json, const std::string& text) {
    if (error_ != kNone) {
      const std::string& payload = params_.version >= 4 ? json : text;
      if (!payload.empty()) mux_->Send(error_, payload);
    }
    for (uint32_t id : {stdout_, stderr_, error_, stdin_, resize_}) {
      if (id != kNone) mux_->Finish(id);
    }
    streams_.reset();
    phase_ = Phase::kDone;
  }

  RemoteCommandParams params_;
  StreamBackend* backend_;
  Mux* mux_;
  SessionLimits limits_;
  bool want_stdin_, want_stdout_, want_stderr_, want_resize_;
  int expected_ = 0, received_ = 0;
  uint32_t error_ = kNone, stdin_ = kNone, stdout_ = kNone, stderr_ = kNone, resize_ = kNone;
  Phase phase_ = Phase::kWaiting;
  absl::Time creation_deadline_;
  std::unique_ptr<ContainerStreams> streams_;
  std::string stdin_buf_;
  size_t stdin_off_ = 0;
  bool stdin_eof_ = false;
  std::optional<int> exit_code_;
  absl::Time last_output_;
  ResizeDecoder resize_decoder_;
  std::optional<std::pair<int, int>> pending_resize_;
  std::vector<Slot> slots_;
};

}  // namespace

std::unique_ptr<Session> NewRemoteCommandSession(const RemoteCommandParams& params,
                                                 StreamBackend* backend, Mux* mux,
                                                 const SessionLimits& limits) {
  return std::make_unique<RemoteCommandSession>(params, backend, mux, limits);
}

}  // namespace crib::stream
