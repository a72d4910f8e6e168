// UpdatePodSandboxResources: in-place pod resize. kubelet has resized its own pod cgroup by
// then; crib applies the new limits to the pod cgroup it made below it and keeps the new
// config for PodSandboxStatus. A zero or empty value leaves that limit as it is.
#include "absl/strings/str_cat.h"
#include "cgroup/cgroupfs.h"
#include "cgroup/systemd_driver.h"
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
  if (cgroup::IsSystemdPath(data.cgroup_path)) {
    absl::Status s = cgroup::SharedSystemd().Set(
        cgroup::UnitOfPath(data.cgroup_path),
        cgroup::ResourceProperties(cgroup::ToSpecResources(resources),
                                   layout_.mode == cgroup::Mode::kUnified));
    if (!s.ok()) return Annotate(s, absl::StrCat("update resources of pod sandbox ", id));
  }
  if (absl::Status s = cgroup::Cgroup(layout_, data.cgroup_path).Apply(resources); !s.ok()) {
    return Annotate(s, absl::StrCat("update resources of pod sandbox ", id));
  }
  if (!config_bytes.empty() && config_bytes != data.config_bytes) {
    data.config_bytes = config_bytes;
    record.data = EncodePodData(data);
    RETURN_IF_ERROR(store_.UpdatePod(record));
  }
  spdlog::info("pod {} ({}) resized: cpu shares {}, quota {}/{} us, memory {}", id.substr(0, 12),
               record.name, resources.cpu_shares, resources.cpu_quota, resources.cpu_period,
               resources.memory_limit);
  return absl::OkStatus();
}

}  // namespace crib::pod
