// ListMetricDescriptors and ListPodSandboxMetrics: the cAdvisor metrics kubelet serves on
// /metrics/cadvisor when it takes pod and container stats from the runtime, made from the same
// samples as the stats RPCs. Names, help and label keys follow cAdvisor (and containerd); every
// sample carries exactly its descriptor's labels, since kubelet refuses a sample whose label
// values do not match the keys. Seconds are whole seconds: CRI values are integers.
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "container/stats.h"

namespace crib::container {
namespace {

const std::vector<std::string>& BaseKeys() {
  static const auto* keys =
      new std::vector<std::string>{"pod", "namespace", "container", "id", "image"};
  return *keys;
}

std::vector<std::string> KeysWith(std::initializer_list<const char*> extra) {
  std::vector<std::string> keys = BaseKeys();
  for (const char* key : extra) keys.emplace_back(key);
  return keys;
}

// Appends samples for one object (a pod's cgroup or a container) with its base labels.
class Writer {
 public:
  Writer(std::vector<MetricSample>& out, std::vector<std::string> base, int64_t timestamp_ns)
      : out_(out), base_(std::move(base)), timestamp_ns_(timestamp_ns) {}

  void Gauge(const char* name, uint64_t value, std::initializer_list<std::string> extra = {}) {
    Add(name, false, value, extra);
  }
  void Counter(const char* name, uint64_t value, std::initializer_list<std::string> extra = {}) {
    Add(name, true, value, extra);
  }

 private:
  void Add(const char* name, bool counter, uint64_t value,
           std::initializer_list<std::string> extra) {
    MetricSample m;
    m.name = name;
    m.timestamp_ns = timestamp_ns_;
    m.counter = counter;
    m.label_values = base_;
    m.label_values.insert(m.label_values.end(), extra.begin(), extra.end());
    m.value = value;
    out_.push_back(std::move(m));
  }

  std::vector<MetricSample>& out_;
  std::vector<std::string> base_;
  int64_t timestamp_ns_;
};

constexpr uint64_t kNanosPerSecond = 1'000'000'000;

void CgroupMetrics(const cgroup::CgroupStats& u, Writer& w) {
  w.Counter("container_cpu_usage_seconds_total", u.cpu.usage_ns / kNanosPerSecond);
  w.Counter("container_cpu_user_seconds_total", u.cpu.user_ns / kNanosPerSecond);
  w.Counter("container_cpu_system_seconds_total", u.cpu.system_ns / kNanosPerSecond);
  w.Counter("container_cpu_cfs_periods_total", u.cpu.periods);
  w.Counter("container_cpu_cfs_throttled_periods_total", u.cpu.throttled_periods);
  w.Counter("container_cpu_cfs_throttled_seconds_total", u.cpu.throttled_ns / kNanosPerSecond);
  const cgroup::MemoryStats& m = u.memory;
  w.Gauge("container_memory_usage_bytes", m.usage);
  w.Gauge("container_memory_working_set_bytes", m.working_set);
  w.Gauge("container_memory_rss", m.rss);
  w.Gauge("container_memory_cache", m.cache);
  w.Gauge("container_memory_mapped_file", m.mapped_file);
  w.Gauge("container_memory_max_usage_bytes", m.max_usage);
  w.Counter("container_memory_failcnt", m.failcnt);
  w.Gauge("container_memory_kernel_usage", m.kernel);
  w.Gauge("container_memory_swap", m.swap_usage.value_or(0));
  w.Gauge("container_memory_total_active_file_bytes", m.active_file);
  w.Gauge("container_memory_total_inactive_file_bytes", m.inactive_file);
  w.Counter("container_memory_failures_total", m.page_faults, {"pgfault", "container"});
  w.Counter("container_memory_failures_total", m.major_page_faults, {"pgmajfault", "container"});
  w.Counter("container_oom_events_total", m.oom_kills);
  w.Gauge("container_processes", u.pids);
  w.Gauge("container_threads", u.pids);  // the pids controller counts tasks
  w.Gauge("container_threads_max", u.pids_limit.value_or(0));
}

}  // namespace

const std::vector<MetricDescriptor>& StatsService::MetricDescriptors() {
  static const auto* descriptors = [] {
    const std::vector<std::string>& base = BaseKeys();
    const std::vector<std::string> network = KeysWith({"interface"});
    return new std::vector<MetricDescriptor>{
        {"container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds.", base},
        {"container_cpu_user_seconds_total", "Cumulative user cpu time consumed in seconds.", base},
        {"container_cpu_system_seconds_total", "Cumulative system cpu time consumed in seconds.",
         base},
        {"container_cpu_cfs_periods_total", "Number of elapsed enforcement period intervals.",
         base},
        {"container_cpu_cfs_throttled_periods_total", "Number of throttled period intervals.",
         base},
        {"container_cpu_cfs_throttled_seconds_total",
         "Total time duration the container has been throttled.", base},
        {"container_memory_usage_bytes",
         "Current memory usage in bytes, including all memory regardless of when it was "
         "accessed.",
         base},
        {"container_memory_working_set_bytes", "Current working set in bytes.", base},
        {"container_memory_rss", "Size of RSS in bytes.", base},
        {"container_memory_cache", "Number of bytes of page cache memory.", base},
        {"container_memory_mapped_file", "Size of memory mapped files in bytes.", base},
        {"container_memory_max_usage_bytes", "Maximum memory usage recorded in bytes.", base},
        {"container_memory_failcnt", "Number of memory usage hits limits.", base},
        {"container_memory_kernel_usage", "Size of kernel memory allocated in bytes.", base},
        {"container_memory_swap", "Container swap usage in bytes.", base},
        {"container_memory_total_active_file_bytes", "Current total active file in bytes.", base},
        {"container_memory_total_inactive_file_bytes", "Current total inactive file in bytes.",
         base},
        {"container_memory_failures_total", "Cumulative count of memory allocation failures.",
         KeysWith({"failure_type", "scope"})},
        {"container_oom_events_total", "Count of out of memory events observed for the container.",
         base},
        {"container_processes", "Number of processes running inside the container.", base},
        {"container_threads", "Number of threads running inside the container.", base},
        {"container_threads_max",
         "Maximum number of threads allowed inside the container, infinity if value is zero.",
         base},
        {"container_network_receive_bytes_total", "Cumulative count of bytes received.", network},
        {"container_network_receive_packets_total", "Cumulative count of packets received.",
         network},
        {"container_network_receive_packets_dropped_total",
         "Cumulative count of packets dropped while receiving.", network},
        {"container_network_receive_errors_total",
         "Cumulative count of errors encountered while receiving.", network},
        {"container_network_transmit_bytes_total", "Cumulative count of bytes transmitted.",
         network},
        {"container_network_transmit_packets_total", "Cumulative count of packets transmitted.",
         network},
        {"container_network_transmit_packets_dropped_total",
         "Cumulative count of packets dropped while transmitting.", network},
        {"container_network_transmit_errors_total",
         "Cumulative count of errors encountered while transmitting.", network},
        {"container_fs_usage_bytes",
         "Number of bytes that are consumed by the container on this filesystem.",
         KeysWith({"device"})},
        {"container_last_seen", "Last time a container was seen by the exporter.", base},
        {"container_start_time_seconds", "Start time of the container since unix epoch in seconds.",
         base},
        {"container_spec_cpu_period", "CPU period of the container.", base},
        {"container_spec_cpu_quota", "CPU quota of the container.", base},
        {"container_spec_cpu_shares", "CPU share of the container.", base},
        {"container_spec_memory_limit_bytes", "Memory limit for the container.", base},
    };
  }();
  return *descriptors;
}

absl::StatusOr<std::vector<PodMetrics>> StatsService::PodSandboxMetrics() {
  absl::StatusOr<std::vector<PodStats>> pods = ListPods({});
  if (!pods.ok()) return pods.status();
  std::vector<PodMetrics> out;
  out.reserve(pods->size());
  for (const PodStats& pod : *pods) {
    PodMetrics pm;
    pm.pod_id = pod.id;
    // The pod's own cgroup and network, as cAdvisor reports them: no container, no image.
    Writer w(pm.metrics, {pod.name, pod.namespace_, "", pod.id, ""}, pod.timestamp_ns);
    if (pod.usage.has_value()) CgroupMetrics(*pod.usage, w);
    if (pod.network.has_value()) {
      for (const pod::InterfaceCounters& i : pod.network->interfaces) {
        w.Counter("container_network_receive_bytes_total", i.rx_bytes, {i.name});
        w.Counter("container_network_receive_packets_total", i.rx_packets, {i.name});
        w.Counter("container_network_receive_packets_dropped_total", i.rx_dropped, {i.name});
        w.Counter("container_network_receive_errors_total", i.rx_errors, {i.name});
        w.Counter("container_network_transmit_bytes_total", i.tx_bytes, {i.name});
        w.Counter("container_network_transmit_packets_total", i.tx_packets, {i.name});
        w.Counter("container_network_transmit_packets_dropped_total", i.tx_dropped, {i.name});
        w.Counter("container_network_transmit_errors_total", i.tx_errors, {i.name});
      }
    }
    for (const ContainerStats& c : pod.containers) {
      if (!c.usage.has_value()) continue;  // not running
      ContainerMetrics cm;
      cm.container_id = c.id;
      Writer cw(cm.metrics, {pod.name, pod.namespace_, c.name, c.id, c.image}, c.timestamp_ns);
      CgroupMetrics(*c.usage, cw);
      if (c.writable_layer.has_value()) {
        cw.Gauge("container_fs_usage_bytes", c.writable_layer->used_bytes,
                 {c.writable_layer->mountpoint});
      }
      cw.Gauge("container_last_seen", static_cast<uint64_t>(c.timestamp_ns) / kNanosPerSecond);
      if (c.started_at_ns > 0) {
        cw.Gauge("container_start_time_seconds",
                 static_cast<uint64_t>(c.started_at_ns) / kNanosPerSecond);
      }
      if (c.resources.cpu_period > 0) {
        cw.Gauge("container_spec_cpu_period", static_cast<uint64_t>(c.resources.cpu_period));
      }
      if (c.resources.cpu_quota > 0) {
        cw.Gauge("container_spec_cpu_quota", static_cast<uint64_t>(c.resources.cpu_quota));
      }
      if (c.resources.cpu_shares > 0) {
        cw.Gauge("container_spec_cpu_shares", static_cast<uint64_t>(c.resources.cpu_shares));
      }
      if (c.resources.memory_limit > 0) {
        cw.Gauge("container_spec_memory_limit_bytes",
                 static_cast<uint64_t>(c.resources.memory_limit));
      }
      pm.containers.push_back(std::move(cm));
    }
    out.push_back(std::move(pm));
  }
  return out;
}

}  // namespace crib::container
