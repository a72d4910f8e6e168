// UpdateContainerResources (the live cgroup, and the record that ContainerStatus reports) and
// ReopenContainerLog.
#include "absl/strings/str_cat.h"
#include "cgroup/systemd_driver.h"
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
  if (config_.cgroup_driver == CgroupDriver::kSystemd) {
    // systemd keeps what it applies to the scope; the files cover the rest below.
    absl::Status s = cgroup::SharedSystemd().Set(
        cgroup::ScopeName(id),
        cgroup::ResourceProperties(limits, layout_.mode == cgroup::Mode::kUnified));
    if (!s.ok() && !absl::IsNotFound(s)) {
      return Annotate(s, absl::StrCat("update resources of container ", id));
    }
  }
  if (absl::Status s = launcher_.UpdateResources(Bundle(id), limits); !s.ok()) {
    return Annotate(s, absl::StrCat("update resources of container ", id));
  }
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
