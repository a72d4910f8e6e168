#include "pod/userns.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/unique_fd.h"
#include "pod/pins.h"

namespace crib::pod {
namespace {

constexpr uint64_t kIdSpace = uint64_t{1} << 32;
// The most lines /proc/<pid>/uid_map takes (Linux 4.15+).
constexpr size_t kMaxMappings = 340;

const char* ModeName(NamespaceMode mode) {
  switch (mode) {
    case NamespaceMode::kPod:
      return "POD";
    case NamespaceMode::kContainer:
      return "CONTAINER";
    case NamespaceMode::kNode:
      return "NODE";
    case NamespaceMode::kTarget:
      return "TARGET";
  }
  return "?";
}

absl::Status ValidateMappings(const std::vector<IdMapping>& mappings, const char* field) {
  if (mappings.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("userns_options.", field, ": mode POD needs at least one mapping"));
  }
  if (mappings.size() > kMaxMappings) {
    return absl::InvalidArgumentError(absl::StrCat("userns_options.", field, ": ", mappings.size(),
                                                   " mappings, the kernel takes ", kMaxMappings));
  }
  for (size_t i = 0; i < mappings.size(); ++i) {
    const IdMapping& m = mappings[i];
    const std::string name = absl::StrCat("userns_options.", field, "[", i, "]");
    if (m.length == 0) return absl::InvalidArgumentError(absl::StrCat(name, ": length is 0"));
    // The last id, 2^32 - 1, is (uid_t)-1, which no map may hold.
    if (uint64_t{m.container_id} + m.length >= kIdSpace ||
        uint64_t{m.host_id} + m.length >= kIdSpace) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, ": container_id ", m.container_id, ", host_id ", m.host_id, " and length ",
          m.length, " run past the last id a map may hold (", kIdSpace - 2, ")"));
    }
    for (size_t j = 0; j < i; ++j) {
      const IdMapping& o = mappings[j];
      auto overlap = [&](uint32_t a, uint32_t b) {
        return uint64_t{a} < uint64_t{b} + o.length && uint64_t{b} < uint64_t{a} + m.length;
      };
      if (overlap(m.container_id, o.container_id)) {
        return absl::InvalidArgumentError(absl::StrCat(
            name, ": its container ids overlap those of userns_options.", field, "[", j, "]"));
      }
      if (overlap(m.host_id, o.host_id)) {
        return absl::InvalidArgumentError(absl::StrCat(
            name, ": its host ids overlap those of userns_options.", field, "[", j, "]"));
      }
    }
  }
  if (HostIdOf(mappings, 0) < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("userns_options.", field, ": container id 0 (the pod's root) is not mapped"));
  }
  return absl::OkStatus();
}

// Container ranges (start, length), sorted: the shape that uids and gids must share.
std::vector<std::pair<uint32_t, uint32_t>> Shape(const std::vector<IdMapping>& mappings) {
  std::vector<std::pair<uint32_t, uint32_t>> shape;
  for (const IdMapping& m : mappings) shape.emplace_back(m.container_id, m.length);
  std::sort(shape.begin(), shape.end());
  return shape;
}

// What the child that makes the namespaces reports: a step (an index into kSteps, or
// kSysctlStep + the sysctl's index) and an errno; step -1 with errno 0 is success.
struct ChildReport {
  int step = -1;
  int err = 0;
};
constexpr const char* kSteps[] = {"unshare the user namespace", "set uid and gid 0",
                                  "unshare network, ipc and uts namespaces", "set the hostname"};
constexpr int kSysctlStep = 100;

// Runs in the forked child: only system calls, nothing that allocates.
[[noreturn]] void MakeNamespaces(int report_fd, int go_fd, const UsernsPins& pins,
                                 const std::vector<std::pair<std::string, std::string>>& sysctls) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  auto report = [report_fd](int step, int err) {
    ChildReport r{step, err};
    (void)!::write(report_fd, &r, sizeof(r));
  };
  auto fail = [&](int step, int err) {
    report(step, err);
    _exit(1);
  };
  auto wait_go = [go_fd]() {
    char go;
    ssize_t n;
    do {
      n = ::read(go_fd, &go, 1);
    } while (n < 0 && errno == EINTR);
    if (n != 1) _exit(1);
  };
  if (::unshare(CLONE_NEWUSER) != 0) fail(0, errno);
  report(-1, 0);
  wait_go();  // the mappings are written
  if (::setresgid(0, 0, 0) != 0 || ::setresuid(0, 0, 0) != 0) fail(1, errno);
  if (::unshare(CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS) != 0) fail(2, errno);
  if (!pins.hostname.empty() && ::sethostname(pins.hostname.data(), pins.hostname.size()) != 0) {
    fail(3, errno);
  }
  for (size_t i = 0; i < sysctls.size(); ++i) {
    const int fd = ::open(sysctls[i].first.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) fail(kSysctlStep + static_cast<int>(i), errno);
    const std::string& value = sysctls[i].second;
    if (::write(fd, value.data(), value.size()) < 0) fail(kSysctlStep + static_cast<int>(i), errno);
    ::close(fd);
  }
  report(-1, 0);
  wait_go();  // pinned: the parent closes the pipe, and the read ends
  _exit(0);
}

absl::Status WriteMap(pid_t pid, const char* file, const std::vector<IdMapping>& mappings) {
  const std::string path = absl::StrCat("/proc/", pid, "/", file);
  const std::string text = MapText(mappings);
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return ErrnoStatus(errno, absl::StrCat("open ", path));
  // The kernel takes the whole map in one write.
  if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    return ErrnoStatus(errno, absl::StrCat("write ", path, " \"", text, "\""));
  }
  return absl::OkStatus();
}

bool ReadReport(int fd, ChildReport* report) {
  ssize_t n;
  do {
    n = ::read(fd, report, sizeof(*report));
  } while (n < 0 && errno == EINTR);
  return n == sizeof(*report);
}

absl::Status ReportStatus(const ChildReport& r, const UsernsPins& pins) {
  if (r.step >= kSysctlStep) {
    const size_t i = static_cast<size_t>(r.step - kSysctlStep);
    const std::string& sysctl = i < pins.sysctls.size() ? pins.sysctls[i] : "?";
    const std::string key = sysctl.substr(0, sysctl.find('='));
    if (r.err == ENOENT) {
      return absl::InvalidArgumentError(
          absl::StrCat("sysctl ", key, ": this kernel has no such sysctl"));
    }
    return WithCode(ErrnoStatus(r.err, absl::StrCat("sysctl ", sysctl)),
                    r.err == EINVAL || r.err == ERANGE ? absl::StatusCode::kInvalidArgument
                                                       : absl::StatusCode::kInternal);
  }
  const char* what = r.step >= 0 && r.step < static_cast<int>(std::size(kSteps))
                         ? kSteps[r.step]
                         : "make namespaces";
  return ErrnoStatus(r.err, what);
}

// A user namespace mapping container id 0 to `host_id`, held by a child process that waits
// until it is killed; its fd in `ns`.
struct ProbeNamespace {
  pid_t pid = 0;
  UniqueFd ns;
  ~ProbeNamespace() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
};

absl::Status MakeProbeNamespace(ProbeNamespace* probe) {
  int ready[2];
  if (::pipe2(ready, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe");
  UniqueFd ready_r(ready[0]), ready_w(ready[1]);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) return ErrnoStatus(errno, "fork");
  if (pid == 0) {
    // A cribd that exits before this line (stopped right after its start) sends no signal.
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || ::getppid() != parent) ::_exit(0);
    const char result = ::unshare(CLONE_NEWUSER) == 0 ? 1 : 0;
    (void)!::write(ready_w.get(), &result, 1);
    for (;;) ::pause();
  }
  probe->pid = pid;
  ready_w.Reset();
  char result = 0;
  if (::read(ready_r.get(), &result, 1) != 1 || result != 1) {
    return absl::FailedPreconditionError("the kernel does not make user namespaces");
  }
  RETURN_IF_ERROR(WriteMap(pid, "uid_map", {{0, 65534, 1}}));
  RETURN_IF_ERROR(WriteMap(pid, "gid_map", {{0, 65534, 1}}));
  const std::string path = absl::StrCat("/proc/", pid, "/ns/user");
  probe->ns.Reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!probe->ns) return ErrnoStatus(errno, absl::StrCat("open ", path));
  return absl::OkStatus();
}

UsernsSupport Probe(const std::string& root_dir) {
  UsernsSupport support;
  ProbeNamespace probe;
  absl::Status status = MakeProbeNamespace(&probe);
  if (status.ok()) status = IdmappedCopy(AT_FDCWD, root_dir, probe.ns.get(), root_dir).status();
  if (status.ok()) {
    UniqueFd fs(static_cast<int>(::syscall(SYS_fsopen, "tmpfs", FSOPEN_CLOEXEC)));
    if (!fs || ::syscall(SYS_fsconfig, fs.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0) {
      status = ErrnoStatus(errno, "make a tmpfs");
    } else {
      UniqueFd mnt(static_cast<int>(::syscall(SYS_fsmount, fs.get(), FSMOUNT_CLOEXEC, 0)));
      status = mnt ? IdmappedCopy(mnt.get(), "", probe.ns.get(), "a tmpfs").status()
                   : ErrnoStatus(errno, "mount a tmpfs");
    }
  }
  support.supported = status.ok();
  if (!status.ok()) support.reason = std::string(status.message());
  return support;
}

}  // namespace

absl::StatusOr<UniqueFd> IdmappedCopy(int dir_fd, const std::string& path, int userns_fd,
                                      const std::string& what) {
  UniqueFd tree(static_cast<int>(
      ::syscall(SYS_open_tree, dir_fd, path.c_str(),
                OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (path.empty() ? AT_EMPTY_PATH : 0))));
  if (!tree) return ErrnoStatus(errno, absl::StrCat("open_tree ", what));
  struct mount_attr attr;
  std::memset(&attr, 0, sizeof(attr));
  attr.attr_set = MOUNT_ATTR_IDMAP;
  attr.userns_fd = static_cast<uint64_t>(userns_fd);
  if (::syscall(SYS_mount_setattr, tree.get(), "", AT_EMPTY_PATH, &attr, sizeof(attr)) != 0) {
    return ErrnoStatus(errno, absl::StrCat("id-mapped mount of ", what));
  }
  return tree;
}

absl::Status ValidateUserNamespace(const NamespaceOptions& ns) {
  if (ns.user == NamespaceMode::kNode) return absl::OkStatus();
  if (ns.user != NamespaceMode::kPod) {
    return absl::InvalidArgumentError(absl::StrCat(
        "userns_options.mode ", ModeName(ns.user),
        " is not supported: a pod's containers share the pod's user namespace (POD) or the "
        "host's (NODE)"));
  }
  RETURN_IF_ERROR(ValidateMappings(ns.uid_mappings, "uids"));
  RETURN_IF_ERROR(ValidateMappings(ns.gid_mappings, "gids"));
  if (Shape(ns.uid_mappings) != Shape(ns.gid_mappings)) {
    return absl::InvalidArgumentError(
        "userns_options: uids and gids must map the same container ranges (container_id and "
        "length)");
  }
  const struct {
    NamespaceMode mode;
    const char* name;
  } host_modes[] = {{ns.network, "network"}, {ns.ipc, "ipc"}, {ns.pid, "pid"}};
  for (const auto& [mode, name] : host_modes) {
    if (mode == NamespaceMode::kNode) {
      return absl::InvalidArgumentError(
          absl::StrCat("userns_options.mode POD cannot go with the host's ", name, " namespace (",
                       name, " NODE)"));
    }
  }
  return absl::OkStatus();
}

std::string MapText(const std::vector<IdMapping>& mappings) {
  std::string text;
  for (const IdMapping& m : mappings) {
    absl::StrAppend(&text, m.container_id, " ", m.host_id, " ", m.length, "\n");
  }
  return text;
}

int64_t HostIdOf(const std::vector<IdMapping>& mappings, uint32_t container_id) {
  for (const IdMapping& m : mappings) {
    if (container_id >= m.container_id &&
        uint64_t{container_id} < uint64_t{m.container_id} + m.length) {
      return int64_t{m.host_id} + (container_id - m.container_id);
    }
  }
  return -1;
}

absl::Status PinUserNamespace(const UsernsPins& pins) {
  // Everything the child needs, computed before the fork.
  std::vector<std::pair<std::string, std::string>> sysctls;
  for (const std::string& assignment : pins.sysctls) {
    SysctlWrite w = ParseSysctl(assignment);
    sysctls.emplace_back(std::move(w.file), std::move(w.value));
  }
  const std::string* paths[] = {&pins.user_path, &pins.net_path, &pins.ipc_path, &pins.uts_path};
  static constexpr const char* kKinds[] = {"user", "net", "ipc", "uts"};
  std::vector<std::string> made;
  auto undo = [&made] {
    for (const std::string& path : made) (void)RemovePin(path);
  };
  for (const std::string* path : paths) {
    if (absl::Status created = CreatePinFile(*path); !created.ok()) {
      undo();
      return created;
    }
    made.push_back(*path);
  }
  int report[2], go[2];
  if (::pipe2(report, O_CLOEXEC) != 0) {
    undo();
    return ErrnoStatus(errno, "pipe");
  }
  UniqueFd report_r(report[0]), report_w(report[1]);
  if (::pipe2(go, O_CLOEXEC) != 0) {
    undo();
    return ErrnoStatus(errno, "pipe");
  }
  UniqueFd go_r(go[0]), go_w(go[1]);
  const pid_t pid = ::fork();
  if (pid < 0) {
    undo();
    return ErrnoStatus(errno, "fork");
  }
  if (pid == 0) {
    // Its last read ends when the parent closes the pipe: it must not hold the write end.
    ::close(go_w.get());
    ::close(report_r.get());
    MakeNamespaces(report_w.get(), go_r.get(), pins, sysctls);
  }
  report_w.Reset();
  go_r.Reset();
  absl::Status status = [&]() -> absl::Status {
    ChildReport r;
    if (!ReadReport(report_r.get(), &r)) return absl::InternalError("the namespace maker died");
    if (r.step >= 0) return ReportStatus(r, pins);
    RETURN_IF_ERROR(WriteMap(pid, "uid_map", pins.uid_mappings));
    RETURN_IF_ERROR(WriteMap(pid, "gid_map", pins.gid_mappings));
    if (::write(go_w.get(), "g", 1) != 1) return ErrnoStatus(errno, "tell the namespace maker");
    if (!ReadReport(report_r.get(), &r)) return absl::InternalError("the namespace maker died");
    if (r.step >= 0) return ReportStatus(r, pins);
    for (size_t i = 0; i < std::size(kKinds); ++i) {
      const std::string ns = absl::StrCat("/proc/", pid, "/ns/", kKinds[i]);
      if (::mount(ns.c_str(), paths[i]->c_str(), "none", MS_BIND, nullptr) != 0) {
        return ErrnoStatus(
            errno, absl::StrCat("bind-mount the new ", kKinds[i], " namespace on ", *paths[i]));
      }
    }
    return absl::OkStatus();
  }();
  go_w.Reset();  // the child's last read ends
  if (!status.ok()) ::kill(pid, SIGKILL);
  while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
  if (!status.ok()) undo();
  return status;
}

const UsernsSupport& UserNamespaceSupport(const std::string& root_dir) {
  static std::once_flag once;
  static UsernsSupport support;
  std::call_once(once, [&] {
    support = Probe(root_dir);
    if (support.supported) {
      spdlog::info("user namespaces: supported (id-mapped mounts of {} and of tmpfs)", root_dir);
    } else {
      spdlog::warn("user namespaces: not supported: {}", support.reason);
    }
  });
  return support;
}

}  // namespace crib::pod
