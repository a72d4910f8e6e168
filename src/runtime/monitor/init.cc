#include "runtime/monitor/init.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/openat2.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "cgroup/cgroup_files.h"
#include "common/mountinfo_path.h"
#include "runtime/capability_names.h"
#include "runtime/monitor/error_text.h"
#include "runtime/monitor/fd_passing.h"

namespace crib::runtime {
namespace {

bool CapabilityMask(const std::vector<std::string>& names, int last_cap, uint64_t* mask,
                    std::string* error) {
  *mask = 0;
  for (const auto& name : names) {
    int found = -1;
    for (int i = 0; i < static_cast<int>(std::size(kCapabilityNames)); ++i) {
      if (name == kCapabilityNames[i]) found = i;
    }
    if (found < 0) {
      *error = "unknown capability \"" + name + "\"";
      return false;
    }
    if (found <= last_cap) *mask |= 1ULL << found;  // unknown to this kernel: skipped
  }
  return true;
}

struct MountFlag {
  const char* name;
  bool clear;
  unsigned long flag;
};

constexpr MountFlag kMountFlags[] = {
    {"ro", false, MS_RDONLY},
    {"rw", true, MS_RDONLY},
    {"nosuid", false, MS_NOSUID},
    {"suid", true, MS_NOSUID},
    {"nodev", false, MS_NODEV},
    {"dev", true, MS_NODEV},
    {"noexec", false, MS_NOEXEC},
    {"exec", true, MS_NOEXEC},
    {"sync", false, MS_SYNCHRONOUS},
    {"async", true, MS_SYNCHRONOUS},
    {"dirsync", false, MS_DIRSYNC},
    {"remount", false, MS_REMOUNT},
    {"mand", false, MS_MANDLOCK},
    {"nomand", true, MS_MANDLOCK},
    {"noatime", false, MS_NOATIME},
    {"atime", true, MS_NOATIME},
    {"nodiratime", false, MS_NODIRATIME},
    {"diratime", true, MS_NODIRATIME},
    {"relatime", false, MS_RELATIME},
    {"norelatime", true, MS_RELATIME},
    {"strictatime", false, MS_STRICTATIME},
    {"nostrictatime", true, MS_STRICTATIME},
};

constexpr struct {
  const char* name;
  unsigned long flag;
} kPropagation[] = {
    {"private", MS_PRIVATE},       {"rprivate", MS_PRIVATE | MS_REC},
    {"shared", MS_SHARED},         {"rshared", MS_SHARED | MS_REC},
    {"slave", MS_SLAVE},           {"rslave", MS_SLAVE | MS_REC},
    {"unbindable", MS_UNBINDABLE}, {"runbindable", MS_UNBINDABLE | MS_REC},
};

unsigned long PropagationFlag(const std::string& name) {
  for (const auto& p : kPropagation) {
    if (name == p.name) return p.flag;
  }
  return 0;
}

// The mount point (from /proc/self/mountinfo) that holds `path`: the longest one above it.
bool MountPointOf(const std::string& path, std::string* mount_point, std::string* error) {
  FILE* f = ::fopen("/proc/self/mountinfo", "re");
  if (f == nullptr) {
    *error = std::string("open /proc/self/mountinfo: ") + ErrorText(errno);
    return false;
  }
  mount_point->clear();
  char* line = nullptr;
  size_t size = 0;
  while (::getline(&line, &size, f) > 0) {
    // "id parent major:minor root mount-point ...", with spaces and such as \ooo escapes.
    const char* field = line;
    for (int i = 0; i < 4 && field != nullptr; ++i) {
      field = std::strchr(field, ' ');
      if (field != nullptr) ++field;
    }
    if (field == nullptr) continue;
    const std::string point =
        UnescapeMountInfoPath(std::string_view(field, std::strcspn(field, " ")));
    const bool above = point == "/" || path == point ||
                       (path.compare(0, point.size(), point) == 0 && path[point.size()] == '/');
    if (above && point.size() > mount_point->size()) *mount_point = point;
  }
  ::free(line);
  ::fclose(f);
  if (mount_point->empty()) {
    *error = "no mount holds the rootfs " + path;
    return false;
  }
  return true;
}

bool ParseMount(const Mount& m, MountStep* step, std::string* error) {
  if (m.destination.empty() || m.destination[0] != '/') {
    *error = "mount destination \"" + m.destination + "\" is not absolute";
    return false;
  }
  step->source = m.source;
  step->target = m.destination;
  step->type = m.type;
  for (const auto& opt : m.options) {
    if (opt == "bind" || opt == "rbind") {
      step->bind = true;
      step->recursive |= opt == "rbind";
      continue;
    }
    if (opt == "rro") {
      step->recursive_readonly = true;
      continue;
    }
    if (unsigned long p = PropagationFlag(opt)) {
      step->propagation = p;
      continue;
    }
    bool known = false;
    for (const auto& f : kMountFlags) {
      if (opt == f.name) {
        step->flags = f.clear ? step->flags & ~f.flag : step->flags | f.flag;
        known = true;
      }
    }
    if (!known) step->data += (step->data.empty() ? "" : ",") + opt;
  }
  if (m.type == "bind") step->bind = true;
  if (!m.uid_mappings.empty() || !m.gid_mappings.empty()) {
    if (!step->bind) {
      *error = "mount " + m.destination + ": only bind mounts can be id-mapped";
      return false;
    }
    step->idmap = true;
  }
  if (step->bind) {
    struct stat st;
    if (::stat(m.source.c_str(), &st) != 0) {
      *error = "mount source " + m.source + " for " + m.destination + ": " + ErrorText(errno);
      return false;
    }
    step->file_target = !S_ISDIR(st.st_mode);
  }
  step->dev_tmpfs = m.destination == "/dev" && m.type == "tmpfs";
  if (m.type == "cgroup") {
    // runc's meaning on v1: a tmpfs holding the container's cgroup in each hierarchy.
    step->cgroup_v1 = true;
    step->type = "tmpfs";
    step->source = "tmpfs";
    step->data = step->data.empty() ? "mode=755" : step->data + ",mode=755";
    step->cgroup_readonly = (step->flags & MS_RDONLY) != 0;
    step->flags &= ~MS_RDONLY;
  }
  return true;
}

// ---- Everything below runs in the child: no allocation, no logging. ----

[[noreturn]] void Fail(int sync_fd, const char* what, const char* path, int err) {
  SyncMessage msg;
  msg.type = kSyncError;
  msg.err = err;
  size_t n = 0;
  for (const char* s : {what, path}) {
    if (s == nullptr) continue;
    if (n > 0 && n < sizeof(msg.what) - 1) msg.what[n++] = ' ';
    for (; *s != '\0' && n < sizeof(msg.what) - 1; ++s) msg.what[n++] = *s;
  }
  msg.what[n] = '\0';
  (void)!::write(sync_fd, &msg, sizeof(msg));
  _exit(1);
}

// Joins a..b into buf; false when it does not fit.
bool JoinPath(char* buf, size_t size, const char* a, const char* b) {
  size_t la = std::strlen(a), lb = std::strlen(b);
  if (la + lb + 2 > size) return false;
  std::memcpy(buf, a, la);
  buf[la] = '/';
  std::memcpy(buf + la + 1, b, lb + 1);
  return true;
}

int MakeDirs(const char* path) {
  char buf[PATH_MAX];
  size_t len = std::strlen(path);
  if (len >= sizeof(buf)) return ENAMETOOLONG;
  std::memcpy(buf, path, len + 1);
  for (size_t i = 1; i <= len; ++i) {
    if (buf[i] == '/' || buf[i] == '\0') {
      char saved = buf[i];
      buf[i] = '\0';
      if (::mkdir(buf, 0755) != 0 && errno != EEXIST) return errno;
      buf[i] = saved;
    }
  }
  return 0;
}

int WriteAllAt(int fd, const char* value) {
  ssize_t n = ::write(fd, value, std::strlen(value));
  return n < 0 ? errno : 0;
}

int WriteString(const char* path, const char* value) {
  int fd = ::open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  int err = WriteAllAt(fd, value);
  ::close(fd);
  return err;
}

// openat2 under the container's root: every symlink and ".." resolves inside it, so an
// image (or a volume another container writes) can never point a mount outside its rootfs.
int OpenUnder(int root_fd, const char* relative, int flags) {
  struct open_how how;
  std::memset(&how, 0, sizeof(how));
  how.flags = static_cast<uint64_t>(flags) | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  int fd;
  do {
    fd = static_cast<int>(
        ::syscall(SYS_openat2, root_fd, *relative ? relative : ".", &how, sizeof(how)));
  } while (fd < 0 && errno == EAGAIN);
  return fd;
}

// The part of `path` after its leading slashes.
const char* Relative(const char* path) {
  while (*path == '/') ++path;
  return path;
}

// Where a dangling symlink `name` (the component buf[start, end) of buf) points, spliced
// into buf in place of buf[0, end): the walk then starts over from the root.
bool SpliceSymlink(int parent, char* buf, size_t* len, size_t start, size_t end) {
  char target[PATH_MAX];
  ssize_t n = ::readlinkat(parent, buf + start, target, sizeof(target) - 1);
  if (n <= 0) return false;
  target[n] = '\0';
  char joined[PATH_MAX];
  size_t total = 0;
  if (target[0] != '/') {  // relative to the symlink's directory, buf[0, start)
    std::memcpy(joined, buf, start);
    total = start;
  }
  const char* t = Relative(target);
  const size_t tlen = std::strlen(t);
  const size_t rest = end < *len ? *len - end - 1 : 0;
  if (total + tlen + 1 + rest + 1 > sizeof(joined)) return false;
  std::memcpy(joined + total, t, tlen);
  total += tlen;
  if (rest > 0) {
    joined[total++] = '/';
    std::memcpy(joined + total, buf + end + 1, rest);
    total += rest;
  }
  while (total > 0 && joined[total - 1] == '/') --total;
  joined[total] = '\0';
  std::memcpy(buf, joined, total + 1);
  *len = total;
  return true;
}

// An O_PATH fd of `path` (absolute inside the container) resolved under `root_fd`. With
// `create`, missing directories are made on the way (and the last component, a file when
// `file`), each one resolved under the root again; a dangling symlink is followed inside
// the root, as a mount over it would. Returns -errno on failure.
int ResolveInRoot(int root_fd, const char* path, bool create, bool file) {
  char buf[PATH_MAX];
  size_t len = std::strlen(Relative(path));
  if (len >= sizeof(buf)) return -ENAMETOOLONG;
  std::memcpy(buf, Relative(path), len + 1);
  while (len > 0 && buf[len - 1] == '/') buf[--len] = '\0';
  int fd = OpenUnder(root_fd, buf, O_PATH);
  if (fd >= 0) return fd;
  if (errno != ENOENT || !create) return -errno;
  for (int hops = 0; hops < 40; ++hops) {
    int parent = ::fcntl(root_fd, F_DUPFD_CLOEXEC, 0);
    if (parent < 0) return -errno;
    bool restart = false;
    size_t start = 0;
    while (start < len && !restart) {
      size_t end = start;
      while (end < len && buf[end] != '/') ++end;
      const bool last = end == len;
      const char saved = buf[end];
      buf[end] = '\0';
      int next = OpenUnder(root_fd, buf, O_PATH);
      if (next < 0 && errno == ENOENT) {
        const char* name = buf + start;
        int rc;
        if (last && file) {
          rc = ::openat(parent, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
          if (rc >= 0) ::close(rc);
        } else {
          rc = ::mkdirat(parent, name, 0755);
        }
        if (rc < 0 && errno == EEXIST) {
          // buf[end] is still the terminator: buf + start is the symlink's own name.
          if (!SpliceSymlink(parent, buf, &len, start, end)) {
            ::close(parent);
            return -ENOENT;
          }
          restart = true;
          continue;
        }
        if (rc < 0) {
          const int err = errno;
          ::close(parent);
          return -err;
        }
        next = OpenUnder(root_fd, buf, O_PATH);
      }
      if (next < 0) {
        const int err = errno;
        ::close(parent);
        return -err;
      }
      ::close(parent);
      parent = next;
      buf[end] = saved;
      start = end + 1;
    }
    if (!restart) return parent;
    ::close(parent);
  }
  return -ELOOP;
}

// "/proc/self/fd/<fd>": how mount(2) is pointed at a resolved fd.
void FdPath(int fd, char* out, size_t size) {
  char digits[16];
  int n = 0;
  unsigned v = static_cast<unsigned>(fd);
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0 && n < 15);
  static constexpr char kPrefix[] = "/proc/self/fd/";
  size_t at = 0;
  for (const char* p = kPrefix; *p != '\0' && at + 1 < size; ++p) out[at++] = *p;
  while (n > 0 && at + 1 < size) out[at++] = digits[--n];
  out[at] = '\0';
}

// In a user namespace the flags nosuid, nodev and noexec of a mount copied from the host are
// locked: a remount must keep them.
unsigned long LockedFlags(int fd, const Plan& plan) {
  if (!plan.join_user) return 0;
  struct statvfs st;
  if (::fstatvfs(fd, &st) != 0) return 0;
  return ((st.f_flag & ST_NOSUID) ? MS_NOSUID : 0) | ((st.f_flag & ST_NODEV) ? MS_NODEV : 0) |
         ((st.f_flag & ST_NOEXEC) ? MS_NOEXEC : 0);
}

// The propagation of a copied tree (a peer of the host's mount): the root's; with a shared root
// the rootfs itself is private.
unsigned long TreePropagation(const Plan& plan, bool rootfs) {
  if (rootfs && (plan.root_propagation & MS_SHARED)) return MS_PRIVATE | MS_REC;
  return plan.root_propagation;
}

void DoMount(int sync_fd, int root_fd, const MountStep& m, const Plan& plan) {
  UniqueFd target(ResolveInRoot(root_fd, m.target.c_str(), true, m.file_target));
  if (target.get() < 0) Fail(sync_fd, "create mount point", m.target.c_str(), -target.get());
  char path[32];
  FdPath(target.get(), path, sizeof(path));
  if (m.tree_fd >= 0) {
    if (::syscall(SYS_move_mount, m.tree_fd, "", target.get(), "",
                  MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) != 0) {
      Fail(sync_fd, "move the bind mount's tree on", m.target.c_str(), errno);
    }
  } else if (m.bind) {
    unsigned long flags = MS_BIND | (m.recursive ? MS_REC : 0);
    if (::mount(m.source.c_str(), path, nullptr, flags, nullptr) != 0) {
      Fail(sync_fd, "bind mount on", m.target.c_str(), errno);
    }
  } else if (::mount(m.source.c_str(), path, m.type.c_str(), m.flags,
                     m.data.empty() ? nullptr : m.data.c_str()) != 0) {
    Fail(sync_fd, "mount on", m.target.c_str(), errno);
  }
  const bool remount = m.bind && m.flags != 0;
  // A tree is a copy of the host's mount, its peer: without a propagation of its own it takes
  // the root's, as a bind of a source in a copy of the host's namespace did.
  const unsigned long propagation = m.propagation != 0 ? m.propagation
                                    : m.tree_fd >= 0   ? TreePropagation(plan, false)
                                                       : 0;
  if (!remount && propagation == 0 && !m.recursive_readonly && !m.dev_tmpfs && !m.cgroup_v1) {
    return;
  }
  // The old fd still names the covered directory: the new mount's root is reached by
  // resolving the path again.
  UniqueFd mounted(ResolveInRoot(root_fd, m.target.c_str(), false, false));
  if (mounted.get() < 0) Fail(sync_fd, "reopen mount point", m.target.c_str(), -mounted.get());
  FdPath(mounted.get(), path, sizeof(path));
  if (remount &&
      ::mount(nullptr, path, nullptr,
              MS_BIND | MS_REMOUNT | m.flags | LockedFlags(mounted.get(), plan), nullptr) != 0) {
    Fail(sync_fd, "remount bind mount", m.target.c_str(), errno);
  }
  if (m.recursive_readonly) {
    struct mount_attr attr;
    std::memset(&attr, 0, sizeof(attr));
    attr.attr_set = MOUNT_ATTR_RDONLY;
    if (::syscall(SYS_mount_setattr, mounted.get(), "", AT_EMPTY_PATH | AT_RECURSIVE, &attr,
                  sizeof(attr)) != 0) {
      Fail(sync_fd, "make the mount recursively read-only", m.target.c_str(), errno);
    }
  }
  if (propagation != 0 && ::mount(nullptr, path, nullptr, propagation, nullptr) != 0) {
    Fail(sync_fd, "set mount propagation of", m.target.c_str(), errno);
  }
  if (m.cgroup_v1) {
    UniqueFd dir(::openat(mounted.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir) Fail(sync_fd, "open", m.target.c_str(), errno);
    for (const auto& [name, source] : plan.cgroup_views) {
      if (::mkdirat(dir.get(), name.c_str(), 0755) != 0 && errno != EEXIST) {
        Fail(sync_fd, "make cgroup mount point", name.c_str(), errno);
      }
      UniqueFd point(
          ::openat(dir.get(), name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!point) Fail(sync_fd, "open cgroup mount point", name.c_str(), errno);
      char point_path[32];
      FdPath(point.get(), point_path, sizeof(point_path));
      if (::mount(source.c_str(), point_path, nullptr, MS_BIND | MS_REC, nullptr) != 0) {
        Fail(sync_fd, "bind the container's cgroup", source.c_str(), errno);
      }
      UniqueFd bound(
          ::openat(dir.get(), name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!bound) Fail(sync_fd, "reopen cgroup mount point", name.c_str(), errno);
      FdPath(bound.get(), point_path, sizeof(point_path));
      const unsigned long ro = m.cgroup_readonly ? MS_RDONLY : 0;
      if (::mount(nullptr, point_path, nullptr,
                  MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | MS_NOEXEC | ro, nullptr) != 0) {
        Fail(sync_fd, "remount the container's cgroup", source.c_str(), errno);
      }
    }
    for (const auto& [link, target] : plan.cgroup_links) {
      if (::symlinkat(target.c_str(), dir.get(), link.c_str()) != 0 && errno != EEXIST) {
        Fail(sync_fd, "symlink in /sys/fs/cgroup", link.c_str(), errno);
      }
    }
    if (m.cgroup_readonly &&
        ::mount(nullptr, path, nullptr, MS_REMOUNT | MS_RDONLY | m.flags, m.data.c_str()) != 0) {
      Fail(sync_fd, "remount /sys/fs/cgroup read-only", nullptr, errno);
    }
  }
  if (m.dev_tmpfs) {
    static constexpr struct {
      const char* name;
      unsigned major, minor;
    } kNodes[] = {{"null", 1, 3},   {"zero", 1, 5},    {"full", 1, 7},
                  {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}};
    // mknodat wants a real directory fd, not an O_PATH one.
    UniqueFd dev(::openat(mounted.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dev.get() < 0) Fail(sync_fd, "open", m.target.c_str(), errno);
    for (const auto& node : kNodes) {
      if (plan.join_user) {
        // No mknod in a user namespace: the host's node, bound on an empty file.
        UniqueFd file(::openat(dev.get(), node.name, O_CREAT | O_WRONLY | O_CLOEXEC, 0666));
        if (!file) Fail(sync_fd, "make a file in /dev for", node.name, errno);
        char host[16] = "/dev/";
        std::strncat(host, node.name, sizeof(host) - 6);
        char file_path[32];
        FdPath(file.get(), file_path, sizeof(file_path));
        if (::mount(host, file_path, nullptr, MS_BIND, nullptr) != 0) {
          Fail(sync_fd, "bind the host's device", host, errno);
        }
        continue;
      }
      if (::mknodat(dev.get(), node.name, S_IFCHR | 0666, makedev(node.major, node.minor)) != 0 &&
          errno != EEXIST) {
        Fail(sync_fd, "mknod in /dev", node.name, errno);
      }
      ::fchmodat(dev.get(), node.name, 0666, 0);  // mknod honours the umask
    }
    static constexpr struct {
      const char* target;
      const char* name;
    } kLinks[] = {{"/proc/self/fd", "fd"},       {"/proc/self/fd/0", "stdin"},
                  {"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"},
                  {"/proc/kcore", "core"},       {"pts/ptmx", "ptmx"}};
    for (const auto& link : kLinks) {
      if (::symlinkat(link.target, dev.get(), link.name) != 0 && errno != EEXIST) {
        Fail(sync_fd, "symlink in /dev", link.name, errno);
      }
    }
  }
}

// A pty from the container's own devpts instance: its slave becomes stdio and the
// controlling terminal, its master goes to the monitor.
void SetupTerminal(int sync_fd) {
  int master = ::open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0) Fail(sync_fd, "open /dev/ptmx", nullptr, errno);
  int unlock = 0;
  if (::ioctl(master, TIOCSPTLCK, &unlock) != 0) Fail(sync_fd, "unlock the pty", nullptr, errno);
  int slave = ::ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (slave < 0) Fail(sync_fd, "open the pty slave", nullptr, errno);
  if (::dup2(slave, 0) < 0 || ::dup2(slave, 1) < 0 || ::dup2(slave, 2) < 0) {
    Fail(sync_fd, "set up the terminal as stdio", nullptr, errno);
  }
  ::close(slave);
  if (::ioctl(0, TIOCSCTTY, 0) != 0) Fail(sync_fd, "set the controlling terminal", nullptr, errno);
  SyncMessage msg;
  msg.type = kSyncTerminal;
  struct iovec iov = {&msg, sizeof(msg)};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } control;
  std::memset(&control, 0, sizeof(control));
  struct msghdr mh = {};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = control.buf;
  mh.msg_controllen = sizeof(control.buf);
  struct cmsghdr* c = CMSG_FIRSTHDR(&mh);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &master, sizeof(int));
  if (::sendmsg(sync_fd, &mh, 0) != sizeof(msg)) Fail(sync_fd, "send the pty", nullptr, errno);
  ::close(master);
}

void SetupRootfs(int sync_fd, const Plan& plan) {
  if (::mount(nullptr, "/", nullptr, plan.root_propagation, nullptr) != 0) {
    Fail(sync_fd, "set propagation of /", nullptr, errno);
  }
  if (!plan.rootfs_mount.empty() &&
      ::mount(nullptr, plan.rootfs_mount.c_str(), nullptr, MS_PRIVATE, nullptr) != 0) {
    Fail(sync_fd, "make the rootfs's mount private", plan.rootfs_mount.c_str(), errno);
  }
  // The rootfs by its name in the working directory, its parent (see RunInit).
  const char* rootfs = plan.rootfs_name.c_str();
  if (plan.rootfs_tree >= 0) {
    if (::syscall(SYS_move_mount, plan.rootfs_tree, "", AT_FDCWD, rootfs,
                  MOVE_MOUNT_F_EMPTY_PATH) != 0) {
      Fail(sync_fd, "move the rootfs's tree on", plan.rootfs.c_str(), errno);
    }
    // The copy is the host's mount's peer: cut from it as / was (private under a shared root,
    // as rootfs_mount is made otherwise), before anything is mounted in it.
    if (::mount(nullptr, rootfs, nullptr, TreePropagation(plan, true), nullptr) != 0) {
      Fail(sync_fd, "set propagation of rootfs", plan.rootfs.c_str(), errno);
    }
    // Under a shared root the copy's parent is shared, which pivot_root refuses: the new root
    // is a bind of the private copy, whose parent it is.
    if ((plan.root_propagation & MS_SHARED) &&
        ::mount(rootfs, rootfs, nullptr, MS_BIND | MS_REC, nullptr) != 0) {
      Fail(sync_fd, "bind mount rootfs", plan.rootfs.c_str(), errno);
    }
  } else if (::mount(rootfs, rootfs, nullptr, MS_BIND | MS_REC, nullptr) != 0) {
    Fail(sync_fd, "bind mount rootfs", plan.rootfs.c_str(), errno);
  }
  UniqueFd root(::open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (root.get() < 0) Fail(sync_fd, "open rootfs", plan.rootfs.c_str(), errno);
  for (const auto& m : plan.mounts) DoMount(sync_fd, root.get(), m, plan);
  char path[32];
  for (const auto& d : plan.devices) {
    // The node's directory is resolved (and made) inside the root; the node replaces any entry.
    char dir[PATH_MAX];
    const char* slash = std::strrchr(d.path.c_str(), '/');
    const size_t dir_len = slash == nullptr ? 0 : static_cast<size_t>(slash - d.path.c_str());
    if (dir_len >= sizeof(dir)) Fail(sync_fd, "device path", d.path.c_str(), ENAMETOOLONG);
    std::memcpy(dir, d.path.c_str(), dir_len);
    dir[dir_len] = '\0';
    const char* name = slash == nullptr ? d.path.c_str() : slash + 1;
    UniqueFd resolved(ResolveInRoot(root.get(), dir, true, false));
    if (resolved.get() < 0) Fail(sync_fd, "create device directory", dir, -resolved.get());
    UniqueFd parent(::openat(resolved.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (parent.get() < 0) Fail(sync_fd, "open device directory", dir, errno);
    ::unlinkat(parent.get(), name, 0);
    if (::mknodat(parent.get(), name, d.mode, d.dev) != 0) {
      Fail(sync_fd, "mknod", d.path.c_str(), errno);
    }
    if (::fchownat(parent.get(), name, d.uid, d.gid, AT_SYMLINK_NOFOLLOW) != 0) {
      Fail(sync_fd, "chown", d.path.c_str(), errno);
    }
    ::fchmodat(parent.get(), name, d.mode & 07777, 0);  // mknod honours the umask
  }
  for (const auto& [file, value] : plan.sysctls) {
    UniqueFd fd(OpenUnder(root.get(), Relative(file.c_str()), O_WRONLY));
    if (fd.get() < 0) Fail(sync_fd, "open sysctl", file.c_str(), errno);
    if (int err = WriteAllAt(fd.get(), value.c_str())) {
      Fail(sync_fd, "write sysctl", file.c_str(), err);
    }
  }
  for (const auto& masked : plan.masked) {
    UniqueFd target(ResolveInRoot(root.get(), masked.c_str(), false, false));
    if (target.get() == -ENOENT) continue;
    if (target.get() < 0) Fail(sync_fd, "open masked path", masked.c_str(), -target.get());
    struct stat st;
    if (::fstat(target.get(), &st) != 0) Fail(sync_fd, "stat masked path", masked.c_str(), errno);
    FdPath(target.get(), path, sizeof(path));
    int rc = S_ISDIR(st.st_mode) ? ::mount("tmpfs", path, "tmpfs", MS_RDONLY, "size=0k")
                                 : ::mount("/dev/null", path, nullptr, MS_BIND, nullptr);
    if (rc != 0) Fail(sync_fd, "mask", masked.c_str(), errno);
  }
  for (const auto& readonly : plan.readonly) {
    UniqueFd target(ResolveInRoot(root.get(), readonly.c_str(), false, false));
    if (target.get() == -ENOENT) continue;
    if (target.get() < 0) Fail(sync_fd, "open read-only path", readonly.c_str(), -target.get());
    FdPath(target.get(), path, sizeof(path));
    if (::mount(path, path, nullptr, MS_BIND | MS_REC, nullptr) != 0) {
      Fail(sync_fd, "bind mount read-only path", readonly.c_str(), errno);
    }
    UniqueFd mounted(ResolveInRoot(root.get(), readonly.c_str(), false, false));
    if (mounted.get() < 0) {
      Fail(sync_fd, "reopen read-only path", readonly.c_str(), -mounted.get());
    }
    FdPath(mounted.get(), path, sizeof(path));
    if (::mount(nullptr, path, nullptr,
                MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                nullptr) != 0) {
      Fail(sync_fd, "remount read-only", readonly.c_str(), errno);
    }
  }
  // pivot_root(".", ".") stacks the old root on the new one; detaching it leaves the new.
  // The old root is named by an fd opened before: after the pivot "." is the new root, and
  // making that a slave would cut the container's bidirectional mounts from their peers.
  UniqueFd old_root(::open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC));
  if (old_root.get() < 0) Fail(sync_fd, "open the old root", nullptr, errno);
  if (::chdir(rootfs) != 0) Fail(sync_fd, "chdir", plan.rootfs.c_str(), errno);
  if (syscall(SYS_pivot_root, ".", ".") != 0) {
    Fail(sync_fd, "pivot_root", plan.rootfs.c_str(), errno);
  }
  if (::fchdir(old_root.get()) != 0) Fail(sync_fd, "chdir to the old root", nullptr, errno);
  old_root.Reset();
  // Its mounts must not take the host's along when they go: they are slaves or private already
  // when / was made so at the start (a walk over every mount, saved here); with rshared (a
  // bidirectional mount) they become slaves now.
  const bool cut_already = (plan.root_propagation & MS_REC) != 0 &&
                           (plan.root_propagation & (MS_SLAVE | MS_PRIVATE)) != 0;
  if (!cut_already && ::mount(nullptr, ".", nullptr, MS_SLAVE | MS_REC, nullptr) != 0) {
    Fail(sync_fd, "make the old root a slave", nullptr, errno);
  }
  if (::umount2(".", MNT_DETACH) != 0) Fail(sync_fd, "detach the old root", nullptr, errno);
  if (::chdir("/") != 0) Fail(sync_fd, "chdir /", nullptr, errno);
  if (plan.root_readonly &&
      ::mount(nullptr, "/", nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY, nullptr) != 0) {
    Fail(sync_fd, "remount / read-only", nullptr, errno);
  }
}

struct CapData {
  __user_cap_header_struct header;
  __user_cap_data_struct data[2];
};

// rlimits, oom_score_adj, cwd, user, capabilities, no_new_privs and seccomp. Returns the
// warnings for the ready message.
uint32_t SetupProcess(int sync_fd, const Plan& plan) {
  uint32_t warnings = 0;
  for (const auto& [resource, limit] : plan.rlimits) {
    if (::setrlimit(resource, &limit) != 0) Fail(sync_fd, "setrlimit", nullptr, errno);
  }
  if (plan.set_oom_score_adj) {
    int err = WriteString("/proc/self/oom_score_adj", plan.oom_score_adj.c_str());
    if (err == EACCES || err == EPERM) {
      warnings |= kWarnOomScoreAdj;
    } else if (err != 0) {
      Fail(sync_fd, "write /proc/self/oom_score_adj", nullptr, err);
    }
  }
  if (::chdir(plan.cwd.c_str()) != 0) {
    if (errno != ENOENT || MakeDirs(plan.cwd.c_str()) != 0 || ::chdir(plan.cwd.c_str()) != 0) {
      Fail(sync_fd, "chdir to cwd", plan.cwd.c_str(), errno);
    }
  }
  for (int cap = 0; cap <= plan.last_cap; ++cap) {
    if ((plan.cap_bounding & (1ULL << cap)) == 0 && ::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 &&
        errno != EINVAL) {
      Fail(sync_fd, "drop capability from the bounding set", kCapabilityNames[cap], errno);
    }
  }
  // Without no_new_privs, installing a filter needs CAP_SYS_ADMIN: do it while we have it
  // (the profile must then allow the few calls left before execve, as runc's order needs).
  if (plan.has_seccomp && !plan.no_new_privileges) {
    if (int err = LoadSeccomp(plan.seccomp)) Fail(sync_fd, "load seccomp filter", nullptr, err);
  }
  if (::prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) Fail(sync_fd, "keep capabilities", nullptr, errno);
  if (::setgroups(plan.groups.size(), plan.groups.data()) != 0) {
    Fail(sync_fd, "setgroups", nullptr, errno);
  }
  if (::setresgid(plan.gid, plan.gid, plan.gid) != 0) Fail(sync_fd, "setresgid", nullptr, errno);
  if (::setresuid(plan.uid, plan.uid, plan.uid) != 0) Fail(sync_fd, "setresuid", nullptr, errno);
  if (::prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0) Fail(sync_fd, "clear keepcaps", nullptr, errno);
  CapData caps;
  std::memset(&caps, 0, sizeof(caps));
  caps.header.version = _LINUX_CAPABILITY_VERSION_3;
  caps.data[0].effective = static_cast<uint32_t>(plan.cap_effective);
  caps.data[1].effective = static_cast<uint32_t>(plan.cap_effective >> 32);
  caps.data[0].permitted = static_cast<uint32_t>(plan.cap_permitted);
  caps.data[1].permitted = static_cast<uint32_t>(plan.cap_permitted >> 32);
  caps.data[0].inheritable = static_cast<uint32_t>(plan.cap_inheritable);
  caps.data[1].inheritable = static_cast<uint32_t>(plan.cap_inheritable >> 32);
  if (syscall(SYS_capset, &caps.header, caps.data) != 0) Fail(sync_fd, "capset", nullptr, errno);
  for (int cap = 0; cap <= plan.last_cap; ++cap) {
    if ((plan.cap_ambient & (1ULL << cap)) != 0 &&
        ::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) != 0) {
      Fail(sync_fd, "raise ambient capability", kCapabilityNames[cap], errno);
    }
  }
  if (!plan.apparmor_profile.empty()) {
    // The profile takes effect at execve. attr/apparmor/exec since Linux 5.8, attr/exec before.
    char value[300] = "exec ";
    std::strncat(value, plan.apparmor_profile.c_str(), sizeof(value) - 6);
    int err = WriteString("/proc/thread-self/attr/apparmor/exec", value);
    if (err == ENOENT) err = WriteString("/proc/thread-self/attr/exec", value);
    if (err != 0) Fail(sync_fd, "apply apparmor profile", plan.apparmor_profile.c_str(), err);
  }
  if (plan.no_new_privileges && ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    Fail(sync_fd, "set no_new_privs", nullptr, errno);
  }
  if (plan.has_seccomp && plan.no_new_privileges) {
    if (int err = LoadSeccomp(plan.seccomp)) Fail(sync_fd, "load seccomp filter", nullptr, err);
  }
  return warnings;
}

[[noreturn]] void Exec(int sync_fd, const Plan& plan) {
  // Every fd but stdio closes on exec; the sync pipe's EOF then tells the monitor it worked.
  syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);
  const char* file = plan.argv[0];
  char what[PATH_MAX + 16] = "exec \"";
  std::strncat(what, file, PATH_MAX);
  std::strcat(what, "\"");
  if (std::strchr(file, '/') != nullptr) {
    ::execve(file, plan.argv.data(), plan.envp.data());
    Fail(sync_fd, what, nullptr, errno);
  }
  int err = ENOENT;
  char path[PATH_MAX];
  for (const auto& dir : plan.path_dirs) {
    if (!JoinPath(path, sizeof(path), dir.c_str(), file)) continue;
    ::execve(path, plan.argv.data(), plan.envp.data());
    if (errno == EACCES) err = EACCES;
    if (errno != ENOENT && errno != ENOTDIR && errno != EACCES) {
      err = errno;
      break;
    }
  }
  Fail(sync_fd, what, nullptr, err);
}

}  // namespace

bool ReceiveSync(int sock, SyncMessage* message, UniqueFd* fd) {
  std::vector<UniqueFd> fds;
  if (ReceiveWithFds(sock, message, sizeof(*message), &fds) != sizeof(*message)) return false;
  if (fd != nullptr && !fds.empty()) *fd = std::move(fds[0]);
  return true;
}

std::string DescribeSync(const SyncMessage& message) {
  std::string what(message.what, strnlen(message.what, sizeof(message.what)));
  if (message.err == 0) return what;
  return what + ": " + ErrorText(message.err);
}

namespace {

// The bounding set of this process: capabilities it lacks cannot be granted.
uint64_t OwnBoundingSet() {
  int fd = ::open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  char buf[4096];
  ssize_t n = fd >= 0 ? ::read(fd, buf, sizeof(buf) - 1) : -1;
  if (fd >= 0) ::close(fd);
  if (n <= 0) return ~0ULL;
  buf[n] = '\0';
  const char* at = std::strstr(buf, "CapBnd:");
  return at != nullptr ? std::strtoull(at + 7, nullptr, 16) : ~0ULL;
}

int LastCapability() {
  int fd = ::open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
  char buf[16] = {};
  int last = 40;
  if (fd >= 0 && ::read(fd, buf, sizeof(buf) - 1) > 0) last = std::atoi(buf);
  if (fd >= 0) ::close(fd);
  return last;
}

bool PlanCapabilities(const Capabilities& c, Plan* plan, std::string* error) {
  plan->last_cap = LastCapability();
  if (!CapabilityMask(c.bounding, plan->last_cap, &plan->cap_bounding, error) ||
      !CapabilityMask(c.effective, plan->last_cap, &plan->cap_effective, error) ||
      !CapabilityMask(c.permitted, plan->last_cap, &plan->cap_permitted, error) ||
      !CapabilityMask(c.inheritable, plan->last_cap, &plan->cap_inheritable, error) ||
      !CapabilityMask(c.ambient, plan->last_cap, &plan->cap_ambient, error)) {
    return false;
  }
  // Left out rather than failing every privileged container on a host whose launcher lacks
  // some capabilities.
  const uint64_t own_bounding = OwnBoundingSet();
  for (uint64_t* set : {&plan->cap_bounding, &plan->cap_effective, &plan->cap_permitted,
                        &plan->cap_inheritable, &plan->cap_ambient}) {
    *set &= own_bounding;
  }
  return true;
}

// argv, envp and the PATH directories the exec searches (the image's PATH, or the default).
void PlanArgsAndEnv(const Process& p, Plan* plan) {
  plan->cwd = p.cwd.empty() ? "/" : p.cwd;
  plan->args_storage = p.args;
  plan->env_storage = p.env;
  std::string path_env = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  for (const auto& e : p.env) {
    if (e.compare(0, 5, "PATH=") == 0) path_env = e.substr(5);
  }
  size_t start = 0;
  while (start <= path_env.size()) {
    size_t end = path_env.find(':', start);
    if (end == std::string::npos) end = path_env.size();
    std::string dir = path_env.substr(start, end - start);
    plan->path_dirs.push_back(dir.empty() ? "." : dir);
    start = end + 1;
  }
  for (auto& a : plan->args_storage) plan->argv.push_back(a.data());
  plan->argv.push_back(nullptr);
  for (auto& e : plan->env_storage) plan->envp.push_back(e.data());
  plan->envp.push_back(nullptr);
}

// What every process of the container gets: user, capabilities, rlimits, seccomp, args.
bool PlanProcess(const Spec& spec, const std::string& bundle, Plan* plan, std::string* error) {
  const Process& p = spec.process;
  if (p.args.empty()) {
    *error = "the process has no args";
    return false;
  }
  plan->terminal = p.terminal;
  plan->uid = p.user.uid;
  plan->gid = p.user.gid;
  plan->groups.assign(p.user.additional_gids.begin(), p.user.additional_gids.end());
  if (!PlanCapabilities(p.capabilities, plan, error)) return false;
  plan->no_new_privileges = p.no_new_privileges;
  plan->apparmor_profile = p.apparmor_profile;
  for (const auto& r : p.rlimits) {
    int resource = -1;
    for (int i = 0; i < static_cast<int>(std::size(kRlimitNames)); ++i) {
      if (r.type == kRlimitNames[i]) resource = i;
    }
    if (resource < 0) {
      *error = "unknown rlimit \"" + r.type + "\"";
      return false;
    }
    plan->rlimits.push_back({resource, {r.soft, r.hard}});
  }
  if (p.oom_score_adj) {
    plan->set_oom_score_adj = true;
    plan->oom_score_adj = std::to_string(*p.oom_score_adj);
  }
  if (spec.linux_spec.seccomp) {
    plan->has_seccomp = true;
    if (!ReadCompiledSeccomp(bundle + "/" + kSeccompProgramFile, *spec.linux_spec.seccomp,
                             &plan->seccomp) &&
        !CompileSeccomp(*spec.linux_spec.seccomp, &plan->seccomp, error)) {
      return false;
    }
  }
  PlanArgsAndEnv(p, plan);
  return true;
}

// Namespaces to join (opened now) and to make; a hostname only with a uts namespace.
bool PlanNamespaces(const Spec& spec, Plan* plan, std::string* error) {
  static constexpr struct {
    const char* name;
    int flag;
  } kTypes[] = {{"pid", CLONE_NEWPID},  {"network", CLONE_NEWNET}, {"mount", CLONE_NEWNS},
                {"ipc", CLONE_NEWIPC},  {"uts", CLONE_NEWUTS},     {"cgroup", CLONE_NEWCGROUP},
                {"user", CLONE_NEWUSER}};
  bool joined_uts = false;
  for (const auto& ns : spec.linux_spec.namespaces) {
    int flag = 0;
    for (const auto& t : kTypes) {
      if (ns.type == t.name) flag = t.flag;
    }
    if (flag == 0) {
      *error = "unsupported namespace \"" + ns.type + "\"";
      return false;
    }
    if (ns.path.empty() && flag == CLONE_NEWUSER) {
      *error = "a new user namespace: the launcher only joins one (a pod's)";
      return false;
    }
    if (ns.path.empty()) {
      if (flag == CLONE_NEWPID) {
        plan->clone_flags |= CLONE_NEWPID;
      } else if (flag == CLONE_NEWCGROUP) {
        plan->new_cgroup_ns = true;
      } else {
        plan->unshare_flags |= flag;
      }
      if (flag == CLONE_NEWUTS) plan->new_uts = true;
      continue;
    }
    int fd = ::open(ns.path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      *error = "open " + ns.type + " namespace " + ns.path + ": " + ErrorText(errno);
      return false;
    }
    if (flag == CLONE_NEWPID) {
      plan->join_pid.Reset(fd);
    } else if (flag == CLONE_NEWUSER) {
      plan->join_user.Reset(fd);
    } else {
      plan->joins.emplace_back(flag, UniqueFd(fd));
      // A joined uts namespace may take the hostname.
      if (flag == CLONE_NEWUTS) plan->new_uts = joined_uts = true;
    }
  }
  // The launcher always gives the container a mount namespace of its own.
  plan->unshare_flags |= CLONE_NEWNS;
  if (!spec.hostname.empty() && !(plan->unshare_flags & CLONE_NEWUTS) && !joined_uts) {
    // Setting a hostname in a namespace shared with the host would rename the host.
    *error = "hostname \"" + spec.hostname + "\" needs a uts namespace";
    return false;
  }
  plan->hostname = spec.hostname;
  return true;
}

// A copy of a bind mount's source as a detached mount tree, made by the monitor as the host's
// root in the host's namespace (in a user namespace the init may not even reach the source:
// the directories above it can be closed to the pod's root; a mount template lacks what was
// mounted since it was made), id-mapped with the user namespace's mappings when the mount
// asks. Its fd goes in step->tree_fd (owned by plan->trees).
bool DetachedTree(const Mount& m, Plan& plan, MountStep* step, std::string* error) {
  if (step->idmap && !plan.join_user) {
    *error = "mount " + m.destination + ": an id-mapped mount needs the pod's user namespace";
    return false;
  }
  const unsigned recursive = step->recursive ? AT_RECURSIVE : 0;
  UniqueFd tree(static_cast<int>(::syscall(SYS_open_tree, AT_FDCWD, m.source.c_str(),
                                           OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | recursive)));
  if (!tree) {
    *error = "mount " + m.destination + ": open_tree " + m.source + ": " + ErrorText(errno);
    return false;
  }
  if (!step->idmap) {
    step->tree_fd = tree.get();
    plan.trees.push_back(std::move(tree));
    return true;
  }
  struct mount_attr attr;
  std::memset(&attr, 0, sizeof(attr));
  attr.attr_set = MOUNT_ATTR_IDMAP;
  attr.userns_fd = static_cast<uint64_t>(plan.join_user.get());
  if (::syscall(SYS_mount_setattr, tree.get(), "", AT_EMPTY_PATH | recursive, &attr,
                sizeof(attr)) != 0) {
    const int err = errno;
    *error =
        "mount " + m.destination + ": id-mapped mount of " + m.source + ": " + ErrorText(err) +
        (err == EINVAL ? " (its file system, or one mounted below it, cannot be id-mapped)" : "");
    return false;
  }
  step->tree_fd = tree.get();
  plan.trees.push_back(std::move(tree));
  return true;
}

// The id of the mount `path` is on (following symlinks), 0 when statx cannot tell; its file
// type in *mode when `mode` is given.
uint64_t MountIdOf(const char* path, mode_t* mode) {
  struct statx stx;
  if (::statx(AT_FDCWD, path, AT_STATX_SYNC_AS_STAT, STATX_TYPE | STATX_MNT_ID, &stx) != 0 ||
      !(stx.stx_mask & STATX_MNT_ID)) {
    return 0;
  }
  if (mode != nullptr) *mode = stx.stx_mode;
  return stx.stx_mnt_id;
}

// Whether a bind's source is a regular file on the mount that holds the state directory (a
// pod's hostname, hosts and resolv.conf): the template keeps that mount, so the init binds the
// file by its path in its own namespace, where that mount has none of the pods' mounts below
// it. A copy made here (open_tree) would walk every mount below that one in the host's
// namespace, five or so per pod, three times per container.
bool InTemplate(const std::string& source, uint64_t state_mount) {
  mode_t mode = 0;
  return MountIdOf(source.c_str(), &mode) == state_mount && S_ISREG(mode);
}

// The root, its propagation, the mounts, device nodes, sysctls, masked and read-only paths.
bool PlanFileSystem(const Spec& spec, const std::string& bundle, Plan* plan, std::string* error) {
  const LinuxSpec& l = spec.linux_spec;
  std::string root = spec.root_path;
  if (root.empty() || root[0] != '/') root = bundle + "/" + root;
  char resolved[PATH_MAX];
  if (::realpath(root.c_str(), resolved) == nullptr) {
    *error = "rootfs " + root + ": " + ErrorText(errno);
    return false;
  }
  plan->rootfs = resolved;
  const char* slash = std::strrchr(resolved, '/');
  plan->rootfs_parent =
      slash == resolved ? "/" : std::string(resolved, static_cast<size_t>(slash - resolved));
  plan->rootfs_name = slash + 1;
  plan->root_readonly = spec.root_readonly;
  plan->root_propagation = MS_SLAVE | MS_REC;
  if (!l.rootfs_propagation.empty()) {
    plan->root_propagation = PropagationFlag(l.rootfs_propagation);
    if (plan->root_propagation == 0) {
      *error = "unknown rootfs propagation \"" + l.rootfs_propagation + "\"";
      return false;
    }
  }
  if (plan->mount_template) {
    // The template has none of the host's mounts made since: the rootfs comes as a copy.
    UniqueFd tree(static_cast<int>(::syscall(SYS_open_tree, AT_FDCWD, plan->rootfs.c_str(),
                                             OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE)));
    if (!tree) {
      *error = "open_tree rootfs " + plan->rootfs + ": " + ErrorText(errno);
      return false;
    }
    plan->rootfs_tree = tree.get();
    plan->trees.push_back(std::move(tree));
  } else if ((plan->root_propagation & MS_SHARED) &&
             !MountPointOf(plan->rootfs, &plan->rootfs_mount, error)) {
    return false;
  }
  // The mount holding the state directory (the bundle's grandparent), which the template keeps.
  const uint64_t state_mount = plan->mount_template && !plan->join_user
                                   ? MountIdOf((bundle + "/../..").c_str(), nullptr)
                                   : 0;
  for (const auto& m : spec.mounts) {
    MountStep step;
    if (!ParseMount(m, &step, error)) return false;
    // A template or a user namespace needs a copy of a bind's source made here, unless the
    // init can reach it by path in the template (state_mount is set only with a template and
    // no user namespace).
    const bool in_template = step.bind && state_mount != 0 && InTemplate(m.source, state_mount);
    if ((step.idmap || (step.bind && !in_template && (plan->join_user || plan->mount_template))) &&
        !DetachedTree(m, *plan, &step, error)) {
      return false;
    }
    plan->mounts.push_back(std::move(step));
  }
  for (const auto& d : l.devices) {
    DeviceStep step;
    step.path = d.path;
    mode_t type = d.type == "b" ? S_IFBLK : d.type == "p" ? S_IFIFO : S_IFCHR;
    step.mode = type | (d.file_mode ? (*d.file_mode & 07777) : 0666);
    step.dev = makedev(d.major, d.minor);
    step.uid = d.uid.value_or(0);
    step.gid = d.gid.value_or(0);
    plan->devices.push_back(step);
  }
  for (const auto& [key, value] : l.sysctl) {
    std::string file = "/proc/sys/";
    for (char ch : key) file += ch == '.' ? '/' : ch;
    plan->sysctls.emplace_back(file, value);
  }
  plan->masked = l.masked_paths;
  plan->readonly = l.readonly_paths;
  return true;
}

// The cgroup files the init joins through, and the views of a "cgroup" mount on v1.
bool PlanCgroup(const Spec& spec, const std::vector<cgroup::Hierarchy>& hierarchies, Plan* plan,
                std::string* error) {
  if (spec.linux_spec.cgroups_path.empty()) return true;
  cgroup::CgroupFiles cgroup;
  if (!InitCgroupFiles(cgroup, hierarchies, spec.linux_spec.cgroups_path, error)) return false;
  plan->cgroup_join = cgroup.SelfJoinFiles();
  for (const auto& view : cgroup.Views()) {
    plan->cgroup_views.emplace_back(view.name, view.dir);
    for (const auto& controller : view.controllers) {
      if (controller != view.name) plan->cgroup_links.emplace_back(controller, view.name);
    }
  }
  return true;
}

// The one fault the init takes from the tests (cribd's CRIB_TEST_FAILPOINT, inherited):
// "<name>:sleep=<n>ms" waits there, to show that an order holds whatever the scheduler does.
void SlowInTests(const char* name) {
  const char* spec = ::getenv("CRIB_TEST_FAILPOINT");
  const size_t n = std::strlen(name);
  if (spec == nullptr || std::strncmp(spec, name, n) != 0 ||
      std::strncmp(spec + n, ":sleep=", 7) != 0) {
    return;
  }
  char* end = nullptr;
  const long ms = std::strtol(spec + n + 7, &end, 10);
  if (ms > 0 && std::strcmp(end, "ms") == 0) ::usleep(static_cast<useconds_t>(ms) * 1000);
}

}  // namespace

bool InitCgroupFiles(cgroup::CgroupFiles& files, const std::vector<cgroup::Hierarchy>& hierarchies,
                     const std::string& cgroups_path, std::string* error) {
  return hierarchies.empty() ? files.Init(cgroups_path, error)
                             : files.Init(hierarchies, cgroups_path, error);
}

bool BuildPlan(const Spec& spec, const std::string& bundle, bool for_exec,
               const std::vector<cgroup::Hierarchy>& hierarchies, Plan* plan, std::string* error) {
  if (!PlanProcess(spec, bundle, plan, error)) return false;
  if (for_exec) return true;
  return PlanNamespaces(spec, plan, error) && PlanFileSystem(spec, bundle, plan, error) &&
         PlanCgroup(spec, hierarchies, plan, error);
}

int JoinCgroupFiles(const std::vector<std::string>& files, std::string* failed) {
  for (const auto& file : files) {
    const int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC);
    const int err = fd < 0 ? errno : ::write(fd, "0", 1) != 1 ? errno : 0;
    if (fd >= 0) ::close(fd);
    if (err != 0) {
      *failed = file;
      return err;
    }
  }
  return 0;
}

namespace {

// Into the container's cgroup (the init has one thread).
void JoinCgroup(const Plan& plan, int sync_fd) {
  std::string failed;
  if (int err = JoinCgroupFiles(plan.cgroup_join, &failed)) {
    Fail(sync_fd, "join cgroup", failed.c_str(), err);
  }
}

}  // namespace

void RunInit(const Plan& plan, const InitStdio& stdio, int sync_fd, int start_fd) {
  // Before anything else, so that nothing the init does runs outside its cgroup; with a
  // driver that places it, once the monitor says the cgroup holds it (below).
  if (!plan.cgroup_handoff) JoinCgroup(plan, sync_fd);
  if (::dup2(stdio.in, 0) < 0 || ::dup2(stdio.out, 1) < 0 || ::dup2(stdio.err, 2) < 0) {
    Fail(sync_fd, "set up stdio", nullptr, errno);
  }
  if (::setsid() < 0) Fail(sync_fd, "setsid", nullptr, errno);
  // The monitor's death must not leave a parked init behind.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  // The namespace the new one is copied from, joined as the host's root (it is the host's
  // user namespace's); setns puts the working directory at its root.
  if (plan.mount_template && ::setns(plan.mount_template.get(), CLONE_NEWNS) != 0) {
    Fail(sync_fd, "join the mount namespace template", nullptr, errno);
  }
  // Reached now, as the host's root: in the pod's user namespace the directories above the
  // bundle may be closed to the pod's root. The new mount namespace keeps this directory
  // (its copy), and the rootfs is named relative to it from then on.
  if (::chdir(plan.rootfs_parent.c_str()) != 0) {
    Fail(sync_fd, "chdir", plan.rootfs_parent.c_str(), errno);
  }
  for (const auto& [flag, fd] : plan.joins) {
    if (::setns(fd.get(), flag) != 0) Fail(sync_fd, "join namespace", nullptr, errno);
  }
  // The driver places the init (a systemd scope) while it waits: then the cgroup's files.
  if (plan.cgroup_handoff) {
    SyncMessage ask;
    ask.type = kSyncCgroup;
    if (::write(sync_fd, &ask, sizeof(ask)) != sizeof(ask)) _exit(1);
    SyncMessage answer;
    ssize_t n;
    do {
      n = ::read(sync_fd, &answer, sizeof(answer));
    } while (n < 0 && errno == EINTR);
    if (n != sizeof(answer) || answer.type != kSyncCgroup) _exit(1);
    JoinCgroup(plan, sync_fd);
  }
  if (plan.join_user) {
    if (::setns(plan.join_user.get(), CLONE_NEWUSER) != 0) {
      Fail(sync_fd, "join the pod's user namespace", nullptr, errno);
    }
    // The pod's root from here on: what the init makes in the rootfs is the pod's root's.
    if (::setresgid(0, 0, 0) != 0 || ::setresuid(0, 0, 0) != 0) {
      Fail(sync_fd, "become root of the user namespace", nullptr, errno);
    }
    if (plan.fork_into_pid_ns) {
      if (::unshare(CLONE_NEWPID) != 0) Fail(sync_fd, "unshare the pid namespace", nullptr, errno);
      // The monitor must read the new pid before anything pid 1 sends (its terminal, ready
      // or an error), or it would take the first process for the init: pid 1 waits for the
      // end of this pipe, which closes when the first process exits after its message.
      int order[2];
      if (::pipe2(order, O_CLOEXEC) != 0) Fail(sync_fd, "pipe", nullptr, errno);
      const long child = syscall(SYS_clone, SIGCHLD, nullptr, nullptr, nullptr, nullptr);
      if (child < 0) Fail(sync_fd, "fork the container's pid 1", nullptr, errno);
      if (child > 0) {
        SlowInTests("init.after_pid1_fork");
        SyncMessage forked;
        forked.type = kSyncPid;
        forked.pid = static_cast<int32_t>(child);
        (void)!::write(sync_fd, &forked, sizeof(forked));
        _exit(0);
      }
      ::close(order[1]);
      char none;
      while (::read(order[0], &none, 1) < 0 && errno == EINTR) {
      }
      ::close(order[0]);
      // Pid 1 now. No parent-death signal: its parent has exited, and a monitor that dies
      // before the start closes start_fd, which ends the wait below.
    }
  }
  if (::unshare(plan.unshare_flags) != 0) Fail(sync_fd, "unshare namespaces", nullptr, errno);
  if (plan.new_cgroup_ns && ::unshare(CLONE_NEWCGROUP) != 0) {
    Fail(sync_fd, "unshare the cgroup namespace", nullptr, errno);
  }
  SetupRootfs(sync_fd, plan);
  if (stdio.tty) SetupTerminal(sync_fd);
  if (!plan.hostname.empty() && ::sethostname(plan.hostname.c_str(), plan.hostname.size()) != 0) {
    Fail(sync_fd, "sethostname", plan.hostname.c_str(), errno);
  }
  SyncMessage ready;
  ready.type = kSyncReady;
  ready.warnings = SetupProcess(sync_fd, plan);
  if (::write(sync_fd, &ready, sizeof(ready)) != sizeof(ready)) _exit(1);
  char go;
  ssize_t n;
  do {
    n = ::read(start_fd, &go, 1);
  } while (n < 0 && errno == EINTR);
  if (n != 1) _exit(1);  // the monitor is gone: never start
  // The parent-death signal is for the parked init only; a running container outlives it.
  ::prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
  Exec(sync_fd, plan);
}

void RunExecProcess(const Plan& plan, int sync_fd, const ExecStdio& stdio) {
  if (stdio.tty_slave >= 0) {
    if (::setsid() < 0) Fail(sync_fd, "setsid", nullptr, errno);
    if (::dup2(stdio.tty_slave, 0) < 0 || ::dup2(stdio.tty_slave, 1) < 0 ||
        ::dup2(stdio.tty_slave, 2) < 0) {
      Fail(sync_fd, "set up the terminal as stdio", nullptr, errno);
    }
    if (::ioctl(0, TIOCSCTTY, 0) != 0) {
      Fail(sync_fd, "set the controlling terminal", nullptr, errno);
    }
  }
  SetupProcess(sync_fd, plan);
  // After the credential change, which clears it; a refusal only loses the fallback.
  if (stdio.die_with_parent) ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  Exec(sync_fd, plan);
}

}  // namespace crib::runtime
