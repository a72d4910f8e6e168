// The cgroupfs driver: crib makes the cgroup directories itself (driver.h).
#include "cgroup/driver.h"

#include <filesystem>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "cgroup/cgroupfs.h"
#include "cgroup/parent.h"
#include "common/files.h"
#include "common/status_macros.h"

namespace crib::cgroup {
namespace {

class CgroupfsDriver final : public Driver {
 public:
  CgroupfsDriver(const Layout& layout, std::string default_parent)
      : layout_(layout),
        default_parent_(default_parent.empty() ? kCribCgroupParent : std::move(default_parent)) {}

  absl::string_view Name() const override { return "cgroupfs"; }

  absl::StatusOr<std::string> PodPath(absl::string_view parent,
                                      absl::string_view pod_id) const override {
    RETURN_IF_ERROR(CheckCgroupParent(parent, /*systemd=*/false));
    const absl::string_view base = parent.empty() ? default_parent_ : parent;
    return absl::StrCat(absl::StartsWith(base, "/") ? "" : "/", absl::StripSuffix(base, "/"), "/",
                        pod_id);
  }

  // On v2 a cgroup with processes cannot hand controllers to its children (the containers'):
  // crib-pause gets the leaf "pause" beside them. On v1 it stays in the pod's cgroup.
  std::string PausePath(absl::string_view pod_path, absl::string_view) const override {
    return absl::StrCat(pod_path, layout_.mode == Mode::kUnified ? "/pause" : "");
  }

  std::string ContainerPath(absl::string_view pod_path, absl::string_view id) const override {
    return absl::StrCat(pod_path, "/", id);
  }

  absl::Status CreatePod(const std::string& pod_path, const std::string& pause_path,
                         const Resources& resources) override {
    absl::Status made = [&]() -> absl::Status {
      Cgroup pod(layout_, pod_path);
      RETURN_IF_ERROR(pod.Create());
      RETURN_IF_ERROR(pod.Apply(resources, Missing::kSkip));
      if (pause_path != pod_path) RETURN_IF_ERROR(Cgroup(layout_, pause_path).Create());
      return absl::OkStatus();
    }();
    if (!made.ok()) (void)RemovePod(pod_path, pause_path);
    return made;
  }

  absl::Status RemovePod(const std::string& pod_path, const std::string& pause_path) override {
    if (pause_path != pod_path) RETURN_IF_ERROR(Remove(pause_path));
    return Remove(pod_path);
  }

  std::vector<std::string> JoinFiles(const std::string& path) const override {
    return Cgroup(layout_, path).SelfJoinFiles();
  }

  bool Places() const override { return false; }

  absl::Status Prepare(const std::string& path) override { return Cgroup(layout_, path).Create(); }

  absl::Status Place(const std::string& path, pid_t pid, const Resources& resources) override {
    Cgroup cgroup(layout_, path);
    RETURN_IF_ERROR(cgroup.Create());
    RETURN_IF_ERROR(cgroup.Apply(resources, Missing::kRefuse));
    return cgroup.AddProcess(pid);
  }

  absl::Status Update(const std::string& path, const Resources& resources,
                      Missing missing) override {
    return Cgroup(layout_, path).Apply(resources, missing);
  }

  absl::Status Remove(const std::string& path) override { return Cgroup(layout_, path).Remove(); }

  // Pods under the default parent (kubelet's parents are kubelet's to clean), with the leaves
  // below them (containers' cgroups, crib-pause's on v2).
  absl::StatusOr<int> RemoveOrphans(const std::set<std::string>& keep) override {
    std::map<std::string, std::set<std::string>> orphans;  // pod id -> leaves
    for (const std::string& dir : Cgroup(layout_, default_parent_).Dirs()) {
      for (const std::string& id : ListDirectory(dir)) {
        const std::string pod_dir = absl::StrCat(dir, "/", id);
        if (keep.count(id) > 0 || !std::filesystem::is_directory(pod_dir)) continue;
        std::set<std::string>& leaves = orphans[id];
        for (const std::string& leaf : ListDirectory(pod_dir)) {
          if (std::filesystem::is_directory(absl::StrCat(pod_dir, "/", leaf))) leaves.insert(leaf);
        }
      }
    }
    for (const auto& [id, leaves] : orphans) {
      const std::string path = absl::StrCat(absl::StripSuffix(default_parent_, "/"), "/", id);
      for (const std::string& leaf : leaves) RETURN_IF_ERROR(Remove(absl::StrCat(path, "/", leaf)));
      RETURN_IF_ERROR(Remove(path));
    }
    return static_cast<int>(orphans.size());
  }

 private:
  const Layout layout_;
  const std::string default_parent_;
};

}  // namespace

std::unique_ptr<Driver> MakeCgroupfsDriver(const Layout& layout,
                                           const std::string& default_parent) {
  return std::make_unique<CgroupfsDriver>(layout, default_parent);
}

}  // namespace crib::cgroup
