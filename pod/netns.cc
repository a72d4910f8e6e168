#include "pod/netns.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/files.h"
#include "common/status_macros.h"

namespace crib::pod {

absl::Status PrepareNetnsDir(const std::string& dir) {
  RETURN_IF_ERROR(MakeDirs(dir, 0755));
  if (::mount("", dir.c_str(), "none", MS_SHARED | MS_REC, nullptr) == 0) return absl::OkStatus();
  if (errno != EINVAL) return ErrnoStatus(errno, absl::StrCat("make ", dir, " shared"));
  // Not a mount point yet.
  if (::mount(dir.c_str(), dir.c_str(), "none", MS_BIND | MS_REC, nullptr) != 0) {
    return ErrnoStatus(errno, absl::StrCat("bind-mount ", dir, " onto itself"));
  }
  if (::mount("", dir.c_str(), "none", MS_SHARED | MS_REC, nullptr) != 0) {
    return ErrnoStatus(errno, absl::StrCat("make ", dir, " shared"));
  }
  return absl::OkStatus();
}

absl::Status CreatePinnedNetns(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("create ", path));
  ::close(fd);
  absl::Status status;
  // unshare(CLONE_NEWNET) moves only the calling thread: a thread of its own, gone afterwards.
  std::thread pinner([&path, &status] {
    if (::unshare(CLONE_NEWNET) != 0) {
      status = ErrnoStatus(errno, "unshare network namespace");
      return;
    }
    if (::mount("/proc/thread-self/ns/net", path.c_str(), "none", MS_BIND, nullptr) != 0) {
      status = ErrnoStatus(errno, absl::StrCat("bind-mount the new network namespace on ", path));
    }
  });
  pinner.join();
  if (!status.ok()) ::unlink(path.c_str());
  return status;
}

absl::Status RemovePinnedNetns(const std::string& path) {
  if (::umount2(path.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
    return ErrnoStatus(errno, absl::StrCat("unmount ", path));
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return ErrnoStatus(errno, absl::StrCat("remove ", path));
  }
  return absl::OkStatus();
}

}  // namespace crib::pod
