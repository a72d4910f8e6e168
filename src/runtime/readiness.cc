#include "runtime/readiness.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cgroup/layout.h"
#include "common/errors.h"
#include "common/files.h"

namespace crib::runtime {
namespace {

// The controllers a pod or container cgroup is limited with.
constexpr const char* kRequiredControllers[] = {"cpu", "memory", "pids"};

bool HasOverlayFs() {
  absl::StatusOr<std::string> text = ReadFile("/proc/filesystems");
  if (!text.ok()) return false;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    if (line == "nodev\toverlay") return true;
  }
  return false;
}

Readiness NotReady(std::string reason, std::string message) {
  return Readiness{false, std::move(reason), std::move(message)};
}

}  // namespace

Readiness CheckRuntimeReady(const Config& config) {
  if (!HasOverlayFs()) {
    return NotReady("OverlayFsUnavailable",
                    "the kernel offers no overlay file system (/proc/filesystems); "
                    "container root file systems need it (modprobe overlay)");
  }
  absl::StatusOr<cgroup::Layout> layout = cgroup::DetectLayout();
  if (!layout.ok()) {
    return NotReady("CgroupsUnavailable", std::string(layout.status().message()));
  }
  std::vector<std::string> missing;
  for (const char* name : kRequiredControllers) {
    if (!layout->controllers.contains(name)) missing.emplace_back(name);
  }
  if (!missing.empty()) {
    return NotReady("CgroupControllersMissing",
                    absl::StrCat("cgroup ", cgroup::ModeName(layout->mode), " at ", layout->root,
                                 " lacks the controllers ", absl::StrJoin(missing, ", ")));
  }
  for (const std::string* dir : {&config.root_dir, &config.state_dir}) {
    if (::access(dir->c_str(), W_OK | X_OK) != 0) {
      return NotReady("DirectoryNotWritable",
                      std::string(ErrnoStatus(errno, absl::StrCat("access ", *dir)).message()));
    }
  }
  std::string message =
      absl::StrCat("overlayfs and cgroup ", cgroup::ModeName(layout->mode),
                   " with cpu, memory and pids are available; ", config.root_dir, " and ",
                   config.state_dir, " are writable");
  if (std::vector<std::string> unapplied = cgroup::UnappliedLimits(*layout); !unapplied.empty()) {
    absl::StrAppend(&message, "; limits left unapplied for want of a controller: ",
                    absl::StrJoin(unapplied, "; "));
  }
  return Readiness{true, "RuntimeIsReady", std::move(message)};
}

bool SupportsRecursiveReadOnly() {
  // The kernel does not change under a running cribd: probed once (a bad fd answers EBADF
  // where the call exists), not at each of kubelet's Status calls.
  static const bool supported =
      ::syscall(SYS_mount_setattr, -1, "", AT_EMPTY_PATH, nullptr, 0) != 0 && errno != ENOSYS;
  return supported;
}

}  // namespace crib::runtime
