#include "runtime/launcher.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>
#include <system_error>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "cgroup/cgroup_files.h"
#include "cgroup/systemd_driver.h"
#include "common/errors.h"
#include "common/files.h"
#include "common/mountinfo_path.h"
#include "common/spawn.h"
#include "common/status_macros.h"
#include "common/unique_fd.h"
#include "runtime/capability_names.h"
#include "runtime/monitor/error_text.h"
#include "runtime/monitor/fd_passing.h"
#include "runtime/monitor/protocol.h"
#include "runtime/monitor/seccomp_filter.h"
#include "runtime/monitor/socket_address.h"
#include "runtime/spec.h"

namespace crib::runtime {
namespace {

// The spec annotation runc and crun turn into the scope's DelegateControllers property.
constexpr char kDelegateControllers[] = "org.systemd.property.DelegateControllers";

std::string BundleFile(const std::string& bundle, const char* name) {
  return absl::StrCat(bundle, "/", name);
}

absl::Time FromNanos(int64_t nanos) { return absl::FromUnixNanos(nanos); }

// Reads from `fd` until EOF or a newline, within `timeout`; returns everything read (the line
// is up to the first newline, the rest follows it). With `fds`, `fd` is a unix socket and the
// fds passed along are kept there.
absl::StatusOr<std::string> ReadWithFds(int fd, absl::Duration timeout, absl::string_view what,
                                        std::vector<UniqueFd>* fds) {
  std::string data;
  absl::Time deadline = absl::Now() + timeout;
  while (data.find('\n') == std::string::npos) {
    int ms = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
    if (ms <= 0) return absl::DeadlineExceededError(absl::StrCat(what, ": no answer in time"));
    struct pollfd p = {fd, POLLIN, 0};
    int n = ::poll(&p, 1, ms);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, absl::StrCat(what, ": poll"));
    if (n == 0) continue;
    char buf[512];
    ssize_t r =
        fds != nullptr ? ReceiveWithFds(fd, buf, sizeof(buf), fds) : ::read(fd, buf, sizeof(buf));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0)
      return ErrnoStatus(errno, absl::StrCat(what, fds != nullptr ? ": recvmsg" : ": read"));
    if (r == 0) break;
    data.append(buf, r);
  }
  return data;
}

// The first line read from `fd` (up to EOF or a newline), within `timeout`.
absl::StatusOr<std::string> ReadLine(int fd, absl::Duration timeout, absl::string_view what) {
  ASSIGN_OR_RETURN(std::string data, ReadWithFds(fd, timeout, what, nullptr));
  return data.substr(0, data.find('\n'));
}

absl::Status MakePipe(UniqueFd* r, UniqueFd* w) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe");
  r->Reset(p[0]);
  w->Reset(p[1]);
  return absl::OkStatus();
}

absl::StatusOr<Spec> ReadSpec(const std::string& bundle) {
  ASSIGN_OR_RETURN(std::string text, ReadFile(BundleFile(bundle, kSpecFile)));
  Spec spec;
  std::string error;
  if (!ParseSpecJson(text, &spec, &error)) return absl::InternalError(error);
  return spec;
}

void RemoveRuntimeFiles(const std::string& bundle) {
  for (const char* name :
       {kMonitorSocket, kMonitorPidFile, kInitPidFile, kExitFile, kExitTempFile, kMonitorLog,
        kSeccompProgramFile, kRuntimeFile, kRuntimeLog, kConsoleSocket}) {
    ::unlink(BundleFile(bundle, name).c_str());
  }
  // Last: Remove takes a bundle without it for one removed already.
  ::unlink(BundleFile(bundle, kSpecFile).c_str());
}

// One call of an OCI runtime, waited for within its timeout (then its process group is
// killed); the error carries what the runtime logged.
absl::Status RunRuntime(const OciRuntime& runtime, const std::string& bundle,
                        const std::vector<std::string>& command) {
  const std::string log_path = BundleFile(bundle, kRuntimeLog);
  struct stat st;
  const size_t log_offset = ::stat(log_path.c_str(), &st) == 0 ? st.st_size : 0;
  const std::string what =
      absl::StrCat("runtime handler ", runtime.handler, " (", runtime.argv[0], ") ", command[0]);
  UniqueFd err_r, err_w;
  RETURN_IF_ERROR(Annotate(MakePipe(&err_r, &err_w), what));
  absl::StatusOr<pid_t> pid = Spawn({.path = runtime.argv[0],
                                     .args = RuntimeCommand(runtime, bundle, command),
                                     .fds = {{2, err_w.get()}},
                                     .group = SpawnOptions::Group::kNewProcessGroup});
  if (!pid.ok()) return Annotate(pid.status(), what);
  err_w.Reset();
  std::string said;
  const int status = AwaitRuntime(*pid, runtime.timeout_ms, err_r.get(), &said);
  if (status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0) return absl::OkStatus();
  absl::StatusOr<std::string> log = ReadFile(log_path);
  const std::string error =
      RuntimeFailure(what, runtime, status, log.ok() ? *log : "", log_offset, said);
  return status == -1 ? absl::DeadlineExceededError(error) : absl::UnknownError(error);
}

// What an OCI runtime would refuse outright but crib's own launcher takes as best effort
// (without CAP_SYS_RESOURCE): an oom_score_adj below cribd's own, a hard rlimit above its own
// (both raised or lowered to what cribd may set, with a warning), and capabilities outside
// cribd's bounding set, which no child of it can have (privileged and ALL ask for every one;
// they are left out, as containerd gives a privileged container the capabilities it has).
std::vector<std::string> ClampForRuntime(Spec& spec) {
  std::vector<std::string> warnings;
  // cribd's bounding set never grows or shrinks: read once.
  static const uint64_t bounding = [] {
    uint64_t mask = ~0ULL;
    if (absl::StatusOr<std::string> status = ReadFile("/proc/self/status"); status.ok()) {
      for (absl::string_view line : absl::StrSplit(*status, '\n')) {
        if (absl::ConsumePrefix(&line, "CapBnd:")) {
          (void)absl::SimpleHexAtoi(absl::StripAsciiWhitespace(line), &mask);
        }
      }
    }
    return mask;
  }();
  auto held = [](const std::string& name) {
    const auto* known = std::find(std::begin(kCapabilityNames), std::end(kCapabilityNames), name);
    const size_t bit = known - std::begin(kCapabilityNames);
    return known == std::end(kCapabilityNames) || bit >= 64 || (bounding >> bit) & 1;
  };
  Capabilities& caps = spec.process.capabilities;
  std::set<std::string> dropped;
  for (std::vector<std::string>* set :
       {&caps.bounding, &caps.effective, &caps.permitted, &caps.inheritable, &caps.ambient}) {
    for (const std::string& name : *set) {
      if (!held(name)) dropped.insert(name);
    }
    set->erase(std::remove_if(set->begin(), set->end(),
                              [&](const std::string& name) { return !held(name); }),
               set->end());
  }
  if (!dropped.empty()) {
    warnings.push_back(
        absl::StrCat("capabilities cribd does not hold left out: ", absl::StrJoin(dropped, ", ")));
  }
  if (spec.process.oom_score_adj) {
    absl::StatusOr<std::string> own = ReadFile("/proc/self/oom_score_adj");
    int floor = 0;
    if (own.ok() && absl::SimpleAtoi(absl::StripAsciiWhitespace(*own), &floor) &&
        *spec.process.oom_score_adj < floor) {
      warnings.push_back(absl::StrCat("oom_score_adj ", *spec.process.oom_score_adj, " raised to ",
                                      floor, ": lowering it needs CAP_SYS_RESOURCE"));
      spec.process.oom_score_adj = floor;
    }
  }
  for (Rlimit& limit : spec.process.rlimits) {
    const auto* name = std::find(std::begin(kRlimitNames), std::end(kRlimitNames), limit.type);
    struct rlimit current;
    if (name == std::end(kRlimitNames) ||
        ::getrlimit(static_cast<__rlimit_resource>(name - std::begin(kRlimitNames)), &current) !=
            0) {
      continue;
    }
    if (current.rlim_max != RLIM_INFINITY && limit.hard > current.rlim_max) {
      warnings.push_back(absl::StrCat(limit.type, " hard limit ", limit.hard, " lowered to ",
                                      current.rlim_max, ": raising it needs CAP_SYS_RESOURCE"));
      limit.hard = current.rlim_max;
      limit.soft = std::min(limit.soft, limit.hard);
    }
  }
  return warnings;
}

}  // namespace

absl::StatusOr<std::optional<OciRuntime>> Launcher::RuntimeOf(const std::string& bundle) {
  absl::StatusOr<std::string> text = ReadFile(BundleFile(bundle, kRuntimeFile));
  if (!text.ok()) {
    if (absl::IsNotFound(text.status())) return std::nullopt;
    return text.status();
  }
  OciRuntime runtime;
  std::string error;
  if (!ParseRuntimeFile(*text, &runtime, &error)) {
    return absl::InternalError(absl::StrCat(BundleFile(bundle, kRuntimeFile), ": ", error));
  }
  return runtime;
}

absl::Status Launcher::UpdateWithRuntime(const std::string& bundle, const OciRuntime& runtime,
                                         const Resources& resources) const {
  const std::string file = BundleFile(bundle, "update.json");
  RETURN_IF_ERROR(WriteFileAtomic(file, ResourcesToJson(resources), 0600, Durability::kVolatile));
  absl::Status updated = RunRuntime(runtime, bundle, {"update", "--resources", file, runtime.id});
  ::unlink(file.c_str());
  return updated;
}

void Launcher::RemoveRuntimeCgroupParents(const std::string& cgroups_path) const {
  std::call_once(other_hierarchies_once_, [this] {
    std::vector<cgroup::Hierarchy> mounted;
    std::string error;
    if (!cgroup::MountedHierarchies(&mounted, &error)) return;
    const std::vector<cgroup::Hierarchy> ours =
        hierarchies_.empty() ? cgroup::UsableHierarchies(mounted) : hierarchies_;
    for (const cgroup::Hierarchy& h : mounted) {
      if (std::none_of(ours.begin(), ours.end(), [&](const cgroup::Hierarchy& o) {
            return o.mount_point == h.mount_point;
          })) {
        other_hierarchies_.push_back(h.mount_point);
      }
    }
  });
  // A systemd form (<slice>:<prefix>:<name>): systemd removes what it made.
  if (cgroups_path.empty() || cgroups_path.find("..") != std::string::npos ||
      cgroups_path.find(':') != std::string::npos) {
    return;
  }
  const std::string path = cgroups_path[0] == '/' ? cgroups_path : "/" + cgroups_path;
  const std::string parent = path.substr(0, path.rfind('/'));
  for (const std::string& mount : other_hierarchies_) {
    ::rmdir((mount + path).c_str());
    if (!parent.empty()) ::rmdir((mount + parent).c_str());  // busy while others live there
  }
}

absl::StatusOr<std::string> Launcher::SeccompProgramOf(const Seccomp& profile) const {
  {
    std::lock_guard<std::mutex> lock(seccomp_mu_);
    for (const auto& [known, program] : seccomp_programs_) {
      if (known == profile) return program;
    }
  }
  SeccompProgram compiled;
  std::string error;
  if (!CompileSeccomp(profile, &compiled, &error)) return absl::InvalidArgumentError(error);
  std::string program(reinterpret_cast<const char*>(compiled.filter.data()),
                      compiled.filter.size() * sizeof(sock_filter));
  std::lock_guard<std::mutex> lock(seccomp_mu_);
  seccomp_programs_.emplace_back(profile, program);
  return program;
}

bool Launcher::DevicesOnV1() const {
  auto has_devices = [](const std::vector<cgroup::Hierarchy>& hierarchies) {
    return std::any_of(hierarchies.begin(), hierarchies.end(), [](const cgroup::Hierarchy& h) {
      return !h.v2 && std::find(h.controllers.begin(), h.controllers.end(), "devices") !=
                          h.controllers.end();
    });
  };
  if (!hierarchies_.empty()) return has_devices(hierarchies_);
  std::vector<cgroup::Hierarchy> mounted;
  std::string error;
  return cgroup::MountedHierarchies(&mounted, &error) && has_devices(mounted);
}

bool Launcher::InitCgroup(cgroup::CgroupFiles& cgroup, const std::string& cgroups_path,
                          std::string* error) const {
  return hierarchies_.empty() ? cgroup.Init(cgroups_path, error)
                              : cgroup.Init(hierarchies_, cgroups_path, error);
}

absl::Status Launcher::RemoveCgroup(const std::string& cgroups_path) const {
  if (cgroups_path.empty()) return absl::OkStatus();
  cgroup::CgroupFiles cgroup;
  std::string error;
  if (!InitCgroup(cgroup, cgroups_path, &error) || !cgroup.Remove(&error)) {
    return absl::InternalError(error);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Launcher::SpecCgroupsPath(const std::string& bundle) const {
  {
    std::lock_guard<std::mutex> lock(cgroups_paths_mu_);
    auto it = cgroups_paths_.find(bundle);
    if (it != cgroups_paths_.end()) return it->second;
  }
  ASSIGN_OR_RETURN(Spec spec, ReadSpec(bundle));
  std::lock_guard<std::mutex> lock(cgroups_paths_mu_);
  cgroups_paths_[bundle] = spec.linux_spec.cgroups_path;
  return spec.linux_spec.cgroups_path;
}

void Launcher::ForgetCgroupsPath(const std::string& bundle) const {
  std::lock_guard<std::mutex> lock(cgroups_paths_mu_);
  cgroups_paths_.erase(bundle);
}

void Launcher::AddHierarchies(std::vector<std::string>& args) const {
  if (hierarchies_word_.empty()) return;
  args.push_back("--cgroup-mounts");
  args.push_back(hierarchies_word_);
}

namespace {

// Whether `path` is `dir` or below it.
bool AtOrBelow(absl::string_view path, absl::string_view dir) {
  return path == dir || (absl::StartsWith(path, dir) && (dir == "/" || path[dir.size()] == '/'));
}

}  // namespace

absl::StatusOr<UniqueFd> MakeMountNamespaceTemplate(const std::vector<std::string>& dirs) {
  std::vector<std::string> resolved;
  for (const std::string& dir : dirs) {
    char buf[PATH_MAX];
    if (::realpath(dir.c_str(), buf) == nullptr) {
      return ErrnoStatus(errno, absl::StrCat("mount namespace template: resolve ", dir));
    }
    resolved.push_back(buf);
  }
  // On a thread of its own, which alone moves into the new namespace and ends there.
  absl::Status status;
  UniqueFd made;
  std::thread maker([&] {
    if (::unshare(CLONE_NEWNS) != 0) {
      status = ErrnoStatus(errno, "unshare a mount namespace");
      return;
    }
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
      status = ErrnoStatus(errno, "make the mount namespace template private");
      return;
    }
    absl::StatusOr<std::string> mountinfo = ReadFile("/proc/thread-self/mountinfo");
    if (!mountinfo.ok()) {
      status = mountinfo.status();
      return;
    }
    std::vector<std::string> below;  // in mountinfo's order: a parent before its children
    for (absl::string_view line : absl::StrSplit(*mountinfo, '\n', absl::SkipEmpty())) {
      std::vector<absl::string_view> fields = absl::StrSplit(line, ' ');
      if (fields.size() < 5) continue;
      const std::string point =
          UnescapeMountInfoPath(std::string_view(fields[4].data(), fields[4].size()));
      bool under = false, holds = false;
      for (const std::string& dir : resolved) {
        under |= point != dir && AtOrBelow(point, dir);
        holds |= AtOrBelow(dir, point);
      }
      if (under && !holds) below.push_back(point);
    }
    for (auto it = below.rbegin(); it != below.rend(); ++it) {
      // EINVAL: gone already with a mount above it.
      if (::umount2(it->c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
        status =
            ErrnoStatus(errno, absl::StrCat("detach ", *it, " from the mount namespace template"));
        return;
      }
    }
    made.Reset(::open("/proc/thread-self/ns/mnt", O_RDONLY | O_CLOEXEC));
    if (!made) status = ErrnoStatus(errno, "open the mount namespace template");
  });
  maker.join();
  if (!status.ok()) return Annotate(status, "mount namespace template");
  return made;
}

absl::Status Launcher::MakeMountTemplate(const std::vector<std::string>& dirs) {
  ASSIGN_OR_RETURN(mount_template_, MakeMountNamespaceTemplate(dirs));
  return absl::OkStatus();
}

absl::StatusOr<CreatedContainer> Launcher::Create(absl::string_view id, const std::string& bundle,
                                                  const Spec& spec, const std::string& log_path,
                                                  const CreateOptions& options) const {
  auto annotate = [&](const absl::Status& s) {
    return Annotate(s, absl::StrCat("create container ", id));
  };
  std::vector<std::string> runtime_warnings;
  Spec for_runtime;
  if (options.oci_runtime) {
    if (options.place_init) {
      return annotate(absl::FailedPreconditionError(absl::StrCat(
          "runtime handler ", options.oci_runtime->handler,
          " cannot run a container whose cgroup another party places (the systemd driver)")));
    }
    for_runtime = spec;
    runtime_warnings = ClampForRuntime(for_runtime);
    if (options.systemd_cgroup) {
      const std::string unit = cgroup::SystemdCgroupsPath(spec.linux_spec.cgroups_path);
      if (unit.empty()) {
        return annotate(absl::InternalError(
            absl::StrCat("cgroup path ", spec.linux_spec.cgroups_path, " is not a systemd scope")));
      }
      for_runtime.linux_spec.cgroups_path = unit;
      // "Every device" (a privileged container) becomes every char and every block device:
      // the same access, but said as rules that systemd keeps the devices controller for. For
      // a lone allow-all runc gives systemd no device rule (DevicePolicy=auto), systemd on v1
      // then trims the scope's devices cgroup when it realizes the scope again, and the
      // runtime's next exec fails to enter it.
      std::vector<cgroup::DeviceRule>& devices = for_runtime.linux_spec.resources.devices;
      if (devices == std::vector<cgroup::DeviceRule>{{true, "a", -1, -1, "rwm"}}) {
        devices = {
            {false, "a", -1, -1, "rwm"}, {true, "c", -1, -1, "rwm"}, {true, "b", -1, -1, "rwm"}};
      }
      // runc starts the scope without its device rules and sends them only once the init
      // has set up the root file system. Until then the scope needs the devices controller
      // only if a sibling does; when systemd on v1 realizes the pod's units again meanwhile
      // (any unit started or stopped beside them), it removes the scope's devices cgroup and
      // the init's mount of /sys/fs/cgroup fails on it. The devices controller delegated to
      // the scope stays in its mask from the start (systemd 236 and later take the property;
      // an older one would refuse the scope).
      if (DevicesOnV1() && for_runtime.annotations.count(kDelegateControllers) == 0) {
        absl::StatusOr<int> version = cgroup::SharedSystemd().MajorVersion();
        if (version.ok() && *version >= 236) {
          for_runtime.annotations[kDelegateControllers] = "['devices']";
        }
      }
    }
  }
  const Spec& written = options.oci_runtime ? for_runtime : spec;
  absl::Cleanup undo = [&] {
    (void)RemoveCgroup(spec.linux_spec.cgroups_path);
    if (options.oci_runtime) RemoveRuntimeCgroupParents(written.linux_spec.cgroups_path);
    RemoveRuntimeFiles(bundle);
    ForgetCgroupsPath(bundle);
  };
  if (options.oci_runtime) {
    if (absl::Status s =
            WriteFileAtomic(BundleFile(bundle, kRuntimeFile), RuntimeFileText(*options.oci_runtime),
                            0644, Durability::kVolatile);
        !s.ok()) {
      return annotate(s);
    }
  }
  if (absl::Status s = WriteFileAtomic(BundleFile(bundle, kSpecFile), SpecToJson(written), 0644,
                                       Durability::kVolatile);
      !s.ok()) {
    return annotate(s);
  }
  {
    std::lock_guard<std::mutex> lock(cgroups_paths_mu_);
    cgroups_paths_[bundle] = written.linux_spec.cgroups_path;
  }
  // An OCI runtime compiles the spec's seccomp profile itself.
  if (spec.linux_spec.seccomp && !options.oci_runtime) {
    absl::StatusOr<std::string> program = SeccompProgramOf(*spec.linux_spec.seccomp);
    if (!program.ok()) return annotate(program.status());
    if (absl::Status s = WriteFileAtomic(BundleFile(bundle, kSeccompProgramFile), *program, 0644,
                                         Durability::kVolatile);
        !s.ok()) {
      return annotate(s);
    }
  }

  // A pipe, or a socket when the monitor waits for a reply (the cgroup hand-off).
  UniqueFd status_r, status_w;
  if (options.place_init) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
      return annotate(ErrnoStatus(errno, "socketpair"));
    }
    status_r.Reset(sv[0]);
    status_w.Reset(sv[1]);
  } else if (absl::Status s = MakePipe(&status_r, &status_w); !s.ok()) {
    return annotate(s);
  }
  UniqueFd log_fd(::open(BundleFile(bundle, kMonitorLog).c_str(),
                         O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  if (!log_fd) return annotate(ErrnoStatus(errno, "open the monitor's log"));
  std::vector<std::string> args = {monitor_path_, "create", "--bundle",
                                   bundle,        "--id",   std::string(id)};
  if (!log_path.empty()) {
    args.push_back("--log");
    args.push_back(log_path);
  }
  if (options.stdin) {
    args.insert(args.end(), {"--stdin", "1", "--stdin-once", options.stdin_once ? "1" : "0"});
  }
  if (options.place_init) args.insert(args.end(), {"--cgroup-handoff", "1"});
  // An OCI runtime makes its container's mount namespace itself.
  const bool mount_template = mount_template_ && !options.oci_runtime;
  if (mount_template) args.insert(args.end(), {"--mount-template", "1"});
  AddHierarchies(args);
  // The monitor that waits already, or a new one; then a standby for the next create, started
  // while this one's monitor sets up the container.
  absl::StatusOr<pid_t> pid = 0;
  std::vector<int> handed = {log_fd.get(), status_w.get()};
  std::vector<std::pair<int, int>> spawn_fds = {{2, log_fd.get()},
                                                {kMonitorStatusFd, status_w.get()}};
  if (mount_template) {
    handed.push_back(mount_template_.get());
    spawn_fds.emplace_back(kMountTemplateFd, mount_template_.get());
  }
  if (!HandToStandby(args, handed)) {
    pid = Spawn({.path = monitor_path_,
                 .args = args,
                 .fds = spawn_fds,
                 .group = SpawnOptions::Group::kNewSession});
    if (!pid.ok()) return annotate(pid.status());
  }
  status_w.Reset();
  StartStandby();
  absl::StatusOr<std::string> line =
      ReadLine(status_r.get(), absl::Seconds(60), "wait for crib-monitor");
  absl::Status placed;
  if (line.ok() && absl::StartsWith(*line, "cgroup ")) {
    // The init waits outside its cgroup: the caller places it, the monitor then goes on (or,
    // told of the failure, kills the init and reports the error).
    pid_t init_pid = 0;
    placed = absl::SimpleAtoi(line->substr(7), &init_pid) && init_pid > 0
                 ? options.place_init(init_pid)
                 : absl::InternalError(absl::StrCat("crib-monitor: bad hand-off \"", *line, "\""));
    const std::string reply =
        placed.ok()
            ? std::string("ok\n")
            : absl::StrCat("error ", absl::StrReplaceAll(placed.message(), {{"\n", " "}}), "\n");
    (void)::send(status_r.get(), reply.data(), reply.size(), MSG_NOSIGNAL);
    line = ReadLine(status_r.get(), absl::Seconds(60), "wait for crib-monitor");
  }
  int wstatus;
  while (*pid > 0 && ::waitpid(*pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  if (!placed.ok()) return annotate(Annotate(placed, "place the init in its cgroup"));
  if (!line.ok()) return annotate(line.status());
  std::vector<std::string> words = absl::StrSplit(*line, ' ');
  if (words[0] == "error") {
    // The container's set-up failed (a mount, its cgroup, seccomp, its working directory...):
    // Unknown, as containerd reports what its OCI runtime could not do.
    return annotate(absl::UnknownError(line->substr(6)));
  }
  CreatedContainer created;
  uint32_t warnings = 0;
  if (words.size() != 4 || words[0] != "ready" ||
      !absl::SimpleAtoi(words[1], &created.monitor_pid) ||
      !absl::SimpleAtoi(words[2], &created.init_pid) || !absl::SimpleAtoi(words[3], &warnings)) {
    return annotate(absl::InternalError(
        absl::StrCat("crib-monitor: expected \"ready <pids>\", received \"", *line, "\"")));
  }
  if (warnings & 1) {
    created.warnings.push_back("oom_score_adj not applied: lowering it needs CAP_SYS_RESOURCE");
  }
  created.warnings.insert(created.warnings.end(), runtime_warnings.begin(), runtime_warnings.end());
  std::move(undo).Cancel();
  return created;
}

Launcher::~Launcher() {
  std::lock_guard<std::mutex> lock(standby_mu_);
  if (standby_) EndStandby(*standby_);
}

void Launcher::EndStandby(Standby& standby) {
  standby.socket.Reset();  // its end of the socket ends it
  if (standby.spawned > 0) {
    while (::waitpid(standby.spawned, nullptr, 0) < 0 && errno == EINTR) {
    }
    standby.spawned = 0;
  }
}

bool Launcher::HandToStandby(const std::vector<std::string>& args, std::vector<int> fds) const {
  std::optional<Standby> standby;
  {
    std::lock_guard<std::mutex> lock(standby_mu_);
    standby.swap(standby_);
  }
  if (!standby) return false;
  absl::Cleanup end = [&] { EndStandby(*standby); };
  int wstatus = 0;
  pid_t reaped;
  while ((reaped = ::waitpid(standby->spawned, &wstatus, 0)) < 0 && errno == EINTR) {
  }
  standby->spawned = 0;
  if (reaped < 0 || !WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) return false;
  // The arguments after the program name, each ended by a NUL; a packet arrives whole.
  std::string message;
  for (size_t i = 1; i < args.size(); ++i) message.append(args[i]).push_back('\0');
  // A standby that died before it read the fds closes them with its socket, and the create
  // then reads the status fd's end.
  return SendWithFds(standby->socket.get(), message, fds);
}

void Launcher::StartStandby() const {
  {
    // One at a time: concurrent creates would otherwise each start one and end all but one.
    std::lock_guard<std::mutex> lock(standby_mu_);
    if (standby_ || standby_starting_) return;
    standby_starting_ = true;
  }
  std::optional<Standby> started;
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0) {
    UniqueFd ours(sv[0]), theirs(sv[1]);
    absl::StatusOr<pid_t> pid = Spawn({.path = monitor_path_,
                                       .args = {monitor_path_, "standby"},
                                       .fds = {{kStandbyFd, theirs.get()}},
                                       .group = SpawnOptions::Group::kNewSession});
    if (pid.ok()) started = Standby{std::move(ours), *pid};
  }
  std::lock_guard<std::mutex> lock(standby_mu_);
  standby_starting_ = false;
  standby_ = std::move(started);
}

absl::StatusOr<std::string> Launcher::Request(const std::string& bundle, absl::string_view request,
                                              absl::Duration timeout,
                                              std::vector<UniqueFd>* fds) const {
  std::string path = BundleFile(bundle, kMonitorSocket);
  struct sockaddr_un addr;
  UniqueFd dir;
  if (int err = MakeSocketAddress(path, &addr, &dir)) {
    // A bundle directory that is gone means the monitor is gone with it.
    if (err == ENOENT) return absl::InternalError(absl::StrCat("crib-monitor is gone: ", path));
    return ErrnoStatus(err, absl::StrCat("monitor socket address ", path));
  }
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return ErrnoStatus(errno, "socket");
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    int err = errno;
    if (err == ENOENT || err == ECONNREFUSED) {
      return absl::InternalError(
          absl::StrCat("crib-monitor is gone: connect to ", path, ": ", ErrorText(err)));
    }
    return ErrnoStatus(err, absl::StrCat("connect to monitor ", path));
  }
  std::string line = absl::StrCat(request, "\n");
  if (::send(fd.get(), line.data(), line.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(line.size())) {
    return ErrnoStatus(errno, absl::StrCat("send to monitor ", path));
  }
  absl::StatusOr<std::string> reply_or =
      fds != nullptr ? ReadWithFds(fd.get(), timeout, absl::StrCat("monitor ", path), fds)
                     : ReadLine(fd.get(), timeout, absl::StrCat("monitor ", path));
  if (!reply_or.ok()) return reply_or.status();
  const std::string reply = reply_or->substr(0, reply_or->find('\n'));
  absl::string_view reply_view = reply;
  if (absl::StartsWith(reply, "ok")) return reply.size() > 3 ? reply.substr(3) : std::string();
  if (absl::ConsumePrefix(&reply_view, "refused "))
    return absl::FailedPreconditionError(reply_view);
  if (absl::ConsumePrefix(&reply_view, "busy ")) return absl::ResourceExhaustedError(reply_view);
  if (absl::ConsumePrefix(&reply_view, "error ")) return absl::UnknownError(reply_view);
  return absl::InternalError(absl::StrCat("monitor ", path, ": unexpected reply \"", reply, "\""));
}

absl::Status Launcher::Start(const std::string& bundle, absl::Time* started_at) const {
  absl::StatusOr<std::string> reply = Request(bundle, "start", absl::Seconds(60));
  if (!reply.ok()) return Annotate(reply.status(), "start container");
  if (started_at != nullptr) {
    // A monitor of an earlier cribd answers a bare "ok".
    int64_t ns = 0;
    *started_at = absl::SimpleAtoi(*reply, &ns) && ns > 0 ? absl::FromUnixNanos(ns) : absl::Now();
  }
  return absl::OkStatus();
}

absl::Status Launcher::Kill(const std::string& bundle, int signal) const {
  if (ReadExitFile(bundle).ok()) return absl::OkStatus();
  absl::StatusOr<std::string> reply =
      Request(bundle, absl::StrCat("kill ", signal), absl::Seconds(10));
  if (!reply.ok() && ReadExitFile(bundle).ok()) return absl::OkStatus();  // exited meanwhile
  if (!reply.ok()) return Annotate(reply.status(), "kill container");
  return absl::OkStatus();
}

absl::Status Launcher::ReopenLog(const std::string& bundle) const {
  absl::StatusOr<std::string> reply = Request(bundle, "reopen-log", absl::Seconds(10));
  if (!reply.ok()) return Annotate(reply.status(), "reopen container log");
  return absl::OkStatus();
}

absl::Status Launcher::KillCgroup(const std::string& bundle, int signal) const {
  ASSIGN_OR_RETURN(const std::string cgroups_path, SpecCgroupsPath(bundle));
  if (cgroups_path.empty()) return absl::OkStatus();
  cgroup::CgroupFiles cgroup;
  std::string error;
  if (!InitCgroup(cgroup, cgroups_path, &error)) return absl::InternalError(error);
  cgroup.Kill(signal);
  return absl::OkStatus();
}

absl::StatusOr<std::string> Launcher::CgroupPath(const std::string& bundle) const {
  ASSIGN_OR_RETURN(const std::string cgroups_path, SpecCgroupsPath(bundle));
  if (cgroups_path.empty()) {
    return absl::InternalError(absl::StrCat("container bundle ", bundle, " names no cgroup"));
  }
  return cgroup::CgroupPathOfSpec(cgroups_path);
}

absl::Status Launcher::Resize(const std::string& bundle, int rows, int cols) const {
  absl::StatusOr<std::string> reply =
      Request(bundle, absl::StrCat("resize ", rows, " ", cols), absl::Seconds(10));
  if (!reply.ok()) return Annotate(reply.status(), "resize container terminal");
  return absl::OkStatus();
}

absl::StatusOr<ExitInfo> Launcher::ReadExitFile(const std::string& bundle) {
  ASSIGN_OR_RETURN(std::string text, ReadFile(BundleFile(bundle, kExitFile)));
  ExitInfo info;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(line, absl::MaxSplits(' ', 1));
    int64_t v = 0;
    if (!absl::SimpleAtoi(kv.second, &v)) {
      return absl::InternalError(
          absl::StrCat("exit file of ", bundle, ": bad line \"", line, "\""));
    }
    if (kv.first == "exit_code") info.exit_code = static_cast<int>(v);
    if (kv.first == "signal") info.signal = static_cast<int>(v);
    if (kv.first == "oom_killed") info.oom_killed = v != 0;
    if (kv.first == "started_at") info.started_at = FromNanos(v);
    if (kv.first == "finished_at") info.finished_at = FromNanos(v);
  }
  return info;
}

absl::StatusOr<ContainerStatus> Launcher::Status(const std::string& bundle) const {
  ContainerStatus status;
  if (absl::StatusOr<ExitInfo> exit = ReadExitFile(bundle); exit.ok()) {
    status.state = ContainerState::kExited;
    status.exit = *exit;
    return status;
  }
  absl::StatusOr<std::string> reply = Request(bundle, "state", absl::Seconds(10));
  if (!reply.ok()) {
    // The monitor may have finished between the two reads.
    if (absl::StatusOr<ExitInfo> exit = ReadExitFile(bundle); exit.ok()) {
      status.exit = *exit;
      return status;
    }
    return Annotate(reply.status(), "container state");
  }
  std::vector<std::string> words = absl::StrSplit(*reply, ' ');
  if (words.size() != 2 || !absl::SimpleAtoi(words[1], &status.init_pid)) {
    return absl::InternalError(absl::StrCat("container state: unexpected \"", *reply, "\""));
  }
  status.state = words[0] == "created"   ? ContainerState::kCreated
                 : words[0] == "running" ? ContainerState::kRunning
                                         : ContainerState::kExited;
  if (status.state == ContainerState::kExited) {
    // The monitor writes the file right after; a short wait keeps the answer complete.
    absl::StatusOr<ExitInfo> exit = WaitExit(bundle, absl::Seconds(2));
    if (exit.ok()) status.exit = *exit;
  }
  return status;
}

absl::StatusOr<ExitInfo> Launcher::WaitExit(const std::string& bundle,
                                            absl::Duration timeout) const {
  const absl::Time deadline = absl::Now() + timeout;
  // Woken by the exit file's arrival (the monitor renames it into the bundle), watched before
  // the first look so that none is missed; without the watch, a look every 5 ms.
  UniqueFd watch(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
  if (watch && ::inotify_add_watch(watch.get(), bundle.c_str(), IN_MOVED_TO | IN_ONLYDIR) < 0) {
    watch.Reset();
  }
  while (true) {
    absl::StatusOr<ExitInfo> exit = ReadExitFile(bundle);
    if (exit.ok() || !absl::IsNotFound(exit.status())) return exit;
    const absl::Duration left = deadline - absl::Now();
    if (left < absl::ZeroDuration()) {
      return absl::DeadlineExceededError(absl::StrCat(
          "container in ", bundle, " has not exited after ", absl::FormatDuration(timeout)));
    }
    if (!watch) {
      absl::SleepFor(std::min(left, absl::Milliseconds(5)));
      continue;
    }
    struct pollfd p = {watch.get(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1) > 0) {
      alignas(struct inotify_event) char events[4096];
      while (::read(watch.get(), events, sizeof(events)) > 0) {
      }
    }
  }
}

namespace {

// The result line of an exec helper: the exit code (128 + signal), or why there is none.
absl::StatusOr<int> ParseExecResult(absl::string_view line) {
  std::vector<std::string> words = absl::StrSplit(line, absl::MaxSplits(' ', 1));
  int v = 0;
  if (words.size() == 2 && words[0] == "error") {
    return absl::UnknownError(absl::StrCat("exec in container: ", words[1]));
  }
  if (words.size() != 2 || (words[0] != "exit" && words[0] != "signal") ||
      !absl::SimpleAtoi(words[1], &v)) {
    return absl::InternalError(
        absl::StrCat("exec in container: the exec helper ended without a result (\"", line, "\")"));
  }
  return words[0] == "signal" ? 128 + v : v;
}

}  // namespace

absl::StatusOr<ExecResult> Launcher::Exec(const std::string& bundle,
                                          const ExecOptions& options) const {
  auto annotate = [&](const absl::Status& s) { return Annotate(s, "exec in container"); };
  ASSIGN_OR_RETURN(ContainerStatus status, Status(bundle));
  if (status.state != ContainerState::kRunning) {
    return absl::FailedPreconditionError("exec in container: the container is not running");
  }
  UniqueFd out_r, out_w, err_r, err_w, st_r, st_w;
  RETURN_IF_ERROR(annotate(MakePipe(&out_r, &out_w)));
  RETURN_IF_ERROR(annotate(MakePipe(&err_r, &err_w)));
  RETURN_IF_ERROR(annotate(MakePipe(&st_r, &st_w)));
  std::vector<std::string> args = {monitor_path_, "exec",  "--bundle",
                                   bundle,        "--pid", absl::StrCat(status.init_pid)};
  AddHierarchies(args);
  if (options.timeout > absl::ZeroDuration()) {
    args.push_back("--timeout-ms");
    args.push_back(absl::StrCat(std::max<int64_t>(1, absl::ToInt64Milliseconds(options.timeout))));
  }
  if (!options.args.empty()) {
    args.push_back("--");
    args.insert(args.end(), options.args.begin(), options.args.end());
  }
  absl::StatusOr<pid_t> pid =
      Spawn({.path = monitor_path_,
             .args = args,
             .fds = {{1, out_w.get()}, {2, err_w.get()}, {kMonitorStatusFd, st_w.get()}}});
  if (!pid.ok()) return annotate(pid.status());
  out_w.Reset();
  err_w.Reset();
  st_w.Reset();
  ExecResult result;
  std::string status_line;
  bool helper_done = false;
  absl::Time drain_deadline = absl::InfiniteFuture();
  // A helper that hangs past the timeout (it enforces it itself) is killed.
  absl::Time hard_deadline = options.timeout > absl::ZeroDuration()
                                 ? absl::Now() + options.timeout + absl::Seconds(10)
                                 : absl::InfiniteFuture();
  while (out_r || err_r || !helper_done) {
    std::vector<struct pollfd> fds;
    for (int fd : {out_r.get(), err_r.get(), helper_done ? -1 : st_r.get()}) {
      if (fd >= 0) fds.push_back({fd, POLLIN, 0});
    }
    absl::Time deadline = std::min(drain_deadline, hard_deadline);
    int ms = deadline == absl::InfiniteFuture()
                 ? -1
                 : static_cast<int>(
                       std::max<int64_t>(0, absl::ToInt64Milliseconds(deadline - absl::Now())));
    int n = ::poll(fds.data(), fds.size(), ms);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) {
      if (absl::Now() >= hard_deadline && !helper_done) ::kill(*pid, SIGKILL);
      if (absl::Now() >= drain_deadline) break;  // a descendant holds the pipes
      continue;
    }
    for (const auto& p : fds) {
      if (p.revents == 0) continue;
      char buf[65536];
      ssize_t r = ::read(p.fd, buf, sizeof(buf));
      if (r < 0 && errno == EINTR) continue;
      if (p.fd == st_r.get()) {
        if (r > 0) {
          status_line.append(buf, r);
        } else {
          helper_done = true;
          drain_deadline = absl::Now() + absl::Milliseconds(200);
        }
        continue;
      }
      std::string& out = p.fd == out_r.get() ? result.stdout_data : result.stderr_data;
      if (r > 0) {
        size_t room = options.max_output > out.size() ? options.max_output - out.size() : 0;
        out.append(buf, std::min<size_t>(room, r));
      } else {
        (p.fd == out_r.get() ? out_r : err_r).Reset();
      }
    }
  }
  int wstatus;
  while (::waitpid(*pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  status_line = status_line.substr(0, status_line.find('\n'));
  if (status_line == "timeout") {
    return absl::DeadlineExceededError(absl::StrCat("exec in container: timed out after ",
                                                    absl::FormatDuration(options.timeout),
                                                    ", the process was killed"));
  }
  ASSIGN_OR_RETURN(result.exit_code, ParseExecResult(status_line));
  return result;
}

absl::Status Launcher::Remove(const std::string& bundle, std::string* cgroup_path) const {
  absl::StatusOr<std::string> cgroups_path = SpecCgroupsPath(bundle);
  if (!cgroups_path.ok()) {
    if (absl::IsNotFound(cgroups_path.status())) return absl::OkStatus();  // removed already
    return Annotate(cgroups_path.status(), "remove container");
  }
  if (cgroup_path != nullptr) *cgroup_path = *cgroups_path;
  if (!ReadExitFile(bundle).ok()) {
    absl::Status killed = Kill(bundle, SIGKILL);
    if (killed.ok()) {
      // The monitor records the exit; if it is gone, the cgroup's removal kills the rest.
      (void)WaitExit(bundle, kKillGrace);
    }
  }
  absl::StatusOr<std::optional<OciRuntime>> runtime = RuntimeOf(bundle);
  if (!runtime.ok()) return Annotate(runtime.status(), "remove container");
  if (*runtime) {
    // The runtime's state of the container (and whatever of it still runs).
    RETURN_IF_ERROR(Annotate(RunRuntime(**runtime, bundle, {"delete", "--force", (*runtime)->id}),
                             "remove container"));
    RemoveRuntimeCgroupParents(*cgroups_path);
  }
  RETURN_IF_ERROR(Annotate(RemoveCgroup(*cgroups_path), "remove container"));
  if (::unlink(BundleFile(bundle, kSpecFile).c_str()) != 0 && errno != ENOENT) {
    return Annotate(ErrnoStatus(errno, absl::StrCat("unlink ", BundleFile(bundle, kSpecFile))),
                    "remove container");
  }
  ForgetCgroupsPath(bundle);
  return absl::OkStatus();
}

namespace {

absl::StatusOr<UniqueFd> ConnectLoopback(int port, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  int last_error = ECONNREFUSED;
  for (int family : {AF_INET, AF_INET6}) {
    UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) return ErrnoStatus(errno, "socket");
    struct sockaddr_storage addr = {};
    socklen_t len;
    if (family == AF_INET) {
      auto* in = reinterpret_cast<sockaddr_in*>(&addr);
      in->sin_family = AF_INET;
      in->sin_port = htons(static_cast<uint16_t>(port));
      in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      len = sizeof(*in);
    } else {
      auto* in6 = reinterpret_cast<sockaddr_in6*>(&addr);
      in6->sin6_family = AF_INET6;
      in6->sin6_port = htons(static_cast<uint16_t>(port));
      in6->sin6_addr = in6addr_loopback;
      len = sizeof(*in6);
    }
    int err = 0;
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0) {
      err = errno;
      if (err == EINPROGRESS) {
        err = ETIMEDOUT;
        while (true) {
          int ms = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
          if (ms <= 0) break;
          struct pollfd p = {fd.get(), POLLOUT, 0};
          int n = ::poll(&p, 1, ms);
          if (n < 0 && errno == EINTR) continue;
          if (n <= 0) break;
          socklen_t err_len = sizeof(err);
          if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &err_len) != 0) err = errno;
          break;
        }
      }
    }
    if (err == 0) return fd;
    last_error = err;
    // Only a missing listener (or no IPv4 at all) is worth the IPv6 try.
    if (err != ECONNREFUSED && err != ENETUNREACH && err != EADDRNOTAVAIL && err != EAFNOSUPPORT) {
      break;
    }
  }
  return ErrnoStatus(last_error, absl::StrCat("connect to localhost:", port));
}

}  // namespace

ExecProcess::~ExecProcess() {
  Kill();
  // The helper exits as soon as the killed process is reaped; a helper that hangs goes too.
  absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (true) {
    pid_t r = ::waitpid(helper_, nullptr, WNOHANG);
    if (r == helper_ || (r < 0 && errno != EINTR)) return;
    if (absl::Now() > deadline) {
      ::kill(helper_, SIGKILL);
      while (::waitpid(helper_, nullptr, 0) < 0 && errno == EINTR) {
      }
      return;
    }
    absl::SleepFor(absl::Milliseconds(2));
  }
}

void ExecProcess::Kill() {
  if (control_ && !exit_code_) ::shutdown(control_.get(), SHUT_WR);
}

absl::StatusOr<int> ExecProcess::ExitCode() {
  if (exit_code_) return *exit_code_;
  while (pending_.find('\n') == std::string::npos) {
    struct pollfd p = {control_.get(), POLLIN, 0};
    if (::poll(&p, 1, -1) < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "exec in container: poll the exec helper");
    }
    char buf[256];
    ssize_t n = ::read(control_.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    pending_.append(buf, n);
  }
  absl::StatusOr<int> code = ParseExecResult(pending_.substr(0, pending_.find('\n')));
  if (code.ok()) exit_code_ = *code;
  return code;
}

absl::Status ExecProcess::Resize(int rows, int cols) {
  if (!pty_) return absl::FailedPreconditionError("resize exec terminal: the exec has no tty");
  struct winsize ws = {};
  ws.ws_row = static_cast<unsigned short>(rows);
  ws.ws_col = static_cast<unsigned short>(cols);
  if (::ioctl(pty_.get(), TIOCSWINSZ, &ws) != 0) {
    return ErrnoStatus(errno, "resize exec terminal: ioctl TIOCSWINSZ");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ExecProcess>> Launcher::StartExec(
    const std::string& bundle, const StreamExecOptions& options) const {
  auto annotate = [&](const absl::Status& s) { return Annotate(s, "exec in container"); };
  ASSIGN_OR_RETURN(ContainerStatus status, Status(bundle));
  if (status.state != ContainerState::kRunning) {
    return absl::FailedPreconditionError("exec in container: the container is not running");
  }
  UniqueFd in_r, in_w, out_r, out_w, err_r, err_w;
  if (!options.tty) {
    if (options.stdin) RETURN_IF_ERROR(annotate(MakePipe(&in_r, &in_w)));
    if (options.stdout) RETURN_IF_ERROR(annotate(MakePipe(&out_r, &out_w)));
    if (options.stderr) RETURN_IF_ERROR(annotate(MakePipe(&err_r, &err_w)));
  }
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    return annotate(ErrnoStatus(errno, "socketpair"));
  }
  UniqueFd control(sv[0]), helper_end(sv[1]);
  std::vector<std::string> args = {monitor_path_,   "exec",  "--bundle",
                                   bundle,          "--pid", absl::StrCat(status.init_pid),
                                   "--interactive", "1"};
  if (options.tty) args.insert(args.end(), {"--tty", "1"});
  AddHierarchies(args);
  if (!options.args.empty()) {
    args.push_back("--");
    args.insert(args.end(), options.args.begin(), options.args.end());
  }
  std::vector<std::pair<int, int>> helper_fds = {{kMonitorStatusFd, helper_end.get()}};
  if (in_r) helper_fds.emplace_back(0, in_r.get());
  if (out_w) helper_fds.emplace_back(1, out_w.get());
  if (err_w) helper_fds.emplace_back(2, err_w.get());
  absl::StatusOr<pid_t> pid =
      Spawn({.path = monitor_path_, .args = args, .fds = std::move(helper_fds)});
  if (!pid.ok()) return annotate(pid.status());
  in_r.Reset();
  out_w.Reset();
  err_w.Reset();
  helper_end.Reset();
  absl::Cleanup reap = [&] {
    ::kill(*pid, SIGKILL);  // its process, if it forked one, dies with it
    while (::waitpid(*pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  };
  std::vector<UniqueFd> fds;
  absl::StatusOr<std::string> data =
      ReadWithFds(control.get(), absl::Seconds(60), "wait for the exec helper", &fds);
  if (!data.ok()) return annotate(data.status());
  std::string line = data->substr(0, data->find('\n'));
  if (line != "started") {
    absl::StatusOr<int> result = ParseExecResult(line);
    if (!result.ok()) return result.status();
    return absl::InternalError(
        absl::StrCat("exec in container: the exec helper ended before starting (\"", line, "\")"));
  }
  UniqueFd pty;
  if (options.tty) {
    if (fds.size() != 1) {
      return absl::InternalError("exec in container: the exec helper sent no terminal");
    }
    out_r = std::move(fds[0]);
    pty.Reset(::fcntl(out_r.get(), F_DUPFD_CLOEXEC, 0));
    if (options.stdin) in_w.Reset(::fcntl(out_r.get(), F_DUPFD_CLOEXEC, 0));
    if (!pty || (options.stdin && !in_w)) return annotate(ErrnoStatus(errno, "dup the terminal"));
  }
  std::move(reap).Cancel();
  auto process = std::make_unique<ExecProcess>(*pid, std::move(control), std::move(in_w),
                                               std::move(out_r), std::move(err_r), std::move(pty));
  process->pending_ = data->substr(std::min(line.size() + 1, data->size()));
  return process;
}

absl::StatusOr<Attachment> Launcher::Attach(const std::string& bundle,
                                            const AttachOptions& options) const {
  std::vector<UniqueFd> fds;
  absl::StatusOr<std::string> reply =
      Request(bundle,
              absl::StrCat("attach ", options.stdin ? 1 : 0, " ", options.stdout ? 1 : 0, " ",
                           options.stderr ? 1 : 0),
              absl::Seconds(10), &fds);
  if (!reply.ok()) return Annotate(reply.status(), "attach to container");
  size_t expected = (options.stdin ? 1 : 0) + (options.stdout ? 1 : 0) + (options.stderr ? 1 : 0);
  if (fds.size() != expected) {
    return absl::InternalError(absl::StrCat("attach to container: the monitor sent ", fds.size(),
                                            " fds, expected ", expected));
  }
  Attachment attachment;
  size_t next = 0;
  if (options.stdout) attachment.stdout_fd = std::move(fds[next++]);
  if (options.stderr) attachment.stderr_fd = std::move(fds[next++]);
  if (options.stdin) attachment.stdin_fd = std::move(fds[next++]);
  return attachment;
}

absl::StatusOr<UniqueFd> DialInNetns(const std::string& netns_path, int port,
                                     absl::Duration timeout) {
  auto annotate = [&](const absl::Status& s) {
    return Annotate(s, absl::StrCat("dial port ", port, " in network namespace ",
                                    netns_path.empty() ? "of the host" : netns_path));
  };
  if (port < 1 || port > 65535) {
    return annotate(absl::InvalidArgumentError(absl::StrCat("port ", port, " is out of range")));
  }
  UniqueFd ns;
  if (!netns_path.empty()) {
    ns.Reset(::open(netns_path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!ns) return annotate(ErrnoStatus(errno, absl::StrCat("open ", netns_path)));
  }
  // setns(CLONE_NEWNET) changes only the calling thread, which ends right after: the socket
  // keeps the namespace it was made in.
  absl::StatusOr<UniqueFd> result = absl::InternalError("the dialing thread did not run");
  try {
    std::thread dialer([&] {
      if (ns && ::setns(ns.get(), CLONE_NEWNET) != 0) {
        result = ErrnoStatus(errno, "setns");
        return;
      }
      result = ConnectLoopback(port, timeout);
    });
    dialer.join();
  } catch (const std::system_error& e) {
    return annotate(absl::ResourceExhaustedError(absl::StrCat("start a thread: ", e.what())));
  }
  if (!result.ok()) return annotate(result.status());
  return result;
}

}  // namespace crib::runtime
