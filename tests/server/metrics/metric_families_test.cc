#include "server/metrics/metric_families.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

namespace cnnserve {
namespace {

ServableStats FakeModel() {
  ServableStats stats;
  stats.name = "lenet";
  stats.version = 3;
  stats.platform = "onnx";
  stats.inference_count = 21;
  stats.execution_count = 7;
  stats.inline_execution_count = 5;
  stats.success = {5, 9'000'000};
  stats.fail = {2, 1'000};
  stats.queue = {6, 1'500'000'000};
  stats.preprocess = {5, 250'000'000};
  stats.compute_input = {7, 7'000};
  stats.compute_infer = {7, 2'000'000'000};
  stats.compute_output = {7, 70'000};
  stats.queue_depth = 4;
  // Batches: 2 of size 1, 1 of 2, 3 of 3, 1 of 200 (beyond the last bound).
  auto batch = [](int64_t size, uint64_t count) {
    ServableStats::BatchStat b;
    b.batch_size = size;
    b.compute_input = {count, count * 10};
    b.compute_infer = {count, count * 100};
    b.compute_output = {count, count * 1};
    return b;
  };
  stats.batch_stats = {batch(1, 2), batch(2, 1), batch(3, 3), batch(200, 1)};
  return stats;
}

ServableStats FakeEnsemble() {
  ServableStats stats;
  stats.name = "vote";
  stats.version = 1;
  stats.platform = "ensemble";
  stats.success = {3, 30};
  stats.agreement_buckets = {0, 1, 0, 2, 4, 0};
  stats.agreement_sum = 0.4 + 0.75 + 0.8 + 4 * 1.0;
  stats.agreement_count = 7;
  return stats;
}

const prometheus::MetricFamily* FindFamily(const std::vector<prometheus::MetricFamily>& families,
                                           const std::string& name) {
  for (const prometheus::MetricFamily& family : families) {
    if (family.name == name) return &family;
  }
  return nullptr;
}

std::string Label(const prometheus::ClientMetric& metric, const std::string& name) {
  for (const auto& label : metric.label) {
    if (label.name == name) return label.value;
  }
  return "<missing>";
}

TEST(MetricFamiliesTest, NoServablesNoFamilies) { EXPECT_TRUE(BuildMetricFamilies({}).empty()); }

TEST(MetricFamiliesTest, CountersAndGaugeFromStats) {
  const std::vector<prometheus::MetricFamily> families = BuildMetricFamilies({FakeModel()});
  struct Expected {
    const char* name;
    double value;
  };
  const Expected counters[] = {{kMetricRequestSuccess, 5},         {kMetricRequestFailure, 2},
                               {kMetricInferenceCount, 21},        {kMetricExecutionCount, 7},
                               {kMetricInlineExecutionCount, 5},   {kMetricQueueDuration, 1.5},
                               {kMetricPreprocessDuration, 0.25},  {kMetricComputeInputDuration, 7e-6},
                               {kMetricComputeInferDuration, 2.0}, {kMetricComputeOutputDuration, 7e-5}};
  for (const Expected& expected : counters) {
    const prometheus::MetricFamily* family = FindFamily(families, expected.name);
    ASSERT_NE(family, nullptr) << expected.name;
    EXPECT_EQ(family->type, prometheus::MetricType::Counter) << expected.name;
    EXPECT_FALSE(family->help.empty());
    ASSERT_EQ(family->metric.size(), 1u);
    EXPECT_DOUBLE_EQ(family->metric[0].counter.value, expected.value) << expected.name;
    EXPECT_EQ(Label(family->metric[0], "model"), "lenet");
    EXPECT_EQ(Label(family->metric[0], "version"), "3");
  }
  const prometheus::MetricFamily* depth = FindFamily(families, kMetricQueueDepth);
  ASSERT_NE(depth, nullptr);
  EXPECT_EQ(depth->type, prometheus::MetricType::Gauge);
  EXPECT_DOUBLE_EQ(depth->metric.at(0).gauge.value, 4);
  // A plain model has no agreement histogram.
  EXPECT_EQ(FindFamily(families, kMetricEnsembleAgreement), nullptr);
}

TEST(MetricFamiliesTest, BatchSizeHistogramIsExact) {
  const std::vector<prometheus::MetricFamily> families = BuildMetricFamilies({FakeModel()});
  const prometheus::MetricFamily* family = FindFamily(families, kMetricBatchSize);
  ASSERT_NE(family, nullptr);
  EXPECT_EQ(family->type, prometheus::MetricType::Histogram);
  const prometheus::ClientMetric::Histogram& h = family->metric.at(0).histogram;
  EXPECT_EQ(h.sample_count, 7u);
  EXPECT_DOUBLE_EQ(h.sample_sum, 1 * 2 + 2 * 1 + 3 * 3 + 200 * 1);
  // Cumulative: <=1: 2, <=2: 3, <=4: 6, ... <=128: 6, +Inf: 7.
  const std::vector<uint64_t> cumulative = {2, 3, 6, 6, 6, 6, 6, 6, 7};
  ASSERT_EQ(h.bucket.size(), cumulative.size());
  for (size_t i = 0; i < cumulative.size(); ++i) {
    EXPECT_EQ(h.bucket[i].cumulative_count, cumulative[i]) << "bucket " << i;
    if (i < kBatchSizeBucketBounds.size()) {
      EXPECT_EQ(h.bucket[i].upper_bound, kBatchSizeBucketBounds[i]);
    } else {
      EXPECT_TRUE(std::isinf(h.bucket[i].upper_bound));
    }
  }
}

TEST(MetricFamiliesTest, EnsembleAgreementOnlyForEnsembles) {
  const std::vector<prometheus::MetricFamily> families = BuildMetricFamilies({FakeModel(), FakeEnsemble()});
  const prometheus::MetricFamily* success = FindFamily(families, kMetricRequestSuccess);
  ASSERT_NE(success, nullptr);
  ASSERT_EQ(success->metric.size(), 2u);
  EXPECT_EQ(Label(success->metric[1], "model"), "vote");
  EXPECT_EQ(success->metric[1].counter.value, 3);

  const prometheus::MetricFamily* agreement = FindFamily(families, kMetricEnsembleAgreement);
  ASSERT_NE(agreement, nullptr);
  ASSERT_EQ(agreement->metric.size(), 1u);
  EXPECT_EQ(Label(agreement->metric[0], "model"), "vote");
  const prometheus::ClientMetric::Histogram& h = agreement->metric[0].histogram;
  EXPECT_EQ(h.sample_count, 7u);
  EXPECT_DOUBLE_EQ(h.sample_sum, FakeEnsemble().agreement_sum);
  const std::vector<uint64_t> cumulative = {0, 1, 1, 3, 7, 7};
  ASSERT_EQ(h.bucket.size(), cumulative.size());
  for (size_t i = 0; i < cumulative.size(); ++i) EXPECT_EQ(h.bucket[i].cumulative_count, cumulative[i]);
  EXPECT_DOUBLE_EQ(h.bucket[0].upper_bound, 0.2);
  EXPECT_DOUBLE_EQ(h.bucket[4].upper_bound, 1.0);
}

TEST(MetricFamiliesTest, TextExpositionUsesTheNamesAsGiven) {
  const std::string text = SerializeMetricFamilies(BuildMetricFamilies({FakeModel(), FakeEnsemble()}));
  // prometheus-cpp must not append another _total to counters.
  EXPECT_EQ(text.find("_total_total"), std::string::npos) << text;
  EXPECT_NE(text.find("# TYPE cnnserve_request_success_total counter\n"), std::string::npos) << text;
  EXPECT_NE(text.find("cnnserve_request_success_total{model=\"lenet\",version=\"3\"} 5\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("cnnserve_inference_count_total{model=\"lenet\",version=\"3\"} 21\n"), std::string::npos);
  EXPECT_NE(text.find("cnnserve_queue_duration_seconds_total{model=\"lenet\",version=\"3\"} 1.5\n"),
            std::string::npos);
  EXPECT_NE(text.find("# TYPE cnnserve_queue_depth gauge\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE cnnserve_batch_size histogram\n"), std::string::npos);
  EXPECT_NE(text.find("cnnserve_batch_size_bucket{model=\"lenet\",version=\"3\",le=\"4\"} 6\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("cnnserve_batch_size_bucket{model=\"lenet\",version=\"3\",le=\"+Inf\"} 7\n"),
            std::string::npos);
  EXPECT_NE(text.find("cnnserve_batch_size_count{model=\"lenet\",version=\"3\"} 7\n"), std::string::npos);
  EXPECT_NE(text.find("cnnserve_ensemble_agreement_count{model=\"vote\",version=\"1\"} 7\n"), std::string::npos);
}

}  // namespace
}  // namespace cnnserve
