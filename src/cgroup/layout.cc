#include "cgroup/layout.h"

#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <cerrno>

#include "absl/strings/numbers.h"
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

// The sizes under /sys/kernel/mm/hugepages ("hugepages-2048kB", ...); none when it is missing.
std::set<std::string> HugepageSizes(const std::string& dir) {
  std::set<std::string> out;
  for (const std::string& name : ListDirectory(dir)) {
    absl::string_view size = name;
    uint64_t kib = 0;
    if (absl::ConsumePrefix(&size, "hugepages-") && absl::ConsumeSuffix(&size, "kB") &&
        absl::SimpleAtoi(size, &kib) && kib > 0) {
      out.insert(HugepageSizeName(kib));
    }
  }
  return out;
}

}  // namespace

std::string HugepageSizeName(uint64_t kib) {
  if (kib >= 1024 * 1024 && kib % (1024 * 1024) == 0) return absl::StrCat(kib / (1024 * 1024), "GB");
  if (kib >= 1024 && kib % 1024 == 0) return absl::StrCat(kib / 1024, "MB");
  return absl::StrCat(kib, "KB");
}

std::string MissingController(const Layout& layout, absl::string_view controller) {
  if (layout.controllers.contains(std::string(controller))) return "";
  if (layout.mode == Mode::kUnified) {
    return absl::StrCat("the cgroup v2 root ", layout.root, " does not offer the ", controller,
                        " controller");
  }
  return absl::StrCat("no cgroup v1 hierarchy under ", layout.root, " has the ", controller,
                      " controller",
                      layout.mode == Mode::kHybrid ? " (a hybrid machine may leave it to the v2 tree)"
                                                   : "");
}

std::vector<std::string> UnappliedLimits(const Layout& layout) {
  std::vector<std::string> out;
  for (const char* controller : {"cpu", "cpuset", "memory", "pids", "hugetlb"}) {
    std::string why = MissingController(layout, controller);
    if (!why.empty()) out.push_back(absl::StrCat(controller, ": ", why));
  }
  return out;
}

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

absl::StatusOr<Layout> DetectLayout(const std::string& root, const std::string& hugepages) {
  Layout layout;
  layout.root = root;
  layout.hugepage_sizes = HugepageSizes(hugepages);
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
