// The pod room's service: the lifecycle of pod sandboxes (pinned network, ipc and uts
// namespaces, crib-pause for a pod that shares its pid namespace, pod cgroup,
// hostname/hosts/resolv.conf files, /dev/shm, the network attachment), one file per RPC
// (run.cc, stop.cc, remove.cc, status.cc). State is in the store only, so a restarted cribd
// finds every pod again. Must not know gRPC or CRI types; attaches networks only through
// network::NetworkBackend.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "cgroup/driver.h"
#include "common/decoded_cache.h"
#include "common/steps.h"
#include "config/config.h"
#include "network/backend.h"
#include "pod/pause_process.h"
#include "pod/pins.h"
#include "pod/record.h"
#include "pod/sandbox.h"
#include "store/store.h"

namespace crib::pod {

// What the pod room asks of the container room, which sits beside it: containers are stopped
// before the pause process that holds their pid namespace, and removed before the pod's record;
// the pod's directory goes into the container room's trash (deleted in the background).
struct ContainerHooks {
  std::function<absl::Status(const std::string& pod_id)> stop_all;
  std::function<absl::Status(const std::string& pod_id)> remove_all;
  std::function<absl::Status(const std::string& dir)> discard;
};

// What start-up recovery found and did (recover.cc).
struct PodRecovery {
  int pods = 0;               // records kept
  int not_ready = 0;          // ready pods whose pause process or pins died while cribd was away
  int runs_undone = 0;        // RunPodSandbox calls a crash interrupted
  int removals_finished = 0;  // RemovePodSandbox calls a crash interrupted
  int orphans = 0;            // pins, directories, pause processes, cgroups, attachments
};

class PendingNetwork;  // run.cc

class PodService {
 public:
  // Detects the cgroup layout and finds crib-pause (config.helper_dir, else beside cribd).
  static absl::StatusOr<std::unique_ptr<PodService>> Create(const Config& config,
                                                            network::NetworkBackend& network,
                                                            store::Store& store);

  // Returns the new pod's id. All or nothing: a failure undoes every step done so far.
  absl::StatusOr<std::string> Run(const PodSandboxSpec& spec);
  // Idempotent; an unknown id is OK (kubelet retries stops).
  absl::Status Stop(const std::string& id_or_prefix);
  // Idempotent; an unknown id is OK.
  absl::Status Remove(const std::string& id_or_prefix);
  absl::StatusOr<PodSandbox> Get(const std::string& id_or_prefix);
  // The network namespace of a ready pod ("" for the host's): FailedPrecondition when the pod
  // is not ready, NotFound for an unknown one.
  absl::StatusOr<std::string> NetnsOf(const std::string& id_or_prefix);
  absl::StatusOr<std::vector<PodSandbox>> List(const PodFilter& filter);
  // In-place resize (update_resources.cc): the limits applied to the pod cgroup, and
  // `config_bytes` (if not empty) kept as the pod's config from now on.
  absl::Status UpdateResources(const std::string& id_or_prefix, const cgroup::Resources& resources,
                               const std::string& config_bytes);

  // Checks a spec without creating anything (InvalidArgument naming the field).
  absl::Status Validate(const PodSandboxSpec& spec) const;

  // Runs `fn` on the pod with its lock held shared, so that it is neither stopped nor removed
  // meanwhile (several containers may be made in one pod at once). NotFound for an unknown id.
  absl::Status WithPod(const std::string& id_or_prefix,
                       absl::FunctionRef<absl::Status(const PodSandbox&)> fn);

  void SetContainerHooks(ContainerHooks hooks);

  // At start-up, after the containers' recovery and before serving (recover.cc).
  absl::StatusOr<PodRecovery> Recover();

 private:
  // Get of a full id that ResolveId returned (its record read once more, not twice).
  absl::StatusOr<PodSandbox> GetResolved(const std::string& id);
  PodService(const Config& config, network::NetworkBackend& network, store::Store& store,
             std::unique_ptr<cgroup::Driver> driver, std::string pause_path);

  absl::StatusOr<std::string> ResolveId(const std::string& id_or_prefix);
  // The id of a ready pod that a previous Run made from the very same spec.
  absl::StatusOr<std::string> SameRun(const PodSandboxSpec& spec);
  // RunPodSandbox's steps (run.cc).
  absl::Status ReserveName(Steps& steps, const PodSandboxSpec& spec, const PodData& data,
                           store::PodRecord& record, std::optional<std::string>* same_run);
  absl::Status MakeNamespaces(Steps& steps, const PodSandboxSpec& spec, const PodData& data);
  absl::Status MakeCgroupAndLaunchPause(Steps& steps, const PodSandboxSpec& spec,
                                        const std::string& id, PodData& data, PendingPause& pause);
  absl::Status MakePodFiles(Steps& steps, const PodSandboxSpec& spec, const PodData& data);
  absl::Status AwaitAndPlacePause(Steps& steps, const std::string& id, PodData& data,
                                  PendingPause& pause);
  absl::Status StartNetwork(Steps& steps, const PodSandboxSpec& spec, const std::string& id,
                            const PodData& data, PendingNetwork& network);
  absl::Status AttachNetwork(Steps& steps, PendingNetwork& network, PodData& data);
  absl::Mutex& PodLock(const std::string& id) ABSL_LOCKS_EXCLUDED(locks_mutex_);
  // DecodePodData through a cache of the records decoded so far (decoded_): a record is
  // decoded again only once its text has changed; one being created is not kept.
  absl::StatusOr<PodData> Decode(const store::PodRecord& record);
  void ForgetDecoded(const std::string& id);
  // The shared mount points of the netns, ipcns and utsns pins.
  absl::Status EnsurePinDirs() ABSL_LOCKS_EXCLUDED(pin_dirs_mutex_);
  // `removing`: called by Remove, which the network backend may let through after repeated
  // tear-down failures (see network::PodNetworkConfig::removing).
  absl::Status StopLocked(const std::string& id, bool removing = false);

  std::string PodDir(const std::string& id) const;
  // <state_dir>/<kind>/<id>, where a pod's namespace of that kind is pinned (netns, ipcns,
  // utsns).
  std::string PinPath(const char* kind, const std::string& id) const;

  const Config& config_;
  network::NetworkBackend& network_;
  store::Store& store_;
  const std::unique_ptr<cgroup::Driver> driver_;
  const std::string pause_path_;

  absl::Mutex locks_mutex_;
  absl::flat_hash_map<std::string, std::unique_ptr<absl::Mutex>> locks_
      ABSL_GUARDED_BY(locks_mutex_);
  DecodedCache<PodData> decoded_;
  absl::Mutex pin_dirs_mutex_;
  bool pin_dirs_ready_ ABSL_GUARDED_BY(pin_dirs_mutex_) = false;
  NetnsStandby netns_standby_;
  ContainerHooks hooks_;  // set once, before the server serves
};

}  // namespace crib::pod
