#include "container/rootfs.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/errors.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "common/unique_fd.h"
#include "pod/userns.h"

namespace crib::container {
namespace {

// mount(2) copies at most one page of options.
constexpr size_t kMaxMountData = 4096 - 1;

// A container's writable layer is mounted once and never again, and does not outlive a reboot
// (its container is found exited then, and removed): overlayfs's "volatile" spares it every
// sync of the upper file system, at syncfs(2) and at the unmount (kernel 5.10 and later; where
// the kernel refuses it the mount is made without).
std::atomic<bool> volatile_upper{true};

std::string Options(const OverlayMount& m, const std::string& lower, bool with_volatile) {
  if (m.readonly) return absl::StrCat("lowerdir=", lower);
  return absl::StrCat("lowerdir=", lower, ",upperdir=", m.upper_dir, ",workdir=", m.work_dir,
                      with_volatile ? ",volatile" : "");
}

// The options of the mount of `lower` ("a:b:c"), with "volatile" while the kernel takes it.
std::string Options(const OverlayMount& m, const std::string& lower) {
  return Options(m, lower, volatile_upper);
}

absl::Status MountWithData(const OverlayMount& m, const std::string& lower) {
  const unsigned long flags = m.readonly ? MS_RDONLY : 0;
  for (;;) {
    const bool with_volatile = volatile_upper && !m.readonly;
    const std::string data = Options(m, lower, with_volatile);
    if (::mount("overlay", m.target.c_str(), "overlay", flags, data.c_str()) == 0) {
      return absl::OkStatus();
    }
    if (errno == EINVAL && with_volatile) {
      volatile_upper = false;  // a kernel before 5.10
      continue;
    }
    return ErrnoStatus(
        errno, absl::StrCat("mount overlay of ", m.lower_dirs.size(), " layers on ", m.target));
  }
}

// errno's text for `what`, with the kernel's own explanation from the fs context ("e overlay:
// ...") when it left one.
absl::Status FsContextError(int fs_fd, int err, absl::string_view what) {
  absl::Status status = ErrnoStatus(err, what);
  char buf[512];
  const ssize_t n = ::read(fs_fd, buf, sizeof(buf));
  if (n > 2 && (buf[0] == 'e' || buf[0] == 'w') && buf[1] == ' ') {
    return Reword(status,
                  absl::StrCat(status.message(), " (", absl::string_view(buf + 2, n - 2), ")"));
  }
  return status;
}

absl::Status MountAppendingLayers(const OverlayMount& m) {
  UniqueFd fs(static_cast<int>(::syscall(SYS_fsopen, "overlay", FSOPEN_CLOEXEC)));
  if (!fs) return ErrnoStatus(errno, "fsopen overlay");
  auto set = [&](const char* key, const std::string& value) -> absl::Status {
    if (::syscall(SYS_fsconfig, fs.get(), FSCONFIG_SET_STRING, key, value.c_str(), 0) != 0) {
      return FsContextError(fs.get(), errno, absl::StrCat("overlay option ", key, "=", value));
    }
    return absl::OkStatus();
  };
  for (const std::string& dir : m.lower_dirs) RETURN_IF_ERROR(set("lowerdir+", dir));
  if (!m.readonly) {
    RETURN_IF_ERROR(set("upperdir", m.upper_dir));
    RETURN_IF_ERROR(set("workdir", m.work_dir));
    if (volatile_upper &&
        ::syscall(SYS_fsconfig, fs.get(), FSCONFIG_SET_FLAG, "volatile", nullptr, 0) != 0) {
      volatile_upper = false;
    }
  }
  if (::syscall(SYS_fsconfig, fs.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0) {
    return FsContextError(fs.get(), errno,
                          absl::StrCat("create overlay of ", m.lower_dirs.size(), " layers"));
  }
  UniqueFd mnt(static_cast<int>(
      ::syscall(SYS_fsmount, fs.get(), FSMOUNT_CLOEXEC, m.readonly ? MOUNT_ATTR_RDONLY : 0)));
  if (!mnt) return ErrnoStatus(errno, "fsmount overlay");
  if (::syscall(SYS_move_mount, mnt.get(), "", AT_FDCWD, m.target.c_str(),
                MOVE_MOUNT_F_EMPTY_PATH) != 0) {
    return ErrnoStatus(errno, absl::StrCat("move overlay mount to ", m.target));
  }
  return absl::OkStatus();
}

absl::Status MountWithShortNames(const OverlayMount& m) {
  if (m.scratch_dir.empty()) {
    return absl::InvalidArgumentError("overlay with short names needs a scratch directory");
  }
  RETURN_IF_ERROR(MakeDirs(m.scratch_dir, 0700));
  absl::Cleanup remove_names = [&] {
    for (size_t i = 0; i < m.lower_dirs.size(); ++i) {
      ::unlink(absl::StrCat(m.scratch_dir, "/", i).c_str());
    }
    ::rmdir(m.scratch_dir.c_str());
  };
  std::vector<std::string> names;
  for (size_t i = 0; i < m.lower_dirs.size(); ++i) {
    const std::string link = absl::StrCat(m.scratch_dir, "/", i);
    ::unlink(link.c_str());
    if (::symlink(m.lower_dirs[i].c_str(), link.c_str()) != 0) {
      return ErrnoStatus(errno, absl::StrCat("symlink ", link));
    }
    names.push_back(absl::StrCat(i));
  }
  const std::string lower = absl::StrJoin(names, ":");
  if (Options(m, lower).size() > kMaxMountData) {
    return absl::InvalidArgumentError(
        absl::StrCat("overlay of ", m.lower_dirs.size(),
                     " layers: its options do not fit in a page even with "
                     "short names (the upper and work paths are too long)"));
  }
  // The working directory is per thread only after unshare(CLONE_FS).
  absl::Status status;
  std::thread worker([&] {
    if (::unshare(CLONE_FS) != 0) {
      status = ErrnoStatus(errno, "unshare(CLONE_FS) for the overlay mount");
      return;
    }
    if (::chdir(m.scratch_dir.c_str()) != 0) {
      status = ErrnoStatus(errno, absl::StrCat("chdir ", m.scratch_dir));
      return;
    }
    status = MountWithData(m, lower);
  });
  worker.join();
  return status;
}

// Each lower layer's id-mapped copy, mounted at <idmap_dir>/<i>; `detach` unmounts them.
absl::Status MapLayers(const OverlayMount& m, std::vector<std::string>* mapped) {
  UniqueFd userns(::open(m.idmap_userns.c_str(), O_RDONLY | O_CLOEXEC));
  if (!userns) return ErrnoStatus(errno, absl::StrCat("open user namespace ", m.idmap_userns));
  RETURN_IF_ERROR(MakeDirs(m.idmap_dir, 0700));
  for (size_t i = 0; i < m.lower_dirs.size(); ++i) {
    const std::string& layer = m.lower_dirs[i];
    const std::string point = absl::StrCat(m.idmap_dir, "/", i);
    if (::mkdir(point.c_str(), 0700) != 0 && errno != EEXIST) {
      return ErrnoStatus(errno, absl::StrCat("make ", point));
    }
    ASSIGN_OR_RETURN(UniqueFd tree, pod::IdmappedCopy(AT_FDCWD, layer, userns.get(),
                                                      absl::StrCat("layer ", layer)));
    if (::syscall(SYS_move_mount, tree.get(), "", AT_FDCWD, point.c_str(),
                  MOVE_MOUNT_F_EMPTY_PATH) != 0) {
      return ErrnoStatus(errno, absl::StrCat("mount the id-mapped layer ", layer, " on ", point));
    }
    mapped->push_back(point);
  }
  return absl::OkStatus();
}

void UnmapLayers(const OverlayMount& m, const std::vector<std::string>& mapped) {
  for (const std::string& point : mapped) ::umount2(point.c_str(), MNT_DETACH);
  for (size_t i = 0; i < m.lower_dirs.size(); ++i) {
    ::rmdir(absl::StrCat(m.idmap_dir, "/", i).c_str());
  }
  ::rmdir(m.idmap_dir.c_str());
}

absl::Status MountLayers(const OverlayMount& m, OverlayMethod method);

}  // namespace

absl::Status MountOverlay(const OverlayMount& m, OverlayMethod method) {
  if (m.lower_dirs.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("overlay on ", m.target, " has no layers"));
  }
  if (m.idmap_userns.empty()) return MountLayers(m, method);
  std::vector<std::string> mapped;
  absl::Status status = MapLayers(m, &mapped);
  if (status.ok()) {
    OverlayMount over_mapped = m;
    over_mapped.lower_dirs = mapped;
    status = MountLayers(over_mapped, method);
  }
  UnmapLayers(m, mapped);
  return status;
}

namespace {

absl::Status MountLayers(const OverlayMount& m, OverlayMethod method) {
  const std::string lower = absl::StrJoin(m.lower_dirs, ":");
  switch (method) {
    case OverlayMethod::kOnePage:
      return MountWithData(m, lower);
    case OverlayMethod::kAppendLayers:
      return MountAppendingLayers(m);
    case OverlayMethod::kShortNames:
      return MountWithShortNames(m);
    case OverlayMethod::kAuto:
      break;
  }
  if (Options(m, lower).size() <= kMaxMountData) return MountWithData(m, lower);
  absl::Status appended = MountAppendingLayers(m);
  // Kernels before 6.8 do not know "lowerdir+" (EINVAL), before 5.2 fsopen (ENOSYS).
  const int err = ErrnoOf(appended);
  if (appended.ok() || !(err == EINVAL || err == ENOSYS || err == EOPNOTSUPP)) return appended;
  return MountWithShortNames(m);
}

}  // namespace

absl::Status Unmount(const std::string& target) {
  if (::umount2(target.c_str(), UMOUNT_NOFOLLOW) == 0) return absl::OkStatus();
  if (errno == EINVAL || errno == ENOENT) return absl::OkStatus();  // not mounted, or gone
  if (errno == EBUSY && ::umount2(target.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) == 0) {
    return absl::OkStatus();
  }
  return ErrnoStatus(errno, absl::StrCat("unmount ", target));
}

absl::StatusOr<std::string> ReadFileInRoot(const std::string& root, absl::string_view path,
                                           size_t max_bytes) {
  UniqueFd root_fd(::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root_fd) return ErrnoStatus(errno, absl::StrCat("open ", root));
  struct open_how how = {};
  how.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
  const std::string relative(path.substr(path.find_first_not_of('/') == absl::string_view::npos
                                             ? path.size()
                                             : path.find_first_not_of('/')));
  UniqueFd fd(static_cast<int>(::syscall(
      SYS_openat2, root_fd.get(), relative.empty() ? "." : relative.c_str(), &how, sizeof how)));
  if (!fd) return ErrnoStatus(errno, absl::StrCat("open ", path, " in ", root));
  std::string out;
  char buf[8192];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, absl::StrCat("read ", path, " in ", root));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > max_bytes) {
      return absl::FailedPreconditionError(
          absl::StrCat(path, " in ", root, " is larger than ", max_bytes, " bytes"));
    }
  }
  return out;
}

}  // namespace crib::container
