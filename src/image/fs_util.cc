#include "image/fs_util.h"

#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/errors.h"

namespace crib::image {
namespace {

// nftw has no user pointer, so the walks keep their state in thread-locals.
thread_local int remove_errno = 0;
thread_local std::string remove_failed_path;
thread_local DiskUsage* usage_total = nullptr;
thread_local std::set<std::pair<dev_t, ino_t>>* usage_seen = nullptr;

int RemoveOne(const char* path, const struct stat*, int type, struct FTW*) {
  const int rc = (type == FTW_DP) ? ::rmdir(path) : ::unlink(path);
  if (rc != 0 && errno != ENOENT && remove_errno == 0) {
    remove_errno = errno;
    remove_failed_path = path;
  }
  return 0;
}

int CountOne(const char*, const struct stat* st, int type, struct FTW*) {
  if (type == FTW_NS) return 0;
  if (st->st_nlink > 1 && !S_ISDIR(st->st_mode)) {
    if (!usage_seen->emplace(st->st_dev, st->st_ino).second) return 0;
  }
  usage_total->bytes += static_cast<uint64_t>(st->st_blocks) * 512;
  usage_total->inodes += 1;
  return 0;
}

}  // namespace

absl::Status RemoveAll(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return ErrnoStatus(errno, absl::StrCat("stat ", path));
  }
  if (!S_ISDIR(st.st_mode)) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return ErrnoStatus(errno, absl::StrCat("remove ", path));
    }
    return absl::OkStatus();
  }
  remove_errno = 0;
  remove_failed_path.clear();
  if (::nftw(path.c_str(), RemoveOne, 64, FTW_DEPTH | FTW_PHYS) != 0) {
    return ErrnoStatus(errno, absl::StrCat("walk ", path));
  }
  if (remove_errno != 0)
    return ErrnoStatus(remove_errno, absl::StrCat("remove ", remove_failed_path));
  return absl::OkStatus();
}

absl::StatusOr<DiskUsage> MeasureUsage(const std::string& path) {
  DiskUsage total;
  std::set<std::pair<dev_t, ino_t>> seen;
  usage_total = &total;
  usage_seen = &seen;
  const int rc = ::nftw(path.c_str(), CountOne, 64, FTW_PHYS);
  const int err = errno;
  usage_total = nullptr;
  usage_seen = nullptr;
  if (rc != 0) {
    if (err == ENOENT) return DiskUsage{};
    return ErrnoStatus(err, absl::StrCat("walk ", path));
  }
  return total;
}

}  // namespace crib::image
