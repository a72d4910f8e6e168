// RemoveContainer: stop it if need be, then the monitor's files and the cgroup, the rootfs
// mount, the bundle and the writable layer, and last the record; idempotent, so a remove
// that failed half-way is finished by the next.
#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/failpoint.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/steps.h"
#include "container/rootfs.h"
#include "container/service.h"
#include "image/fs_util.h"

namespace crib::container {

absl::Status ContainerService::Remove(const std::string& id_or_prefix) {
  absl::StatusOr<std::string> resolved = ResolveId(id_or_prefix);
  if (absl::IsNotFound(resolved.status())) return absl::OkStatus();
  RETURN_IF_ERROR(resolved.status());
  const std::string id = *resolved;
  std::shared_ptr<absl::Mutex> mutex = ContainerLock(id);
  absl::MutexLock lock(mutex.get());
  return RemoveLocked(id);
}

absl::Status ContainerService::RemoveLocked(const std::string& id) {
  absl::StatusOr<store::ContainerRecord> record = store_.GetContainer(id);
  if (absl::IsNotFound(record.status())) return absl::OkStatus();
  RETURN_IF_ERROR(record.status());
  ASSIGN_OR_RETURN(ContainerData data, DecodeContainerData(id, record->data));
  auto step_error = [&](absl::string_view step, const absl::Status& status) {
    return Annotate(status, absl::StrCat("remove container ", id, " (", record->name, "): ", step));
  };
  const std::string bundle = Bundle(id);
  StepClock clock;
  // The intent first: a cribd killed from here on finishes the removal when it starts again.
  if (!data.removing) {
    data.removing = true;
    record->data = EncodeContainerData(data);
    if (absl::Status s = store_.UpdateContainer(*record); !s.ok()) {
      return step_error("record removal", s);
    }
  }
  clock.Mark("mark");
  RETURN_IF_ERROR(Failpoint("container.remove.after_mark"));
  // Kills what still runs, waits for the monitor's record, removes the cgroup's files. The
  // cgroup's path is in the spec, which this takes away (a removal that stopped half-way took
  // it already: the pod's record says where the cgroup is).
  std::string cgroup_path;
  if (absl::Status s = launcher_.Remove(bundle, &cgroup_path); !s.ok()) {
    return step_error("stop and clean", s);
  }
  clock.Mark("stop");
  const bool launcher_removed_cgroup = !cgroup_path.empty();
  if (cgroup_path.empty()) {
    if (absl::StatusOr<pod::PodSandbox> pod = pods_.Get(record->pod_id); pod.ok()) {
      cgroup_path = CgroupPath(pod->cgroup_path, id);
    }
  }
  // The driver's part: systemd's scope (gone with its last process, or failed and kept); the
  // cgroupfs driver's files only when the launcher had no spec left to remove them by.
  if (!cgroup_path.empty() && (driver_->Places() || !launcher_removed_cgroup)) {
    if (absl::Status s = driver_->Remove(cgroup_path); !s.ok()) {
      return step_error("remove the cgroup", s);
    }
  }
  clock.Mark("cgroup");
  RETURN_IF_ERROR(Failpoint("container.remove.after_stop"));
  if (absl::Status s = Unmount(bundle + "/rootfs"); !s.ok()) return step_error("unmount rootfs", s);
  clock.Mark("unmount");
  RETURN_IF_ERROR(Failpoint("container.remove.after_unmount"));
  // Into the trash (one rename each), deleted in the background.
  if (absl::Status s = trash_.Discard(bundle, image::Trash::DirOf(config_.state_dir)); !s.ok()) {
    return step_error("remove bundle", s);
  }
  if (absl::Status s = trash_.Discard(LayerDir(id), image::Trash::DirOf(config_.root_dir));
      !s.ok()) {
    return step_error("remove writable layer", s);
  }
  clock.Mark("trash");
  if (absl::Status s = store_.DeleteContainer(id); !s.ok()) return step_error("delete record", s);
  clock.Mark("record");
  ReleaseSnapshots(data.chain_ids);
  exits_->Unwatch(id);
  ForgetDecoded(id);
  ForgetLock(id);
  if (!data.creating) Publish(ContainerEvent::Type::kDeleted, id, record->pod_id);
  // Its image was removed while it ran: the snapshots it alone kept can go now.
  if (absl::StatusOr<bool> kept = images_.Contains(data.image_id); kept.ok() && !*kept) {
    if (absl::Status s = images_.CollectGarbage(); !s.ok()) {
      spdlog::warn("container {}: collect its image's snapshots: {}", id.substr(0, 12),
                   s.message());
    }
  }
  spdlog::info("container {} ({}) removed", id.substr(0, 12), record->name);
  spdlog::debug("container {} removal steps: {}", id.substr(0, 12), clock.Timings());
  return absl::OkStatus();
}

absl::Status ContainerService::RemoveAllInPod(const std::string& pod_id) {
  ASSIGN_OR_RETURN(std::vector<store::ContainerRecord> records, store_.ListContainers(pod_id));
  for (const store::ContainerRecord& record : records) {
    std::shared_ptr<absl::Mutex> mutex = ContainerLock(record.id);
    absl::MutexLock lock(mutex.get());
    RETURN_IF_ERROR(RemoveLocked(record.id));
  }
  return absl::OkStatus();
}

}  // namespace crib::container
