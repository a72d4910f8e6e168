#include "cgroup/layout.h"

#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/errors.h"
#include "common/files.h"
#include "common/status_macros.h"

namespace crib::cgroup {
namespace {

absl::StatusOr<bool> IsCgroup2(const std::string& path) {
  struct statfs fs;
  if (::statfs(path.c_str(), &fs) != 0) {
    if (errno == ENOENT) return false;
    return ErrnoStatus(errno, absl::StrCat("statfs ", path));
  }
  return fs.f_type == CGROUP2_SUPER_MAGIC;
}

// v1: the controllers the kernel has enabled (/proc/cgroups) that have a mounted hierarchy.
absl::StatusOr<std::set<std::string>> V1Controllers(const std::string& root) {
  ASSIGN_OR_RETURN(std::string text, ReadFile("/proc/cgroups"));
  std::set<std::string> out;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    if (absl::StartsWith(line, "#")) continue;
    std::vector<absl::string_view> cols = absl::StrSplit(line, '\t');
    if (cols.size() < 4 || cols[3] != "1") continue;
    const std::string name(cols[0]);
    struct statfs fs;
    const std::string dir = absl::StrCat(root, "/", name);
    if (::statfs(dir.c_str(), &fs) == 0 && fs.f_type == CGROUP_SUPER_MAGIC) out.insert(name);
  }
  return out;
}

absl::StatusOr<std::set<std::string>> V2Controllers(const std::string& mount) {
  ASSIGN_OR_RETURN(std::string text, ReadFile(absl::StrCat(mount, "/cgroup.controllers")));
  std::set<std::string> out;
  for (absl::string_view name :
       absl::StrSplit(absl::StripAsciiWhitespace(text), ' ', absl::SkipEmpty())) {
    out.emplace(name);
  }
  return out;
}

}  // namespace

absl::string_view ModeName(Mode mode) {
  switch (mode) {
    case Mode::kLegacy:
      return "v1";
    case Mode::kHybrid:
      return "v1 (hybrid)";
    case Mode::kUnified:
      return "v2";
  }
  return "unknown";
}

absl::StatusOr<Layout> DetectLayout(const std::string& root) {
  Layout layout;
  layout.root = root;
  ASSIGN_OR_RETURN(bool unified, IsCgroup2(root));
  if (unified) {
    layout.mode = Mode::kUnified;
    layout.unified_path = root;
    ASSIGN_OR_RETURN(layout.controllers, V2Controllers(root));
    return layout;
  }
  struct statfs fs;
  if (::statfs(root.c_str(), &fs) != 0) return ErrnoStatus(errno, absl::StrCat("statfs ", root));
  if (fs.f_type != TMPFS_MAGIC) {
    return absl::FailedPreconditionError(
        absl::StrCat(root, " is neither a cgroup2 mount nor a tmpfs holding cgroup v1 mounts"));
  }
  ASSIGN_OR_RETURN(layout.controllers, V1Controllers(root));
  const std::string unified_path = absl::StrCat(root, "/unified");
  ASSIGN_OR_RETURN(bool hybrid, IsCgroup2(unified_path));
  layout.mode = hybrid ? Mode::kHybrid : Mode::kLegacy;
  if (hybrid) layout.unified_path = unified_path;
  return layout;
}

}  // namespace crib::cgroup
