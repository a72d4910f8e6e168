// The CNI network backend: pods are attached by the CNI plugins of the network configured in
// the conf directory, executed as the CNI specification (0.1.0 to 1.0.0) says: ADD through the
// plugin list with prevResult chained, DEL in reverse order with the cached ADD result, CHECK
// against it. crib itself only brings up `lo` in the pod's namespace. The conf directory is
// looked at again on every Status and SetUp, so a change takes effect without a restart;
// TearDown uses the configuration cached at ADD. It never touches links, addresses or
// firewall rules itself: the plugins do.
#pragma once

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "config/config.h"
#include "network/backend.h"
#include "network/cni_cache.h"
#include "network/cni_config.h"

namespace crib::network {

class CniBackend final : public NetworkBackend {
 public:
  // How many DELs of a pod may fail before RemovePodSandbox gives up on it (see TearDown).
  static constexpr int kDelAttemptsBeforeGivingUp = 3;

  // `cache_dir` holds the attachments (<root_dir>/cni/results).
  CniBackend(const NetworkConfig& config, std::string cache_dir);

  absl::string_view Name() const override { return "cni"; }
  // Ready when the conf directory holds a usable network whose plugins are all found.
  Readiness Status() const override;
  absl::StatusOr<PodNetworkStatus> SetUp(const PodNetworkConfig& config) override;
  // DEL with the attachment cached at ADD. A failed DEL keeps the attachment for the next
  // TearDown; with `config.removing` and at least kDelAttemptsBeforeGivingUp failures, the
  // remaining plugins still get their DEL, what could not be undone is logged, and the
  // attachment is dropped, so the pod can be removed.
  absl::Status TearDown(const PodNetworkConfig& config) override;
  // CNI plugins take their addresses from their own configuration.
  absl::Status SetPodCidr(absl::string_view cidr) override;
  // DEL (giving up as for a removal) for every cached attachment of a pod that is gone.
  absl::StatusOr<int> RemoveOrphans(const std::set<std::string>& live_pod_ids) override;

  // CHECK of an attached pod against its cached ADD result (spec 0.4.0 and later; OK without
  // running anything when the list sets disableCheck). FailedPrecondition if the pod is not
  // attached or the network's version has no CHECK.
  absl::Status Check(const PodNetworkConfig& config);

 private:
  struct Loaded {
    std::string path;  // the chosen file, empty when there is none
    int64_t mtime_ns = 0;
    int64_t size = -1;
    uint64_t inode = 0;
    absl::StatusOr<std::shared_ptr<const cni::NetworkConfigList>> network =
        absl::UnavailableError("not loaded");
  };

  // The conf directory's network, re-read when the chosen file or its metadata changed.
  absl::StatusOr<std::shared_ptr<const cni::NetworkConfigList>> CurrentNetwork() const
      ABSL_LOCKS_EXCLUDED(mutex_);

  absl::StatusOr<PodNetworkStatus> SetUpSteps(const PodNetworkConfig& config);

  // Runs `command` for plugin `index` of the attachment's list.
  absl::StatusOr<nlohmann::json> Invoke(const cni::Attachment& attachment, size_t index,
                                        const std::string& command,
                                        const nlohmann::json& prev_result) const;
  // DEL through the list in reverse. With `best_effort`, every plugin gets its DEL even after a
  // failure; the first error is returned either way.
  absl::Status DeleteAll(const cni::Attachment& attachment, bool best_effort) const;

  const NetworkConfig config_;
  const cni::AttachmentCache cache_;
  const std::string cni_path_;
  mutable absl::Mutex mutex_;
  mutable Loaded loaded_ ABSL_GUARDED_BY(mutex_);
  // Held around every call of a plugin that makes shared host state with a check-then-create
  // (kSerializedPlugins in cni.cc).
  mutable absl::Mutex serialized_mutex_;
};

}  // namespace crib::network
