#include "cribd/instance_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/errors.h"

namespace crib {

absl::StatusOr<InstanceLock> InstanceLock::Acquire(const std::string& dir) {
  std::string path = absl::StrCat(dir, "/cribd.lock");
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd) return ErrnoStatus(errno, absl::StrCat("open lock file ", path));
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) return ErrnoStatus(errno, absl::StrCat("lock ", path));
    char pid[32] = {};
    const ssize_t n = ::pread(fd.get(), pid, sizeof pid - 1, 0);
    const std::string holder =
        n > 0 ? absl::StrCat(" (pid ", absl::StripAsciiWhitespace(pid), ")") : "";
    return absl::FailedPreconditionError(
        absl::StrCat("another cribd", holder, " is using ", dir, ": it holds the lock ", path));
  }
  const std::string self = absl::StrCat(::getpid(), "\n");
  if (::ftruncate(fd.get(), 0) != 0 ||
      ::pwrite(fd.get(), self.data(), self.size(), 0) != static_cast<ssize_t>(self.size())) {
    return ErrnoStatus(errno, absl::StrCat("write pid to ", path));
  }
  return InstanceLock(std::move(path), std::move(fd));
}

}  // namespace crib
