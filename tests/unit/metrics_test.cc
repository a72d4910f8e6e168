// The metrics registry's text format (counters, cumulative histogram buckets, collectors,
// escaping) and the metrics_address forms the config accepts.
#include "common/metrics.h"

#include "absl/strings/str_split.h"
#include "config/config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "support/status_matchers.h"

namespace crib {
namespace {

using ::crib::testing::IsOk;
using ::crib::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(MetricsRegistry, CountersWithLabelsAndEscaping) {
  metrics::Registry registry;
  metrics::CounterFamily& c =
      registry.Counter("test_things_total", "Things.\nSecond line \\ here.", {"kind", "code"});
  c.Add({"a", "OK"});
  c.Add({"a", "OK"}, 2);
  c.Add({"quote\"back\\slash\nnewline", "x"});
  EXPECT_EQ(&registry.Counter("test_things_total", "other help", {}), &c) << "one family per name";
  const std::string text = registry.RenderText();
  EXPECT_THAT(text, HasSubstr("# HELP test_things_total Things.\\nSecond line \\\\ here.\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE test_things_total counter\n"));
  EXPECT_THAT(text, HasSubstr("test_things_total{kind=\"a\",code=\"OK\"} 3\n"));
  EXPECT_THAT(
      text,
      HasSubstr("test_things_total{kind=\"quote\\\"back\\\\slash\\nnewline\",code=\"x\"} 1\n"));
}

TEST(MetricsRegistry, HistogramBucketsAreCumulative) {
  metrics::Registry registry;
  metrics::HistogramFamily& h =
      registry.Histogram("test_seconds", "Latency.", {"rpc"}, {0.01, 0.1, 1});
  h.Observe({"Get"}, 0.005);
  h.Observe({"Get"}, 0.05);
  h.Observe({"Get"}, 0.05);
  h.Observe({"Get"}, 5);
  const std::string text = registry.RenderText();
  EXPECT_THAT(text, HasSubstr("# TYPE test_seconds histogram\n"
                              "test_seconds_bucket{rpc=\"Get\",le=\"0.01\"} 1\n"
                              "test_seconds_bucket{rpc=\"Get\",le=\"0.1\"} 3\n"
                              "test_seconds_bucket{rpc=\"Get\",le=\"1\"} 3\n"
                              "test_seconds_bucket{rpc=\"Get\",le=\"+Inf\"} 4\n"
                              "test_seconds_sum{rpc=\"Get\"} 5.105\n"
                              "test_seconds_count{rpc=\"Get\"} 4\n"));
}

TEST(MetricsRegistry, CollectorsRunAtRenderTimeAndCanBeRemoved) {
  metrics::Registry registry;
  int calls = 0;
  const int handle = registry.AddCollector([&calls] {
    ++calls;
    return std::vector<metrics::GaugeFamily>{
        {"test_objects", "Objects by state.", {"state"}, {{{"ready"}, 2}, {{"gone"}, 0}}}};
  });
  EXPECT_EQ(calls, 0);
  std::string text = registry.RenderText();
  EXPECT_EQ(calls, 1);
  EXPECT_THAT(text, HasSubstr("# TYPE test_objects gauge\ntest_objects{state=\"ready\"} 2\n"
                              "test_objects{state=\"gone\"} 0\n"));
  registry.RemoveCollector(handle);
  text = registry.RenderText();
  EXPECT_EQ(calls, 1);
  EXPECT_THAT(text, Not(HasSubstr("test_objects")));
}

TEST(MetricsRegistry, EveryLineIsACommentOrASample) {
  metrics::Registry registry;
  registry.Counter("a_total", "A.", {}).Add({});
  registry.Histogram("b_seconds", "B.", {}, metrics::LatencyBuckets()).Observe({}, 0.3);
  for (absl::string_view line : absl::StrSplit(registry.RenderText(), '\n', absl::SkipEmpty())) {
    const bool comment = absl::StartsWith(line, "# HELP ") || absl::StartsWith(line, "# TYPE ");
    const bool sample = absl::StartsWith(line, "a_total ") || absl::StartsWith(line, "b_seconds_");
    EXPECT_TRUE(comment || sample) << line;
  }
}

TEST(MetricsRegistry, ValuesFormat) {
  EXPECT_EQ(metrics::FormatValue(3), "3");
  EXPECT_EQ(metrics::FormatValue(0.25), "0.25");
  EXPECT_EQ(metrics::FormatValue(1e21), "1e+21");
  EXPECT_EQ(metrics::FormatValue(1.0 / 0.0), "+Inf");
}

TEST(MetricsAddress, HostPortForms) {
  absl::StatusOr<HostPort> hp = ParseHostPort("127.0.0.1:9400");
  ASSERT_THAT(hp, IsOk());
  EXPECT_EQ(hp->host, "127.0.0.1");
  EXPECT_EQ(hp->port, 9400);
  hp = ParseHostPort("[::1]:0");
  ASSERT_THAT(hp, IsOk());
  EXPECT_EQ(hp->host, "::1");
  EXPECT_EQ(hp->port, 0);
  hp = ParseHostPort(":9400");
  ASSERT_THAT(hp, IsOk());
  EXPECT_EQ(hp->host, "");
  for (const char* bad : {"9400", "localhost", "::1:9400", "[::1]9400", "host:99999", "host:-1",
                          "host:12ab", "host:"}) {
    EXPECT_THAT(ParseHostPort(bad), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_))
        << bad;
  }
}

TEST(MetricsAddress, ConfigKeyIsOffByDefaultAndValidated) {
  EXPECT_EQ(Config{}.metrics_address, "");
  absl::StatusOr<Config> config = ParseConfig("metrics_address = \"127.0.0.1:9400\"\n", "t.toml");
  ASSERT_THAT(config, IsOk());
  EXPECT_EQ(config->metrics_address, "127.0.0.1:9400");
  EXPECT_THAT(ParseConfig("metrics_address = \"9400\"\n", "t.toml"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("key metrics_address")));
}

}  // namespace
}  // namespace crib
