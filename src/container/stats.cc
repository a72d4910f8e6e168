// ContainerStats, ListContainerStats, PodSandboxStats and ListPodSandboxStats: one sample per
// call of each cgroup, the pods' network counters read in one pass over their namespaces, the
// writable layers from the sampler's cache.
#include "container/stats.h"

#include <time.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "common/parallel.h"
#include "common/process.h"
#include "common/status_macros.h"

namespace crib::container {
namespace {

// A rate needs a window long enough that scheduling noise does not dominate it; callers that
// poll faster than this get the rate over the last window at least this long.
constexpr int64_t kMinRateWindowNs = 1'000'000'000;
// Containers whose cgroups one thread reads before a list takes another thread (a thread costs
// tens of microseconds to start, a container's cgroup ~60 on v1).
constexpr size_t kSamplesPerThread = 32;
// Below this the two samples are the same moment for all practical purposes.
constexpr int64_t kTinyWindowNs = 10'000'000;
// CPU history of objects no call has asked about for this long is dropped.
constexpr int64_t kForgetAfterNs = int64_t{600} * 1'000'000'000;

// The containers whose cgroups the stats read: created and running ones.
bool HasCgroup(const container::Container& c) {
  return c.state == ContainerState::kRunning || c.state == ContainerState::kCreated;
}

int64_t MonotonicNs() {
  struct timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace

absl::StatusOr<std::unique_ptr<StatsService>> StatsService::Create(const Config& config,
                                                                   ContainerService& containers,
                                                                   pod::PodService& pods) {
  ASSIGN_OR_RETURN(cgroup::Layout layout, cgroup::DetectLayout());
  std::unique_ptr<StatsService> service(
      new StatsService(config, containers, pods, std::move(layout)));
  StatsService* self = service.get();
  service->layers_ = std::make_unique<LayerUsageSampler>([self] {
    std::vector<std::pair<std::string, std::string>> layers;
    absl::StatusOr<std::vector<container::Container>> all = self->containers_.List({});
    if (!all.ok()) {
      spdlog::warn("writable layer usage: list containers: {}", all.status().message());
      return layers;
    }
    absl::flat_hash_set<std::string> live;
    for (const container::Container& c : *all) {
      layers.emplace_back(c.id, self->UpperDir(c.id));
      if (HasCgroup(c)) live.insert(c.id);
    }
    // Also when no stats call comes: a removed container's cgroup is let go within a refresh.
    self->KeepOpenedCgroups(live);
    return layers;
  });
  return service;
}

StatsService::StatsService(const Config& config, ContainerService& containers,
                           pod::PodService& pods, cgroup::Layout layout)
    : config_(config),
      containers_(containers),
      pods_(pods),
      reader_(std::move(layout)),
      layers_mountpoint_(absl::StrCat(config.root_dir, "/containers")),
      max_opened_(ShareOfOpenFiles(8, 8192)) {}

std::string StatsService::UpperDir(const std::string& id) const { return containers_.UpperDir(id); }

std::optional<uint64_t> StatsService::CpuRate(const std::string& key, uint64_t usage_ns) {
  const CpuSample now{usage_ns, MonotonicNs()};
  absl::MutexLock lock(&cpu_mu_);
  CpuHistory& h = cpu_[key];
  h.last_seen_ns = now.mono_ns;
  if (!h.newer.has_value() || usage_ns < h.newer->usage_ns) {
    // The first sample, or a counter that went back (a new cgroup under the same name).
    h.older.reset();
    h.newer = now;
    return std::nullopt;
  }
  const bool shift = now.mono_ns - h.newer->mono_ns >= kMinRateWindowNs;
  const CpuSample base = shift || !h.older.has_value() ? *h.newer : *h.older;
  if (shift) {
    h.older = h.newer;
    h.newer = now;
  }
  const int64_t window = now.mono_ns - base.mono_ns;
  if (window < kTinyWindowNs) return std::nullopt;
  return static_cast<uint64_t>(static_cast<double>(usage_ns - base.usage_ns) * 1e9 /
                               static_cast<double>(window));
}

void StatsService::ForgetOldCpuHistory() {
  const int64_t now = MonotonicNs();
  absl::MutexLock lock(&cpu_mu_);
  absl::erase_if(
      cpu_, [now](const auto& entry) { return now - entry.second.last_seen_ns > kForgetAfterNs; });
}

ContainerStats StatsService::Sample(const container::Container& c, const std::string& pod_cgroup,
                                    cgroup::StatsDetail detail, bool machine_swaps) {
  ContainerStats s;
  s.id = c.id;
  s.pod_id = c.pod_id;
  s.name = c.name;
  s.attempt = c.attempt;
  s.labels = c.labels;
  s.annotations = c.annotations;
  s.image = c.image;
  s.state = c.state;
  s.started_at_ns = c.started_at_ns;
  s.resources = c.resources;
  s.timestamp_ns = absl::ToUnixNanos(absl::Now());
  if (HasCgroup(c) && !pod_cgroup.empty()) {
    const std::string path = containers_.CgroupPath(pod_cgroup, c.id);
    absl::StatusOr<cgroup::CgroupStats> usage = detail == cgroup::StatsDetail::kCri
                                                    ? ReadContainerCgroup(c, path, machine_swaps)
                                                    : reader_.Read(path, detail);
    if (usage.ok()) {
      s.usage_nano_cores = CpuRate(absl::StrCat("c/", c.id), usage->cpu.usage_ns);
      s.usage = *std::move(usage);
    } else if (!absl::IsNotFound(usage.status())) {
      spdlog::debug("container {}: stats: {}", c.id.substr(0, 12), usage.status().message());
    }
  }
  if (std::optional<LayerUsage> layer = layers_->Get(c.id, UpperDir(c.id))) {
    s.writable_layer =
        FilesystemUsage{layer->timestamp_ns, layers_mountpoint_, layer->bytes, layer->inodes};
  }
  return s;
}

absl::StatusOr<cgroup::CgroupStats> StatsService::ReadContainerCgroup(const container::Container& c,
                                                                      const std::string& path,
                                                                      bool machine_swaps) {
  std::shared_ptr<const cgroup::OpenedCgroup> opened;
  {
    absl::MutexLock lock(&opened_mu_);
    if (auto it = opened_.find(c.id); it != opened_.end() && it->second.resources == c.resources) {
      opened = it->second.cgroup;
    }
  }
  if (opened == nullptr) {
    ASSIGN_OR_RETURN(std::unique_ptr<cgroup::OpenedCgroup> fresh, reader_.Open(path));
    opened = std::move(fresh);
    absl::MutexLock lock(&opened_mu_);
    if (auto it = opened_.find(c.id); it != opened_.end()) {
      it->second = {opened, c.resources};
    } else if (opened_.size() < max_opened_) {
      opened_.try_emplace(c.id, KeptCgroup{opened, c.resources});
    }
  }
  absl::StatusOr<cgroup::CgroupStats> usage = reader_.ReadOpened(*opened, machine_swaps);
  if (absl::IsNotFound(usage.status())) {
    absl::MutexLock lock(&opened_mu_);
    if (auto it = opened_.find(c.id); it != opened_.end() && it->second.cgroup == opened) {
      opened_.erase(it);
    }
  }
  return usage;
}

void StatsService::KeepOpenedCgroups(const absl::flat_hash_set<std::string>& live) {
  absl::MutexLock lock(&opened_mu_);
  absl::erase_if(opened_, [&](const auto& entry) { return !live.contains(entry.first); });
}

std::string StatsService::PodCgroup(const std::string& pod_id) {
  {
    absl::MutexLock lock(&pod_cgroups_mu_);
    auto it = pod_cgroups_.find(pod_id);
    if (it != pod_cgroups_.end()) return it->second;
  }
  absl::StatusOr<pod::PodSandbox> pod = pods_.Get(pod_id);
  if (!pod.ok()) return "";  // gone, or still being made: asked again next time
  absl::MutexLock lock(&pod_cgroups_mu_);
  pod_cgroups_[pod_id] = pod->cgroup_path;
  return pod->cgroup_path;
}

void StatsService::KeepPodCgroups(const absl::flat_hash_set<std::string>& live) {
  absl::MutexLock lock(&pod_cgroups_mu_);
  absl::erase_if(pod_cgroups_, [&](const auto& entry) { return !live.contains(entry.first); });
}

absl::StatusOr<ContainerStats> StatsService::Container(const std::string& id_or_prefix) {
  ASSIGN_OR_RETURN(container::Container c, containers_.Get(id_or_prefix));
  return Sample(c, PodCgroup(c.pod_id), cgroup::StatsDetail::kCri, cgroup::MachineSwaps());
}

absl::StatusOr<std::vector<ContainerStats>> StatsService::ListContainers(
    const ContainerStatsFilter& filter) {
  ContainerFilter list_filter;
  list_filter.id = filter.id;
  list_filter.pod_id = filter.pod_id;
  list_filter.labels = filter.labels;
  // The states as recorded: the cgroups tell what runs, and a list of stats has no states.
  ASSIGN_OR_RETURN(std::vector<container::Container> containers,
                   containers_.ListAsRecorded(list_filter));
  std::vector<std::string> pod_cgroups;
  pod_cgroups.reserve(containers.size());
  absl::flat_hash_set<std::string> pods;
  for (const container::Container& c : containers) {
    pod_cgroups.push_back(PodCgroup(c.pod_id));
    pods.insert(c.pod_id);
  }
  // Each container's cgroup costs a few file reads (~60 us on v1): spread over the cores.
  std::vector<ContainerStats> out(containers.size());
  const bool machine_swaps = cgroup::MachineSwaps();
  ParallelFor(containers.size(), kSamplesPerThread, [&](size_t i) {
    out[i] = Sample(containers[i], pod_cgroups[i], cgroup::StatsDetail::kCri, machine_swaps);
  });
  const bool every_container = filter.id.empty() && filter.pod_id.empty() && filter.labels.empty();
  if (every_container) {
    KeepPodCgroups(pods);
    absl::flat_hash_set<std::string> live;
    for (const container::Container& c : containers) {
      if (HasCgroup(c)) live.insert(c.id);
    }
    KeepOpenedCgroups(live);
  }
  ForgetOldCpuHistory();
  return out;
}

absl::StatusOr<FilesystemUsage> StatsService::WritableLayers() {
  ASSIGN_OR_RETURN(std::vector<container::Container> containers, containers_.ListAsRecorded({}));
  FilesystemUsage total{absl::ToUnixNanos(absl::Now()), layers_mountpoint_, 0, 0};
  for (const container::Container& c : containers) {
    std::optional<LayerUsage> layer = layers_->Get(c.id, UpperDir(c.id));
    if (!layer.has_value()) continue;
    total.used_bytes += layer->bytes;
    total.inodes_used += layer->inodes;
    total.timestamp_ns = std::min(total.timestamp_ns, layer->timestamp_ns);
  }
  return total;
}

absl::StatusOr<std::vector<PodStats>> StatsService::SamplePods(std::vector<pod::PodSandbox> pods) {
  std::vector<PodStats> out;
  if (pods.empty()) return out;
  ContainerFilter filter;
  if (pods.size() == 1) filter.pod_id = pods[0].id;
  ASSIGN_OR_RETURN(std::vector<container::Container> containers, containers_.List(filter));
  absl::flat_hash_map<std::string, std::vector<const container::Container*>> by_pod;
  for (const container::Container& c : containers) by_pod[c.pod_id].push_back(&c);

  // One thread visits every pod's namespace in turn.
  std::vector<std::string> netns_paths;
  std::vector<size_t> netns_pods;
  for (size_t i = 0; i < pods.size(); ++i) {
    if (pods[i].netns_path.empty()) continue;
    netns_paths.push_back(pods[i].netns_path);
    netns_pods.push_back(i);
  }
  std::vector<absl::StatusOr<std::vector<pod::InterfaceCounters>>> counters =
      pod::ReadNetnsCounters(netns_paths);
  const int64_t network_time = absl::ToUnixNanos(absl::Now());
  std::vector<std::optional<NetworkStats>> networks(pods.size());
  for (size_t j = 0; j < netns_pods.size(); ++j) {
    if (counters[j].ok()) {
      networks[netns_pods[j]] = NetworkStats{network_time, *std::move(counters[j])};
    } else {
      spdlog::debug("pod {}: network stats: {}", pods[netns_pods[j]].id.substr(0, 12),
                    counters[j].status().message());
    }
  }

  out.resize(pods.size());
  ParallelFor(pods.size(), kSamplesPerThread / 4, [&](size_t i) {
    const pod::PodSandbox& pod = pods[i];
    PodStats& ps = out[i];
    ps.id = pod.id;
    ps.name = pod.name;
    ps.namespace_ = pod.namespace_;
    ps.uid = pod.uid;
    ps.attempt = pod.attempt;
    ps.labels = pod.labels;
    ps.annotations = pod.annotations;
    ps.timestamp_ns = absl::ToUnixNanos(absl::Now());
    absl::StatusOr<cgroup::CgroupStats> usage = reader_.Read(pod.cgroup_path);
    if (usage.ok()) {
      ps.usage_nano_cores = CpuRate(absl::StrCat("p/", pod.id), usage->cpu.usage_ns);
      ps.usage = *std::move(usage);
    } else {
      spdlog::debug("pod {}: stats: {}", pod.id.substr(0, 12), usage.status().message());
    }
    ps.network = std::move(networks[i]);
    if (auto it = by_pod.find(pod.id); it != by_pod.end()) {
      for (const container::Container* c : it->second) {
        ps.containers.push_back(Sample(*c, pod.cgroup_path, cgroup::StatsDetail::kAll,
                                       /*machine_swaps=*/true));
      }
    }
  });
  return out;
}

absl::StatusOr<PodStats> StatsService::Pod(const std::string& id_or_prefix) {
  ASSIGN_OR_RETURN(pod::PodSandbox pod, pods_.Get(id_or_prefix));
  if (pod.state != pod::PodState::kReady) {
    return absl::FailedPreconditionError(
        absl::StrCat("stats of pod sandbox ", pod.id, ": it is not ready"));
  }
  ASSIGN_OR_RETURN(std::vector<PodStats> stats, SamplePods({std::move(pod)}));
  return std::move(stats[0]);
}

absl::StatusOr<std::vector<PodStats>> StatsService::ListPods(const PodStatsFilter& filter) {
  pod::PodFilter pod_filter;
  pod_filter.id = filter.id;
  pod_filter.state = pod::PodState::kReady;
  pod_filter.labels = filter.labels;
  ASSIGN_OR_RETURN(std::vector<pod::PodSandbox> pods, pods_.List(pod_filter));
  absl::StatusOr<std::vector<PodStats>> out = SamplePods(std::move(pods));
  ForgetOldCpuHistory();
  return out;
}

}  // namespace crib::container
