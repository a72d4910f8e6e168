// UpdateContainerResources (the live cgroup, and the record that ContainerStatus reports) and
// ReopenContainerLog.
#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/status_macros.h"
#include "container/service.h"
#include "container/spec_builder.h"

namespace crib::container {

absl::Status ContainerService::UpdateResources(const std::string& id_or_prefix,
                                               const Resources& resources) {
  ASSIGN_OR_RETURN(const std::string id, ResolveId(id_or_prefix));
  std::shared_ptr<absl::Mutex> mutex = ContainerLock(id);
  absl::MutexLock lock(mutex.get());
  ASSIGN_OR_RETURN(auto loaded, Load(id));
  auto& [record, data] = loaded;
  ASSIGN_OR_RETURN(Container current, Refresh(record, data));
  if (current.state != ContainerState::kCreated && current.state != ContainerState::kRunning) {
    return absl::FailedPreconditionError(
        absl::StrCat("update resources of container ", id, ": it is not running"));
  }
  runtime::Resources limits =
      ToRuntimeResources(resources, layout_.mode == cgroup::Mode::kUnified);
  FitResources(id, &limits);
  absl::Status updated = [&]() -> absl::Status {
    ASSIGN_OR_RETURN(std::optional<runtime::OciRuntime> oci, launcher_.RuntimeOf(Bundle(id)));
    if (oci) return launcher_.UpdateWithRuntime(Bundle(id), *oci, limits);
    ASSIGN_OR_RETURN(const std::string cgroup, launcher_.CgroupPath(Bundle(id)));
    return driver_->Update(cgroup, limits, cgroup::Missing::kRefuse);
  }();
  if (!updated.ok()) return Annotate(updated, absl::StrCat("update resources of container ", id));
  data.resources = resources;
  record.data = EncodeContainerData(data);
  return store_.UpdateContainer(record);
}

absl::Status ContainerService::ReopenLog(const std::string& id_or_prefix) {
  ASSIGN_OR_RETURN(const std::string id, ResolveId(id_or_prefix));
  ASSIGN_OR_RETURN(auto loaded, Load(id));
  ASSIGN_OR_RETURN(Container c, Refresh(std::move(loaded.first), std::move(loaded.second)));
  if (c.state != ContainerState::kRunning) {
    return absl::FailedPreconditionError(
        absl::StrCat("reopen the log of container ", id, ": it is not running"));
  }
  if (absl::Status s = launcher_.ReopenLog(c.bundle); !s.ok()) {
    return Annotate(s, absl::StrCat("reopen the log of container ", id));
  }
  return absl::OkStatus();
}

}  // namespace crib::container
