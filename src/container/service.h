// The container room's service: the lifecycle of containers on top of the launcher
// (src/runtime), one file per RPC (create.cc, start.cc, stop.cc, remove.cc, status.cc,
// exec.cc, update.cc). CreateContainer does all the work that can fail early (rootfs, spec,
// cgroup, a parked init under its crib-monitor); StartContainer only releases it. State is in
// the store and in each monitor's exit file, so a restarted cribd finds every container again
// and learns how those that ended while it was away ended.
//
// Must not know gRPC or CRI types. Reads pods through pod::PodService (with the pod's lock
// held shared while a container is made in it) and images through image::ImageStore.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "cgroup/driver.h"
#include "cgroup/layout.h"
#include "common/decoded_cache.h"
#include "common/steps.h"
#include "config/config.h"
#include "container/container.h"
#include "container/events.h"
#include "container/image_config.h"
#include "container/record.h"
#include "container/spec_builder.h"
#include "container/users.h"
#include "image/image_store.h"
#include "image/trash.h"
#include "pod/service.h"
#include "runtime/launcher.h"
#include "store/store.h"

namespace crib::container {

// What start-up recovery found and did (recover.cc).
struct ContainerRecovery {
  int containers = 0;         // records kept
  int exited_while_away = 0;  // ended while cribd was down; their exit read from the file
  int monitors_gone = 0;      // no monitor and no exit file: exited, reason Unknown
  int creates_undone = 0;     // CreateContainer calls a crash interrupted
  int removals_finished = 0;  // RemoveContainer calls a crash interrupted
  int starts_recorded = 0;    // started, but a crash came before the record said so
  int orphans = 0;            // bundles, layers and monitors that no record names
};

class ContainerService {
 public:
  // Finds crib-monitor (config.helper_dir, else beside cribd), registers the snapshots that
  // containers use with the image store, and wires itself into the pod service so that
  // stopping a pod stops its containers and removing it removes them.
  static absl::StatusOr<std::unique_ptr<ContainerService>> Create(const Config& config,
                                                                  store::Store& store,
                                                                  pod::PodService& pods,
                                                                  image::ImageStore& images);
  ~ContainerService();

  // Returns the new container's id. All or nothing.
  absl::StatusOr<std::string> Create(const ContainerSpec& spec);
  absl::Status Start(const std::string& id_or_prefix);
  // The stop signal, then SIGKILL after `timeout` (zero: at once). Idempotent.
  absl::Status Stop(const std::string& id_or_prefix, absl::Duration timeout);
  // Stops if need be, then unmounts and removes everything. Idempotent.
  absl::Status Remove(const std::string& id_or_prefix);
  // With `verbose`, spec_json is filled.
  absl::StatusOr<Container> Get(const std::string& id_or_prefix, bool verbose = false);
  absl::StatusOr<std::vector<Container>> List(const ContainerFilter& filter);
  // The same with each state as last recorded: no look at a monitor or an exit file, so a
  // container that ended since may still show running (the stats' list, which reads the
  // cgroups next and finds an ended container's empty or gone).
  absl::StatusOr<std::vector<Container>> ListAsRecorded(const ContainerFilter& filter);
  absl::StatusOr<ExecSyncResult> ExecSync(const std::string& id_or_prefix,
                                          const std::vector<std::string>& command,
                                          absl::Duration timeout);
  absl::Status UpdateResources(const std::string& id_or_prefix, const Resources& resources);
  absl::Status ReopenLog(const std::string& id_or_prefix);

  // For the streaming server: the bundle of a container (NotFound for an unknown one), and
  // the launcher that runs it.
  absl::StatusOr<std::string> BundleOf(const std::string& id_or_prefix);
  const runtime::Launcher& launcher() const { return launcher_; }

  // Lifecycle events, for GetContainerEvents.
  EventHub& events() { return events_; }

  // At start-up, before serving: undoes or finishes what a crash interrupted and brings every
  // container's state up to date (recover.cc).
  absl::StatusOr<ContainerRecovery> Recover();

  // The pod's side: every container of the pod, stopped at once (kubelet stopped them
  // gracefully before) or removed.
  absl::Status StopAllInPod(const std::string& pod_id);
  absl::Status RemoveAllInPod(const std::string& pod_id);

  // Where a container's parts are, for the rooms that read them (paths.cc): its writable
  // layer (the overlay upper dir), and its cgroup below the pod's.
  std::string UpperDir(const std::string& id) const;
  std::string CgroupPath(const std::string& pod_cgroup, const std::string& id) const;

 private:
  ContainerService(const Config& config, store::Store& store, pod::PodService& pods,
                   image::ImageStore& images, cgroup::Layout layout,
                   std::unique_ptr<cgroup::Driver> driver, std::string monitor_path);

  absl::StatusOr<std::string> ResolveId(const std::string& id_or_prefix);
  std::shared_ptr<absl::Mutex> ContainerLock(const std::string& id)
      ABSL_LOCKS_EXCLUDED(locks_mutex_);
  void ForgetLock(const std::string& id) ABSL_LOCKS_EXCLUDED(locks_mutex_);

  // DecodeContainerData through a cache of the records decoded so far (decoded_): a record
  // is decoded again only once its text has changed (kubelet lists every container every
  // second; the decode is most of a list's time).
  absl::StatusOr<ContainerData> Decode(const store::ContainerRecord& record);
  void ForgetDecoded(const std::string& id);

  // The record as it stands, with the state brought up to date from the monitor's exit file
  // (and written back when it changed).
  absl::StatusOr<std::pair<store::ContainerRecord, ContainerData>> Load(const std::string& id);
  absl::StatusOr<Container> Refresh(store::ContainerRecord record, ContainerData data);
  absl::StatusOr<std::vector<Container>> ListRecords(const ContainerFilter& filter, bool refresh);

  absl::StatusOr<std::string> CreateInPod(const ContainerSpec& spec, const pod::PodSandbox& pod);
  // CreateContainer's steps (create.cc).
  absl::StatusOr<ContainerData> InitialData(const ContainerSpec& spec, const pod::PodSandbox& pod,
                                            const image::Image& image, const ImageConfig& config,
                                            const std::string& name);
  absl::Status ReserveContainerName(Steps& steps, const ContainerSpec& spec,
                                    const ContainerData& data, store::ContainerRecord& record,
                                    std::optional<std::string>* same_create);
  absl::Status MakeRootfs(Steps& steps, const ContainerSpec& spec, const std::string& id,
                          const pod::PodSandbox& pod, const ContainerData& data);
  absl::Status PrepareRun(Steps& steps, const ContainerSpec& spec, const pod::PodSandbox& pod,
                          const ImageConfig& image_config, const std::string& id,
                          ContainerData& data, SpecInputs* inputs);
  static absl::StatusOr<ResolvedUser> ResolveImageUser(const ContainerSpec& spec,
                                                       const ImageConfig& image_config,
                                                       const std::string& rootfs);
  absl::StatusOr<std::string> TargetPidNamespace(const ContainerSpec& spec,
                                                 const pod::PodSandbox& pod);
  absl::Status MakeSpec(Steps& steps, const ContainerSpec& spec, const std::string& id,
                        const SpecInputs& inputs, runtime::Spec* oci);
  absl::Status StartMonitor(Steps& steps, const ContainerSpec& spec, const pod::PodSandbox& pod,
                            const runtime::Spec& oci, const std::string& id,
                            const std::string& name, ContainerData& data);
  absl::Status StopLocked(const std::string& id, absl::Duration timeout);
  absl::Status RemoveLocked(const std::string& id);

  void Publish(ContainerEvent::Type type, const std::string& id, const std::string& pod_id);
  // FitToMachine, with a warning the first time each kind of limit is left out.
  void FitResources(const std::string& id, runtime::Resources* resources)
      ABSL_LOCKS_EXCLUDED(unapplied_mu_);

  std::string Bundle(const std::string& id) const;
  std::string LayerDir(const std::string& id) const;  // <root>/containers/<id>: upper, work

  // Chain ids the containers' root file systems are made of, counted; the image store asks
  // before it deletes a snapshot.
  void HoldSnapshots(const std::vector<std::string>& chain_ids) ABSL_LOCKS_EXCLUDED(snapshots_mu_);
  void ReleaseSnapshots(const std::vector<std::string>& chain_ids)
      ABSL_LOCKS_EXCLUDED(snapshots_mu_);
  bool SnapshotInUse(absl::string_view chain_id) ABSL_LOCKS_EXCLUDED(snapshots_mu_);

  const Config& config_;
  store::Store& store_;
  pod::PodService& pods_;
  image::ImageStore& images_;
  const cgroup::Layout layout_;
  const std::unique_ptr<cgroup::Driver> driver_;
  runtime::Launcher launcher_;
  const bool apparmor_enabled_;

  absl::Mutex locks_mutex_;
  absl::flat_hash_map<std::string, std::shared_ptr<absl::Mutex>> locks_
      ABSL_GUARDED_BY(locks_mutex_);
  DecodedCache<ContainerData> decoded_;
  absl::Mutex snapshots_mu_;
  absl::flat_hash_map<std::string, int> snapshots_in_use_ ABSL_GUARDED_BY(snapshots_mu_);
  absl::Mutex unapplied_mu_;
  absl::flat_hash_set<std::string> unapplied_warned_ ABSL_GUARDED_BY(unapplied_mu_);
  absl::Mutex apparmor_mu_;
  bool apparmor_loaded_ ABSL_GUARDED_BY(apparmor_mu_) = false;
  EventHub events_;
  // Last, so that its thread stops before the rest goes.
  std::unique_ptr<ExitWatcher> exits_;
  // Bundles and writable layers of removed containers (<state_dir>/trash, <root_dir>/trash).
  image::Trash trash_;
};

}  // namespace crib::container
