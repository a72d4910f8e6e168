// RunPodSandbox: reserve the name, then the pinned namespaces, cgroup, crib-pause (for a pod
// that shares its process namespace; it sets itself up while cribd goes on), files, /dev/shm,
// network, crib-pause's report, each step with its undo, so that a failure anywhere leaves
// nothing behind.
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <optional>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/errors.h"
#include "common/files.h"
#include "common/ids.h"
#include "common/logging.h"
#include "common/pending.h"
#include "common/status_macros.h"
#include "common/steps.h"
#include "pod/pause_process.h"
#include "pod/pins.h"
#include "pod/pod_files.h"
#include "pod/record.h"
#include "pod/service.h"
#include "pod/userns.h"

namespace crib::pod {
namespace {

std::string HostHostname() {
  char name[HOST_NAME_MAX + 1] = {};
  ::gethostname(name, sizeof(name) - 1);
  return name;
}


}  // namespace

absl::Status PodService::EnsurePinDirs() {
  absl::MutexLock lock(&pin_dirs_mutex_);
  if (pin_dirs_ready_) return absl::OkStatus();
  for (const char* kind : kPinKinds) {
    RETURN_IF_ERROR(PreparePinDir(absl::StrCat(config_.state_dir, "/", kind)));
  }
  pin_dirs_ready_ = true;
  return absl::OkStatus();
}

// A pod's network attached on a thread of its own: the backend's work (the kernel's netlink
// work for a veth pair and its addresses, or the CNI plugins) overlaps with the cgroup,
// crib-pause and the pod's files, which do not need it.
class PendingNetwork {
 public:
  void Start(network::NetworkBackend& backend, network::PodNetworkConfig config) {
    backend_ = &backend;
    config_ = std::move(config);
    attached_.Start([this] { return backend_->SetUp(config_); });
  }
  // The attachment's outcome; what it attached stays until Undo.
  absl::StatusOr<network::PodNetworkStatus> Join() { return attached_.Join(); }
  // Waits for the attachment and takes down what it attached (a failed one undid its own
  // partial work).
  absl::Status Undo() {
    if (!attached_.started() || !attached_.Join().ok()) return absl::OkStatus();
    return backend_->TearDown(config_);
  }

 private:
  network::NetworkBackend* backend_ = nullptr;
  network::PodNetworkConfig config_;
  Pending<absl::StatusOr<network::PodNetworkStatus>> attached_;  // last: its thread reads the above
};

absl::StatusOr<std::string> PodService::Run(const PodSandboxSpec& spec) {
  RETURN_IF_ERROR(Validate(spec));
  const absl::Time start = absl::Now();
  const std::string pod_name = absl::StrCat(spec.name, " (namespace ", spec.namespace_, ")");
  if (!spec.log_directory.empty() && !absl::StartsWith(spec.log_directory, "/")) {
    return absl::InvalidArgumentError(absl::StrCat("run pod sandbox ", pod_name,
                                                   ": log directory \"", spec.log_directory,
                                                   "\" is not an absolute path"));
  }
  const bool host_network = spec.namespaces.network == NamespaceMode::kNode;
  ASSIGN_OR_RETURN(const std::string id, NewObjectId());
  absl::MutexLock lock(&PodLock(id));

  PodData data;
  data.hostname = spec.hostname.empty() || host_network ? HostHostname() : spec.hostname;
  data.log_directory = spec.log_directory;
  data.runtime_handler = spec.runtime_handler;
  data.labels = spec.labels;
  data.annotations = spec.annotations;
  data.namespaces = spec.namespaces;
  if (!host_network) data.port_mappings = spec.port_mappings;
  ASSIGN_OR_RETURN(data.cgroup_path, driver_->PodPath(spec.cgroup_parent, id));
  if (!host_network) {
    data.netns_path = PinPath("netns", id);
    // The host's uts namespace goes with the host's network, as containerd does it.
    data.uts_ns_path = PinPath("utsns", id);
  }
  if (spec.namespaces.ipc != NamespaceMode::kNode) data.ipc_ns_path = PinPath("ipcns", id);
  if (spec.namespaces.user == NamespaceMode::kPod) data.user_ns_path = PinPath("userns", id);
  data.pod_dir = PodDir(id);
  data.config_bytes = spec.config_bytes;
  data.creating = true;

  store::PodRecord record;
  record.id = id;
  record.name = spec.name;
  record.namespace_ = spec.namespace_;
  record.uid = spec.uid;
  record.attempt = spec.attempt;
  record.state = static_cast<int>(PodState::kNotReady);
  record.created_at_ns = absl::ToUnixNanos(absl::Now());

  // A second RunPodSandbox of the same pod with the same config, as kubelet sends after its
  // deadline, gets the pod the first one made.
  std::optional<std::string> same_run;
  PendingPause pause;
  PendingNetwork network;  // outlives the steps' undo, which waits for it
  absl::Status ran = RunSteps(
      absl::StrCat("pod ", id.substr(0, 12)), "pod.run", [&](Steps& steps) -> absl::Status {
        RETURN_IF_ERROR(ReserveName(steps, spec, data, record, &same_run));
        if (same_run) return absl::OkStatus();
        RETURN_IF_ERROR(MakeNamespaces(steps, spec, data));
        // The network is set up on a thread of its own, and crib-pause joins the namespaces
        // and the cgroup, while cribd makes the cgroup and the pod's files.
        if (!host_network) RETURN_IF_ERROR(StartNetwork(steps, spec, id, data, network));
        RETURN_IF_ERROR(MakeCgroupAndLaunchPause(steps, spec, id, data, pause));
        RETURN_IF_ERROR(MakePodFiles(steps, spec, data));
        if (!host_network) RETURN_IF_ERROR(AttachNetwork(steps, network, data));
        RETURN_IF_ERROR(AwaitAndPlacePause(steps, id, data, pause));
        // Ready.
        data.creating = false;
        record.state = static_cast<int>(PodState::kReady);
        record.data = EncodePodData(data);
        return steps.Run("record", "record pod", [&] { return store_.UpdatePod(record); });
      });
  if (!data.netns_path.empty() && data.user_ns_path.empty()) netns_standby_.MakeNext();
  if (!ran.ok()) return Annotate(ran, absl::StrCat("run pod sandbox ", pod_name));
  if (same_run) return *same_run;
  spdlog::info("pod {} ({}) ready in {}: {}{}{}", id.substr(0, 12), pod_name,
               absl::FormatDuration(absl::Now() - start),
               data.pid == 0 ? "no pause process" : absl::StrCat("pause pid ", data.pid),
               data.ips.empty() ? "" : ", ip ", data.ips.empty() ? "" : data.ips[0]);
  return id;
}

// The record reserves the name and, while `creating`, tells a restarted cribd to undo what a
// crash interrupted. Its undo keeps it when another undo failed: the start-up cleanup (or the
// removal kubelet sends for a pod that is not ready) finishes the job.
absl::Status PodService::ReserveName(Steps& steps, const PodSandboxSpec& spec,
                                     const PodData& data, store::PodRecord& record,
                                     std::optional<std::string>* same_run) {
  record.data = EncodePodData(data);
  const std::string id = record.id;
  auto reserve = [&]() -> absl::Status {
    absl::Status reserved = store_.PutPod(record);
    if (absl::IsAlreadyExists(reserved)) {
      absl::StatusOr<std::string> same = SameRun(spec);
      if (same.ok()) {
        *same_run = *same;
        return absl::OkStatus();
      }
    }
    return reserved;
  };
  return steps.Run("reserve", "reserve name", reserve, [this, &steps, id, same_run] {
    if (*same_run) return absl::OkStatus();
    if (steps.undo_failed()) {
      spdlog::warn("pod {}: kept, marked as being created, for the start-up cleanup",
                   id.substr(0, 12));
      return absl::OkStatus();
    }
    return store_.DeletePod(id);
  });
}

// The pinned network, ipc and uts namespaces with the pod's hostname and sysctls.
absl::Status PodService::MakeNamespaces(Steps& steps, const PodSandboxSpec& spec,
                                        const PodData& data) {
  const bool host_network = data.netns_path.empty();
  std::vector<std::string> sysctls;
  for (const auto& [key, value] : spec.sysctls) sysctls.push_back(absl::StrCat(key, "=", value));
  if (!data.user_ns_path.empty()) {
    // The pod's user namespace owns its network, ipc and uts namespaces: made together.
    RETURN_IF_ERROR(steps.Run(
        "userns", "create user, network, ipc and uts namespaces",
        [&]() -> absl::Status {
          RETURN_IF_ERROR(EnsurePinDirs());
          UsernsPins pins;
          pins.user_path = data.user_ns_path;
          pins.net_path = data.netns_path;
          pins.ipc_path = data.ipc_ns_path;
          pins.uts_path = data.uts_ns_path;
          pins.uid_mappings = spec.namespaces.uid_mappings;
          pins.gid_mappings = spec.namespaces.gid_mappings;
          pins.hostname = data.hostname;
          pins.sysctls = sysctls;
          return PinUserNamespace(pins);
        },
        [pins = data.Pins()]() -> absl::Status {
          for (const std::string& path : pins) RETURN_IF_ERROR(RemovePin(path));
          return absl::OkStatus();
        }));
  } else {
    RETURN_IF_ERROR(steps.Run(
        "netns", "create network namespace",
        [&]() -> absl::Status {
          RETURN_IF_ERROR(EnsurePinDirs());
          if (host_network) return absl::OkStatus();
          return netns_standby_.CreatePinned(data.netns_path);
        },
        [path = data.netns_path] { return path.empty() ? absl::OkStatus() : RemovePin(path); }));
    RETURN_IF_ERROR(steps.Run(
        "pins", "create ipc and uts namespaces",
        [&]() -> absl::Status {
          IpcUtsPins pins;
          pins.netns_path = data.netns_path;
          pins.ipc_path = data.ipc_ns_path;
          pins.uts_path = data.uts_ns_path;
          pins.hostname = data.hostname;
          pins.sysctls = sysctls;
          return PinIpcAndUts(pins);
        },
        [ipc = data.ipc_ns_path, uts = data.uts_ns_path]() -> absl::Status {
          for (const std::string& path : {ipc, uts}) {
            if (!path.empty()) RETURN_IF_ERROR(RemovePin(path));
          }
          return absl::OkStatus();
        }));
  }
  return absl::OkStatus();
}

// The pod's directory with hostname, hosts and resolv.conf, and its /dev/shm.
absl::Status PodService::MakePodFiles(Steps& steps, const PodSandboxSpec& spec,
                                      const PodData& data) {
  const bool host_network = data.netns_path.empty();
  RETURN_IF_ERROR(steps.Run(
      "dir", "make the pod directory", [&] { return MakeDirs(data.pod_dir, 0755); },
      [dir = data.pod_dir]() -> absl::Status {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
        if (ec) return absl::InternalError(absl::StrCat("remove ", dir, ": ", ec.message()));
        return absl::OkStatus();
      }));
  RETURN_IF_ERROR(steps.Run("files", "write pod files", [&]() -> absl::Status {
    RETURN_IF_ERROR(WriteHostname(data.pod_dir, data.hostname));
    RETURN_IF_ERROR(WriteResolvConf(data.pod_dir, host_network ? DnsConfig() : spec.dns));
    if (!host_network) return WriteHosts(data.pod_dir, HostsContent({}, data.hostname));
    ASSIGN_OR_RETURN(std::string hosts, HostHosts());
    return WriteHosts(data.pod_dir, hosts);
  }));
  const std::string shm = absl::StrCat(data.pod_dir, "/shm");
  return steps.Run(
      "shm", "mount shm",
      [&]() -> absl::Status {
        RETURN_IF_ERROR(MakeDirs(shm, 0755));
        const std::string options = absl::StrCat("mode=1777,size=", config_.pod_shm_size);
        if (::mount("shm", shm.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                    options.c_str()) != 0) {
          return ErrnoStatus(errno, absl::StrCat("mount tmpfs on ", shm));
        }
        return absl::OkStatus();
      },
      [shm]() -> absl::Status {
        if (::umount2(shm.c_str(), MNT_DETACH) != 0) {
          return ErrnoStatus(errno, absl::StrCat("unmount ", shm));
        }
        return absl::OkStatus();
      });
}

// The pod cgroup with the pod's resources and overhead, and, for a pod that shares its process
// namespace, crib-pause started into the pod's namespaces and its cgroup: joined by crib-pause
// itself before it does anything (cgroupfs), or handed to the driver once crib-pause has
// reported its pid (systemd, which starts its scope with it; AwaitAndPlacePause).
absl::Status PodService::MakeCgroupAndLaunchPause(Steps& steps, const PodSandboxSpec& spec,
                                                  const std::string& id, PodData& data,
                                                  PendingPause& pause) {
  const std::string pod_cgroup = data.cgroup_path;
  const bool needs_pause = spec.namespaces.pid == NamespaceMode::kPod;
  const std::string pause_cgroup = needs_pause ? driver_->PausePath(pod_cgroup, id) : pod_cgroup;
  RETURN_IF_ERROR(steps.Run(
      "cgroup", "create cgroup",
      [&] { return driver_->CreatePod(pod_cgroup, pause_cgroup, spec.resources); },
      [this, pod_cgroup, pause_cgroup] { return driver_->RemovePod(pod_cgroup, pause_cgroup); }));
  if (!needs_pause) return absl::OkStatus();
  PauseOptions options;
  options.netns_path = data.netns_path;
  options.ipc_ns_path = data.ipc_ns_path;
  options.uts_ns_path = data.uts_ns_path;
  options.user_ns_path = data.user_ns_path;
  options.new_pid = true;
  options.pod_dir = data.pod_dir;
  options.cgroup_join = driver_->JoinFiles(pause_cgroup);
  return steps.Run(
      "pause", "start crib-pause",
      [&]() -> absl::Status {
        if (::access(pause_path_.c_str(), X_OK) != 0) {
          return ErrnoStatus(errno, absl::StrCat("access ", pause_path_));
        }
        ASSIGN_OR_RETURN(pause, LaunchPause(pause_path_, options));
        return absl::OkStatus();
      },
      [&data, &pause] {
        // Not heard from yet: dropping it stops it, and the process it forked.
        if (pause.started()) {
          PendingPause gone(std::move(pause));
          return absl::OkStatus();
        }
        return StopPause(PauseProcess{data.pid, data.pid_start_time}, absl::Seconds(2));
      });
}

// crib-pause's report (the start step's undo stops it from here on), then, with the systemd
// driver, its scope.
absl::Status PodService::AwaitAndPlacePause(Steps& steps, const std::string& id, PodData& data,
                                            PendingPause& pause) {
  if (!pause.started()) return absl::OkStatus();
  RETURN_IF_ERROR(steps.Run("pause_ready", "start crib-pause", [&]() -> absl::Status {
    ASSIGN_OR_RETURN(PauseProcess process, AwaitPause(pause));
    data.pid = process.pid;
    data.pid_start_time = process.start_time;
    return absl::OkStatus();
  }));
  if (!driver_->Places()) return absl::OkStatus();
  const std::string pause_cgroup = driver_->PausePath(data.cgroup_path, id);
  return steps.Run(
      "place_pause", "place crib-pause in its cgroup",
      [&] { return driver_->Place(pause_cgroup, data.pid, {}); },
      [this, pause_cgroup] { return driver_->Remove(pause_cgroup); });
}

// The pod's network through the backend, and its addresses in the pod's hosts file.
// The pod's network through the backend, started before the cgroup and the pod's files
// (StartNetwork, whose undo takes it down again) and waited for after them (AttachNetwork),
// then its addresses in the pod's hosts file.
absl::Status PodService::StartNetwork(Steps& steps, const PodSandboxSpec& spec,
                                      const std::string& id, const PodData& data,
                                      PendingNetwork& network) {
  network::PodNetworkConfig net;
  net.pod_id = id;
  net.name = spec.name;
  net.namespace_ = spec.namespace_;
  net.uid = spec.uid;
  net.netns_path = data.netns_path;
  net.port_mappings = data.port_mappings;
  net.annotations = spec.annotations;
  net.dns_servers = spec.dns.servers;
  net.dns_searches = spec.dns.searches;
  net.dns_options = spec.dns.options;
  return steps.Run(
      "network_start", "start setting up the network",
      [&]() -> absl::Status {
        network.Start(network_, std::move(net));
        return absl::OkStatus();
      },
      [&network] { return network.Undo(); });
}

absl::Status PodService::AttachNetwork(Steps& steps, PendingNetwork& network, PodData& data) {
  RETURN_IF_ERROR(steps.Run("network", "set up network", [&]() -> absl::Status {
    ASSIGN_OR_RETURN(network::PodNetworkStatus attached, network.Join());
    data.ips = attached.ips;
    return absl::OkStatus();
  }));
  return steps.Run("hosts", "write the pod's addresses in its hosts file", [&] {
    return WriteHosts(data.pod_dir, HostsContent(data.ips, data.hostname));
  });
}

absl::StatusOr<std::string> PodService::SameRun(const PodSandboxSpec& spec) {
  ASSIGN_OR_RETURN(std::vector<store::PodRecord> pods, store_.ListPods());
  for (const store::PodRecord& other : pods) {
    if (other.name != spec.name || other.namespace_ != spec.namespace_ || other.uid != spec.uid ||
        other.attempt != spec.attempt) {
      continue;
    }
    ASSIGN_OR_RETURN(PodData data, DecodePodData(other.id, other.data));
    if (data.config_bytes != spec.config_bytes) break;
    // The first call holds the pod's lock until it has finished or undone its work.
    { absl::MutexLock wait(&PodLock(other.id)); }
    absl::StatusOr<PodSandbox> pod = Get(other.id);
    if (pod.ok() && pod->state == PodState::kReady) {
      spdlog::info("pod {} ({}): the same run again, same pod", other.id.substr(0, 12), spec.name);
      return other.id;
    }
    break;
  }
  return absl::NotFoundError("no finished run of this pod");
}

}  // namespace crib::pod
