#include "image/mount_layer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/errors.h"
#include "common/status_macros.h"
#include "common/unique_fd.h"

namespace crib::image {
namespace {

constexpr char kOpaqueXattr[] = "trusted.overlay.opaque";

bool IsWhiteout(const struct stat& st) {
  return S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0);
}

bool IsOpaque(const std::string& path) {
  char value[2];
  return ::lgetxattr(path.c_str(), kOpaqueXattr, value, sizeof(value)) == 1 && value[0] == 'y';
}

// An entry of the merged view: what the topmost layer that has it holds, and for a directory
// the layers' directories merged into it, top first.
struct Entry {
  bool exists = false;
  struct stat st = {};
  std::vector<std::string> dirs;
};

// The child `name` of the merged directory `parent`, as overlayfs resolves it: the first
// layer that has the name decides (a whiteout hides it); a directory merges the same name's
// directories below it down to an opaque one or to anything that is not a directory.
absl::StatusOr<Entry> Child(const Entry& parent, const std::string& name) {
  Entry entry;
  for (const std::string& dir : parent.dirs) {
    const std::string path = absl::StrCat(dir, "/", name);
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) {
      if (errno == ENOENT) continue;
      return ErrnoStatus(errno, absl::StrCat("lstat ", path));
    }
    if (!entry.exists) {
      if (IsWhiteout(st)) return entry;
      entry.exists = true;
      entry.st = st;
      if (!S_ISDIR(st.st_mode)) return entry;
    } else if (!S_ISDIR(st.st_mode)) {
      return entry;
    }
    entry.dirs.push_back(path);
    if (IsOpaque(path)) return entry;
  }
  return entry;
}

// A new entry as the init makes a missing mount point: root's, 0755 or 0644 whatever the umask.
absl::Status MakeEntry(const std::string& path, bool file) {
  if (file) {
    UniqueFd fd(::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644));
    if (!fd) return ErrnoStatus(errno, absl::StrCat("create ", path));
    if (::fchmod(fd.get(), 0644) != 0) return ErrnoStatus(errno, absl::StrCat("chmod ", path));
    return absl::OkStatus();
  }
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
    return ErrnoStatus(errno, absl::StrCat("mkdir ", path));
  }
  if (::chmod(path.c_str(), 0755) != 0) return ErrnoStatus(errno, absl::StrCat("chmod ", path));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<bool> MakeMountPointLayer(const std::vector<std::string>& layers,
                                         const std::vector<MountPoint>& points,
                                         const std::string& dir) {
  Entry root;
  root.exists = true;
  root.dirs = layers;
  bool made = false;
  // The image's directories copied on the way, with their times: set last, once their
  // entries are made.
  std::vector<std::pair<std::string, struct stat>> copied;
  for (const MountPoint& point : points) {
    const std::vector<std::string> parts = absl::StrSplit(point.path, '/', absl::SkipEmpty());
    Entry at = root;
    std::string out = dir;
    for (size_t i = 0; i < parts.size(); ++i) {
      const bool last = i + 1 == parts.size();
      ASSIGN_OR_RETURN(Entry next, Child(at, parts[i]));
      out = absl::StrCat(out, "/", parts[i]);
      if (next.exists && last) break;  // the image has it: the init mounts on it as it is
      if (next.exists) {
        // Something else than a directory on the way: the init follows it inside the root.
        if (!S_ISDIR(next.st.st_mode)) return false;
        if (::mkdir(out.c_str(), 0700) == 0) {
          // The image's directory as it is: the merged view keeps its mode, owner and times.
          if (::lchown(out.c_str(), next.st.st_uid, next.st.st_gid) != 0 ||
              ::chmod(out.c_str(), next.st.st_mode & 07777) != 0) {
            return ErrnoStatus(errno, absl::StrCat("copy the attributes of ", point.path));
          }
          copied.emplace_back(out, next.st);
        } else if (errno != EEXIST) {
          return ErrnoStatus(errno, absl::StrCat("mkdir ", out));
        }
        at = std::move(next);
        continue;
      }
      RETURN_IF_ERROR(MakeEntry(out, last && point.file));
      for (size_t j = i + 1; j < parts.size(); ++j) {
        out = absl::StrCat(out, "/", parts[j]);
        RETURN_IF_ERROR(MakeEntry(out, j + 1 == parts.size() && point.file));
      }
      made = true;
      break;
    }
  }
  for (auto it = copied.rbegin(); it != copied.rend(); ++it) {
    const struct timespec times[2] = {it->second.st_atim, it->second.st_mtim};
    if (::utimensat(AT_FDCWD, it->first.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
      return ErrnoStatus(errno, absl::StrCat("set the times of ", it->first));
    }
  }
  return made;
}

}  // namespace crib::image
