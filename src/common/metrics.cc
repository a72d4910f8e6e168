#include "common/metrics.h"

#include <charconv>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace crib::metrics {
namespace {

void AppendLabels(std::string& out, const std::vector<std::string>& names,
                  const LabelValues& values, absl::string_view extra_name = "",
                  absl::string_view extra_value = "") {
  if (names.empty() && extra_name.empty()) return;
  out.push_back('{');
  bool first = true;
  for (size_t i = 0; i < names.size(); ++i) {
    absl::StrAppend(&out, first ? "" : ",", names[i], "=\"",
                    EscapeLabelValue(i < values.size() ? values[i] : ""), "\"");
    first = false;
  }
  if (!extra_name.empty()) {
    absl::StrAppend(&out, first ? "" : ",", extra_name, "=\"", extra_value, "\"");
  }
  out.push_back('}');
}

void AppendHeader(std::string& out, const std::string& name, const std::string& help,
                  absl::string_view type) {
  absl::StrAppend(&out, "# HELP ", name, " ", EscapeHelp(help), "\n# TYPE ", name, " ", type, "\n");
}

// Values with more labels than the family names are cut, missing ones are empty.
LabelValues Fit(const LabelValues& values, size_t size) {
  LabelValues out(values.begin(),
                  values.begin() + static_cast<std::ptrdiff_t>(std::min(values.size(), size)));
  out.resize(size);
  return out;
}

}  // namespace

std::string EscapeLabelValue(absl::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string EscapeHelp(absl::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buf[64];
  const std::to_chars_result r = std::to_chars(buf, buf + sizeof(buf), value);
  return std::string(buf, r.ptr);
}

const std::vector<double>& LatencyBuckets() {
  static const auto* buckets = new std::vector<double>{
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
  return *buckets;
}

CounterFamily::CounterFamily(std::string name, std::string help,
                             std::vector<std::string> label_names)
    : name_(std::move(name)), help_(std::move(help)), label_names_(std::move(label_names)) {}

void CounterFamily::Add(const LabelValues& values, double amount) {
  LabelValues key = Fit(values, label_names_.size());
  absl::MutexLock lock(&mu_);
  values_[std::move(key)] += amount;
}

void CounterFamily::Render(std::string& out) const {
  AppendHeader(out, name_, help_, "counter");
  absl::MutexLock lock(&mu_);
  for (const auto& [values, value] : values_) {
    out += name_;
    AppendLabels(out, label_names_, values);
    absl::StrAppend(&out, " ", FormatValue(value), "\n");
  }
}

HistogramFamily::HistogramFamily(std::string name, std::string help,
                                 std::vector<std::string> label_names, std::vector<double> bounds)
    : name_(std::move(name)),
      help_(std::move(help)),
      label_names_(std::move(label_names)),
      bounds_(std::move(bounds)) {}

void HistogramFamily::Observe(const LabelValues& values, double value) {
  LabelValues key = Fit(values, label_names_.size());
  size_t bucket = 0;
  while (bucket < bounds_.size() && value > bounds_[bucket]) ++bucket;
  absl::MutexLock lock(&mu_);
  Series& s = series_[std::move(key)];
  if (s.buckets.empty()) s.buckets.resize(bounds_.size() + 1);
  ++s.buckets[bucket];
  s.sum += value;
  ++s.count;
}

void HistogramFamily::Render(std::string& out) const {
  AppendHeader(out, name_, help_, "histogram");
  absl::MutexLock lock(&mu_);
  for (const auto& [values, s] : series_) {
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= bounds_.size(); ++i) {
      cumulative += s.buckets[i];
      absl::StrAppend(&out, name_, "_bucket");
      AppendLabels(out, label_names_, values, "le",
                   i < bounds_.size() ? FormatValue(bounds_[i]) : "+Inf");
      absl::StrAppend(&out, " ", cumulative, "\n");
    }
    absl::StrAppend(&out, name_, "_sum");
    AppendLabels(out, label_names_, values);
    absl::StrAppend(&out, " ", FormatValue(s.sum), "\n", name_, "_count");
    AppendLabels(out, label_names_, values);
    absl::StrAppend(&out, " ", s.count, "\n");
  }
}

Registry& Registry::Global() {
  static Registry* registry = new Registry();
  return *registry;
}

CounterFamily& Registry::Counter(const std::string& name, const std::string& help,
                                 std::vector<std::string> label_names) {
  absl::MutexLock lock(&mu_);
  std::unique_ptr<CounterFamily>& family = counters_[name];
  if (family == nullptr) {
    family = std::make_unique<CounterFamily>(name, help, std::move(label_names));
  }
  return *family;
}

HistogramFamily& Registry::Histogram(const std::string& name, const std::string& help,
                                     std::vector<std::string> label_names,
                                     std::vector<double> bounds) {
  absl::MutexLock lock(&mu_);
  std::unique_ptr<HistogramFamily>& family = histograms_[name];
  if (family == nullptr) {
    family =
        std::make_unique<HistogramFamily>(name, help, std::move(label_names), std::move(bounds));
  }
  return *family;
}

int Registry::AddCollector(Collector collector) {
  absl::MutexLock lock(&mu_);
  const int handle = next_handle_++;
  collectors_[handle] = std::move(collector);
  return handle;
}

void Registry::RemoveCollector(int handle) {
  absl::MutexLock lock(&mu_);
  collectors_.erase(handle);
}

std::string Registry::RenderText() {
  std::vector<const CounterFamily*> counters;
  std::vector<const HistogramFamily*> histograms;
  std::vector<Collector> collectors;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [name, family] : counters_) counters.push_back(family.get());
    for (const auto& [name, family] : histograms_) histograms.push_back(family.get());
    for (const auto& [handle, collector] : collectors_) collectors.push_back(collector);
  }
  // Families live as long as the registry; collectors run without the lock, since what they
  // read may count something meanwhile.
  std::map<std::string, std::string> sections;
  for (const CounterFamily* family : counters) family->Render(sections[family->name()]);
  for (const HistogramFamily* family : histograms) family->Render(sections[family->name()]);
  for (const Collector& collector : collectors) {
    for (const GaugeFamily& family : collector()) {
      std::string& out = sections[family.name];
      if (!out.empty()) continue;  // a name is one family
      AppendHeader(out, family.name, family.help, "gauge");
      for (const auto& [values, value] : family.samples) {
        out += family.name;
        AppendLabels(out, family.label_names, Fit(values, family.label_names.size()));
        absl::StrAppend(&out, " ", FormatValue(value), "\n");
      }
    }
  }
  std::string text;
  for (const auto& [name, section] : sections) text += section;
  return text;
}

}  // namespace crib::metrics
