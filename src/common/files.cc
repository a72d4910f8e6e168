#include "common/files.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/status_macros.h"
#include "common/unique_fd.h"

namespace crib {
namespace {

std::string DirName(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

absl::Status WriteAll(int fd, absl::string_view data, absl::string_view what) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, absl::StrCat("write ", what));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> MarkTopDirectory(const std::string& dir, mode_t mode) {
  RETURN_IF_ERROR(MakeDirs(dir, mode));
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return ErrnoStatus(errno, absl::StrCat("open ", dir));
  int flags = 0;
  if (::ioctl(fd.get(), FS_IOC_GETFLAGS, &flags) != 0) {
    if (errno == ENOTTY || errno == EOPNOTSUPP || errno == EINVAL) return false;
    return ErrnoStatus(errno, absl::StrCat("read the flags of ", dir));
  }
  if ((flags & FS_TOPDIR_FL) != 0) return true;
  flags |= FS_TOPDIR_FL;
  if (::ioctl(fd.get(), FS_IOC_SETFLAGS, &flags) != 0) {
    if (errno == ENOTTY || errno == EOPNOTSUPP || errno == EINVAL) return false;
    return ErrnoStatus(errno, absl::StrCat("mark ", dir, " as a top directory"));
  }
  // A file system that keeps only the flags it knows drops this one silently.
  int now = 0;
  return ::ioctl(fd.get(), FS_IOC_GETFLAGS, &now) == 0 && (now & FS_TOPDIR_FL) != 0;
}

absl::Status MakeDirs(const std::string& path, mode_t mode) {
  if (path.empty()) return absl::InvalidArgumentError("mkdir: empty path");
  // The directory itself first: its parents usually exist, and one mkdir then does it.
  if (::mkdir(path.c_str(), mode) == 0) return absl::OkStatus();
  if (errno == ENOENT) {
    // The parent: what comes before the last name (trailing slashes are no name).
    const size_t last = path.find_last_not_of('/');
    const size_t slash = last == std::string::npos ? std::string::npos : path.rfind('/', last);
    if (slash != std::string::npos && slash > 0) {
      RETURN_IF_ERROR(MakeDirs(path.substr(0, slash), mode));
    }
    if (::mkdir(path.c_str(), mode) == 0) return absl::OkStatus();
  }
  if (errno != EEXIST) return ErrnoStatus(errno, absl::StrCat("mkdir ", path));
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return ErrnoStatus(errno, absl::StrCat("stat ", path));
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(path, " exists and is not a directory"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return ErrnoStatus(errno, absl::StrCat("open ", path));
  std::string out;
  char buf[8192];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, absl::StrCat("read ", path));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

std::vector<std::string> ListDirectory(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return names;
  while (struct dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(d);
  return names;
}

absl::Status WriteFileAtomic(const std::string& path, absl::string_view content, mode_t mode,
                             Durability durability) {
  const std::string dir = DirName(path);
  std::string tmp = absl::StrCat(path, ".tmp-XXXXXX");
  UniqueFd fd(::mkostemp(tmp.data(), O_CLOEXEC));
  if (!fd) return ErrnoStatus(errno, absl::StrCat("create temporary file for ", path));
  absl::Cleanup remove_tmp = [&tmp] { ::unlink(tmp.c_str()); };
  if (::fchmod(fd.get(), mode) != 0) return ErrnoStatus(errno, absl::StrCat("chmod ", tmp));
  if (absl::Status s = WriteAll(fd.get(), content, tmp); !s.ok()) return s;
  if (durability == Durability::kDurable && ::fsync(fd.get()) != 0) {
    return ErrnoStatus(errno, absl::StrCat("fsync ", tmp));
  }
  fd.Reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return ErrnoStatus(errno, absl::StrCat("rename ", tmp, " to ", path));
  }
  std::move(remove_tmp).Cancel();
  if (durability == Durability::kVolatile) return absl::OkStatus();
  UniqueFd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir_fd) ::fsync(dir_fd.get());
  return absl::OkStatus();
}

}  // namespace crib
