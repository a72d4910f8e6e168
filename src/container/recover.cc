// Start-up recovery of containers: CreateContainer calls a crash interrupted are undone,
// RemoveContainer calls are finished, containers that ended while cribd was away get their
// exit from their monitor's file (or reason Unknown when the monitor is gone too), and what
// belongs to no record (bundles, writable layers, monitors) is removed.
#include <signal.h>

#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/process.h"
#include "common/status_macros.h"
#include "container/rootfs.h"
#include "container/service.h"
#include "image/fs_util.h"

namespace crib::container {

absl::StatusOr<ContainerRecovery> ContainerService::Recover() {
  ContainerRecovery report;
  ASSIGN_OR_RETURN(std::vector<store::ContainerRecord> records, store_.ListContainers());
  std::set<std::string> kept;
  for (store::ContainerRecord& record : records) {
    ASSIGN_OR_RETURN(ContainerData data, DecodeContainerData(record.id, record.data));
    std::shared_ptr<absl::Mutex> mutex = ContainerLock(record.id);
    absl::MutexLock lock(mutex.get());
    if (data.creating || data.removing) {
      if (absl::Status s = RemoveLocked(record.id); !s.ok()) {
        spdlog::warn("recovery: container {}: {}", record.id.substr(0, 12), s.message());
        kept.insert(record.id);
        continue;
      }
      ++(data.creating ? report.creates_undone : report.removals_finished);
      continue;
    }
    kept.insert(record.id);
    ++report.containers;
    const auto state = static_cast<ContainerState>(record.state);
    if (state != ContainerState::kCreated && state != ContainerState::kRunning) continue;
    if (state == ContainerState::kCreated) {
      // A crash between the start and its record: the monitor knows it runs.
      absl::StatusOr<runtime::ContainerStatus> live = launcher_.Status(Bundle(record.id));
      if (live.ok() && live->state == runtime::ContainerState::kRunning) {
        record.state = static_cast<int>(ContainerState::kRunning);
        data.started_at_ns = absl::ToUnixNanos(absl::Now());
        record.data = EncodeContainerData(data);
        RETURN_IF_ERROR(store_.UpdateContainer(record));
        ++report.starts_recorded;
      }
    }
    // (After a reboot the bundle is gone, and so is the container: Refresh says so.)
    if (absl::Status s = exits_->Watch(record.id, Bundle(record.id));
        !s.ok() && !absl::IsNotFound(s)) {
      spdlog::warn("recovery: container {}: {}", record.id.substr(0, 12), s.message());
    }
    const pid_t monitor_pid = data.monitor_pid;
    const uint64_t monitor_start_time = data.monitor_start_time;
    const std::string id = record.id;
    ASSIGN_OR_RETURN(Container now, Refresh(std::move(record), std::move(data)));
    if (now.state == ContainerState::kExited) {
      ++(now.reason == "Unknown" ? report.monitors_gone : report.exited_while_away);
    } else {
      exits_->WatchMonitor(id, Bundle(id), monitor_pid, monitor_start_time);
    }
  }
  // What no record names: a crash between a removal's steps, or state of a removed root.
  const std::string bundles = absl::StrCat(config_.state_dir, "/containers");
  for (const std::string& id : ListDirectory(bundles)) {
    if (kept.count(id) > 0) continue;
    const std::string bundle = absl::StrCat(bundles, "/", id);
    (void)launcher_.Remove(bundle);
    RETURN_IF_ERROR(Unmount(bundle + "/rootfs"));
    RETURN_IF_ERROR(image::RemoveAll(bundle));
    ++report.orphans;
  }
  const std::string layers = absl::StrCat(config_.root_dir, "/containers");
  for (const std::string& id : ListDirectory(layers)) {
    if (kept.count(id) > 0) continue;
    RETURN_IF_ERROR(image::RemoveAll(absl::StrCat(layers, "/", id)));
    ++report.orphans;
  }
  for (const auto& [pid, bundle] : ProcessesWithFlag("crib-monitor", "--bundle")) {
    if (!absl::StartsWith(bundle, bundles + "/")) continue;
    if (kept.count(bundle.substr(bundles.size() + 1)) > 0) continue;
    ::kill(pid, SIGKILL);
    ++report.orphans;
  }
  return report;
}

}  // namespace crib::container
