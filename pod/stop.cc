// StopPodSandbox: stop the pause process and detach the network; the record, the netns pin,
// the files, /dev/shm and the cgroup stay until RemovePodSandbox. Idempotent.
#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "pod/pause_process.h"
#include "pod/record.h"
#include "pod/service.h"

namespace crib::pod {

absl::Status PodService::Stop(const std::string& id_or_prefix) {
  // A pod that is gone is stopped: kubelet retries stops (CRI: must not fail then).
  absl::StatusOr<std::string> resolved = ResolveId(id_or_prefix);
  if (absl::IsNotFound(resolved.status())) return absl::OkStatus();
  RETURN_IF_ERROR(resolved.status());
  const std::string& id = *resolved;
  absl::MutexLock lock(&PodLock(id));
  return StopLocked(id);
}

absl::Status PodService::StopLocked(const std::string& id, bool removing) {
  absl::StatusOr<store::PodRecord> record = store_.GetPod(id);
  if (absl::IsNotFound(record.status())) return absl::OkStatus();  // removed meanwhile
  RETURN_IF_ERROR(record.status());
  ASSIGN_OR_RETURN(PodData data, DecodePodData(id, record->data));
  auto step_error = [&](absl::string_view step, const absl::Status& status) {
    return Annotate(status, absl::StrCat("stop pod sandbox ", id, ": ", step));
  };

  // The containers first, so that none outlives the namespaces it joined.
  if (hooks_.stop_all) {
    if (absl::Status s = hooks_.stop_all(id); !s.ok()) return step_error("stop containers", s);
  }

  if (absl::Status s = StopPause(PauseProcess{data.pid, data.pid_start_time}, absl::Seconds(2));
      !s.ok()) {
    return step_error("stop crib-pause", s);
  }
  if (!data.netns_path.empty()) {
    network::PodNetworkConfig net;
    net.pod_id = id;
    net.name = record->name;
    net.namespace_ = record->namespace_;
    net.uid = record->uid;
    net.netns_path = data.netns_path;
    net.port_mappings = data.port_mappings;
    net.annotations = data.annotations;
    net.removing = removing;
    net.defer_link_deletion = !removing;
    if (absl::Status s = network_.TearDown(net); !s.ok()) return step_error("tear down network", s);
  }
  if (record->state != static_cast<int>(PodState::kNotReady) || !data.ips.empty()) {
    record->state = static_cast<int>(PodState::kNotReady);
    data.ips.clear();
    record->data = EncodePodData(data);
    if (absl::Status s = store_.UpdatePod(*record); !s.ok()) return step_error("record pod", s);
    spdlog::info("pod {} ({}) stopped", id.substr(0, 12), record->name);
  }
  return absl::OkStatus();
}

}  // namespace crib::pod
