// Start-up recovery of pods: RunPodSandbox calls a crash interrupted are undone,
// RemovePodSandbox calls are finished, ready pods whose pause process or namespace pins are
// gone are recorded as not ready, and what belongs to no pod (namespace pins, pod directories,
// pause processes, crib's own cgroups, the network backend's attachments) is removed. Runs after
// the containers' recovery, before cribd serves.
#include <signal.h>
#include <sys/mount.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/process.h"
#include "common/status_macros.h"
#include "pod/pause_process.h"
#include "pod/pins.h"
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
    // A reboot, or someone's umount, takes the pins.
    const std::vector<std::string> pins = data.Pins();
    const bool pinned = std::all_of(pins.begin(), pins.end(), IsPinned);
    if (record.state == static_cast<int>(PodState::kReady) &&
        (!pinned || (data.pid != 0 && !IsAlive(PauseProcess{data.pid, data.pid_start_time})))) {
      record.state = static_cast<int>(PodState::kNotReady);
      RETURN_IF_ERROR(store_.UpdatePod(record));
      ++report.not_ready;
    }
  }
  // What no record names.
  for (const char* kind : kPinKinds) {
    const std::string dir = absl::StrCat(config_.state_dir, "/", kind);
    for (const std::string& id : ListDirectory(dir)) {
      if (live.count(id) > 0) continue;
      RETURN_IF_ERROR(RemovePin(absl::StrCat(dir, "/", id)));
      ++report.orphans;
    }
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
  // The cgroups (and systemd units) of pods and containers that no record names; other
  // cribds' pods are theirs.
  ASSIGN_OR_RETURN(std::vector<store::ContainerRecord> containers, store_.ListContainers());
  std::set<std::string> keep = live;
  keep.insert(others.begin(), others.end());
  for (const store::ContainerRecord& c : containers) keep.insert(c.id);
  ASSIGN_OR_RETURN(const int cgroups, driver_->RemoveOrphans(keep));
  report.orphans += cgroups;
  ASSIGN_OR_RETURN(const int detached, network_.RemoveOrphans(live));
  report.orphans += detached;
  return report;
}

}  // namespace crib::pod
