// Where a container's parts are on the machine, for the rooms that read them.
#include "absl/strings/str_cat.h"
#include "container/service.h"

namespace crib::container {

std::string ContainerService::UpperDir(const std::string& id) const {
  return absl::StrCat(LayerDir(id), "/upper");
}

std::string ContainerService::CgroupPath(const std::string& pod_cgroup,
                                         const std::string& id) const {
  return driver_->ContainerPath(pod_cgroup, id);
}

}  // namespace crib::container
