// UpdatePodSandboxResources: in-place pod resize. kubelet has resized its own pod cgroup by
// then; crib applies the new limits to the pod cgroup it made below it and keeps the new
// config for PodSandboxStatus. A zero or empty value leaves that limit as it is.
#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "pod/record.h"
#include "pod/service.h"

namespace crib::pod {

absl::Status PodService::UpdateResources(const std::string& id_or_prefix,
                                         const cgroup::Resources& resources,
                                         const std::string& config_bytes) {
  ASSIGN_OR_RETURN(const std::string id, ResolveId(id_or_prefix));
  absl::MutexLock lock(&PodLock(id));
  ASSIGN_OR_RETURN(store::PodRecord record, store_.GetPod(id));
  ASSIGN_OR_RETURN(PodData data, DecodePodData(id, record.data));
  if (record.state != static_cast<int>(PodState::kReady)) {
    return absl::FailedPreconditionError(
        absl::StrCat("update resources of pod sandbox ", id, ": it is not ready"));
  }
  if (absl::Status s = driver_->Update(data.cgroup_path, resources, cgroup::Missing::kSkip);
      !s.ok()) {
    return Annotate(s, absl::StrCat("update resources of pod sandbox ", id));
  }
  if (!config_bytes.empty() && config_bytes != data.config_bytes) {
    data.config_bytes = config_bytes;
    record.data = EncodePodData(data);
    RETURN_IF_ERROR(store_.UpdatePod(record));
  }
  spdlog::info("pod {} ({}) resized: cpu shares {}, quota {}/{} us, memory {}", id.substr(0, 12),
               record.name, resources.cpu_shares.value_or(0), resources.cpu_quota.value_or(0),
               resources.cpu_period.value_or(0), resources.memory_limit.value_or(0));
  return absl::OkStatus();
}

}  // namespace crib::pod
