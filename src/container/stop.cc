// StopContainer: the container's stop signal, SIGKILL after the timeout; idempotent. (A
// container whose monitor is gone is found exited, reason Unknown, by Refresh.)
#include <signal.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/errors.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "container/service.h"

namespace crib::container {

absl::Status ContainerService::Stop(const std::string& id_or_prefix, absl::Duration timeout) {
  // A container that is gone is stopped: kubelet retries stops (CRI: must not fail then).
  absl::StatusOr<std::string> resolved = ResolveId(id_or_prefix);
  if (absl::IsNotFound(resolved.status())) return absl::OkStatus();
  RETURN_IF_ERROR(resolved.status());
  const std::string& id = *resolved;
  std::shared_ptr<absl::Mutex> mutex = ContainerLock(id);
  absl::MutexLock lock(mutex.get());
  return StopLocked(id, timeout);
}

absl::Status ContainerService::StopLocked(const std::string& id, absl::Duration timeout) {
  absl::StatusOr<std::pair<store::ContainerRecord, ContainerData>> loaded = Load(id);
  if (absl::IsNotFound(loaded.status())) return absl::OkStatus();  // removed meanwhile
  RETURN_IF_ERROR(loaded.status());
  auto& [record, data] = *loaded;
  ASSIGN_OR_RETURN(Container current, Refresh(record, data));
  auto step_error = [&](absl::string_view step, const absl::Status& status) {
    return Annotate(status, absl::StrCat("stop container ", id, " (", record.name, "): ", step));
  };
  const std::string bundle = Bundle(id);
  if (current.state != ContainerState::kCreated && current.state != ContainerState::kRunning) {
    return absl::OkStatus();
  }
  const absl::Time start = absl::Now();
  // A parked init has nothing to shut down gracefully.
  if (timeout > absl::ZeroDuration() && current.state == ContainerState::kRunning &&
      data.stop_signal != SIGKILL) {
    if (absl::Status s = launcher_.Kill(bundle, data.stop_signal); !s.ok()) {
      return step_error(absl::StrCat("signal ", data.stop_signal), s);
    }
    if (launcher_.WaitExit(bundle, timeout).ok()) {
      RETURN_IF_ERROR(Refresh(record, data).status());
      spdlog::info("container {} ({}) stopped by signal {} in {}", id.substr(0, 12), record.name,
                   data.stop_signal, absl::FormatDuration(absl::Now() - start));
      return absl::OkStatus();
    }
  }
  if (absl::Status s = launcher_.Kill(bundle, SIGKILL); !s.ok()) {
    return step_error("signal SIGKILL", s);
  }
  absl::StatusOr<runtime::ExitInfo> exit = launcher_.WaitExit(bundle, runtime::kKillGrace);
  if (!exit.ok()) return step_error("wait for the exit after SIGKILL", exit.status());
  RETURN_IF_ERROR(Refresh(record, data).status());
  spdlog::info("container {} ({}) killed in {}", id.substr(0, 12), record.name,
               absl::FormatDuration(absl::Now() - start));
  return absl::OkStatus();
}

absl::Status ContainerService::StopAllInPod(const std::string& pod_id) {
  ASSIGN_OR_RETURN(std::vector<store::ContainerRecord> records, store_.ListContainers(pod_id));
  absl::Status first;
  for (const store::ContainerRecord& record : records) {
    std::shared_ptr<absl::Mutex> mutex = ContainerLock(record.id);
    absl::MutexLock lock(mutex.get());
    absl::Status s = StopLocked(record.id, absl::ZeroDuration());
    if (!s.ok() && first.ok()) first = s;
  }
  return first;
}

}  // namespace crib::container
