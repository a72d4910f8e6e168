// Start-up recovery of pods: RunPodSandbox calls a crash interrupted are undone,
// RemovePodSandbox calls are finished, ready pods whose pause process died are recorded as
// not ready, and what belongs to no pod (netns pins, pod directories, pause processes, crib's
// own cgroups, the network backend's attachments) is removed. Runs after the containers'
// recovery, before cribd serves.
#include <signal.h>
#include <sys/mount.h>

#include <cerrno>
#include <filesystem>
#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "cgroup/cgroupfs.h"
#include "cgroup/systemd_driver.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/process.h"
#include "common/status_macros.h"
#include "pod/netns.h"
#include "pod/pause_process.h"
#include "pod/record.h"
#include "pod/service.h"

namespace crib::pod {

absl::StatusOr<PodRecovery> PodService::Recover() {
  PodRecovery report;
  ASSIGN_OR_RETURN(std::vector<store::PodRecord> records, store_.ListPods());
  std::set<std::string> live;
  for (store::PodRecord& record : records) {
    ASSIGN_OR_RETURN(PodData data, DecodePodData(record.id, record.data));
    if (data.creating || data.removing) {
      if (absl::Status s = Remove(record.id); !s.ok()) {
        spdlog::warn("recovery: pod {}: {}", record.id.substr(0, 12), s.message());
        live.insert(record.id);
        continue;
      }
      ++(data.creating ? report.runs_undone : report.removals_finished);
      continue;
    }
    live.insert(record.id);
    ++report.pods;
    if (record.state == static_cast<int>(PodState::kReady) &&
        !IsAlive(PauseProcess{data.pid, data.pid_start_time})) {
      record.state = static_cast<int>(PodState::kNotReady);
      RETURN_IF_ERROR(store_.UpdatePod(record));
      ++report.not_ready;
    }
  }
  // What no record names.
  const std::string netns_dir = absl::StrCat(config_.state_dir, "/netns");
  for (const std::string& id : ListDirectory(netns_dir)) {
    if (live.count(id) > 0) continue;
    RETURN_IF_ERROR(RemovePinnedNetns(absl::StrCat(netns_dir, "/", id)));
    ++report.orphans;
  }
  const std::string pods_dir = absl::StrCat(config_.state_dir, "/pods");
  for (const std::string& id : ListDirectory(pods_dir)) {
    if (live.count(id) > 0) continue;
    const std::string dir = absl::StrCat(pods_dir, "/", id);
    ::umount2(absl::StrCat(dir, "/shm").c_str(), MNT_DETACH);
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    if (ec) return absl::InternalError(absl::StrCat("remove ", dir, ": ", ec.message()));
    ++report.orphans;
  }
  // Only this cribd's pause processes: another cribd on the machine (its own state dir) owns
  // the rest. Pods of other cribds are skipped in the cgroup scan below too.
  std::set<std::string> others;
  for (const auto& [pid, pod_dir] : ProcessesWithFlag("crib-pause", "--pod")) {
    const std::string id = std::filesystem::path(pod_dir).filename().string();
    if (std::filesystem::path(pod_dir).parent_path() != pods_dir) {
      others.insert(id);
      continue;
    }
    if (live.count(id) > 0) continue;
    ::kill(pid, SIGKILL);
    ++report.orphans;
  }
  // Pods under crib's own cgroup parent (kubelet's parents are kubelet's to clean), with
  // the leaves below them (containers, the pause's on v2).
  std::map<std::string, std::set<std::string>> cgroups;  // pod id -> leaves
  for (const std::string& dir : cgroup::Cgroup(layout_, kCribCgroupParent).Dirs()) {
    for (const std::string& id : ListDirectory(dir)) {
      const std::string pod_dir = absl::StrCat(dir, "/", id);
      if (live.count(id) > 0 || others.count(id) > 0 || !std::filesystem::is_directory(pod_dir)) {
        continue;
      }
      std::set<std::string>& leaves = cgroups[id];
      for (const std::string& leaf : ListDirectory(pod_dir)) {
        if (std::filesystem::is_directory(absl::StrCat(pod_dir, "/", leaf))) leaves.insert(leaf);
      }
    }
  }
  for (const auto& [id, leaves] : cgroups) {
    const std::string path = absl::StrCat(kCribCgroupParent, "/", id);
    for (const std::string& leaf : leaves) {
      // Remove kills what is left first.
      RETURN_IF_ERROR(cgroup::Cgroup(layout_, absl::StrCat(path, "/", leaf)).Remove());
    }
    RETURN_IF_ERROR(cgroup::Cgroup(layout_, path).Remove());
    ++report.orphans;
  }
  if (systemd()) {
    // The systemd driver's units of this cribd that no pod or container record names.
    ASSIGN_OR_RETURN(std::vector<store::ContainerRecord> containers, store_.ListContainers());
    std::set<std::string> known = live;
    for (const store::ContainerRecord& c : containers) known.insert(c.id);
    for (const char* pattern : {"crib-*.scope", "*crib[-_]*.slice"}) {
      // Without systemd, cribd still starts (Status says why it is not ready); the sweep is
      // done at the next start that reaches systemd.
      absl::StatusOr<std::vector<std::string>> units = cgroup::SharedSystemd().ListOwn(pattern);
      if (!units.ok()) {
        spdlog::warn("recovery: systemd's units left unchecked: {}", units.status().message());
        break;
      }
      for (const std::string& unit : *units) {
        const std::string id = cgroup::IdOfUnit(unit);
        if (id.empty() || known.count(id) > 0) continue;
        RETURN_IF_ERROR(cgroup::SharedSystemd().Stop(unit));
        spdlog::info("recovery: stopped systemd unit {}, which no record names", unit);
        ++report.orphans;
      }
    }
  }
  ASSIGN_OR_RETURN(const int detached, network_.RemoveOrphans(live));
  report.orphans += detached;
  return report;
}

}  // namespace crib::pod
