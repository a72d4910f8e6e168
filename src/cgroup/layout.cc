#include "cgroup/layout.h"

#include "absl/algorithm/container.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/files.h"
#include "common/status_macros.h"

namespace crib::cgroup {
namespace {

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

std::string ControllerMount(const Layout& layout, absl::string_view controller) {
  for (const Hierarchy& h : layout.hierarchies) {
    if (h.v2 ? layout.mode == Mode::kUnified : absl::c_linear_search(h.controllers, controller)) {
      return h.mount_point;
    }
  }
  return "";
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
  std::vector<Hierarchy> mounted;
  std::string error;
  if (!MountedHierarchies(&mounted, &error)) return absl::InternalError(error);
  // Only what is mounted at or below `root`.
  std::vector<Hierarchy> here;
  const Hierarchy* v2_root = nullptr;
  const Hierarchy* v2_unified = nullptr;
  for (const Hierarchy& h : mounted) {
    if (h.mount_point == root && h.v2) v2_root = &h;
    if (h.mount_point == absl::StrCat(root, "/unified") && h.v2) v2_unified = &h;
    if (h.mount_point == root || absl::StartsWith(h.mount_point, absl::StrCat(root, "/"))) {
      here.push_back(h);
    }
  }
  if (v2_root != nullptr) {
    layout.mode = Mode::kUnified;
    layout.unified_path = root;
    layout.hierarchies = {*v2_root};
    ASSIGN_OR_RETURN(layout.controllers, V2Controllers(root));
    return layout;
  }
  layout.hierarchies = UsableHierarchies(here);
  for (const Hierarchy& h : layout.hierarchies) {
    if (!h.v2) layout.controllers.insert(h.controllers.begin(), h.controllers.end());
  }
  if (layout.controllers.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(root,
                     " is neither a cgroup2 mount nor a directory holding cgroup v1 "
                     "mounts with controllers"));
  }
  layout.mode = v2_unified != nullptr ? Mode::kHybrid : Mode::kLegacy;
  if (v2_unified != nullptr) layout.unified_path = v2_unified->mount_point;
  return layout;
}

}  // namespace crib::cgroup
