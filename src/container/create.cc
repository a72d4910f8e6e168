// CreateContainer: reserve the name, then the rootfs (overlay of the image's snapshots), the
// spec, and a parked init under its crib-monitor (which makes the cgroup), each step with its
// undo, so that a failure anywhere leaves nothing behind.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/errors.h"
#include "common/failpoint.h"
#include "common/files.h"
#include "common/ids.h"
#include "common/logging.h"
#include "common/process.h"
#include "common/status_macros.h"
#include "container/apparmor.h"
#include "container/image_config.h"
#include "container/rootfs.h"
#include "container/service.h"
#include "container/spec_builder.h"
#include "container/users.h"
#include "image/fs_util.h"
#include "runtime/spec_json.h"

namespace crib::container {
namespace {

// kubelet's annotations for the termination message.
constexpr char kTerminationPathAnnotation[] = "io.kubernetes.container.terminationMessagePath";
constexpr char kTerminationPolicyAnnotation[] = "io.kubernetes.container.terminationMessagePolicy";

absl::Status Validate(const ContainerSpec& spec) {
  if (spec.pod_id.empty()) return absl::InvalidArgumentError("pod sandbox id is empty");
  if (spec.name.empty()) return absl::InvalidArgumentError("container metadata has no name");
  if (spec.image.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("container ", spec.name, " names no image"));
  }
  if (spec.stdin_once && !spec.stdin) {
    return absl::InvalidArgumentError(
        absl::StrCat("container ", spec.name, ": stdin_once needs stdin"));
  }
  return absl::OkStatus();
}

void LogUndo(const std::string& id, absl::string_view step, const absl::Status& status) {
  if (!status.ok())
    spdlog::warn("container {}: undo {}: {}", id.substr(0, 12), step, status.message());
}

std::string DirName(const std::string& path) { return path.substr(0, path.rfind('/')); }

}  // namespace

absl::StatusOr<std::string> ContainerService::Create(const ContainerSpec& spec) {
  RETURN_IF_ERROR(Validate(spec));
  absl::StatusOr<std::string> id;
  absl::Status status = pods_.WithPod(spec.pod_id, [&](const pod::PodSandbox& pod) {
    id = CreateInPod(spec, pod);
    return id.status();
  });
  if (!status.ok()) return status;
  return id;
}

absl::StatusOr<std::string> ContainerService::CreateInPod(const ContainerSpec& spec,
                                                          const pod::PodSandbox& pod) {
  const absl::Time start = absl::Now();
  // Per-step durations, logged at debug level: where CreateContainer's time goes.
  std::string timings;
  absl::Time last = start;
  auto lap = [&timings, &last](absl::string_view step) {
    const absl::Time now = absl::Now();
    absl::StrAppend(&timings, timings.empty() ? "" : ", ", step, " ",
                    absl::FormatDuration(absl::Trunc(now - last, absl::Microseconds(10))));
    last = now;
  };
  const std::string name = absl::StrCat(spec.name, " in pod ", pod.name, " (", pod.namespace_, ")");
  auto step_error = [&name](absl::string_view step, const absl::Status& status) {
    return Annotate(status, absl::StrCat("create container ", name, ": ", step));
  };
#define CRIB_STEP(step, expr)                                         \
  do {                                                                \
    if (absl::Status s = (expr); !s.ok()) return step_error(step, s); \
  } while (false)

  if (pod.state != pod::PodState::kReady) {
    return absl::FailedPreconditionError(
        absl::StrCat("create container ", name, ": pod sandbox ", pod.id, " is not ready"));
  }
  // The image, held against GC while the container is made.
  absl::StatusOr<image::Image> image = images_.Status(spec.image, /*verbose=*/true);
  CRIB_STEP("image", image.status());
  image::ImageStore::Lease lease(&images_, image->chain_ids);
  for (const std::string& chain_id : image->chain_ids) {
    if (::access(images_.SnapshotPath(chain_id).c_str(), F_OK) != 0) {
      return step_error("image",
                        absl::NotFoundError(absl::StrCat("image ", spec.image, " lost its layer ",
                                                         chain_id, " (removed meanwhile?)")));
    }
  }
  absl::StatusOr<ImageConfig> image_config = ParseImageConfig(image->config_json, spec.image);
  CRIB_STEP("image", image_config.status());
  lap("image");

  ContainerData data;
  data.creating = true;
  data.image = spec.image;
  data.image_name = image->repo_tags.empty() ? "" : image->repo_tags[0];
  data.image_ref = image->repo_digests.empty() ? image->id : image->repo_digests[0];
  data.image_id = image->id;
  data.chain_ids = image->chain_ids;
  data.labels = spec.labels;
  data.annotations = spec.annotations;
  data.mounts = spec.mounts;
  data.resources = spec.resources;
  data.tty = spec.tty;
  data.stdin = spec.stdin;
  data.stdin_once = spec.stdin_once;
  data.config_bytes = spec.config_bytes;
  data.stop_signal = spec.stop_signal;
  if (data.stop_signal == 0 && !image_config->stop_signal.empty()) {
    absl::StatusOr<int> signal = ParseSignal(image_config->stop_signal);
    if (signal.ok()) {
      data.stop_signal = *signal;
    } else {
      spdlog::warn("container {}: image {}: {}; SIGTERM stops it", name, spec.image,
                   signal.status().message());
    }
  }
  if (data.stop_signal == 0) data.stop_signal = SIGTERM;
  if (!pod.log_directory.empty() && !spec.log_path.empty()) {
    // The log path is relative to the pod's log directory and may not leave it.
    const std::vector<absl::string_view> parts = absl::StrSplit(spec.log_path, '/');
    if (absl::StartsWith(spec.log_path, "/") ||
        std::find(parts.begin(), parts.end(), "..") != parts.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "create container ", name, ": log path \"", spec.log_path,
          "\" is not a path inside the pod's log directory ", pod.log_directory));
    }
    data.log_path = absl::StrCat(pod.log_directory, "/", spec.log_path);
  }

  // 1. The record reserves the name. A second call with the same config (kubelet retrying
  // after its deadline) gets the container the first one made.
  ASSIGN_OR_RETURN(const std::string id, NewObjectId());
  std::shared_ptr<absl::Mutex> container_lock = ContainerLock(id);
  absl::MutexLock lock(container_lock.get());
  absl::Cleanup forget_lock = [&] { ForgetLock(id); };
  store::ContainerRecord record;
  record.id = id;
  record.pod_id = pod.id;
  record.name = spec.name;
  record.attempt = spec.attempt;
  record.state = static_cast<int>(ContainerState::kCreated);
  record.created_at_ns = absl::ToUnixNanos(absl::Now());
  record.data = EncodeContainerData(data);
  if (absl::Status reserved = store_.PutContainer(record); !reserved.ok()) {
    if (absl::IsAlreadyExists(reserved)) {
      ASSIGN_OR_RETURN(std::vector<store::ContainerRecord> siblings, store_.ListContainers(pod.id));
      for (const store::ContainerRecord& other : siblings) {
        if (other.name != spec.name || other.attempt != spec.attempt) continue;
        absl::StatusOr<ContainerData> other_data = DecodeContainerData(other.id, other.data);
        if (!other_data.ok() || other_data->config_bytes != spec.config_bytes) break;
        // Wait for the first call to finish, then answer as it did.
        { absl::MutexLock wait(ContainerLock(other.id).get()); }
        if (Load(other.id).ok()) {
          spdlog::info("container {} ({}): the same create again, same container",
                       other.id.substr(0, 12), name);
          return other.id;
        }
        break;
      }
    }
    return step_error("reserve name", reserved);
  }
  absl::Cleanup undo_record = [&] { LogUndo(id, "record", store_.DeleteContainer(id)); };
  HoldSnapshots(data.chain_ids);
  absl::Cleanup undo_hold = [&] { ReleaseSnapshots(data.chain_ids); };
  lap("reserve");
  CRIB_STEP("reserve name", Failpoint("container.create.after_reserve"));

  // 2. The writable layer and the overlay root file system.
  const std::string bundle = Bundle(id);
  const std::string layer_dir = LayerDir(id);
  const std::string rootfs = absl::StrCat(bundle, "/rootfs");
  absl::Cleanup undo_dirs = [&] {
    LogUndo(id, "bundle", image::RemoveAll(bundle));
    LogUndo(id, "layer", image::RemoveAll(layer_dir));
  };
  CRIB_STEP("make the writable layer", MakeDirs(layer_dir + "/upper", 0755));
  CRIB_STEP("make the writable layer", MakeDirs(layer_dir + "/work", 0700));
  CRIB_STEP("make the bundle", MakeDirs(rootfs, 0755));
  OverlayMount overlay;
  for (auto it = data.chain_ids.rbegin(); it != data.chain_ids.rend(); ++it) {
    overlay.lower_dirs.push_back(images_.SnapshotPath(*it));
  }
  overlay.upper_dir = layer_dir + "/upper";
  overlay.work_dir = layer_dir + "/work";
  overlay.target = rootfs;
  overlay.scratch_dir = layer_dir + "/lower";
  CRIB_STEP("mount rootfs", MountOverlay(overlay));
  absl::Cleanup undo_mount = [&] { LogUndo(id, "rootfs", Unmount(rootfs)); };
  lap("rootfs");
  CRIB_STEP("mount rootfs", Failpoint("container.create.after_rootfs"));

  // 3. Who it runs as, from the image's own /etc/passwd and /etc/group.
  UserRequest user_request;
  user_request.run_as_user = spec.security.run_as_user;
  user_request.run_as_group = spec.security.run_as_group;
  user_request.run_as_username = spec.security.run_as_username;
  user_request.image_user = image_config->user;
  user_request.supplemental_groups = spec.security.supplemental_groups;
  user_request.policy = spec.security.supplemental_groups_policy;
  std::string passwd, group;
  for (auto [file, text] : {std::pair{"/etc/passwd", &passwd}, std::pair{"/etc/group", &group}}) {
    absl::StatusOr<std::string> read = ReadFileInRoot(rootfs, file, 4 << 20);
    if (read.ok()) {
      *text = *std::move(read);
    } else if (!absl::IsNotFound(read.status())) {
      return step_error("resolve the user", read.status());
    }
  }
  absl::StatusOr<ResolvedUser> user = ResolveUser(user_request, passwd, group, spec.image);
  CRIB_STEP("resolve the user", user.status());
  data.user = user->ids;
  lap("user");

  // 4. The log file's directory and the termination message file.
  bool log_made = false;
  absl::Cleanup undo_log = [&] {
    if (log_made) ::unlink(data.log_path.c_str());
  };
  if (!data.log_path.empty()) {
    CRIB_STEP("make the log directory", MakeDirs(DirName(data.log_path), 0755));
    log_made = ::access(data.log_path.c_str(), F_OK) != 0;
  }
  SpecInputs inputs;
  if (auto it = spec.annotations.find(kTerminationPathAnnotation); it != spec.annotations.end()) {
    inputs.termination_path = it->second.empty() ? "/dev/termination-log" : it->second;
    auto policy = spec.annotations.find(kTerminationPolicyAnnotation);
    data.fallback_to_logs =
        policy != spec.annotations.end() && policy->second == "FallbackToLogsOnError";
    auto mounted = std::find_if(spec.mounts.begin(), spec.mounts.end(), [&](const MountSpec& m) {
      return m.container_path == inputs.termination_path;
    });
    if (mounted != spec.mounts.end()) {
      data.termination_message_file = mounted->host_path;
    } else {
      // No mount of the client's: crib's own file, writable by any user of the container.
      data.termination_message_file = layer_dir + "/termination-log";
      CRIB_STEP("make the termination message file",
                WriteFileAtomic(data.termination_message_file, "", 0666, Durability::kVolatile));
      ::chmod(data.termination_message_file.c_str(), 0666);  // not masked by the umask
      inputs.termination_file = data.termination_message_file;
    }
  }

  // 5. The pid namespace of a TARGET container.
  if (spec.security.pid_mode == pod::NamespaceMode::kTarget) {
    absl::StatusOr<std::string> target = ResolveId(spec.security.target_id);
    CRIB_STEP("join the target's pid namespace", target.status());
    auto loaded = Load(*target);
    CRIB_STEP("join the target's pid namespace", loaded.status());
    absl::StatusOr<Container> current = Refresh(loaded->first, loaded->second);
    CRIB_STEP("join the target's pid namespace", current.status());
    if (current->pod_id != pod.id || current->state != ContainerState::kRunning ||
        !IsProcessAlive(loaded->second.init_pid, loaded->second.init_start_time)) {
      return step_error(
          "join the target's pid namespace",
          absl::FailedPreconditionError(absl::StrCat("target container ", spec.security.target_id,
                                                     " is not running in pod ", pod.id)));
    }
    inputs.target_pid_namespace = absl::StrCat("/proc/", loaded->second.init_pid, "/ns/pid");
  }

  // 6. The spec, in the bundle.
  inputs.request = &spec;
  inputs.pod = &pod;
  inputs.image = &*image_config;
  inputs.image_name = spec.image;
  inputs.user = *user;
  inputs.rootfs = rootfs;
  inputs.cgroup_path = CgroupPath(pod.cgroup_path, id);
  inputs.cgroup_v2 = layout_.mode == cgroup::Mode::kUnified;
  inputs.apparmor_enabled = apparmor_enabled_;
  absl::StatusOr<runtime::Spec> oci = BuildSpec(inputs);
  CRIB_STEP("build the spec", oci.status());
  FitResources(id, &oci->linux_spec.resources);
  oci->annotations = spec.annotations;
  if (!oci->process.apparmor_profile.empty()) {
    absl::MutexLock apparmor(&apparmor_mu_);
    if (!apparmor_loaded_ && oci->process.apparmor_profile == kAppArmorDefaultProfileName) {
      CRIB_STEP("load the apparmor profile", LoadDefaultAppArmorProfile());
      apparmor_loaded_ = true;
    }
  }
  CRIB_STEP("write the spec",
            WriteFileAtomic(absl::StrCat(bundle, "/config.json"), runtime::SpecToJson(*oci), 0644,
                            Durability::kVolatile));
  lap("spec");
  CRIB_STEP("write the spec", Failpoint("container.create.after_spec"));

  // 7. The monitor and the parked init.
  absl::StatusOr<runtime::CreatedContainer> created =
      launcher_.Create(id, bundle, data.log_path, {spec.stdin, spec.stdin_once});
  CRIB_STEP("start crib-monitor", created.status());
  absl::Cleanup undo_monitor = [&] { LogUndo(id, "monitor", launcher_.Remove(bundle)); };
  for (const std::string& warning : created->warnings) {
    spdlog::warn("container {} ({}): {}", id.substr(0, 12), name, warning);
  }
  data.monitor_pid = created->monitor_pid;
  data.init_pid = created->init_pid;
  absl::Cleanup unwatch = [&] { exits_->Unwatch(id); };
  CRIB_STEP("start crib-monitor", exits_->Watch(id, bundle));
  absl::StatusOr<uint64_t> monitor_start = ProcessStartTime(created->monitor_pid);
  absl::StatusOr<uint64_t> init_start = ProcessStartTime(created->init_pid);
  CRIB_STEP("start crib-monitor", monitor_start.status());
  CRIB_STEP("start crib-monitor", init_start.status());
  data.monitor_start_time = *monitor_start;
  data.init_start_time = *init_start;
  lap("monitor");
  CRIB_STEP("start crib-monitor", Failpoint("container.create.after_monitor"));

  // 8. Created.
  data.creating = false;
  record.data = EncodeContainerData(data);
  CRIB_STEP("record container", store_.UpdateContainer(record));
  lap("record");
#undef CRIB_STEP

  std::move(unwatch).Cancel();
  std::move(undo_monitor).Cancel();
  std::move(undo_log).Cancel();
  std::move(undo_mount).Cancel();
  std::move(undo_dirs).Cancel();
  std::move(undo_hold).Cancel();
  std::move(undo_record).Cancel();
  std::move(forget_lock).Cancel();
  Publish(ContainerEvent::Type::kCreated, id, pod.id);
  spdlog::debug("container {} steps: {}", id.substr(0, 12), timings);
  spdlog::info("container {} ({}) created in {}: monitor pid {}, image {}", id.substr(0, 12), name,
               absl::FormatDuration(absl::Now() - start), data.monitor_pid, data.image_ref);
  return id;
}

}  // namespace crib::container
