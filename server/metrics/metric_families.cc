#include "server/metrics/metric_families.h"

#include <prometheus/client_metric.h>
#include <prometheus/metric_type.h>
#include <prometheus/text_serializer.h>

#include <cstdint>
#include <functional>
#include <limits>
#include <utility>

namespace cnnserve {
namespace {

constexpr double kSecondsPerNanosecond = 1e-9;

std::vector<prometheus::ClientMetric::Label> Labels(const ServableStats& stats) {
  return {{"model", stats.name}, {"version", std::to_string(stats.version)}};
}

double Seconds(const DurationStat& duration) {
  return static_cast<double>(duration.total_ns) * kSecondsPerNanosecond;
}

// A family of `type` (Counter or Gauge) with one sample per servable, valued by `value`.
prometheus::MetricFamily ServableFamily(prometheus::MetricType type, const std::vector<ServableStats>& stats,
                                        const char* name, const char* help,
                                        const std::function<double(const ServableStats&)>& value) {
  prometheus::MetricFamily family;
  family.name = name;
  family.help = help;
  family.type = type;
  for (const ServableStats& s : stats) {
    prometheus::ClientMetric metric;
    metric.label = Labels(s);
    if (type == prometheus::MetricType::Counter) {
      metric.counter.value = value(s);
    } else {
      metric.gauge.value = value(s);
    }
    family.metric.push_back(std::move(metric));
  }
  return family;
}

prometheus::MetricFamily CounterFamily(const std::vector<ServableStats>& stats, const char* name, const char* help,
                                       const std::function<double(const ServableStats&)>& value) {
  return ServableFamily(prometheus::MetricType::Counter, stats, name, help, value);
}

prometheus::MetricFamily GaugeFamily(const std::vector<ServableStats>& stats, const char* name, const char* help,
                                     const std::function<double(const ServableStats&)>& value) {
  return ServableFamily(prometheus::MetricType::Gauge, stats, name, help, value);
}

// One histogram sample from per-bucket (not cumulative) counts; `counts` has one more entry than `bounds` (+Inf).
template <size_t kBounds>
prometheus::ClientMetric HistogramMetric(const ServableStats& stats, const std::array<double, kBounds>& bounds,
                                         const std::array<uint64_t, kBounds + 1>& counts, double sum) {
  prometheus::ClientMetric metric;
  metric.label = Labels(stats);
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= kBounds; ++i) {
    cumulative += counts[i];
    prometheus::ClientMetric::Bucket bucket;
    bucket.upper_bound = i < kBounds ? bounds[i] : std::numeric_limits<double>::infinity();
    bucket.cumulative_count = cumulative;
    metric.histogram.bucket.push_back(bucket);
  }
  metric.histogram.sample_count = cumulative;
  metric.histogram.sample_sum = sum;
  return metric;
}

prometheus::ClientMetric BatchSizeMetric(const ServableStats& stats) {
  std::array<uint64_t, kBatchSizeBucketBounds.size() + 1> counts{};
  double sum = 0;
  for (const ServableStats::BatchStat& batch : stats.batch_stats) {
    const uint64_t batches = batch.compute_infer.count;
    size_t bucket = 0;
    while (bucket < kBatchSizeBucketBounds.size() &&
           static_cast<double>(batch.batch_size) > kBatchSizeBucketBounds[bucket]) {
      ++bucket;
    }
    counts[bucket] += batches;
    sum += static_cast<double>(batch.batch_size) * static_cast<double>(batches);
  }
  return HistogramMetric(stats, kBatchSizeBucketBounds, counts, sum);
}

bool IsEnsemble(const ServableStats& stats) { return stats.platform == "ensemble" || stats.agreement_count > 0; }

}  // namespace

std::vector<prometheus::MetricFamily> BuildMetricFamilies(const std::vector<ServableStats>& stats) {
  std::vector<prometheus::MetricFamily> families;
  if (stats.empty()) return families;

  families.push_back(CounterFamily(stats, kMetricRequestSuccess, "Inference requests that succeeded",
                                   [](const ServableStats& s) { return static_cast<double>(s.success.count); }));
  families.push_back(CounterFamily(stats, kMetricRequestFailure, "Inference requests that failed",
                                   [](const ServableStats& s) { return static_cast<double>(s.fail.count); }));
  families.push_back(CounterFamily(stats, kMetricInferenceCount, "Images inferred successfully",
                                   [](const ServableStats& s) { return static_cast<double>(s.inference_count); }));
  families.push_back(CounterFamily(stats, kMetricExecutionCount,
                                   "Batches executed (ensembles: requests fanned out)",
                                   [](const ServableStats& s) { return static_cast<double>(s.execution_count); }));
  families.push_back(
      CounterFamily(stats, kMetricInlineExecutionCount,
                    "Of the batches executed, those run to completion on the thread that received the request",
                    [](const ServableStats& s) { return static_cast<double>(s.inline_execution_count); }));
  families.push_back(CounterFamily(stats, kMetricQueueDuration, "Time requests waited in the batcher queue",
                                   [](const ServableStats& s) { return Seconds(s.queue); }));
  families.push_back(CounterFamily(stats, kMetricPreprocessDuration,
                                   "Time spent decoding and preprocessing images",
                                   [](const ServableStats& s) { return Seconds(s.preprocess); }));
  families.push_back(CounterFamily(stats, kMetricComputeInputDuration, "Time spent copying inputs into batches",
                                   [](const ServableStats& s) { return Seconds(s.compute_input); }));
  families.push_back(CounterFamily(stats, kMetricComputeInferDuration, "Time spent running the model",
                                   [](const ServableStats& s) { return Seconds(s.compute_infer); }));
  families.push_back(CounterFamily(stats, kMetricComputeOutputDuration,
                                   "Time spent copying outputs out of batches",
                                   [](const ServableStats& s) { return Seconds(s.compute_output); }));

  families.push_back(CounterFamily(stats, kMetricCacheHits, "Requests answered from the response cache",
                                   [](const ServableStats& s) { return static_cast<double>(s.cache_hit.count); }));
  families.push_back(CounterFamily(stats, kMetricCacheMisses,
                                   "Requests of models with a response cache that were not in it",
                                   [](const ServableStats& s) { return static_cast<double>(s.cache_miss.count); }));
  families.push_back(GaugeFamily(stats, kMetricCacheBytes, "Bytes of the response cache holding the model's answers",
                                 [](const ServableStats& s) { return static_cast<double>(s.cache_bytes); }));
  families.push_back(GaugeFamily(stats, kMetricQueueDepth, "Tasks waiting in the batcher queue",
                                 [](const ServableStats& s) { return static_cast<double>(s.queue_depth); }));

  prometheus::MetricFamily batch_size;
  batch_size.name = kMetricBatchSize;
  batch_size.help = "Executed batches by number of images";
  batch_size.type = prometheus::MetricType::Histogram;
  for (const ServableStats& s : stats) batch_size.metric.push_back(BatchSizeMetric(s));
  families.push_back(std::move(batch_size));

  prometheus::MetricFamily agreement;
  agreement.name = kMetricEnsembleAgreement;
  agreement.help = "Per image, the share of ensemble members whose top-1 equals the ensemble's";
  agreement.type = prometheus::MetricType::Histogram;
  for (const ServableStats& s : stats) {
    if (!IsEnsemble(s)) continue;
    agreement.metric.push_back(HistogramMetric(s, kAgreementBucketBounds, s.agreement_buckets, s.agreement_sum));
  }
  if (!agreement.metric.empty()) families.push_back(std::move(agreement));
  return families;
}

std::string SerializeMetricFamilies(const std::vector<prometheus::MetricFamily>& families) {
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace cnnserve
