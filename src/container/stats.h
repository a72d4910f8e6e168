// The stats room: resource usage of containers and pods as ContainerStats, PodSandboxStats and
// ListPodSandboxMetrics report it, in plain values. Usage comes from each cgroup's files
// (src/cgroup/stats.h) read at call time, the pod's interface counters from inside its network
// namespace, and the writable layers from a background sampler (a call never walks a
// directory). The CPU rate in nano-cores is computed against a previous sample kept per
// container and per pod. Reads only: this room changes no container or pod.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "cgroup/stats.h"
#include "config/config.h"
#include "container/layer_usage.h"
#include "container/service.h"
#include "pod/netns_stats.h"
#include "pod/service.h"

namespace crib::container {

struct FilesystemUsage {
  int64_t timestamp_ns = 0;
  std::string mountpoint;  // the file system's id, as ImageFsInfo names it
  uint64_t used_bytes = 0;
  uint64_t inodes_used = 0;
};

struct ContainerStats {
  std::string id;
  std::string pod_id;
  std::string name;
  uint32_t attempt = 0;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  std::string image;
  ContainerState state = ContainerState::kUnknown;
  int64_t started_at_ns = 0;
  Resources resources;
  int64_t timestamp_ns = 0;
  std::optional<cgroup::CgroupStats> usage;       // unset when the container has no cgroup
  std::optional<uint64_t> usage_nano_cores;       // unset until there is a previous sample
  std::optional<FilesystemUsage> writable_layer;  // unset until the sampler measured it
};

struct NetworkStats {
  int64_t timestamp_ns = 0;
  std::vector<pod::InterfaceCounters> interfaces;  // without lo
};

struct PodStats {
  std::string id;
  std::string name;
  std::string namespace_;
  std::string uid;
  uint32_t attempt = 0;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  int64_t timestamp_ns = 0;
  std::optional<cgroup::CgroupStats> usage;
  std::optional<uint64_t> usage_nano_cores;
  std::optional<NetworkStats> network;  // unset for pods on the host's network
  std::vector<ContainerStats> containers;
};

struct ContainerStatsFilter {
  std::string id;  // exact, or a unique prefix
  std::string pod_id;
  std::map<std::string, std::string> labels;
};

struct PodStatsFilter {
  std::string id;
  std::map<std::string, std::string> labels;
};

// ListMetricDescriptors and ListPodSandboxMetrics, cAdvisor-style.
struct MetricDescriptor {
  std::string name;
  std::string help;
  std::vector<std::string> label_keys;
};

struct MetricSample {
  std::string name;
  int64_t timestamp_ns = 0;
  bool counter = false;                   // else a gauge
  std::vector<std::string> label_values;  // in the descriptor's label_keys order
  uint64_t value = 0;
};

struct ContainerMetrics {
  std::string container_id;
  std::vector<MetricSample> metrics;
};

struct PodMetrics {
  std::string pod_id;
  std::vector<MetricSample> metrics;
  std::vector<ContainerMetrics> containers;
};

// The network interface kubelet reports as the pod's default one.
inline constexpr char kDefaultInterface[] = "eth0";

class StatsService {
 public:
  // Starts the writable-layer sampler.
  static absl::StatusOr<std::unique_ptr<StatsService>> Create(const Config& config,
                                                              ContainerService& containers,
                                                              pod::PodService& pods);
  StatsService(const StatsService&) = delete;
  StatsService& operator=(const StatsService&) = delete;

  absl::StatusOr<ContainerStats> Container(const std::string& id_or_prefix);
  absl::StatusOr<std::vector<ContainerStats>> ListContainers(const ContainerStatsFilter& filter);
  // FailedPrecondition for a pod that is not ready.
  absl::StatusOr<PodStats> Pod(const std::string& id_or_prefix);
  // The writable layers of every container together, from the sampler's measurements
  // (ImageFsInfo's container file system): no directory is walked for it. A layer not
  // measured yet counts from its first measurement on; the timestamp is the oldest one summed.
  absl::StatusOr<FilesystemUsage> WritableLayers();
  // Ready pods only.
  absl::StatusOr<std::vector<PodStats>> ListPods(const PodStatsFilter& filter);

  // metrics.cc. The descriptors never change while cribd runs.
  static const std::vector<MetricDescriptor>& MetricDescriptors();
  // Every ready pod and its running containers.
  absl::StatusOr<std::vector<PodMetrics>> PodSandboxMetrics();

 private:
  StatsService(const Config& config, ContainerService& containers, pod::PodService& pods,
               cgroup::Layout layout);

  // `machine_swaps`: cgroup::MachineSwaps() of the call (a kCri sample reads no swap usage
  // on a machine without swap).
  ContainerStats Sample(const container::Container& c, const std::string& pod_cgroup,
                        cgroup::StatsDetail detail, bool machine_swaps);
  // The rate since an earlier sample of `key` at least kMinRateWindow old (the last one when
  // none is); records this sample.
  std::optional<uint64_t> CpuRate(const std::string& key, uint64_t usage_ns)
      ABSL_LOCKS_EXCLUDED(cpu_mu_);
  void ForgetOldCpuHistory() ABSL_LOCKS_EXCLUDED(cpu_mu_);
  // Pods with all their containers and network counters.
  absl::StatusOr<std::vector<PodStats>> SamplePods(std::vector<pod::PodSandbox> pods);
  std::string UpperDir(const std::string& id) const;
  // The cgroup path of the pod `pod_id` (empty when the pod is gone), kept from the first
  // ask: a pod's cgroup never moves, and a list of stats then needs no list of pods.
  std::string PodCgroup(const std::string& pod_id) ABSL_LOCKS_EXCLUDED(pod_cgroups_mu_);
  // Forgets the pods not in `live` (the pod ids of every container just listed).
  void KeepPodCgroups(const absl::flat_hash_set<std::string>& live)
      ABSL_LOCKS_EXCLUDED(pod_cgroups_mu_);

  // A kCri read of container `c`'s cgroup at `path` through its directories kept open
  // (opened_): opened at the first read and kept while fewer than max_opened_ are; opened
  // again when the container's recorded resources changed (its limits are read at the open);
  // forgotten when the read finds the cgroup gone.
  absl::StatusOr<cgroup::CgroupStats> ReadContainerCgroup(const container::Container& c,
                                                          const std::string& path,
                                                          bool machine_swaps)
      ABSL_LOCKS_EXCLUDED(opened_mu_);
  // Closes the kept directories of the containers not in `live` (the running and created
  // ones): a removed cgroup's kernel structures stay until its directories are closed.
  void KeepOpenedCgroups(const absl::flat_hash_set<std::string>& live)
      ABSL_LOCKS_EXCLUDED(opened_mu_);

  const Config& config_;
  ContainerService& containers_;
  pod::PodService& pods_;
  const cgroup::StatsReader reader_;
  const std::string layers_mountpoint_;

  struct CpuSample {
    uint64_t usage_ns = 0;
    int64_t mono_ns = 0;  // CLOCK_MONOTONIC: a wall clock step must not make a rate
  };
  struct CpuHistory {
    std::optional<CpuSample> older, newer;
    int64_t last_seen_ns = 0;  // monotonic
  };
  absl::Mutex cpu_mu_;
  absl::flat_hash_map<std::string, CpuHistory> cpu_ ABSL_GUARDED_BY(cpu_mu_);

  absl::Mutex pod_cgroups_mu_;
  absl::flat_hash_map<std::string, std::string> pod_cgroups_ ABSL_GUARDED_BY(pod_cgroups_mu_);

  // Two descriptors each on v1: at most an eighth of the descriptors cribd may open.
  const size_t max_opened_;
  absl::Mutex opened_mu_;
  struct KeptCgroup {
    std::shared_ptr<const cgroup::OpenedCgroup> cgroup;
    Resources resources;  // the container's, as recorded when it was opened
  };
  absl::flat_hash_map<std::string, KeptCgroup> opened_ ABSL_GUARDED_BY(opened_mu_);

  // Last: its thread calls back into containers_.
  std::unique_ptr<LayerUsageSampler> layers_;
};

}  // namespace crib::container
