#include "cribd_process.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/files.h"
#include "common/unique_fd.h"
#include "support/machine.h"

namespace crib::testing {
namespace {

bool Accepts(const std::string& socket) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, socket.c_str(), sizeof addr.sun_path - 1);
  return ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
}

// Waits for `pid` up to `timeout`; SIGKILLs it past that. Returns the wait status.
int WaitFor(pid_t pid, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  int status = 0;
  for (;;) {
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0 && errno != EINTR) return -1;
    if (absl::Now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return status;
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
}

pid_t Spawn(const CribdOptions& options, const std::string& log_path) {
  // The log and config files sit beside the root dir, whose parent may not exist yet.
  (void)MakeDirs(std::filesystem::path(options.root_dir).parent_path());
  std::vector<std::string> args = {CRIBD_PATH,        "--root",   options.root_dir, "--state",
                                   options.state_dir, "--socket", options.socket};
  if (options.config_text) {
    const std::string config = absl::StrCat(options.root_dir, ".config.toml");
    std::ofstream(config) << *options.config_text;
    args.push_back("--config");
    args.push_back(config);
  } else {
    // Never pick up the machine's /etc/crib/config.toml.
    args.push_back("--config");
    args.push_back("/dev/null");
  }
  args.insert(args.end(), options.extra_args.begin(), options.extra_args.end());
  args.insert(args.begin(), options.wrapper.begin(), options.wrapper.end());
  // The test process has gRPC threads: the child only calls async-signal-safe functions.
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  // A test process that dies (a ctest timeout, a crash) takes its cribd along.
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != parent) ::_exit(127);
  const int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  ::dup2(log, STDERR_FILENO);
  ::dup2(log, STDOUT_FILENO);
  ::execvp(argv[0], argv.data());
  ::_exit(127);
}

}  // namespace

CribdOptions CribdProcess::OptionsIn(const std::string& dir) {
  CribdOptions options;
  options.root_dir = absl::StrCat(dir, "/root");
  options.state_dir = absl::StrCat(dir, "/state");
  options.socket = absl::StrCat(dir, "/state/crib.sock");
  return options;
}

absl::StatusOr<std::unique_ptr<CribdProcess>> CribdProcess::Start(const CribdOptions& options) {
  const std::string log_path = absl::StrCat(options.root_dir, ".log");
  const pid_t pid = Spawn(options, log_path);
  if (pid < 0) return absl::InternalError("fork cribd failed");
  std::unique_ptr<CribdProcess> process(new CribdProcess(options, pid, log_path));
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (!Accepts(options.socket)) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      process->pid_ = -1;
      return absl::FailedPreconditionError(
          absl::StrCat("cribd exited with status ", status, " before serving: ", process->Log()));
    }
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("cribd did not serve on ", options.socket, " in 20s: ", process->Log()));
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  // kubelet's CRI client takes replies up to 16 MiB (gRPC's default is 4): a node's lists of
  // stats outgrow 4 MiB at a few hundred pods.
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(16 << 20);
  process->channel_ = grpc::CreateCustomChannel(absl::StrCat("unix:", options.socket),
                                                grpc::InsecureChannelCredentials(), args);
  return process;
}

std::pair<int, std::string> CribdProcess::RunToExit(const CribdOptions& options,
                                                    absl::Duration timeout) {
  const std::string log_path = absl::StrCat(options.root_dir, ".run.log");
  ::unlink(log_path.c_str());
  const pid_t pid = Spawn(options, log_path);
  const int status = WaitFor(pid, timeout);
  std::string log = ReadFile(log_path).value_or("");
  ::unlink(log_path.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, log};
}

CribdProcess::~CribdProcess() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    WaitFor(pid_, absl::Seconds(10));
  }
}

std::unique_ptr<cri::RuntimeService::Stub> CribdProcess::Runtime() {
  return cri::RuntimeService::NewStub(channel_);
}

std::unique_ptr<cri::ImageService::Stub> CribdProcess::Image() {
  return cri::ImageService::NewStub(channel_);
}

int CribdProcess::SignalAndWait(int signal, absl::Duration timeout) {
  ::kill(pid_, signal);
  const int status = WaitFor(pid_, timeout);
  pid_ = -1;
  return status;
}

std::string CribdProcess::Log() const { return ReadFile(log_path_).value_or(""); }

std::unique_ptr<grpc::ClientContext> ContextWithDeadline(absl::Duration d) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(d));
  return context;
}

std::string PausePath() {
  const std::string cribd = CRIBD_PATH;
  return absl::StrCat(cribd.substr(0, cribd.rfind('/')), "/crib-pause");
}

std::set<pid_t> PauseProcesses(const std::string& state_dir) {
  std::set<pid_t> out;
  const std::string pause = PausePath();
  const std::string pods = state_dir.empty() ? "" : absl::StrCat(state_dir, "/pods/");
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    pid_t pid = 0;
    if (!absl::SimpleAtoi(entry.path().filename().string(), &pid)) continue;
    std::error_code link_error;
    const auto exe = std::filesystem::read_symlink(entry.path() / "exe", link_error);
    if (link_error || exe.string() != pause || Exited(pid)) continue;
    if (!pods.empty() && !absl::StrContains(Slurp((entry.path() / "cmdline").string()), pods)) {
      continue;
    }
    out.insert(pid);
  }
  return out;
}

}  // namespace crib::testing
