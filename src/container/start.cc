// StartContainer: release the parked init and return once its exec succeeded or failed; a
// failed start leaves the container exited with reason StartError and the launcher's message.
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/errors.h"
#include "common/failpoint.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "container/service.h"

namespace crib::container {
namespace {

const char* StateName(ContainerState state) {
  switch (state) {
    case ContainerState::kCreated:
      return "created";
    case ContainerState::kRunning:
      return "running";
    case ContainerState::kExited:
      return "exited";
    case ContainerState::kUnknown:
      break;
  }
  return "unknown";
}

}  // namespace

absl::Status ContainerService::Start(const std::string& id_or_prefix) {
  ASSIGN_OR_RETURN(const std::string id, ResolveId(id_or_prefix));
  std::shared_ptr<absl::Mutex> mutex = ContainerLock(id);
  absl::MutexLock lock(mutex.get());
  ASSIGN_OR_RETURN(auto loaded, Load(id));
  auto& [record, data] = loaded;
  ASSIGN_OR_RETURN(Container current, Refresh(record, data));
  if (current.state != ContainerState::kCreated) {
    return absl::FailedPreconditionError(absl::StrCat("start container ", id, ": it is ",
                                                      StateName(current.state), ", not created"));
  }
  const absl::Time start = absl::Now();
  RETURN_IF_ERROR(Failpoint("container.start.before_start"));
  absl::Time started_at;
  absl::Status started = launcher_.Start(Bundle(id), &started_at);
  RETURN_IF_ERROR(Failpoint("container.start.after_start"));
  if (started.ok()) {
    data.started_at_ns = absl::ToUnixNanos(started_at);
    record.state = static_cast<int>(ContainerState::kRunning);
  } else {
    // As containerd reports it: exited, 128, StartError with the cause.
    data.started_at_ns = 0;
    data.finished_at_ns = absl::ToUnixNanos(absl::Now());
    data.exit_code = 128;
    data.reason = "StartError";
    data.message = std::string(started.message());
    data.monitor_pid = 0;
    data.init_pid = 0;
    record.state = static_cast<int>(ContainerState::kExited);
  }
  record.data = EncodeContainerData(data);
  if (absl::Status s = store_.UpdateContainer(record); !s.ok()) {
    return Annotate(s, absl::StrCat("start container ", id, ": record its state"));
  }
  if (!started.ok()) {
    Publish(ContainerEvent::Type::kStopped, id, record.pod_id);
    return Annotate(started, absl::StrCat("start container ", id, " (", record.name, ")"));
  }
  Publish(ContainerEvent::Type::kStarted, id, record.pod_id);
  spdlog::info("container {} ({}) started in {}", id.substr(0, 12), record.name,
               absl::FormatDuration(absl::Now() - start));
  return absl::OkStatus();
}

}  // namespace crib::container
