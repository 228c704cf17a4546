// Prometheus metric families built from servable statistics (ServableStats, server/servables/servable.h).
//
// BuildMetricFamilies is a pure function from a snapshot of statistics to prometheus-cpp MetricFamily values; it
// is what a scrape of /metrics renders (MetricsServer), and it is tested from fake statistics without HTTP.
// Every sample carries the labels model="<name>" and version="<version>". The families, in this order:
//
//   counters (the Prometheus `_total` convention; prometheus-cpp 1.0 writes the name as given):
//     cnnserve_request_success_total                   Run calls that succeeded (ServableStats::success.count)
//     cnnserve_request_failure_total                   Run calls that failed (fail.count)
//     cnnserve_inference_count_total                   images inferred successfully (inference_count)
//     cnnserve_execution_count_total                   batches executed (execution_count)
//     cnnserve_queue_duration_seconds_total            summed time in the batcher queue (queue)
//     cnnserve_preprocess_duration_seconds_total       summed decode + preprocessing time (preprocess)
//     cnnserve_compute_input_duration_seconds_total    summed batch input copy time (compute_input)
//     cnnserve_compute_infer_duration_seconds_total    summed engine run time (compute_infer)
//     cnnserve_compute_output_duration_seconds_total   summed batch output copy time (compute_output)
//   gauge:
//     cnnserve_queue_depth                             tasks waiting now (queue_depth)
//   histograms:
//     cnnserve_batch_size           executed batches by size (batch_stats: one observation of `batch_size` per
//                                   batch, counted by compute_infer.count), buckets kBatchSizeBucketBounds + Inf;
//                                   exact, since every observation is an integer
//     cnnserve_ensemble_agreement   ensembles only (platform "ensemble" or any agreement observed): per image, the
//                                   share of members agreeing with the ensemble's top-1 (agreement_buckets,
//                                   bounds kAgreementBucketBounds + Inf)
// A family with no sample (no servable, or no ensemble) is left out.
//
// Thread-safety: pure functions.
#ifndef CNNSERVE_SERVER_METRICS_METRIC_FAMILIES_H_
#define CNNSERVE_SERVER_METRICS_METRIC_FAMILIES_H_

#include <prometheus/metric_family.h>

#include <array>
#include <string>
#include <vector>

#include "server/servables/servable.h"

namespace cnnserve {

// Upper bounds (inclusive) of the cnnserve_batch_size histogram's buckets; +Inf follows.
inline constexpr std::array<double, 8> kBatchSizeBucketBounds = {1, 2, 4, 8, 16, 32, 64, 128};

// Metric names, for the server and its tests.
inline constexpr char kMetricRequestSuccess[] = "cnnserve_request_success_total";
inline constexpr char kMetricRequestFailure[] = "cnnserve_request_failure_total";
inline constexpr char kMetricInferenceCount[] = "cnnserve_inference_count_total";
inline constexpr char kMetricExecutionCount[] = "cnnserve_execution_count_total";
inline constexpr char kMetricInlineExecutionCount[] = "cnnserve_inline_execution_count_total";
inline constexpr char kMetricQueueDuration[] = "cnnserve_queue_duration_seconds_total";
inline constexpr char kMetricPreprocessDuration[] = "cnnserve_preprocess_duration_seconds_total";
inline constexpr char kMetricComputeInputDuration[] = "cnnserve_compute_input_duration_seconds_total";
inline constexpr char kMetricComputeInferDuration[] = "cnnserve_compute_infer_duration_seconds_total";
inline constexpr char kMetricComputeOutputDuration[] = "cnnserve_compute_output_duration_seconds_total";
inline constexpr char kMetricCacheHits[] = "cnnserve_cache_hits_total";
inline constexpr char kMetricCacheMisses[] = "cnnserve_cache_misses_total";
inline constexpr char kMetricCacheBytes[] = "cnnserve_cache_bytes";
inline constexpr char kMetricQueueDepth[] = "cnnserve_queue_depth";
inline constexpr char kMetricBatchSize[] = "cnnserve_batch_size";
inline constexpr char kMetricEnsembleAgreement[] = "cnnserve_ensemble_agreement";

// The metric families of `stats` (one entry per servable), in the order listed above; servables keep their order
// within each family.
std::vector<prometheus::MetricFamily> BuildMetricFamilies(const std::vector<ServableStats>& stats);

// The Prometheus text exposition format (0.0.4) of `families`, as served on /metrics.
std::string SerializeMetricFamilies(const std::vector<prometheus::MetricFamily>& families);

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_METRICS_METRIC_FAMILIES_H_
