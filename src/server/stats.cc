// ContainerStats, ListContainerStats, StreamContainerStats, PodSandboxStats,
// ListPodSandboxStats, StreamPodSandboxStats, ListMetricDescriptors, ListPodSandboxMetrics and
// StreamPodSandboxMetrics: the stats room's plain values as CRI messages; the work is in
// container::StatsService.
#include "server/batch_stream.h"
#include "server/grpc_status.h"
#include "server/runtime_service.h"

namespace crib::server {
namespace {

void SetUInt(cri::UInt64Value* out, uint64_t value) { out->set_value(value); }

void ToCri(const cgroup::Psi& psi, cri::PsiStats* out) {
  auto data = [](const cgroup::PsiData& in, cri::PsiData* d) {
    d->set_total(in.total_ns);
    d->set_avg10(in.avg10);
    d->set_avg60(in.avg60);
    d->set_avg300(in.avg300);
  };
  if (psi.some.has_value()) data(*psi.some, out->mutable_some());
  if (psi.full.has_value()) data(*psi.full, out->mutable_full());
}

void ToCri(const cgroup::CgroupStats& u, std::optional<uint64_t> nano_cores, int64_t timestamp,
           cri::CpuUsage* cpu, cri::MemoryUsage* memory) {
  cpu->set_timestamp(timestamp);
  SetUInt(cpu->mutable_usage_core_nano_seconds(), u.cpu.usage_ns);
  if (nano_cores.has_value()) SetUInt(cpu->mutable_usage_nano_cores(), *nano_cores);
  if (u.cpu_psi.has_value()) ToCri(*u.cpu_psi, cpu->mutable_psi());

  const cgroup::MemoryStats& m = u.memory;
  memory->set_timestamp(timestamp);
  SetUInt(memory->mutable_working_set_bytes(), m.working_set);
  // kubelet: available = limit - working set; unset without a limit, as cAdvisor leaves it.
  if (m.limit.has_value()) {
    SetUInt(memory->mutable_available_bytes(),
            *m.limit > m.working_set ? *m.limit - m.working_set : 0);
  }
  SetUInt(memory->mutable_usage_bytes(), m.usage);
  SetUInt(memory->mutable_rss_bytes(), m.rss);
  SetUInt(memory->mutable_page_faults(), m.page_faults);
  SetUInt(memory->mutable_major_page_faults(), m.major_page_faults);
  if (u.memory_psi.has_value()) ToCri(*u.memory_psi, memory->mutable_psi());
}

void ToCri(const container::ContainerStats& s, cri::ContainerStats* out) {
  cri::ContainerAttributes* attributes = out->mutable_attributes();
  attributes->set_id(s.id);
  attributes->mutable_metadata()->set_name(s.name);
  attributes->mutable_metadata()->set_attempt(s.attempt);
  attributes->mutable_labels()->insert(s.labels.begin(), s.labels.end());
  attributes->mutable_annotations()->insert(s.annotations.begin(), s.annotations.end());
  if (s.usage.has_value()) {
    ToCri(*s.usage, s.usage_nano_cores, s.timestamp_ns, out->mutable_cpu(), out->mutable_memory());
    const cgroup::MemoryStats& m = s.usage->memory;
    if (m.swap_usage.has_value()) {
      cri::SwapUsage* swap = out->mutable_swap();
      swap->set_timestamp(s.timestamp_ns);
      SetUInt(swap->mutable_swap_usage_bytes(), *m.swap_usage);
      if (m.swap_limit.has_value()) {
        SetUInt(swap->mutable_swap_available_bytes(),
                *m.swap_limit > *m.swap_usage ? *m.swap_limit - *m.swap_usage : 0);
      }
    }
    if (s.usage->io_psi.has_value()) {
      out->mutable_io()->set_timestamp(s.timestamp_ns);
      ToCri(*s.usage->io_psi, out->mutable_io()->mutable_psi());
    }
  }
  if (s.writable_layer.has_value()) {
    cri::FilesystemUsage* layer = out->mutable_writable_layer();
    layer->set_timestamp(s.writable_layer->timestamp_ns);
    layer->mutable_fs_id()->set_mountpoint(s.writable_layer->mountpoint);
    SetUInt(layer->mutable_used_bytes(), s.writable_layer->used_bytes);
    SetUInt(layer->mutable_inodes_used(), s.writable_layer->inodes_used);
  }
}

void ToCri(const pod::InterfaceCounters& in, cri::NetworkInterfaceUsage* out) {
  out->set_name(in.name);
  SetUInt(out->mutable_rx_bytes(), in.rx_bytes);
  SetUInt(out->mutable_rx_errors(), in.rx_errors);
  SetUInt(out->mutable_tx_bytes(), in.tx_bytes);
  SetUInt(out->mutable_tx_errors(), in.tx_errors);
}

void ToCri(const container::PodStats& s, cri::PodSandboxStats* out) {
  cri::PodSandboxAttributes* attributes = out->mutable_attributes();
  attributes->set_id(s.id);
  cri::PodSandboxMetadata* metadata = attributes->mutable_metadata();
  metadata->set_name(s.name);
  metadata->set_namespace_(s.namespace_);
  metadata->set_uid(s.uid);
  metadata->set_attempt(s.attempt);
  attributes->mutable_labels()->insert(s.labels.begin(), s.labels.end());
  attributes->mutable_annotations()->insert(s.annotations.begin(), s.annotations.end());
  cri::LinuxPodSandboxStats* linux = out->mutable_linux();
  if (s.usage.has_value()) {
    ToCri(*s.usage, s.usage_nano_cores, s.timestamp_ns, linux->mutable_cpu(),
          linux->mutable_memory());
    linux->mutable_process()->set_timestamp(s.timestamp_ns);
    SetUInt(linux->mutable_process()->mutable_process_count(), s.usage->pids);
    if (s.usage->io_psi.has_value()) {
      linux->mutable_io()->set_timestamp(s.timestamp_ns);
      ToCri(*s.usage->io_psi, linux->mutable_io()->mutable_psi());
    }
  }
  if (s.network.has_value()) {
    cri::NetworkUsage* network = linux->mutable_network();
    network->set_timestamp(s.network->timestamp_ns);
    for (const pod::InterfaceCounters& i : s.network->interfaces) {
      if (i.name == container::kDefaultInterface) ToCri(i, network->mutable_default_interface());
      ToCri(i, network->add_interfaces());
    }
  }
  for (const container::ContainerStats& c : s.containers) ToCri(c, linux->add_containers());
}

void ToCri(const container::MetricSample& in, cri::Metric* out) {
  out->set_name(in.name);
  out->set_timestamp(in.timestamp_ns);
  out->set_metric_type(in.counter ? cri::COUNTER : cri::GAUGE);
  for (const std::string& value : in.label_values) out->add_label_values(value);
  SetUInt(out->mutable_value(), in.value);
}

void ToCri(const container::PodMetrics& in, cri::PodSandboxMetrics* out) {
  out->set_pod_sandbox_id(in.pod_id);
  for (const container::MetricSample& m : in.metrics) ToCri(m, out->add_metrics());
  for (const container::ContainerMetrics& c : in.containers) {
    cri::ContainerMetrics* cm = out->add_container_metrics();
    cm->set_container_id(c.container_id);
    for (const container::MetricSample& m : c.metrics) ToCri(m, cm->add_metrics());
  }
}

container::ContainerStatsFilter ToFilter(const cri::ContainerStatsFilter& f) {
  container::ContainerStatsFilter filter;
  filter.id = f.id();
  filter.pod_id = f.pod_sandbox_id();
  filter.labels.insert(f.label_selector().begin(), f.label_selector().end());
  return filter;
}

container::PodStatsFilter ToFilter(const cri::PodSandboxStatsFilter& f) {
  container::PodStatsFilter filter;
  filter.id = f.id();
  filter.labels.insert(f.label_selector().begin(), f.label_selector().end());
  return filter;
}

}  // namespace

grpc::Status RuntimeService::ContainerStats(grpc::ServerContext*,
                                            const cri::ContainerStatsRequest* request,
                                            cri::ContainerStatsResponse* response) {
  absl::StatusOr<container::ContainerStats> stats = deps_.stats.Container(request->container_id());
  if (!stats.ok()) return ToGrpcStatus(stats.status());
  ToCri(*stats, response->mutable_stats());
  return grpc::Status::OK;
}

grpc::Status RuntimeService::ListContainerStats(grpc::ServerContext*,
                                                const cri::ListContainerStatsRequest* request,
                                                cri::ListContainerStatsResponse* response) {
  absl::StatusOr<std::vector<container::ContainerStats>> stats =
      deps_.stats.ListContainers(ToFilter(request->filter()));
  if (!stats.ok()) return ToGrpcStatus(stats.status());
  for (const container::ContainerStats& s : *stats) ToCri(s, response->add_stats());
  return grpc::Status::OK;
}

grpc::Status RuntimeService::StreamContainerStats(
    grpc::ServerContext* context, const cri::StreamContainerStatsRequest* request,
    grpc::ServerWriter<cri::StreamContainerStatsResponse>* writer) {
  cri::ListContainerStatsRequest list;
  if (request->has_filter()) *list.mutable_filter() = request->filter();
  cri::ListContainerStatsResponse all;
  if (grpc::Status s = ListContainerStats(context, &list, &all); !s.ok()) return s;
  return WriteInBatches(context, writer, *all.mutable_stats(),
                        &cri::StreamContainerStatsResponse::mutable_container_stats);
}

grpc::Status RuntimeService::PodSandboxStats(grpc::ServerContext*,
                                             const cri::PodSandboxStatsRequest* request,
                                             cri::PodSandboxStatsResponse* response) {
  absl::StatusOr<container::PodStats> stats = deps_.stats.Pod(request->pod_sandbox_id());
  if (!stats.ok()) return ToGrpcStatus(stats.status());
  ToCri(*stats, response->mutable_stats());
  return grpc::Status::OK;
}

grpc::Status RuntimeService::ListPodSandboxStats(grpc::ServerContext*,
                                                 const cri::ListPodSandboxStatsRequest* request,
                                                 cri::ListPodSandboxStatsResponse* response) {
  absl::StatusOr<std::vector<container::PodStats>> stats =
      deps_.stats.ListPods(ToFilter(request->filter()));
  if (!stats.ok()) return ToGrpcStatus(stats.status());
  for (const container::PodStats& s : *stats) ToCri(s, response->add_stats());
  return grpc::Status::OK;
}

grpc::Status RuntimeService::StreamPodSandboxStats(
    grpc::ServerContext* context, const cri::StreamPodSandboxStatsRequest* request,
    grpc::ServerWriter<cri::StreamPodSandboxStatsResponse>* writer) {
  cri::ListPodSandboxStatsRequest list;
  if (request->has_filter()) *list.mutable_filter() = request->filter();
  cri::ListPodSandboxStatsResponse all;
  if (grpc::Status s = ListPodSandboxStats(context, &list, &all); !s.ok()) return s;
  return WriteInBatches(context, writer, *all.mutable_stats(),
                        &cri::StreamPodSandboxStatsResponse::mutable_pod_sandbox_stats);
}

grpc::Status RuntimeService::ListMetricDescriptors(grpc::ServerContext*,
                                                   const cri::ListMetricDescriptorsRequest*,
                                                   cri::ListMetricDescriptorsResponse* response) {
  for (const container::MetricDescriptor& d : container::StatsService::MetricDescriptors()) {
    cri::MetricDescriptor* out = response->add_descriptors();
    out->set_name(d.name);
    out->set_help(d.help);
    for (const std::string& key : d.label_keys) out->add_label_keys(key);
  }
  return grpc::Status::OK;
}

grpc::Status RuntimeService::ListPodSandboxMetrics(grpc::ServerContext*,
                                                   const cri::ListPodSandboxMetricsRequest*,
                                                   cri::ListPodSandboxMetricsResponse* response) {
  absl::StatusOr<std::vector<container::PodMetrics>> metrics = deps_.stats.PodSandboxMetrics();
  if (!metrics.ok()) return ToGrpcStatus(metrics.status());
  for (const container::PodMetrics& m : *metrics) ToCri(m, response->add_pod_metrics());
  return grpc::Status::OK;
}

grpc::Status RuntimeService::StreamPodSandboxMetrics(
    grpc::ServerContext* context, const cri::StreamPodSandboxMetricsRequest*,
    grpc::ServerWriter<cri::StreamPodSandboxMetricsResponse>* writer) {
  cri::ListPodSandboxMetricsRequest list;
  cri::ListPodSandboxMetricsResponse all;
  if (grpc::Status s = ListPodSandboxMetrics(context, &list, &all); !s.ok()) return s;
  return WriteInBatches(context, writer, *all.mutable_pod_metrics(),
                        &cri::StreamPodSandboxMetricsResponse::mutable_pod_sandbox_metrics);
}

}  // namespace crib::server
