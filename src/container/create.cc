// CreateContainer: reserve the name, then the rootfs (overlay of the image's snapshots), the
// spec, and a parked init under its crib-monitor (which limits the cgroup, made meanwhile on a
// thread of its own with the cgroupfs driver), each step with its undo, so that a failure
// anywhere leaves nothing behind.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/errors.h"
#include "common/files.h"
#include "common/ids.h"
#include "common/logging.h"
#include "common/pending.h"
#include "common/process.h"
#include "common/status_macros.h"
#include "common/steps.h"
#include "container/apparmor.h"
#include "container/image_config.h"
#include "container/rootfs.h"
#include "container/service.h"
#include "container/spec_builder.h"
#include "container/users.h"
#include "image/fs_util.h"
#include "pod/userns.h"

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
  const std::string name = absl::StrCat(spec.name, " in pod ", pod.name, " (", pod.namespace_, ")");
  if (pod.state != pod::PodState::kReady) {
    return absl::FailedPreconditionError(
        absl::StrCat("create container ", name, ": pod sandbox ", pod.id, " is not ready"));
  }
  // The image, held against GC while the container is made.
  absl::StatusOr<image::Image> image = images_.Status(spec.image, /*verbose=*/true);
  if (!image.ok()) return Annotate(image.status(), absl::StrCat("create container ", name));
  image::ImageStore::Lease lease(&images_, image->chain_ids);
  absl::StatusOr<ImageConfig> image_config = ParseImageConfig(image->config_json, spec.image);
  if (!image_config.ok()) {
    return Annotate(image_config.status(), absl::StrCat("create container ", name, ": image"));
  }
  absl::StatusOr<ContainerData> data = InitialData(spec, pod, *image, *image_config, name);
  if (!data.ok()) return Annotate(data.status(), absl::StrCat("create container ", name));

  ASSIGN_OR_RETURN(const std::string id, NewObjectId());
  std::shared_ptr<absl::Mutex> container_lock = ContainerLock(id);
  absl::MutexLock lock(container_lock.get());
  store::ContainerRecord record;
  record.id = id;
  record.pod_id = pod.id;
  record.name = spec.name;
  record.attempt = spec.attempt;
  record.state = static_cast<int>(ContainerState::kCreated);
  record.created_at_ns = absl::ToUnixNanos(absl::Now());
  std::optional<std::string> same_create;
  // The container's cgroup made on a thread of its own (cgroup::Driver::Prepare) while the
  // writable layer, the rootfs and the spec are made: on v1 its directories in every hierarchy
  // are most of what crib-monitor would otherwise do before it starts the init. Outlives the
  // steps' undo, which waits for it.
  const std::string cgroup_path = CgroupPath(pod.cgroup_path, id);
  Pending<absl::Status> cgroup;
  absl::Status created = RunSteps(
      absl::StrCat("container ", id.substr(0, 12)), "container.create",
      [&](Steps& steps) -> absl::Status {
        RETURN_IF_ERROR(ReserveContainerName(steps, spec, *data, record, &same_create));
        if (same_create) return absl::OkStatus();
        // crib's own init joins its cgroup by itself (an OCI runtime makes its own, the
        // systemd driver starts a scope with the init).
        const bool prepare_cgroup =
            FindRuntimeHandler(config_, pod.runtime_handler) == nullptr && !driver_->Places();
        if (prepare_cgroup) {
          RETURN_IF_ERROR(steps.Run(
              "cgroup_start", "start making the cgroup",
              [&] {
                cgroup.Start([this, &cgroup_path] { return driver_->Prepare(cgroup_path); });
                return absl::OkStatus();
              },
              [this, &cgroup, cgroup_path] {
                (void)cgroup.Join();  // also what a failed making left goes
                return driver_->Remove(cgroup_path);
              }));
        }
        RETURN_IF_ERROR(MakeRootfs(steps, spec, id, pod, *data));
        SpecInputs inputs;
        RETURN_IF_ERROR(PrepareRun(steps, spec, pod, *image_config, id, *data, &inputs));
        runtime::Spec oci;
        RETURN_IF_ERROR(MakeSpec(steps, spec, id, inputs, &oci));
        if (prepare_cgroup) {
          RETURN_IF_ERROR(steps.Run("cgroup", "make the cgroup", [&] { return cgroup.Join(); }));
        }
        RETURN_IF_ERROR(StartMonitor(steps, spec, pod, oci, id, name, *data));
        data->creating = false;
        record.data = EncodeContainerData(*data);
        return steps.Run("record", "record container",
                         [&] { return store_.UpdateContainer(record); });
      });
  if (!created.ok() || same_create) ForgetLock(id);
  if (!created.ok()) return Annotate(created, absl::StrCat("create container ", name));
  if (same_create) return *same_create;
  exits_->WatchMonitor(id, Bundle(id), data->monitor_pid, data->monitor_start_time);
  Publish(ContainerEvent::Type::kCreated, id, pod.id);
  spdlog::info("container {} ({}) created in {}: monitor pid {}, image {}", id.substr(0, 12), name,
               absl::FormatDuration(absl::Now() - start), data->monitor_pid, data->image_ref);
  return id;
}

absl::StatusOr<ContainerData> ContainerService::InitialData(const ContainerSpec& spec,
                                                            const pod::PodSandbox& pod,
                                                            const image::Image& image,
                                                            const ImageConfig& config,
                                                            const std::string& name) {
  for (const std::string& chain_id : image.chain_ids) {
    if (::access(images_.SnapshotPath(chain_id).c_str(), F_OK) != 0) {
      return absl::NotFoundError(absl::StrCat("image: image ", spec.image, " lost its layer ",
                                              chain_id, " (removed meanwhile?)"));
    }
  }
  ContainerData data;
  data.creating = true;
  data.image = spec.image;
  data.image_name = image.repo_tags.empty() ? "" : image.repo_tags[0];
  data.image_ref = image.repo_digests.empty() ? image.id : image.repo_digests[0];
  data.image_id = image.id;
  data.chain_ids = image.chain_ids;
  data.labels = spec.labels;
  data.annotations = spec.annotations;
  data.mounts = spec.mounts;
  data.resources = spec.resources;
  data.tty = spec.tty;
  data.stdin = spec.stdin;
  data.stdin_once = spec.stdin_once;
  data.config_bytes = spec.config_bytes;
  data.stop_signal = spec.stop_signal;
  if (data.stop_signal == 0 && !config.stop_signal.empty()) {
    absl::StatusOr<int> signal = ParseSignal(config.stop_signal);
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
      return absl::InvalidArgumentError(
          absl::StrCat("log path \"", spec.log_path,
                       "\" is not a path inside the pod's log directory ", pod.log_directory));
    }
    data.log_path = absl::StrCat(pod.log_directory, "/", spec.log_path);
  }
  return data;
}

// The record reserves the name, and holds the image's snapshots. A second call with the same
// config (kubelet retrying after its deadline) gets the container the first one made.
absl::Status ContainerService::ReserveContainerName(Steps& steps, const ContainerSpec& spec,
                                                    const ContainerData& data,
                                                    store::ContainerRecord& record,
                                                    std::optional<std::string>* same_create) {
  record.data = EncodeContainerData(data);
  auto reserve = [&]() -> absl::Status {
    absl::Status reserved = store_.PutContainer(record);
    if (reserved.ok()) HoldSnapshots(data.chain_ids);
    if (!absl::IsAlreadyExists(reserved)) return reserved;
    ASSIGN_OR_RETURN(std::vector<store::ContainerRecord> siblings,
                     store_.ListContainers(record.pod_id));
    for (const store::ContainerRecord& other : siblings) {
      if (other.name != spec.name || other.attempt != spec.attempt) continue;
      absl::StatusOr<ContainerData> other_data = DecodeContainerData(other.id, other.data);
      if (!other_data.ok() || other_data->config_bytes != spec.config_bytes) break;
      // Wait for the first call to finish, then answer as it did.
      { absl::MutexLock wait(ContainerLock(other.id).get()); }
      if (Load(other.id).ok()) {
        spdlog::info("container {} ({}): the same create again, same container",
                     other.id.substr(0, 12), spec.name);
        *same_create = other.id;
        return absl::OkStatus();
      }
      break;
    }
    return reserved;
  };
  const std::string id = record.id;
  const std::vector<std::string> chain_ids = data.chain_ids;
  return steps.Run("reserve", "reserve name", reserve,
                   [this, &steps, id, chain_ids, same_create]() -> absl::Status {
                     if (*same_create) return absl::OkStatus();
                     if (steps.undo_failed()) {
                       spdlog::warn("container {}: kept, marked as being created, for the "
                                    "start-up cleanup",
                                    id.substr(0, 12));
                       return absl::OkStatus();
                     }
                     ReleaseSnapshots(chain_ids);
                     return store_.DeleteContainer(id);
                   });
}

// The writable layer and the overlay root file system in the bundle.
absl::Status ContainerService::MakeRootfs(Steps& steps, const ContainerSpec& spec,
                                          const std::string& id, const pod::PodSandbox& pod,
                                          const ContainerData& data) {
  const std::string bundle = Bundle(id);
  const std::string layer_dir = LayerDir(id);
  const std::string rootfs = absl::StrCat(bundle, "/rootfs");
  RETURN_IF_ERROR(steps.Run(
      "dirs", "make the writable layer and the bundle",
      [&]() -> absl::Status {
        RETURN_IF_ERROR(MakeDirs(layer_dir + "/upper", 0755));
        RETURN_IF_ERROR(MakeDirs(layer_dir + "/work", 0700));
        RETURN_IF_ERROR(MakeDirs(rootfs, 0755));
        if (pod.user_ns_path.empty()) return absl::OkStatus();
        // The writable layer's root is the overlay's: the pod's root owns it.
        const std::string upper = layer_dir + "/upper";
        const int64_t uid = pod::HostIdOf(pod.namespaces.uid_mappings, 0);
        const int64_t gid = pod::HostIdOf(pod.namespaces.gid_mappings, 0);
        if (::chown(upper.c_str(), static_cast<uid_t>(uid), static_cast<gid_t>(gid)) != 0) {
          return ErrnoStatus(errno, absl::StrCat("chown ", upper, " to ", uid, ":", gid));
        }
        return absl::OkStatus();
      },
      [bundle, layer_dir]() -> absl::Status {
        absl::Status bundle_removed = image::RemoveAll(bundle);
        absl::Status layer_removed = image::RemoveAll(layer_dir);
        return bundle_removed.ok() ? layer_removed : bundle_removed;
      }));
  OverlayMount overlay;
  // The mount points of crib's own mounts, which the image lacks, from the image's
  // mount-point layer: the init then makes none in the writable layer. Without it (a CRI
  // mount in their place that is not of their kind, or the layer could not be made) the init
  // makes them as before.
  if (MountsDefaultPoints(spec)) {
    absl::StatusOr<std::string> points =
        images_.MountPointLayer(data.chain_ids, DefaultMountPoints());
    if (!points.ok()) {
      spdlog::warn("container {}: mount-point layer: {}", id.substr(0, 12),
                   points.status().message());
    } else if (!points->empty()) {
      overlay.lower_dirs.push_back(*points);
    }
  }
  for (auto it = data.chain_ids.rbegin(); it != data.chain_ids.rend(); ++it) {
    overlay.lower_dirs.push_back(images_.SnapshotPath(*it));
  }
  overlay.upper_dir = layer_dir + "/upper";
  overlay.work_dir = layer_dir + "/work";
  overlay.target = rootfs;
  overlay.scratch_dir = layer_dir + "/lower";
  if (!pod.user_ns_path.empty()) {
    overlay.idmap_userns = pod.user_ns_path;
    overlay.idmap_dir = layer_dir + "/idmapped";
  }
  return steps.Run(
      "rootfs", "mount rootfs", [&] { return MountOverlay(overlay); },
      [rootfs] { return Unmount(rootfs); });
}

// Who it runs as (from the image's own /etc/passwd and /etc/group), the log file's directory,
// the termination message file and the pid namespace of a TARGET container: the spec's inputs.
absl::Status ContainerService::PrepareRun(Steps& steps, const ContainerSpec& spec,
                                          const pod::PodSandbox& pod,
                                          const ImageConfig& image_config, const std::string& id,
                                          ContainerData& data, SpecInputs* inputs) {
  const std::string rootfs = absl::StrCat(Bundle(id), "/rootfs");
  RETURN_IF_ERROR(steps.Run("user", "resolve the user", [&]() -> absl::Status {
    ASSIGN_OR_RETURN(inputs->user, ResolveImageUser(spec, image_config, rootfs));
    data.user = inputs->user.ids;
    return absl::OkStatus();
  }));
  const std::string log_path = data.log_path;
  const bool log_made = !log_path.empty() && ::access(log_path.c_str(), F_OK) != 0;
  RETURN_IF_ERROR(steps.Run(
      "log", "make the log directory",
      [&] { return log_path.empty() ? absl::OkStatus() : MakeDirs(DirName(log_path), 0755); },
      [log_path, log_made] {
        if (log_made) ::unlink(log_path.c_str());
        return absl::OkStatus();
      }));
  if (auto it = spec.annotations.find(kTerminationPathAnnotation); it != spec.annotations.end()) {
    inputs->termination_path = it->second.empty() ? "/dev/termination-log" : it->second;
    auto policy = spec.annotations.find(kTerminationPolicyAnnotation);
    data.fallback_to_logs =
        policy != spec.annotations.end() && policy->second == "FallbackToLogsOnError";
    auto mounted = std::find_if(spec.mounts.begin(), spec.mounts.end(), [&](const MountSpec& m) {
      return m.container_path == inputs->termination_path;
    });
    if (mounted != spec.mounts.end()) {
      data.termination_message_file = mounted->host_path;
    } else {
      // No mount of the client's: crib's own file, writable by any user of the container.
      data.termination_message_file = LayerDir(id) + "/termination-log";
      inputs->termination_file = data.termination_message_file;
      RETURN_IF_ERROR(steps.Run("termination", "make the termination message file", [&] {
        absl::Status made =
            WriteFileAtomic(data.termination_message_file, "", 0666, Durability::kVolatile);
        ::chmod(data.termination_message_file.c_str(), 0666);  // not masked by the umask
        return made;
      }));
    }
  }
  if (spec.security.pid_mode == pod::NamespaceMode::kTarget) {
    RETURN_IF_ERROR(steps.Run("target", "join the target's pid namespace", [&]() -> absl::Status {
      ASSIGN_OR_RETURN(inputs->target_pid_namespace, TargetPidNamespace(spec, pod));
      return absl::OkStatus();
    }));
  }
  inputs->request = &spec;
  inputs->pod = &pod;
  inputs->image = &image_config;
  inputs->image_name = spec.image;
  inputs->rootfs = rootfs;
  inputs->cgroup_path = CgroupPath(pod.cgroup_path, id);
  inputs->cgroup_v2 = layout_.mode == cgroup::Mode::kUnified;
  inputs->apparmor_enabled = apparmor_enabled_;
  return absl::OkStatus();
}

absl::StatusOr<ResolvedUser> ContainerService::ResolveImageUser(const ContainerSpec& spec,
                                                                const ImageConfig& image_config,
                                                                const std::string& rootfs) {
  UserRequest request;
  request.run_as_user = spec.security.run_as_user;
  request.run_as_group = spec.security.run_as_group;
  request.run_as_username = spec.security.run_as_username;
  request.image_user = image_config.user;
  request.supplemental_groups = spec.security.supplemental_groups;
  request.policy = spec.security.supplemental_groups_policy;
  return ResolveUserInRootfs(request, rootfs, spec.image);
}

absl::StatusOr<std::string> ContainerService::TargetPidNamespace(const ContainerSpec& spec,
                                                                 const pod::PodSandbox& pod) {
  ASSIGN_OR_RETURN(const std::string target, ResolveId(spec.security.target_id));
  ASSIGN_OR_RETURN(auto loaded, Load(target));
  ASSIGN_OR_RETURN(Container current, Refresh(loaded.first, loaded.second));
  if (current.pod_id != pod.id || current.state != ContainerState::kRunning ||
      !IsProcessAlive(loaded.second.init_pid, loaded.second.init_start_time)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "target container ", spec.security.target_id, " is not running in pod ", pod.id));
  }
  return absl::StrCat("/proc/", loaded.second.init_pid, "/ns/pid");
}

// The OCI spec (and crib's AppArmor profile, loaded once, if it names it).
absl::Status ContainerService::MakeSpec(Steps& steps, const ContainerSpec& spec,
                                        const std::string& id, const SpecInputs& inputs,
                                        runtime::Spec* oci) {
  return steps.Run("spec", "build the spec", [&]() -> absl::Status {
    ASSIGN_OR_RETURN(*oci, BuildSpec(inputs));
    FitResources(id, &oci->linux_spec.resources);
    oci->annotations = spec.annotations;
    if (!oci->process.apparmor_profile.empty()) {
      absl::MutexLock apparmor(&apparmor_mu_);
      if (!apparmor_loaded_ && oci->process.apparmor_profile == kAppArmorDefaultProfileName) {
        RETURN_IF_ERROR(Annotate(LoadDefaultAppArmorProfile(), "load the apparmor profile"));
        apparmor_loaded_ = true;
      }
    }
    return absl::OkStatus();
  });
}

// crib-monitor with the container's init parked in it, watched for its exit.
absl::Status ContainerService::StartMonitor(Steps& steps, const ContainerSpec& spec,
                                            const pod::PodSandbox& pod, const runtime::Spec& oci,
                                            const std::string& id, const std::string& name,
                                            ContainerData& data) {
  const std::string bundle = Bundle(id);
  const std::string& cgroup_path = oci.linux_spec.cgroups_path;
  runtime::CreateOptions options{spec.stdin, spec.stdin_once, nullptr, std::nullopt};
  // The pod's runtime handler runs its containers: an OCI runtime, or crib's own init. A
  // handler taken out of the configuration since the pod was made runs nothing.
  if (absl::Status known = KnownRuntimeHandler(config_, pod.runtime_handler); !known.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("pod sandbox ", pod.id, ": ", known.message()));
  }
  if (const RuntimeHandlerConfig* handler = FindRuntimeHandler(config_, pod.runtime_handler)) {
    for (const runtime::Mount& m : oci.mounts) {
      if (!handler->recursive_read_only_mounts &&
          std::find(m.options.begin(), m.options.end(), "rro") != m.options.end()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "mount ", m.destination, ": runtime handler ", pod.runtime_handler,
            " does not support recursive read-only mounts (its recursive_read_only_mounts)"));
      }
    }
    options.oci_runtime = runtime::OciRuntime{
        .handler = pod.runtime_handler,
        .id = id,
        .argv = RuntimeHandlerArgv(config_, pod.runtime_handler),
        .timeout_ms = static_cast<long>(absl::ToInt64Milliseconds(handler->timeout))};
    options.systemd_cgroup = driver_->Places();
  } else if (driver_->Places()) {
    // The driver puts the init in its cgroup (systemd: starts its scope with it) before the
    // init joins it; the monitor then writes what the driver does not.
    options.place_init = [&](pid_t pid) {
      return driver_->Place(cgroup_path, pid, oci.linux_spec.resources);
    };
  }
  RETURN_IF_ERROR(steps.Run(
      "monitor", "start crib-monitor",
      [&]() -> absl::Status {
        absl::StatusOr<runtime::CreatedContainer> made =
            launcher_.Create(id, bundle, oci, data.log_path, options);
        if (!made.ok()) (void)driver_->Remove(cgroup_path);
        ASSIGN_OR_RETURN(runtime::CreatedContainer created, std::move(made));
        for (const std::string& warning : created.warnings) {
          spdlog::warn("container {} ({}): {}", id.substr(0, 12), name, warning);
        }
        data.monitor_pid = created.monitor_pid;
        data.init_pid = created.init_pid;
        return absl::OkStatus();
      },
      [this, bundle, cgroup_path]() -> absl::Status {
        RETURN_IF_ERROR(launcher_.Remove(bundle));
        return driver_->Remove(cgroup_path);
      }));
  RETURN_IF_ERROR(steps.Run(
      "watch", "watch crib-monitor", [&] { return exits_->Watch(id, bundle); },
      [this, id] {
        exits_->Unwatch(id);
        return absl::OkStatus();
      }));
  return steps.Run("started", "read the start times of crib-monitor and init",
                   [&]() -> absl::Status {
                     ASSIGN_OR_RETURN(data.monitor_start_time, ProcessStartTime(data.monitor_pid));
                     ASSIGN_OR_RETURN(data.init_start_time, ProcessStartTime(data.init_pid));
                     return absl::OkStatus();
                   });
}

}  // namespace crib::container
