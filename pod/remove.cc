// RemovePodSandbox: stop if need be, then remove the namespace pins, /dev/shm, the cgroup, the
// pod's files (into the trash, deleted in the background) and its record. Idempotent: every step
// accepts what is already gone.
#include <sys/mount.h>

#include <cerrno>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/failpoint.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/steps.h"
#include "pod/pins.h"
#include "pod/record.h"
#include "pod/service.h"

namespace crib::pod {

absl::Status PodService::Remove(const std::string& id_or_prefix) {
  absl::StatusOr<std::string> resolved = ResolveId(id_or_prefix);
  if (absl::IsNotFound(resolved.status())) return absl::OkStatus();
  RETURN_IF_ERROR(resolved.status());
  const std::string id = *resolved;
  absl::MutexLock lock(&PodLock(id));
  absl::StatusOr<store::PodRecord> record = store_.GetPod(id);
  if (absl::IsNotFound(record.status())) return absl::OkStatus();
  RETURN_IF_ERROR(record.status());
  ASSIGN_OR_RETURN(PodData data, DecodePodData(id, record->data));
  auto step_error = [&](absl::string_view step, const absl::Status& status) {
    return Annotate(status, absl::StrCat("remove pod sandbox ", id, ": ", step));
  };

  StepClock clock;
  // The intent first: a cribd killed from here on finishes the removal when it starts again.
  if (!data.removing) {
    data.removing = true;
    record->data = EncodePodData(data);
    if (absl::Status s = store_.UpdatePod(*record); !s.ok()) return step_error("record removal", s);
  }
  clock.Mark("mark");
  RETURN_IF_ERROR(Failpoint("pod.remove.after_mark"));
  RETURN_IF_ERROR(StopLocked(id, /*removing=*/true));
  clock.Mark("stop");
  RETURN_IF_ERROR(Failpoint("pod.remove.after_stop"));
  if (hooks_.remove_all) {
    if (absl::Status s = hooks_.remove_all(id); !s.ok()) return step_error("remove containers", s);
  }
  clock.Mark("containers");
  RETURN_IF_ERROR(Failpoint("pod.remove.after_containers"));
  for (const std::string& pin : data.Pins()) {
    if (absl::Status s = RemovePin(pin); !s.ok()) return step_error("remove namespace pin", s);
  }
  clock.Mark("pins");
  RETURN_IF_ERROR(Failpoint("pod.remove.after_netns"));
  const std::string shm = absl::StrCat(data.pod_dir, "/shm");
  if (::umount2(shm.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
    return step_error("unmount shm", ErrnoStatus(errno, absl::StrCat("unmount ", shm)));
  }
  clock.Mark("shm");
  // A pause process that a crash kept out of the record is still in the pod's cgroup: stopping
  // a unit, and removing a cgroup, kill what is left in it first.
  const bool had_pause = data.namespaces.pid == NamespaceMode::kPod || data.pid != 0;
  const std::string pause_cgroup =
      had_pause ? driver_->PausePath(data.cgroup_path, id) : data.cgroup_path;
  if (absl::Status s = driver_->RemovePod(data.cgroup_path, pause_cgroup); !s.ok()) {
    return step_error("remove cgroup", s);
  }
  clock.Mark("cgroup");
  RETURN_IF_ERROR(Failpoint("pod.remove.after_cgroup"));
  if (hooks_.discard) {
    if (absl::Status s = hooks_.discard(data.pod_dir); !s.ok()) {
      return step_error("remove pod files", s);
    }
  } else {
    std::error_code ec;
    std::filesystem::remove_all(data.pod_dir, ec);
    if (ec) {
      return step_error("remove pod files", absl::InternalError(absl::StrCat(
                                                "remove ", data.pod_dir, ": ", ec.message())));
    }
  }
  clock.Mark("files");
  if (absl::Status s = store_.DeletePod(id); !s.ok()) return step_error("delete record", s);
  ForgetDecoded(id);
  clock.Mark("record");
  spdlog::info("pod {} ({}) removed", id.substr(0, 12), record->name);
  spdlog::debug("pod {} removal steps: {}", id.substr(0, 12), clock.Timings());
  return absl::OkStatus();
}

}  // namespace crib::pod
