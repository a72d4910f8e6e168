// cribd's own metrics, in one process-wide registry, rendered in the Prometheus text format
// (version 0.0.4) for the /metrics endpoint: labelled counters and histograms that any room
// updates as things happen, and collectors that produce gauges when a scrape asks (pods and
// containers by state). Counting is a short lock and a map look-up; rendering is the scrape's
// cost. Knows nothing of gRPC, HTTP or CRI.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace crib::metrics {

using LabelValues = std::vector<std::string>;

class CounterFamily {
 public:
  CounterFamily(std::string name, std::string help, std::vector<std::string> label_names);
  // `values` in label_names order.
  void Add(const LabelValues& values, double amount = 1) ABSL_LOCKS_EXCLUDED(mu_);
  void Render(std::string& out) const ABSL_LOCKS_EXCLUDED(mu_);
  const std::string& name() const { return name_; }

 private:
  const std::string name_, help_;
  const std::vector<std::string> label_names_;
  mutable absl::Mutex mu_;
  std::map<LabelValues, double> values_ ABSL_GUARDED_BY(mu_);
};

class HistogramFamily {
 public:
  // `bounds`: the buckets' upper bounds, ascending; +Inf is added.
  HistogramFamily(std::string name, std::string help, std::vector<std::string> label_names,
                  std::vector<double> bounds);
  void Observe(const LabelValues& values, double value) ABSL_LOCKS_EXCLUDED(mu_);
  void Render(std::string& out) const ABSL_LOCKS_EXCLUDED(mu_);
  const std::string& name() const { return name_; }

 private:
  struct Series {
    std::vector<uint64_t> buckets;  // not cumulative; the last one is +Inf
    double sum = 0;
    uint64_t count = 0;
  };
  const std::string name_, help_;
  const std::vector<std::string> label_names_;
  const std::vector<double> bounds_;
  mutable absl::Mutex mu_;
  std::map<LabelValues, Series> series_ ABSL_GUARDED_BY(mu_);
};

// What a collector reports at scrape time: one gauge family with its samples.
struct GaugeFamily {
  std::string name;
  std::string help;
  std::vector<std::string> label_names;
  std::vector<std::pair<LabelValues, double>> samples;
};
using Collector = std::function<std::vector<GaugeFamily>()>;

class Registry {
 public:
  static Registry& Global();

  // The family of that name, made on first use; later calls return the same one (their help
  // and labels are those of the first).
  CounterFamily& Counter(const std::string& name, const std::string& help,
                         std::vector<std::string> label_names) ABSL_LOCKS_EXCLUDED(mu_);
  HistogramFamily& Histogram(const std::string& name, const std::string& help,
                             std::vector<std::string> label_names, std::vector<double> bounds)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Returns a handle for RemoveCollector; a collector must not outlive what it reads.
  int AddCollector(Collector collector) ABSL_LOCKS_EXCLUDED(mu_);
  void RemoveCollector(int handle) ABSL_LOCKS_EXCLUDED(mu_);

  // Every family, sorted by name, in the Prometheus text format.
  std::string RenderText() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<CounterFamily>> counters_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::unique_ptr<HistogramFamily>> histograms_ ABSL_GUARDED_BY(mu_);
  std::map<int, Collector> collectors_ ABSL_GUARDED_BY(mu_);
  int next_handle_ ABSL_GUARDED_BY(mu_) = 1;
};

// Latency buckets in seconds, from 1 ms to 2 minutes.
const std::vector<double>& LatencyBuckets();

// The text format's escaping: label values escape \, " and newline; help escapes \ and newline.
std::string EscapeLabelValue(absl::string_view value);
std::string EscapeHelp(absl::string_view help);
// A sample value: integers without a fraction, others in shortest round-trip form.
std::string FormatValue(double value);

}  // namespace crib::metrics
