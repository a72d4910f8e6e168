// PodSandboxStatus and ListPodSandbox: the records, with READY only while the recorded pause
// process, if the pod has one, really lives (checked against its start time, so a reused pid
// does not count).
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/ids.h"
#include "common/status_macros.h"
#include "pod/pause_process.h"
#include "pod/record.h"
#include "pod/service.h"

namespace crib::pod {
namespace {

PodSandbox Live(const store::PodRecord& record, const PodData& data) {
  PodSandbox pod = ToPodSandbox(record, data);
  if (pod.state == PodState::kReady && data.pid != 0 &&
      !IsAlive(PauseProcess{data.pid, data.pid_start_time})) {
    pod.state = PodState::kNotReady;
  }
  return pod;
}

}  // namespace

absl::StatusOr<PodData> PodService::Decode(const store::PodRecord& record) {
  if (std::optional<PodData> kept = decoded_.Find(record.id, record.data)) return *kept;
  ASSIGN_OR_RETURN(PodData data, DecodePodData(record.id, record.data));
  if (data.creating) return data;  // a failed run deletes it without a removal
  decoded_.Put(record.id, record.data, data);
  return data;
}

void PodService::ForgetDecoded(const std::string& id) { decoded_.Forget(id); }

absl::StatusOr<PodSandbox> PodService::Get(const std::string& id_or_prefix) {
  ASSIGN_OR_RETURN(const std::string id, ResolveId(id_or_prefix));
  return GetResolved(id);
}

absl::StatusOr<PodSandbox> PodService::GetResolved(const std::string& id) {
  absl::StatusOr<store::PodRecord> record = store_.GetPod(id);
  if (absl::IsNotFound(record.status())) {  // removed since its id was resolved
    return CriNotFound(absl::StrCat("pod sandbox ", id, " not found"));
  }
  if (!record.ok()) return record.status();
  ASSIGN_OR_RETURN(PodData data, Decode(*record));
  if (data.creating) {
    return CriNotFound(absl::StrCat("pod sandbox ", id, " is still being created"));
  }
  return Live(*record, data);
}

absl::StatusOr<std::string> PodService::NetnsOf(const std::string& id_or_prefix) {
  ASSIGN_OR_RETURN(PodSandbox pod, Get(id_or_prefix));
  if (pod.state != PodState::kReady) {
    return absl::FailedPreconditionError(absl::StrCat("pod sandbox ", pod.id, " is not ready"));
  }
  return pod.netns_path;
}

absl::StatusOr<std::vector<PodSandbox>> PodService::List(const PodFilter& filter) {
  ASSIGN_OR_RETURN(std::vector<store::PodRecord> records, store_.ListPods());
  if (!filter.id.empty()) KeepIdOrUniquePrefix(&records, filter.id);
  std::vector<PodSandbox> out;
  for (const store::PodRecord& record : records) {
    ASSIGN_OR_RETURN(PodData data, Decode(record));
    if (data.creating) continue;
    PodSandbox pod = Live(record, data);
    if (filter.state.has_value() && pod.state != *filter.state) continue;
    if (LabelsMatch(pod.labels, filter.labels)) out.push_back(std::move(pod));
  }
  return out;
}

}  // namespace crib::pod
