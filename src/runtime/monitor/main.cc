// crib-monitor: one small process per container, detached from cribd (its own session, a
// child subreaper), that creates the container init, keeps its stdio, writes the CRI log,
// records the exit status atomically, serves attachers and answers on a unix socket
// (protocol.h). With `exec`, it is the helper that runs one process in a running container's
// namespaces and cgroup. It must stay tiny: no gRPC, protobuf, spdlog, absl or iostreams (the
// spec's JSON parser is used by `create` and `exec` only, before any long wait, and `serve`
// re-executes itself so its address space holds none of it); and nothing an attacher does may
// block the log (bounded buffers, non-blocking sends).
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cgroup/cgroup_files.h"
#include "common/unique_fd.h"
#include "runtime/monitor/cri_log.h"
#include "runtime/monitor/error_text.h"
#include "runtime/monitor/fd_passing.h"
#include "runtime/monitor/init.h"
#include "runtime/monitor/protocol.h"
#include "runtime/monitor/socket_address.h"
#include "runtime/oci_runtime.h"
#include "runtime/spec.h"

namespace crib::runtime {
namespace {

long long NowNanos() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

// False when a write failed (the rest is not written).
bool WriteAll(int fd, const std::string& s) {
  const char* p = s.data();
  size_t left = s.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    left -= n;
  }
  return true;
}

// The monitor's own diagnostics go to its stderr (the bundle's monitor.log).
void Log(const std::string& line) { WriteAll(2, "crib-monitor: " + line + "\n"); }

void SetNonBlocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

bool ReadWholeFile(const std::string& path, std::string* out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[8192];
  ssize_t n;
  out->clear();
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) out->append(buf, n);
  ::close(fd);
  return n == 0;
}

// Written whole under a temporary name, then renamed into place: a reader sees all of it or
// nothing. No fsync: everything under state_dir lasts until a reboot only, and a crash of
// cribd or of the monitor leaves the page cache's copy.
bool WriteFileAtomic(const std::string& path, const std::string& content) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  const bool ok = WriteAll(fd, content);
  ::close(fd);
  return ok && ::rename(tmp.c_str(), path.c_str()) == 0;
}

bool LoadSpec(const std::string& bundle, Spec* spec, std::string* error) {
  std::string text;
  std::string path = bundle + "/" + kSpecFile;
  if (!ReadWholeFile(path, &text)) {
    *error = "read " + path + ": " + ErrorText(errno);
    return false;
  }
  return ParseSpecJson(text, spec, error);
}

// Reads one SyncMessage; false on EOF (the exec happened, or the child died).
bool ReadSync(int fd, SyncMessage* msg) { return ReceiveSync(fd, msg, nullptr); }

bool MakeSyncPair(UniqueFd* a, UniqueFd* b, std::string* error) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    *error = std::string("socketpair: ") + ErrorText(errno);
    return false;
  }
  a->Reset(sv[0]);
  b->Reset(sv[1]);
  return true;
}

// The bundle's OCI runtime, when a runtime handler runs the container (the `runtime` file);
// false without one.
bool LoadRuntime(const std::string& bundle, OciRuntime* runtime, std::string* error) {
  std::string text;
  if (!ReadWholeFile(bundle + "/" + kRuntimeFile, &text)) return false;
  if (!ParseRuntimeFile(text, runtime, error)) {
    runtime->argv.clear();
    return false;
  }
  return true;
}

off_t FileSize(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? st.st_size : 0;
}

// Runs one call of the OCI runtime with `in`, `out` and `err` as its stdio (-1: /dev/null;
// for `err`, a pipe read here, whose last line says what went wrong when the runtime logged
// nothing) and waits for it, for the runtime's timeout at most (then its process group is
// killed). False with the runtime's own error, or how it ended, when it did not exit with 0.
// `err_reader`: the read end of a given `err` pipe (the container's stderr), read likewise.
bool RunRuntime(const OciRuntime& runtime, const std::string& bundle,
                const std::vector<std::string>& command, int in, int out, int err,
                std::string* error, int err_reader = -1) {
  const std::string log_path = bundle + "/" + kRuntimeLog;
  const off_t log_offset = FileSize(log_path);
  std::vector<std::string> args = RuntimeCommand(runtime, bundle, command);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const std::string what =
      "runtime handler " + runtime.handler + " (" + runtime.argv[0] + ") " + command[0];
  UniqueFd stderr_r, stderr_w;
  if (err < 0) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) {
      *error = what + ": pipe: " + ErrorText(errno);
      return false;
    }
    stderr_r.Reset(p[0]);
    stderr_w.Reset(p[1]);
    err = stderr_w.get();
  }
  pid_t pid = ::fork();
  if (pid < 0) {
    *error = what + ": fork: " + ErrorText(errno);
    return false;
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    int null_fd = ::open("/dev/null", O_RDWR);
    const int from[3] = {in < 0 ? null_fd : in, out < 0 ? null_fd : out, err};
    for (int target = 0; target < 3; ++target) {
      if (from[target] == target) {
        ::fcntl(target, F_SETFD, 0);
      } else {
        ::dup2(from[target], target);
      }
    }
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    ::signal(SIGHUP, SIG_DFL);
    ::execv(argv[0], argv.data());
    WriteAll(2, "exec " + args[0] + ": " + ErrorText(errno) + "\n");
    _exit(127);
  }
  stderr_w.Reset();
  std::string said;
  const int status =
      AwaitRuntime(pid, runtime.timeout_ms, stderr_r ? stderr_r.get() : err_reader, &said);
  if (status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0) return true;
  std::string log;
  ReadWholeFile(log_path, &log);
  *error = RuntimeFailure(what, runtime, status, log, static_cast<size_t>(log_offset), said);
  return false;
}

// A listening socket for the runtime's --console-socket at `path`, and the name the runtime
// can connect to (through this process's fd of the directory when the path is too long).
bool ListenConsole(const std::string& path, UniqueFd* listener, UniqueFd* dir, std::string* name,
                   std::string* error) {
  struct sockaddr_un addr;
  if (int err = MakeSocketAddress(path, &addr, dir)) {
    *error = "socket address " + path + ": " + ErrorText(err);
    return false;
  }
  ::unlink(path.c_str());
  listener->Reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!*listener ||
      ::bind(listener->get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(listener->get(), 1) != 0) {
    *error = "listen on " + path + ": " + ErrorText(errno);
    return false;
  }
  *name = addr.sun_path;
  if (name->compare(0, 14, "/proc/self/fd/") == 0) {
    *name = "/proc/" + std::to_string(::getpid()) + name->substr(10);
  }
  return true;
}

// The terminal's master that the runtime sent to the console socket.
bool ReceiveConsole(int listener, long timeout_ms, UniqueFd* master, std::string* error) {
  struct pollfd p = {listener, POLLIN, 0};
  int n;
  do {
    n = ::poll(&p, 1, static_cast<int>(timeout_ms));
  } while (n < 0 && errno == EINTR);
  UniqueFd conn(n > 0 ? ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC) : -1);
  if (!conn) {
    *error = "the runtime sent no terminal to the console socket";
    return false;
  }
  struct pollfd q = {conn.get(), POLLIN, 0};
  do {
    n = ::poll(&q, 1, static_cast<int>(timeout_ms));
  } while (n < 0 && errno == EINTR);
  char buf[4096];
  std::vector<UniqueFd> fds;
  if (n <= 0 || ReceiveWithFds(conn.get(), buf, sizeof(buf), &fds) < 0) {
    *error =
        "receive the terminal from the console socket: " + ErrorText(n < 0 ? errno : ETIMEDOUT);
    return false;
  }
  if (!fds.empty()) *master = std::move(fds[0]);
  if (!*master) {
    *error = "the runtime's message on the console socket carried no terminal";
    return false;
  }
  return true;
}

// The pid the runtime wrote into `path`.
pid_t ReadPidFile(const std::string& path) {
  std::string text;
  if (!ReadWholeFile(path, &text)) return 0;
  return static_cast<pid_t>(std::atol(text.c_str()));
}

struct Options {
  std::string mode;
  std::string bundle;
  std::string id;
  std::string log_path;
  size_t log_max_line = 16 * 1024;
  int pid = 0;
  long timeout_ms = 0;
  std::vector<std::string> args;
  // create/serve: the container keeps a stdin for attachers; stdin_once closes it when the
  // first attacher that used it goes away.
  bool stdin_open = false;
  bool stdin_once = false;
  // exec: a streaming session (fd 3 is a socket, the process dies with it), with a pty.
  bool interactive = false;
  bool tty = false;
  // create: another party (cribd, through systemd) makes the cgroup with the init in it.
  bool cgroup_handoff = false;
  // create: the init copies the mount namespace on kMountTemplateFd for its own.
  bool mount_template = false;
  // serve: what `create` hands over when it re-executes itself.
  std::string cgroups_path;
  // cribd's cgroup hierarchies (--cgroup-mounts, cgroup::EncodeHierarchies); empty: read
  // /proc/self/mountinfo.
  std::string cgroup_mounts;
  std::vector<cgroup::Hierarchy> hierarchies;
  std::string fds;  // sync,start,out,err,pty,listener,stdin,oom watch (-1 for none)
  // serve: the container was started before the re-exec, at this time (ns); 0: not started.
  long long started_at = 0;
};

bool ParseOptions(int argc, char** argv, Options* o, std::string* error) {
  if (argc < 2) {
    *error = "usage: crib-monitor create|exec --bundle DIR ...";
    return false;
  }
  o->mode = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") {
      for (++i; i < argc; ++i) o->args.push_back(argv[i]);
      break;
    }
    if (i + 1 >= argc) {
      *error = "flag " + a + " needs a value";
      return false;
    }
    std::string v = argv[++i];
    if (a == "--bundle") {
      o->bundle = v;
    } else if (a == "--id") {
      o->id = v;
    } else if (a == "--log") {
      o->log_path = v;
    } else if (a == "--log-max-line") {
      o->log_max_line = std::strtoul(v.c_str(), nullptr, 10);
    } else if (a == "--pid") {
      o->pid = std::atoi(v.c_str());
    } else if (a == "--cgroup") {
      o->cgroups_path = v;
    } else if (a == "--fds") {
      o->fds = v;
    } else if (a == "--timeout-ms") {
      o->timeout_ms = std::atol(v.c_str());
    } else if (a == "--stdin") {
      o->stdin_open = v == "1";
    } else if (a == "--stdin-once") {
      o->stdin_once = v == "1";
    } else if (a == "--interactive") {
      o->interactive = v == "1";
    } else if (a == "--cgroup-mounts") {
      o->cgroup_mounts = v;
      if (!cgroup::DecodeHierarchies(v, &o->hierarchies)) {
        *error = "bad --cgroup-mounts \"" + v + "\"";
        return false;
      }
    } else if (a == "--cgroup-handoff") {
      o->cgroup_handoff = v == "1";
    } else if (a == "--mount-template") {
      o->mount_template = v == "1";
    } else if (a == "--tty") {
      o->tty = v == "1";
    } else if (a == "--started-at") {
      o->started_at = std::atoll(v.c_str());
    } else {
      *error = "unknown flag " + a;
      return false;
    }
  }
  if (o->bundle.empty()) {
    *error = "--bundle is required";
    return false;
  }
  return true;
}

// The executable's pages that may be dropped from the page tables at any time: its code
// and the read-only data nothing wrote to (not the RELRO pages the start-up relocated). The
// kernel maps 64 KiB around every touched page of a file, so after start-up most of the binary
// counts as resident though the serve loop uses little of it; dropping the mappings while the
// monitor is idle leaves only what it touches again. The pages stay in the page cache, shared.
// A system call without libc's wrapper (whose code lives elsewhere in the binary); returns
// -errno on failure.
inline long RawSyscall(long number, unsigned long a, unsigned long b, unsigned long c,
                       unsigned long d) {
#if defined(__x86_64__)
  long ret;
  register unsigned long r10 asm("r10") = d;
  asm volatile("syscall"
               : "=a"(ret)
               : "a"(number), "D"(a), "S"(b), "d"(c), "r"(r10)
               : "rcx", "r11", "memory");
  return ret;
#elif defined(__aarch64__)
  register long x8 asm("x8") = number;
  register unsigned long x0 asm("x0") = a;
  register unsigned long x1 asm("x1") = b;
  register unsigned long x2 asm("x2") = c;
  register unsigned long x3 asm("x3") = d;
  asm volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3) : "memory");
  return static_cast<long>(x0);
#else
  long ret = ::syscall(number, a, b, c, d);
  return ret < 0 ? -errno : ret;
#endif
}

class ImageTrimmer {
 public:
  // Reads /proc/self/smaps once.
  void Init() {
    std::string smaps;
    if (!ReadWholeFile("/proc/self/smaps", &smaps)) return;
    unsigned long start = 0, end = 0;
    bool ours = false, readonly = false;
    size_t pos = 0;
    while (pos < smaps.size()) {
      size_t eol = smaps.find('\n', pos);
      if (eol == std::string::npos) eol = smaps.size();
      const std::string line = smaps.substr(pos, eol - pos);
      pos = eol + 1;
      unsigned long a, b;
      char perms[5];
      if (std::sscanf(line.c_str(), "%lx-%lx %4s", &a, &b, perms) == 3 &&
          line.find(' ', line.find(' ') + 1) != std::string::npos) {
        start = a;
        end = b;
        ours = line.find("crib-monitor") != std::string::npos;
        readonly = perms[0] == 'r' && perms[1] == '-';
        if (line.find("[stack]") != std::string::npos) stack_low_ = start;
        continue;
      }
      unsigned long anonymous = 0;
      if (ours && readonly && std::sscanf(line.c_str(), "Anonymous: %lu kB", &anonymous) == 1 &&
          anonymous == 0 && count_ < kMaxRanges) {
        ranges_[count_++] = {start, end};
        ::madvise(reinterpret_cast<void*>(start), end - start, MADV_RANDOM);
      }
    }
  }

  // Drops the mappings, then waits for one of `fds` (poll with no timeout). Until an event
  // comes, the only code that runs is this function's, through raw system calls: the page it
  // is on is all the binary has resident.
  int TrimAndWait(struct pollfd* fds, size_t count) const {
    ::malloc_trim(0);  // the heap's free pages too
    // The stack below this frame is dead (no signal handlers run on it: signals come through
    // a signalfd); buffers deeper calls used on it need not stay resident.
    char here;
    const unsigned long below =
        (reinterpret_cast<unsigned long>(&here) - kStackMargin) & ~(kPage - 1);
    if (stack_low_ != 0 && below > stack_low_) {
      RawSyscall(SYS_madvise, stack_low_, below - stack_low_, MADV_DONTNEED, 0);
    }
    for (size_t i = 0; i < count_; ++i) {
      RawSyscall(SYS_madvise, ranges_[i].first, ranges_[i].second - ranges_[i].first, MADV_DONTNEED,
                 0);
    }
    long n;
    do {
      n = RawSyscall(SYS_ppoll, reinterpret_cast<unsigned long>(fds), count, 0, 0);
    } while (n == -EINTR);
    if (n < 0) {
      errno = static_cast<int>(-n);
      return -1;
    }
    return static_cast<int>(n);
  }

 private:
  static constexpr size_t kMaxRanges = 8;
  static constexpr unsigned long kPage = 4096;
  static constexpr unsigned long kStackMargin = 4096;
  unsigned long stack_low_ = 0;
  std::pair<unsigned long, unsigned long> ranges_[kMaxRanges];
  size_t count_ = 0;
};

class Monitor {
 public:
  Monitor(Options options, Spec spec) : o_(std::move(options)), spec_(std::move(spec)) {}

  // Creates the parked init. On failure, `error` is set and nothing is left running.
  bool Create(std::string* error, uint32_t* warnings);
  // The container is run by an OCI runtime (a runtime handler), not by crib's own init.
  void set_runtime(OciRuntime runtime) {
    runtime_ = std::move(runtime);
    oci_ = true;
  }
  bool HandOffCgroup(std::string* error);
  long CloneIntoCgroup(int clone_flags);
  void KillInit();
  // Serves the socket until the init has exited, then records the exit.
  void Run();
  // What serving needs and the init does not: the CRI log open, the bundle's monitor socket
  // listening, the monitor's pid file. Made while the init sets itself up.
  bool PrepareToServe(std::string* error);
  // Re-executes crib-monitor in `serve` mode with the same fds and children: the set-up's
  // heap and code (spec, plan, libseccomp) leave the resident set. Returns only on failure.
  void ExecServe();
  // Serves the first request if one comes within `timeout_ms` (usually the start, which
  // follows the create at once and then need not wait for the re-exec). False when it must
  // not re-exec afterwards: an attacher's sockets live in this process.
  bool ServeFirstRequest(int timeout_ms);
  // The serve side: takes the fds and the state handed over by ExecServe.
  bool Adopt(std::string* error);
  // While idle, the serve loop drops the executable's mappings (see ImageTrimmer).
  void set_trimmer(const ImageTrimmer* trimmer) { trimmer_ = trimmer; }
  pid_t init_pid() const { return init_pid_; }

 private:
  // One attach session: the monitor's ends of its sockets (protocol.h).
  struct Attacher {
    UniqueFd out, err, in;
    bool used_stdin = false;
    unsigned long dropped = 0;
  };

  void HandleClient(int fd);
  std::string Dispatch(const std::string& request, std::vector<UniqueFd>* reply_fds);
  std::string Attach(const std::vector<std::string>& words, std::vector<UniqueFd>* reply_fds);
  void Reap();
  void ReadOutput(int fd, LogStream stream);
  // Sends output to every attacher of `stream`; a full socket drops the packet.
  void Broadcast(LogStream stream, const char* data, size_t size);
  // Moves attacher input to the container's stdin; `a` has input or reached its end.
  void ReadAttacherInput(Attacher& a);
  void FlushStdin();
  // The first attacher that used stdin went away: close the container's stdin (stdin_once).
  void StdinDetached();
  int StdinTarget() const;
  void Finish();
  // With an OCI runtime: `create` (the init waits in the runtime's own way until `start`).
  bool CreateWithRuntime(std::string* error);
  // The container's stdio: stdin a pipe whose write end the monitor keeps (stdin_open, no
  // terminal) or /dev/null; without a terminal, stdout and stderr pipes whose read ends it
  // keeps. `in`, `out_w` and `err_w` are the container's ends.
  bool MakeStdio(bool terminal, UniqueFd* in, UniqueFd* out_w, UniqueFd* err_w, std::string* error);
  // Runs one call of the runtime on this container with no stdio.
  bool Runtime(const std::vector<std::string>& command, std::string* error) const {
    return RunRuntime(runtime_, o_.bundle, command, -1, -1, -1, error);
  }

  Options o_;
  OciRuntime runtime_;
  bool oci_ = false;
  const ImageTrimmer* trimmer_ = nullptr;
  std::vector<struct pollfd> poll_fds_;
  Spec spec_;
  Plan plan_;
  cgroup::CgroupFiles cgroup_;
  bool has_cgroup_ = false;
  // The cgroup's path when it is not the spec's (a runtime's own below it); "" otherwise.
  std::string cgroup_path_;
  // With the cgroup hand-off (systemd removes the cgroup once it is empty): readable when the
  // OOM killer acted in the cgroup; oom_seen_ keeps what it and the reaper saw.
  UniqueFd oom_watch_;
  bool oom_seen_ = false;
  CriLog log_;
  UniqueFd out_r_, err_r_, pty_master_;
  UniqueFd sync_r_, start_w_;
  UniqueFd listener_, signal_fd_;
  UniqueFd stdin_w_;           // the container's stdin pipe (non-terminal, stdin_open)
  bool stdin_closed_ = false;  // stdin_once has fired, or the container closed its stdin
  std::vector<Attacher> attachers_;
  // Attacher input not yet taken by the container: at most one read, so bounded.
  char stdin_pending_[4096];
  size_t stdin_pending_len_ = 0, stdin_pending_off_ = 0;
  pid_t init_pid_ = 0;
  enum class State { kCreated, kRunning, kExited } state_ = State::kCreated;
  int wait_status_ = 0;
  long long started_at_ = 0;
};

// fork() into the v2 cgroup whose directory is `dir` (clone3 with CLONE_INTO_CGROUP): the
// child starts there, so nothing moves, and the kernel's global threadgroup lock that a move
// takes (its first writer after a quiet spell waits out an RCU grace period) stays untouched.
// A raw clone without a new stack; the caller is single-threaded. -1 with ENOSYS on a kernel
// before 5.7.
long CloneIntoCgroupDir(int dir, int clone_flags) {
  // clone3's arguments up to `cgroup` (linux/sched.h's struct clone_args of 5.7).
  struct {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid,
        set_tid_size, cgroup;
  } args = {};
  constexpr uint64_t kCloneIntoCgroup = 0x200000000ULL;
  args.flags = kCloneIntoCgroup | static_cast<uint32_t>(clone_flags);
  args.exit_signal = SIGCHLD;
  args.cgroup = static_cast<uint64_t>(dir);
  const long pid = syscall(SYS_clone3, &args, sizeof(args));
  if (pid < 0 && errno == E2BIG) errno = ENOSYS;  // 5.3 to 5.6: no `cgroup` field
  return pid;
}

bool Monitor::Create(std::string* error, uint32_t* warnings) {
  if (o_.mount_template) {
    plan_.mount_template.Reset(::fcntl(kMountTemplateFd, F_DUPFD_CLOEXEC, kMountTemplateFd + 1));
    ::close(kMountTemplateFd);
    if (!plan_.mount_template) {
      *error = std::string("the mount namespace template: ") + ErrorText(errno);
      return false;
    }
  }
  if (oci_) return CreateWithRuntime(error);
  if (!BuildPlan(spec_, o_.bundle, false, o_.hierarchies, &plan_, error)) return false;
  plan_.cgroup_handoff = o_.cgroup_handoff && !spec_.linux_spec.cgroups_path.empty();
  if (!spec_.linux_spec.cgroups_path.empty() && !plan_.cgroup_handoff) {
    if (!InitCgroupFiles(cgroup_, o_.hierarchies, spec_.linux_spec.cgroups_path, error) ||
        !cgroup_.Create(error)) {
      return false;
    }
    has_cgroup_ = true;
    if (!cgroup_.Apply(spec_.linux_spec.resources, error)) return false;
  }
  UniqueFd in, out_w, err_w;
  if (!MakeStdio(plan_.terminal, &in, &out_w, &err_w, error)) return false;
  InitStdio stdio = plan_.terminal
                        // the init opens its pty later
                        ? InitStdio{in.get(), in.get(), in.get(), true}
                        : InitStdio{in.get(), out_w.get(), err_w.get(), false};
  int st[2];
  UniqueFd sync_w;
  if (!MakeSyncPair(&sync_r_, &sync_w, error)) return false;
  if (::pipe2(st, O_CLOEXEC) != 0) {
    *error = std::string("pipe: ") + ErrorText(errno);
    return false;
  }
  UniqueFd start_r(st[0]);
  start_w_.Reset(st[1]);
  if (plan_.join_user && (plan_.clone_flags & CLONE_NEWPID)) {
    // A pid namespace of the container's own must be the pod's user namespace's, or the init
    // could not mount /proc in it: the init makes it once inside (a kernel makes no pid
    // namespace that has no process yet joinable).
    plan_.fork_into_pid_ns = true;
    plan_.clone_flags &= ~CLONE_NEWPID;
  }
  if (plan_.join_pid && ::setns(plan_.join_pid.get(), CLONE_NEWPID) != 0) {
    *error = std::string("join pid namespace: ") + ErrorText(errno);
    return false;
  }
  // A raw clone without a new stack behaves like fork(); the monitor is single-threaded.
  long pid = CloneIntoCgroup(plan_.clone_flags);
  if (pid < 0 && errno == ENOSYS) {
    pid = syscall(SYS_clone, SIGCHLD | plan_.clone_flags, nullptr, nullptr, nullptr, nullptr);
  }
  if (pid < 0) {
    *error = std::string("clone the container init: ") + ErrorText(errno);
    return false;
  }
  if (pid == 0) {
    ::close(sync_r_.get());
    ::close(start_w_.get());
    if (out_r_) ::close(out_r_.get());
    if (err_r_) ::close(err_r_.get());
    if (stdin_w_) ::close(stdin_w_.get());
    RunInit(plan_, stdio, sync_w.get(), start_r.get());
  }
  init_pid_ = static_cast<pid_t>(pid);
  sync_w.Reset();
  start_r.Reset();
  plan_.trees.clear();  // the init has its copies
  if (plan_.cgroup_handoff && !HandOffCgroup(error)) {
    ::kill(init_pid_, SIGKILL);
    // An init that failed on its own first (a namespace it could not join) said why.
    SyncMessage early;
    if (ReceiveSync(sync_r_.get(), &early, nullptr) && early.type == kSyncError) {
      *error = DescribeSync(early);
    }
    ::waitpid(init_pid_, nullptr, 0);
    init_pid_ = 0;
    return false;
  }
  if (!PrepareToServe(error)) {
    KillInit();
    return false;
  }
  SyncMessage msg;
  bool received = ReceiveSync(sync_r_.get(), &msg, &pty_master_);
  if (received && msg.type == kSyncPid) {
    // The first process is gone once it has forked the container's pid 1, which this
    // subreaper adopts.
    while (::waitpid(init_pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
    init_pid_ = msg.pid;
    received = ReceiveSync(sync_r_.get(), &msg, &pty_master_);
  }
  if (received && msg.type == kSyncTerminal) received = ReadSync(sync_r_.get(), &msg);
  if (!received || msg.type != kSyncReady) {
    *error = msg.type == kSyncError ? DescribeSync(msg) : "the container init died during set-up";
    KillInit();
    return false;
  }
  *warnings = msg.warnings;
  return true;
}

// A set-up that failed after the clone: the init goes, reaped.
void Monitor::KillInit() {
  ::kill(init_pid_, SIGKILL);
  ::waitpid(init_pid_, nullptr, 0);
  init_pid_ = 0;
}

// On v2 the init is made in its cgroup instead of joining it (CloneIntoCgroupDir). -1 with
// ENOSYS when it cannot be (v1, or a kernel before 5.7): the init then joins by a write as on
// v1, with its plan's join file kept.
long Monitor::CloneIntoCgroup(int clone_flags) {
  if (!has_cgroup_ || !cgroup_.unified() || plan_.cgroup_join.empty()) {
    errno = ENOSYS;
    return -1;
  }
  UniqueFd dir(::open(cgroup_.Dirs().front().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) return -1;
  std::vector<std::string> join = std::move(plan_.cgroup_join);
  plan_.cgroup_join.clear();  // the init's copy of the plan, made by the clone
  const long pid = CloneIntoCgroupDir(dir.get(), clone_flags);
  if (pid < 0) plan_.cgroup_join = std::move(join);
  return pid;
}

bool Monitor::MakeStdio(bool terminal, UniqueFd* in, UniqueFd* out_w, UniqueFd* err_w,
                        std::string* error) {
  auto pipe = [error](UniqueFd* r, UniqueFd* w) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) {
      *error = std::string("pipe: ") + ErrorText(errno);
      return false;
    }
    r->Reset(p[0]);
    w->Reset(p[1]);
    return true;
  };
  if (o_.stdin_open && !terminal) {
    if (!pipe(in, &stdin_w_)) return false;
  } else {
    in->Reset(::open("/dev/null", O_RDWR | O_CLOEXEC));
  }
  return terminal || (pipe(&out_r_, out_w) && pipe(&err_r_, err_w));
}

// The runtime's `create` with the container's stdio (pipes, or a terminal it makes and sends
// to the console socket); its init is parked by the runtime until `start`. The runtime makes
// the cgroup from the spec; the monitor only reads it (OOM kills). As a child subreaper the
// monitor inherits the init once the runtime's `create` exits, and reaps it like its own.
bool Monitor::CreateWithRuntime(std::string* error) {
  const bool terminal = spec_.process.terminal;
  if (!o_.log_path.empty()) {
    if (int err = log_.Open(o_.log_path)) {
      *error = "open log " + o_.log_path + ": " + ErrorText(err);
      return false;
    }
  }
  UniqueFd in, out_w, err_w;
  if (!MakeStdio(terminal, &in, &out_w, &err_w, error)) return false;
  const std::string pid_file = o_.bundle + "/" + kInitPidFile;
  const std::string console_path = o_.bundle + "/" + kConsoleSocket;
  UniqueFd console, console_dir;
  std::vector<std::string> command = {"create", "--bundle", o_.bundle, "--pid-file", pid_file};
  if (terminal) {
    std::string name;
    if (!ListenConsole(console_path, &console, &console_dir, &name, error)) return false;
    command.insert(command.end(), {"--console-socket", name});
  }
  command.push_back(runtime_.id);
  ::unlink(pid_file.c_str());
  bool created =
      RunRuntime(runtime_, o_.bundle, command, in ? in.get() : -1, out_w ? out_w.get() : -1,
                 err_w ? err_w.get() : -1, error, err_r_ ? err_r_.get() : -1);
  in.Reset();
  out_w.Reset();
  err_w.Reset();
  if (created) {
    init_pid_ = ReadPidFile(pid_file);
    if (init_pid_ <= 0) {
      *error = runtime_.handler + " create wrote no pid to " + pid_file;
      created = false;
    }
  }
  if (created && terminal)
    created = ReceiveConsole(console.get(), runtime_.timeout_ms, &pty_master_, error);
  if (terminal) ::unlink(console_path.c_str());
  if (!created) {
    // What the runtime made of the container (its state, the init, the cgroup) goes.
    std::string ignored;
    Runtime({"delete", "--force", runtime_.id}, &ignored);
    if (init_pid_ > 0) ::waitpid(init_pid_, nullptr, WNOHANG);
    init_pid_ = 0;
    return false;
  }
  if (!spec_.linux_spec.cgroups_path.empty()) {
    // Where the runtime put the init: the spec's cgroup, or one below it (crun with
    // --systemd-cgroup uses "<scope>/container"). The OOM killer acts there.
    cgroup_path_ = cgroup::CgroupPathOfSpec(spec_.linux_spec.cgroups_path);
    const std::string actual = cgroup::CgroupOfProcess(init_pid_, "memory");
    if (actual.compare(0, cgroup_path_.size() + 1, cgroup_path_ + "/") == 0) cgroup_path_ = actual;
    std::string why;
    has_cgroup_ = InitCgroupFiles(cgroup_, o_.hierarchies, cgroup_path_, &why);
    if (!has_cgroup_) Log("OOM kills may go unseen: " + why);
    // Watched, not only read at the exit: with --systemd-cgroup systemd removes the scope's
    // cgroup as soon as its last process is gone.
    if (has_cgroup_) oom_watch_.Reset(cgroup_.WatchOom(&why));
    if (has_cgroup_ && !oom_watch_ && !cgroup_.Dir("memory").empty()) {
      Log("OOM kills may go unseen: " + why);
    }
  }
  return true;
}

// The init waits before joining its cgroup; the launcher is told its pid on fd 3 and answers
// "ok" once the cgroup holds it (a systemd scope); then the limits go into the cgroup's files
// and the init goes on, joining the cgroup in the other hierarchies itself.
bool Monitor::HandOffCgroup(std::string* error) {
  SyncMessage msg;
  if (!ReadSync(sync_r_.get(), &msg) || msg.type != kSyncCgroup) {
    *error = msg.type == kSyncError ? DescribeSync(msg) : "the container init died during set-up";
    return false;
  }
  WriteAll(kMonitorStatusFd, "cgroup " + std::to_string(init_pid_) + "\n");
  std::string answer;
  char c;
  while (answer.size() < 4096) {
    ssize_t n = ::read(kMonitorStatusFd, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || c == '\n') break;
    answer.push_back(c);
  }
  if (answer != "ok") {
    *error = answer.compare(0, 6, "error ") == 0 ? answer.substr(6)
                                                 : std::string("no answer for the cgroup");
    return false;
  }
  if (!InitCgroupFiles(cgroup_, o_.hierarchies, spec_.linux_spec.cgroups_path, error) ||
      !cgroup_.Create(error)) {
    return false;
  }
  has_cgroup_ = true;
  if (!cgroup_.Apply(spec_.linux_spec.resources, error)) return false;
  std::string why;
  oom_watch_.Reset(cgroup_.WatchOom(&why));
  if (!oom_watch_ && !cgroup_.Dir("memory").empty()) Log("OOM kills may go unseen: " + why);
  SyncMessage go;
  go.type = kSyncCgroup;
  if (::write(sync_r_.get(), &go, sizeof(go)) != sizeof(go)) {
    *error = std::string("release the init into its cgroup: ") + ErrorText(errno);
    return false;
  }
  return true;
}

std::string Monitor::Dispatch(const std::string& request, std::vector<UniqueFd>* reply_fds) {
  std::vector<std::string> words;
  size_t pos = 0;
  while (pos < request.size()) {
    size_t end = request.find(' ', pos);
    if (end == std::string::npos) end = request.size();
    if (end > pos) words.push_back(request.substr(pos, end - pos));
    pos = end + 1;
  }
  if (words.empty()) return "error empty request";
  const std::string& cmd = words[0];
  if (cmd == "state") {
    const char* s = state_ == State::kCreated   ? "created"
                    : state_ == State::kRunning ? "running"
                                                : "exited";
    return std::string("ok ") + s + " " + std::to_string(init_pid_);
  }
  if (cmd == "start") {
    if (state_ != State::kCreated) return "refused the container is not in the created state";
    if (oci_) {
      std::string error;
      if (!Runtime({"start", runtime_.id}, &error)) return "error " + error;
      started_at_ = NowNanos();
      state_ = State::kRunning;
      return "ok " + std::to_string(started_at_);
    }
    if (::write(start_w_.get(), "x", 1) != 1) {
      return std::string("error release the init: ") + ErrorText(errno);
    }
    start_w_.Reset();
    SyncMessage msg;
    if (ReadSync(sync_r_.get(), &msg)) {
      sync_r_.Reset();
      return "error " + DescribeSync(msg);
    }
    sync_r_.Reset();
    started_at_ = NowNanos();
    // The init may have died between the exec and now; the reaper says so. The start time
    // goes back with the reply: the exit's time, which this monitor records, is never before it.
    state_ = State::kRunning;
    return "ok " + std::to_string(started_at_);
  }
  if (cmd == "kill" && words.size() == 2) {
    int sig = std::atoi(words[1].c_str());
    if (state_ == State::kExited) return "ok exited";
    if (oci_) {
      std::string error;
      if (Runtime({"kill", runtime_.id, std::to_string(sig)}, &error)) return "ok";
      Reap();  // the runtime refuses a container whose init has just exited
      if (state_ == State::kExited) return "ok exited";
      return "error " + error;
    }
    if (::kill(init_pid_, sig) != 0) return std::string("error kill: ") + ErrorText(errno);
    return "ok";
  }
  if (cmd == "reopen-log") {
    if (int err = log_.Reopen()) return std::string("error reopen log: ") + ErrorText(err);
    return "ok";
  }
  if (cmd == "resize" && words.size() == 3) {
    if (!pty_master_) return "refused the container has no terminal";
    struct winsize ws = {};
    ws.ws_row = static_cast<unsigned short>(std::atoi(words[1].c_str()));
    ws.ws_col = static_cast<unsigned short>(std::atoi(words[2].c_str()));
    if (::ioctl(pty_master_.get(), TIOCSWINSZ, &ws) != 0) {
      return std::string("error resize: ") + ErrorText(errno);
    }
    return "ok";
  }
  if (cmd == "attach" && words.size() == 4) return Attach(words, reply_fds);
  return "error unknown request \"" + request + "\"";
}

std::string Monitor::Attach(const std::vector<std::string>& words,
                            std::vector<UniqueFd>* reply_fds) {
  if (state_ == State::kExited) return "refused the container has exited";
  if (attachers_.size() >= static_cast<size_t>(kMaxAttachers)) {
    return "busy too many attachers (" + std::to_string(kMaxAttachers) + ")";
  }
  Attacher a;
  bool want[3] = {words[2] == "1", words[3] == "1", words[1] == "1"};  // out, err, in
  UniqueFd* ends[3] = {&a.out, &a.err, &a.in};
  for (int i = 0; i < 3; ++i) {
    if (!want[i]) continue;
    int sv[2];
    int type = i == 2 ? SOCK_STREAM : SOCK_SEQPACKET;
    if (::socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv) != 0) {
      return std::string("error socketpair: ") + ErrorText(errno);
    }
    ends[i]->Reset(sv[0]);
    SetNonBlocking(sv[0]);
    reply_fds->emplace_back(sv[1]);
  }
  a.used_stdin = want[2];
  attachers_.push_back(std::move(a));
  return "ok";
}

int Monitor::StdinTarget() const {
  if (!o_.stdin_open || stdin_closed_) return -1;
  return pty_master_ ? pty_master_.get() : stdin_w_.get();
}

void Monitor::StdinDetached() {
  if (!o_.stdin_once || stdin_closed_) return;
  stdin_closed_ = true;
  stdin_pending_len_ = stdin_pending_off_ = 0;
  if (stdin_w_) {
    stdin_w_.Reset();  // EOF for the container
  } else if (pty_master_) {
    // A terminal has no half-close: the end-of-file character is what a user would type.
    struct termios t;
    char eof = 4;
    if (::tcgetattr(pty_master_.get(), &t) == 0 && t.c_cc[VEOF] != 0) eof = t.c_cc[VEOF];
    (void)!::write(pty_master_.get(), &eof, 1);
  }
}

void Monitor::FlushStdin() {
  int target = StdinTarget();
  if (target < 0) {
    stdin_pending_len_ = stdin_pending_off_ = 0;
    return;
  }
  while (stdin_pending_off_ < stdin_pending_len_) {
    ssize_t n = ::write(target, stdin_pending_ + stdin_pending_off_,
                        stdin_pending_len_ - stdin_pending_off_);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) {
      // The container closed its stdin: input from now on is dropped.
      stdin_closed_ = true;
      stdin_w_.Reset();
      break;
    }
    stdin_pending_off_ += n;
  }
  stdin_pending_len_ = stdin_pending_off_ = 0;
}

void Monitor::ReadAttacherInput(Attacher& a) {
  ssize_t n = ::read(a.in.get(), stdin_pending_, sizeof(stdin_pending_));
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (n <= 0) {
    a.in.Reset();
    StdinDetached();
    return;
  }
  stdin_pending_len_ = static_cast<size_t>(n);
  stdin_pending_off_ = 0;
  FlushStdin();
}

void Monitor::Broadcast(LogStream stream, const char* data, size_t size) {
  for (Attacher& a : attachers_) {
    UniqueFd& sock = stream == LogStream::kStderr ? a.err : a.out;
    if (!sock) continue;
    if (::send(sock.get(), data, size, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
      if (a.dropped++ == 0) Log("an attacher does not keep up: dropping its output");
    } else {
      sock.Reset();
    }
  }
}

void Monitor::ExecServe() {
  std::string fds;
  for (const UniqueFd* fd :
       {&sync_r_, &start_w_, &out_r_, &err_r_, &pty_master_, &listener_, &stdin_w_, &oom_watch_}) {
    if (fd->valid()) ::fcntl(fd->get(), F_SETFD, 0);
    fds += (fds.empty() ? "" : ",") + std::to_string(fd->get());
  }
  std::vector<std::string> args = {
      "crib-monitor",   "serve",
      "--bundle",       o_.bundle,
      "--log",          o_.log_path,
      "--log-max-line", std::to_string(o_.log_max_line),
      "--pid",          std::to_string(init_pid_),
      "--cgroup",       cgroup_path_.empty() ? spec_.linux_spec.cgroups_path : cgroup_path_,
      "--stdin",        o_.stdin_open ? "1" : "0",
      "--stdin-once",   o_.stdin_once ? "1" : "0",
      "--fds",          fds};
  if (!o_.cgroup_mounts.empty()) args.insert(args.end(), {"--cgroup-mounts", o_.cgroup_mounts});
  if (state_ == State::kRunning)
    args.insert(args.end(), {"--started-at", std::to_string(started_at_)});
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  char* envp[] = {nullptr};
  ::execve("/proc/self/exe", argv.data(), envp);
  Log(std::string("re-exec in serve mode: ") + ErrorText(errno) + "; serving as is");
  for (const UniqueFd* fd :
       {&sync_r_, &start_w_, &out_r_, &err_r_, &pty_master_, &listener_, &stdin_w_, &oom_watch_}) {
    if (fd->valid()) ::fcntl(fd->get(), F_SETFD, FD_CLOEXEC);
  }
}

bool Monitor::Adopt(std::string* error) {
  init_pid_ = o_.pid;
  if (o_.started_at != 0) {
    state_ = State::kRunning;
    started_at_ = o_.started_at;
  }
  if (OciRuntime runtime; LoadRuntime(o_.bundle, &runtime, error)) {
    set_runtime(std::move(runtime));
  } else if (!error->empty()) {
    return false;
  }
  int values[8];
  if (std::sscanf(o_.fds.c_str(), "%d,%d,%d,%d,%d,%d,%d,%d", &values[0], &values[1], &values[2],
                  &values[3], &values[4], &values[5], &values[6], &values[7]) != 8) {
    *error = "bad --fds \"" + o_.fds + "\"";
    return false;
  }
  UniqueFd* targets[] = {&sync_r_,     &start_w_,  &out_r_,   &err_r_,
                         &pty_master_, &listener_, &stdin_w_, &oom_watch_};
  for (int i = 0; i < 8; ++i) {
    if (values[i] < 0) continue;
    ::fcntl(values[i], F_SETFD, FD_CLOEXEC);
    targets[i]->Reset(values[i]);
  }
  if (!o_.cgroups_path.empty()) {
    if (!InitCgroupFiles(cgroup_, o_.hierarchies, o_.cgroups_path, error)) return false;
    has_cgroup_ = true;
  }
  if (!o_.log_path.empty()) {
    if (int err = log_.Open(o_.log_path)) {
      *error = "open log " + o_.log_path + ": " + ErrorText(err);
      return false;
    }
  }
  return true;
}

bool Monitor::ServeFirstRequest(int timeout_ms) {
  struct pollfd p = {listener_.get(), POLLIN, 0};
  int n;
  do {
    n = ::poll(&p, 1, timeout_ms);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return true;
  UniqueFd client(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (client) HandleClient(client.get());
  return attachers_.empty();
}

void Monitor::HandleClient(int fd) {
  std::string request;
  char buf[256];
  while (request.find('\n') == std::string::npos && request.size() < 1024) {
    struct pollfd p = {fd, POLLIN, 0};
    if (::poll(&p, 1, 1000) <= 0) return;
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    request.append(buf, n);
  }
  request = request.substr(0, request.find('\n'));
  std::vector<UniqueFd> reply_fds;
  std::string reply = Dispatch(request, &reply_fds) + "\n";
  std::vector<int> raw;
  for (const UniqueFd& f : reply_fds) raw.push_back(f.get());
  SendWithFds(fd, reply, raw);  // the monitor's copies close with reply_fds
}

void Monitor::Reap() {
  while (true) {
    int status;
    pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    if (pid == init_pid_) {
      wait_status_ = status;
      state_ = State::kExited;
      // Now, while the cgroup is most likely still there.
      if (has_cgroup_ && cgroup_.OomKills() > 0) oom_seen_ = true;
    }
  }
}

void Monitor::ReadOutput(int fd, LogStream stream) {
  char buf[kAttachPacketSize];
  ssize_t n = ::read(fd, buf, sizeof(buf));
  if (n > 0) {
    log_.Write(stream, buf, n);
    Broadcast(stream, buf, n);
  } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
    // EOF (or EIO on a pty whose last slave closed).
    if (fd == out_r_.get()) out_r_.Reset();
    if (fd == err_r_.get()) err_r_.Reset();
    if (fd == pty_master_.get()) pty_master_.Reset();
  }
}

void Monitor::Run() {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  signal_fd_.Reset(::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
  Reap();  // an init that died before the signalfd existed
  if (stdin_w_) SetNonBlocking(stdin_w_.get());
  if (pty_master_ && o_.stdin_open) SetNonBlocking(pty_master_.get());
  long long drain_deadline = 0;
  while (true) {
    if (state_ == State::kExited) {
      // Output still in flight is read until EOF, for a short while at most (a process in a
      // shared pid namespace may hold the pipe).
      if (drain_deadline == 0) drain_deadline = NowNanos() + 200 * 1000000LL;
      if ((!out_r_ && !err_r_ && !pty_master_) || NowNanos() > drain_deadline) break;
    }
    // Reused (its capacity stays): the idle path allocates nothing and touches little code.
    std::vector<struct pollfd>& fds = poll_fds_;
    fds.clear();
    // The OOM watch before the reaper: a kill is recorded before the exit it causes.
    if (oom_watch_) fds.push_back({oom_watch_.get(), POLLIN, 0});
    fds.push_back({signal_fd_.get(), POLLIN, 0});
    fds.push_back({listener_.get(), POLLIN, 0});
    for (int fd : {out_r_.get(), err_r_.get(), pty_master_.get()}) {
      if (fd >= 0) fds.push_back({fd, POLLIN, 0});
    }
    // Attachers after the fixed entries: out/err only to notice a hang-up; input only while
    // the container's stdin has room for it.
    size_t attach_base = fds.size();
    bool stdin_blocked = stdin_pending_off_ < stdin_pending_len_;
    if (stdin_blocked) fds.push_back({StdinTarget(), POLLOUT, 0});
    size_t attachers_base = fds.size();
    for (const Attacher& a : attachers_) {
      fds.push_back({a.out.get(), 0, 0});
      fds.push_back({a.err.get(), 0, 0});
      fds.push_back({stdin_blocked ? -1 : a.in.get(), POLLIN, 0});
    }
    // After a second without work the mappings go while the monitor waits for the next event.
    int timeout = state_ == State::kExited ? 20 : trimmer_ != nullptr ? 1000 : -1;
    int n = ::poll(fds.data(), fds.size(), timeout);
    if (n == 0 && state_ != State::kExited && trimmer_ != nullptr) {
      n = trimmer_->TrimAndWait(fds.data(), fds.size());
    }
    if (n < 0 && errno != EINTR) break;
    for (size_t i = attach_base; i < fds.size(); ++i) {
      const struct pollfd& p = fds[i];
      if (p.revents == 0 || p.fd < 0) continue;
      if (i < attachers_base) {
        FlushStdin();
        continue;
      }
      Attacher& a = attachers_[(i - attachers_base) / 3];
      switch ((i - attachers_base) % 3) {
        case 0:
          if (p.fd == a.out.get()) a.out.Reset();  // the attacher hung up
          break;
        case 1:
          if (p.fd == a.err.get()) a.err.Reset();
          break;
        default:
          if (p.fd == a.in.get() && stdin_pending_off_ >= stdin_pending_len_) {
            ReadAttacherInput(a);
          }
      }
    }
    fds.resize(attach_base);
    for (auto it = attachers_.begin(); it != attachers_.end();) {
      if (!it->out && !it->err && !it->in) {
        it = attachers_.erase(it);
      } else {
        ++it;
      }
    }
    for (const auto& p : fds) {
      if (p.revents == 0) continue;
      if (p.fd == oom_watch_.get()) {
        char events[512];
        while (::read(oom_watch_.get(), events, sizeof(events)) > 0) {
        }
        if (cgroup_.WatchSawOom()) oom_seen_ = true;
        // Nothing more to learn (and a v1 eventfd also fires when the cgroup goes).
        if (oom_seen_ || state_ == State::kExited) oom_watch_.Reset();
      } else if (p.fd == signal_fd_.get()) {
        struct signalfd_siginfo info;
        while (::read(signal_fd_.get(), &info, sizeof(info)) > 0) {
        }
        Reap();
      } else if (p.fd == listener_.get()) {
        UniqueFd client(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (client) HandleClient(client.get());
      } else {
        ReadOutput(p.fd, p.fd == err_r_.get() ? LogStream::kStderr : LogStream::kStdout);
      }
    }
  }
  Finish();
}

void Monitor::Finish() {
  log_.Flush();
  bool oom = oom_seen_ || (has_cgroup_ && cgroup_.OomKills() > 0);
  int exit_code = 0, signal = 0;
  if (WIFEXITED(wait_status_)) {
    exit_code = WEXITSTATUS(wait_status_);
  } else if (WIFSIGNALED(wait_status_)) {
    signal = WTERMSIG(wait_status_);
    exit_code = 128 + signal;
  }
  std::string text = "exit_code " + std::to_string(exit_code) + "\nsignal " +
                     std::to_string(signal) + "\noom_killed " + (oom ? "1" : "0") +
                     "\nstarted_at " + std::to_string(started_at_) + "\nfinished_at " +
                     std::to_string(NowNanos()) + "\n";
  if (!WriteFileAtomic(o_.bundle + "/" + kExitFile, text)) {
    Log("write the exit file: " + std::string(ErrorText(errno)));
  }
  ::unlink((o_.bundle + "/" + kMonitorSocket).c_str());
}

bool Monitor::PrepareToServe(std::string* error) {
  if (!o_.log_path.empty() && !log_.is_open()) {
    if (int err = log_.Open(o_.log_path)) {
      *error = "open log " + o_.log_path + ": " + ErrorText(err);
      return false;
    }
  }
  std::string path = o_.bundle + "/" + kMonitorSocket;
  struct sockaddr_un addr;
  UniqueFd dir;
  if (int err = MakeSocketAddress(path, &addr, &dir)) {
    *error = "socket address " + path + ": " + ErrorText(err);
    return false;
  }
  ::unlink(path.c_str());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd || ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(fd.get(), 16) != 0) {
    *error = "listen on " + path + ": " + ErrorText(errno);
    return false;
  }
  listener_ = std::move(fd);
  WriteFileAtomic(o_.bundle + "/" + kMonitorPidFile, std::to_string(::getpid()) + "\n");
  return true;
}

// Detaches from cribd: the spawned process exits at once, its child starts a session of its
// own and is adopted by init (or a subreaper), so nothing that happens to cribd reaches it.
// Returns in the child; false (errno set) when the fork failed.
bool Detach() {
  pid_t pid = ::fork();
  if (pid < 0) return false;
  if (pid > 0) _exit(0);
  ::setsid();
  ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  ::signal(SIGPIPE, SIG_IGN);
  ::signal(SIGHUP, SIG_IGN);
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  return ::chdir("/") == 0;
}

// How long `create` waits, once ready, for a first request (the start) before it re-executes
// itself as `serve`.
constexpr int kFirstRequestWindowMs = 50;

// `detached`: a standby that detached before it was given the container.
int CreateMain(Options o, bool detached) {
  Spec spec;
  std::string error;
  if (!LoadSpec(o.bundle, &spec, &error)) {
    WriteAll(kMonitorStatusFd, "error " + error + "\n");
    return 1;
  }
  if (!detached && !Detach()) {
    WriteAll(kMonitorStatusFd, std::string("error detach: ") + ErrorText(errno) + "\n");
    return 1;
  }

  std::string bundle = o.bundle;
  OciRuntime runtime;
  const bool oci = LoadRuntime(bundle, &runtime, &error);
  if (!oci && !error.empty()) {
    WriteAll(kMonitorStatusFd, "error " + error + "\n");
    return 1;
  }
  Monitor monitor(std::move(o), std::move(spec));
  if (oci) monitor.set_runtime(std::move(runtime));
  uint32_t warnings = 0;
  if (!monitor.Create(&error, &warnings) || (oci && !monitor.PrepareToServe(&error))) {
    // The launcher removes the cgroup and the bundle's files after a failed create.
    WriteAll(kMonitorStatusFd, "error " + error + "\n");
    return 1;
  }
  std::string pid_text = std::to_string(::getpid());
  WriteFileAtomic(bundle + "/" + kInitPidFile, std::to_string(monitor.init_pid()) + "\n");
  WriteAll(kMonitorStatusFd, "ready " + pid_text + " " + std::to_string(monitor.init_pid()) + " " +
                                 std::to_string(warnings) + "\n");
  ::close(kMonitorStatusFd);
  int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  ::dup2(null_fd, 0);
  ::dup2(null_fd, 1);
  ::close(null_fd);
  if (monitor.ServeFirstRequest(kFirstRequestWindowMs)) monitor.ExecServe();
  monitor.Run();
  return 0;
}

// standby: a monitor started before the container it will serve, so that a create does not
// wait for a process to be spawned, to start and to detach. It detaches at once, leaves only
// the page it waits on resident, and waits on kStandbyFd for one message: the `create` command
// line (NUL-separated, without the program name) with two fds, the monitor's log (its stderr)
// and the status fd. Then it is that `create`. An end of the socket before a message (cribd
// done with it, or gone) ends it.
int StandbyMain() {
  if (!Detach()) return 1;
  {
    ImageTrimmer trimmer;
    trimmer.Init();
    struct pollfd pfd = {kStandbyFd, POLLIN, 0};
    while (trimmer.TrimAndWait(&pfd, 1) < 0 && errno == EINTR) {
    }
  }
  // Not zero-filled: only the pages the message fills are touched (a fresh page costs a fault).
  constexpr size_t kMessageSize = 64 * 1024;
  std::unique_ptr<char[]> message(new char[kMessageSize]);
  std::vector<UniqueFd> fds;
  const ssize_t n = ReceiveWithFds(kStandbyFd, message.get(), kMessageSize - 1, &fds);
  ::close(kStandbyFd);
  if (n <= 0) return 0;
  // The log, the status fd and, for a create with --mount-template, the template.
  if (fds.size() != 2 && fds.size() != 3) return 1;
  // Received as the lowest free numbers, which may be the ones they go to: moved out first.
  UniqueFd log(::fcntl(fds[0].get(), F_DUPFD_CLOEXEC, kMountTemplateFd + 1));
  UniqueFd status(::fcntl(fds[1].get(), F_DUPFD_CLOEXEC, kMountTemplateFd + 1));
  UniqueFd mount_template;
  if (fds.size() == 3) {
    mount_template.Reset(::fcntl(fds[2].get(), F_DUPFD_CLOEXEC, kMountTemplateFd + 1));
    if (!mount_template) return 1;
  }
  fds.clear();
  if (!log || !status || ::dup2(log.get(), 2) < 0 || ::dup2(status.get(), kMonitorStatusFd) < 0 ||
      (mount_template && ::dup2(mount_template.get(), kMountTemplateFd) < 0)) {
    return 1;
  }
  message[n] = '\0';
  std::vector<char*> argv = {const_cast<char*>("crib-monitor")};
  for (char* p = message.get(); p < message.get() + n; p += std::strlen(p) + 1) argv.push_back(p);
  Options options;
  std::string error;
  if (!ParseOptions(static_cast<int>(argv.size()), argv.data(), &options, &error) ||
      options.mode != "create") {
    WriteAll(kMonitorStatusFd, "error standby: " + (error.empty() ? "not a create" : error) + "\n");
    return 2;
  }
  return CreateMain(std::move(options), true);
}

int ServeMain(Options o) {
  Monitor monitor(std::move(o), Spec());
  std::string error;
  if (!monitor.Adopt(&error)) {
    Log(error);
    return 1;
  }
  ImageTrimmer trimmer;
  trimmer.Init();
  monitor.set_trimmer(&trimmer);
  monitor.Run();
  return 0;
}

// The exec'd process `child` runs: tells cribd so (with the terminal's master) when it is
// interactive, waits for its end (killing it at the timeout, or when cribd goes away from an
// interactive one) and reports how it ended.
template <typename Report>
int AwaitExec(const Options& o, pid_t child, UniqueFd master, const Report& report) {
  const bool interactive = o.interactive;
  UniqueFd pidfd(static_cast<int>(syscall(SYS_pidfd_open, child, 0)));
  if (interactive) {
    std::vector<int> fds;
    if (master) fds.push_back(master.get());
    bool told = SendWithFds(kMonitorStatusFd, "started\n", fds);
    master.Reset();
    // Until the process exits; cribd closing its end (the client went away) kills it.
    bool killed = !told;
    if (killed) ::kill(child, SIGKILL);
    while (pidfd && !killed) {
      struct pollfd p[2] = {{pidfd.get(), POLLIN, 0}, {kMonitorStatusFd, POLLIN, 0}};
      int n = ::poll(p, 2, -1);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 || p[0].revents != 0) break;
      char buf[64];
      if (p[1].revents != 0 && ::read(kMonitorStatusFd, buf, sizeof(buf)) <= 0) {
        ::kill(child, SIGKILL);
        killed = true;
      }
    }
  }
  bool timed_out = false;
  if (o.timeout_ms > 0 && pidfd) {
    struct pollfd p = {pidfd.get(), POLLIN, 0};
    int n;
    do {
      n = ::poll(&p, 1, static_cast<int>(o.timeout_ms));
    } while (n < 0 && errno == EINTR);
    if (n == 0) {
      timed_out = true;
      ::kill(child, SIGKILL);
    }
  }
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) {
    report("timeout\n");
  } else if (WIFSIGNALED(status)) {
    report("signal " + std::to_string(WTERMSIG(status)) + "\n");
  } else {
    report("exit " + std::to_string(WEXITSTATUS(status)) + "\n");
  }
  return 0;
}

// `exec` through the container's OCI runtime: the process (the spec's, with its args and
// terminal) goes to `<runtime> exec --process --detach`, with this helper's stdio, or a
// terminal the runtime sends to a console socket. The helper is a child subreaper, so the
// process becomes its child when the runtime exits, and is waited for as crib's own.
template <typename Report, typename Fail>
int ExecWithRuntime(const Options& o, Spec& spec, const OciRuntime& runtime, const Report& report,
                    const Fail& fail) {
  ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  const bool terminal = o.interactive && o.tty;
  spec.process.terminal = terminal;
  const std::string stem = o.bundle + "/exec-" + std::to_string(::getpid());
  const std::string process_file = stem + ".json";
  const std::string pid_file = stem + ".pid";
  const std::string console_path = stem + ".sock";
  struct Files {
    std::string paths[3];
    ~Files() {
      for (const std::string& p : paths) ::unlink(p.c_str());
    }
  } files{{process_file, pid_file, console_path}};
  if (!WriteFileAtomic(process_file, ProcessToJson(spec.process))) {
    return fail("write " + process_file + ": " + ErrorText(errno));
  }
  std::string error;
  UniqueFd console, console_dir;
  std::vector<std::string> command = {"exec",       "--process", process_file,
                                      "--pid-file", pid_file,    "--detach"};
  if (terminal) {
    std::string name;
    if (!ListenConsole(console_path, &console, &console_dir, &name, &error)) return fail(error);
    command.insert(command.end(), {"--console-socket", name});
  }
  command.push_back(runtime.id);
  if (!RunRuntime(runtime, o.bundle, command, terminal ? -1 : 0, terminal ? -1 : 1,
                  terminal ? -1 : 2, &error)) {
    return fail(error);
  }
  const pid_t child = ReadPidFile(pid_file);
  if (child <= 0) return fail(runtime.handler + " exec wrote no pid to " + pid_file);
  UniqueFd master;
  if (terminal && !ReceiveConsole(console.get(), runtime.timeout_ms, &master, &error)) {
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    return fail(error);
  }
  // The captured output must reach EOF when the process is done, not when this helper is.
  int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  ::dup2(null_fd, 0);
  ::dup2(null_fd, 1);
  ::dup2(null_fd, 2);
  ::close(null_fd);
  return AwaitExec(o, child, std::move(master), report);
}

// Runs one process in the namespaces and cgroup of the container whose init is --pid, with
// the process settings of the container's spec (args replaced by the ones after --).
int ExecMain(Options o) {
  // Interactive: fd 3 is a socket whose peer may be gone; a pipe otherwise.
  const bool interactive = o.interactive;
  auto report = [interactive](const std::string& line) {
    if (interactive) {
      SendAll(kMonitorStatusFd, line.data(), line.size());
    } else {
      WriteAll(kMonitorStatusFd, line);
    }
  };
  auto fail = [&report](const std::string& error) {
    report("error " + error + "\n");
    return 1;
  };
  Spec spec;
  std::string error;
  if (!LoadSpec(o.bundle, &spec, &error)) return fail(error);
  if (!o.args.empty()) spec.process.args = o.args;
  if (OciRuntime runtime; LoadRuntime(o.bundle, &runtime, &error)) {
    return ExecWithRuntime(o, spec, runtime, report, fail);
  } else if (!error.empty()) {
    return fail(error);
  }
  Plan plan;
  if (!BuildPlan(spec, o.bundle, true, o.hierarchies, &plan, &error)) return fail(error);
  if (o.pid <= 0) return fail("--pid is required");
  // v2: the process is made in the container's cgroup (CloneIntoCgroupDir), its procs file
  // kept for a kernel without that. v1: this process has one thread, "0" moves it
  // (SelfJoinFiles), and the process forks in there.
  UniqueFd into_cgroup, v2_procs;
  if (!spec.linux_spec.cgroups_path.empty()) {
    cgroup::CgroupFiles cgroup;
    if (!InitCgroupFiles(cgroup, o.hierarchies, spec.linux_spec.cgroups_path, &error)) {
      return fail(error);
    }
    const std::vector<std::string> join = cgroup.SelfJoinFiles();
    if (cgroup.unified() && join.size() == 1) {
      into_cgroup.Reset(::open(cgroup.Dirs().front().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      v2_procs.Reset(::open(join.front().c_str(), O_WRONLY | O_CLOEXEC));
      if (!into_cgroup || !v2_procs) {
        return fail("open cgroup " + cgroup.Dirs().front() + ": " + ErrorText(errno));
      }
    }
    std::string failed;
    if (int err = into_cgroup ? 0 : JoinCgroupFiles(join, &failed)) {
      return fail("join cgroup " + failed + ": " + ErrorText(err));
    }
  }
  // Opened first: after joining the mount namespace, /proc is the container's.
  const char* kNamespaces[] = {"ipc", "uts", "net", "pid", "mnt"};
  const int kTypes[] = {CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWNET, CLONE_NEWPID, CLONE_NEWNS};
  std::vector<UniqueFd> ns_fds;
  for (const char* ns : kNamespaces) {
    std::string path = "/proc/" + std::to_string(o.pid) + "/ns/" + ns;
    ns_fds.emplace_back(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!ns_fds.back()) return fail("open " + path + ": " + ErrorText(errno));
  }
  // The container's user namespace, when it is not this process's (a pod's): joined last, so
  // that the joins above are made as the host's root.
  const std::string user_path = "/proc/" + std::to_string(o.pid) + "/ns/user";
  UniqueFd user_ns(::open(user_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!user_ns) return fail("open " + user_path + ": " + ErrorText(errno));
  struct stat theirs, ours;
  const bool join_user = ::fstat(user_ns.get(), &theirs) == 0 &&
                         ::stat("/proc/self/ns/user", &ours) == 0 &&
                         (theirs.st_ino != ours.st_ino || theirs.st_dev != ours.st_dev);
  for (size_t i = 0; i < ns_fds.size(); ++i) {
    if (::setns(ns_fds[i].get(), kTypes[i]) != 0) {
      return fail(std::string("join ") + kNamespaces[i] + " namespace of pid " +
                  std::to_string(o.pid) + ": " + ErrorText(errno));
    }
  }
  if (join_user && ::setns(user_ns.get(), CLONE_NEWUSER) != 0) {
    return fail("join the user namespace of pid " + std::to_string(o.pid) + ": " +
                ErrorText(errno));
  }
  // The terminal comes from the container's own devpts (joined with the mount namespace), so
  // ttyname works inside; its master goes to cribd.
  UniqueFd master, slave;
  if (interactive && o.tty) {
    master.Reset(::open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC));
    if (!master) return fail(std::string("open /dev/ptmx: ") + ErrorText(errno));
    int unlock = 0;
    if (::ioctl(master.get(), TIOCSPTLCK, &unlock) != 0) {
      return fail(std::string("unlock the pty: ") + ErrorText(errno));
    }
    slave.Reset(::ioctl(master.get(), TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC));
    if (!slave) return fail(std::string("open the pty slave: ") + ErrorText(errno));
  }
  UniqueFd sync_r, sync_w;
  if (!MakeSyncPair(&sync_r, &sync_w, &error)) return fail(error);
  // Either fork enters the joined pid namespace.
  pid_t child = into_cgroup ? static_cast<pid_t>(CloneIntoCgroupDir(into_cgroup.get(), 0)) : -1;
  if (into_cgroup && child < 0 && errno == ENOSYS) {
    if (::write(v2_procs.get(), "0", 1) != 1) {
      return fail(std::string("join the container's cgroup: ") + ErrorText(errno));
    }
    into_cgroup.Reset();
  }
  if (!into_cgroup) child = ::fork();
  if (child < 0) return fail(std::string("fork: ") + ErrorText(errno));
  if (child == 0) {
    ::close(kMonitorStatusFd);
    ExecStdio stdio;
    stdio.tty_slave = slave.get();
    stdio.die_with_parent = interactive;
    RunExecProcess(plan, sync_w.get(), stdio);
  }
  sync_w.Reset();
  slave.Reset();
  // The captured output must reach EOF when the process is done, not when this helper is.
  int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  ::dup2(null_fd, 0);
  ::dup2(null_fd, 1);
  if (interactive) ::dup2(null_fd, 2);
  ::close(null_fd);
  SyncMessage msg;
  if (ReadSync(sync_r.get(), &msg)) {
    ::waitpid(child, nullptr, 0);
    return fail(DescribeSync(msg));
  }
  return AwaitExec(o, child, std::move(master), report);
}

}  // namespace
}  // namespace crib::runtime

int main(int argc, char** argv) {
  if (argc == 2 && std::strcmp(argv[1], "standby") == 0) return crib::runtime::StandbyMain();
  crib::runtime::Options options;
  std::string error;
  if (!crib::runtime::ParseOptions(argc, argv, &options, &error)) {
    crib::runtime::WriteAll(2, "crib-monitor: " + error + "\n");
    return 2;
  }
  if (options.mode == "create") return crib::runtime::CreateMain(std::move(options), false);
  if (options.mode == "exec") return crib::runtime::ExecMain(std::move(options));
  if (options.mode == "serve") {
    // Re-executed through /proc/self/exe, whose name the kernel would show as "exe".
    ::prctl(PR_SET_NAME, "crib-monitor", 0, 0, 0);
    return crib::runtime::ServeMain(std::move(options));
  }
  crib::runtime::WriteAll(2, "crib-monitor: unknown mode " + options.mode + "\n");
  return 2;
}
