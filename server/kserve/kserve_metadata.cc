#include "server/kserve/kserve_metadata.h"

#include <algorithm>

#include "inference/model_config.pb.h"
#include "server/kserve/kserve_tensors.h"

namespace cnnserve {
namespace {

// The label file a model's labels come from (config.pbtxt `labels`, default labels.txt).
constexpr char kDefaultLabelFile[] = "labels.txt";
// Instances when config.pbtxt sets none.
constexpr int32_t kDefaultInstanceCount = 1;

void SetDuration(const DurationStat& src, inference::StatisticDuration* dst) {
  dst->set_count(src.count);
  dst->set_ns(src.total_ns);
}

}  // namespace

std::vector<int64_t> ReadyVersions(const InferenceService& service, const std::string& name) {
  std::vector<int64_t> versions;
  for (const InferenceService::VersionRow& row : service.Index()) {
    if (row.name == name && row.state == "READY" && row.version > 0) versions.push_back(row.version);
  }
  std::sort(versions.begin(), versions.end());
  return versions;
}

std::vector<std::string> KServeExtensions() {
  return {"classification", "model_configuration", "model_repository", "statistics"};
}

void FillModelMetadata(const ServableInfo& info, const std::vector<int64_t>& versions,
                       inference::ModelMetadataResponse* response) {
  response->set_name(info.name);
  for (int64_t v : versions) response->add_versions(std::to_string(v));
  response->set_platform(info.platform);
  auto* input = response->add_inputs();
  input->set_name(info.input_name);
  input->set_datatype(kKServeFp32);
  input->add_shape(-1);
  for (int64_t d : info.item_input_dims) input->add_shape(d);
  auto* output = response->add_outputs();
  output->set_name(info.output_name);
  output->set_datatype(kKServeFp32);
  output->add_shape(-1);
  output->add_shape(info.num_classes);
}

void FillModelConfig(const ServableInfo& info, inference::ModelConfig* config) {
  config->set_name(info.name);
  config->set_platform(info.platform);
  config->set_max_batch_size(static_cast<int32_t>(std::max<int64_t>(1, info.max_batch_size)));

  inference::ModelInput* input = config->add_input();
  input->set_name(info.input_name);
  input->set_data_type(inference::TYPE_FP32);
  input->set_format(inference::ModelInput::FORMAT_NCHW);
  for (int64_t d : info.item_input_dims) input->add_dims(d);

  inference::ModelOutput* output = config->add_output();
  output->set_name(info.output_name);
  output->set_data_type(inference::TYPE_FP32);
  output->add_dims(info.num_classes);
  if (!info.labels.empty()) {
    output->set_label_filename(info.config.labels().empty() ? kDefaultLabelFile : info.config.labels());
  }

  inference::ModelInstanceGroup* group = config->add_instance_group();
  group->set_name(info.name);
  group->set_count(info.config.has_instance_group() && info.config.instance_group().count() > 0
                       ? info.config.instance_group().count()
                       : kDefaultInstanceCount);
  group->set_kind(inference::ModelInstanceGroup::KIND_CPU);

  if (info.config.has_dynamic_batching()) {
    const v1::DynamicBatching& src = info.config.dynamic_batching();
    inference::ModelDynamicBatching* batching = config->mutable_dynamic_batching();
    for (int32_t size : src.preferred_batch_size()) batching->add_preferred_batch_size(size);
    batching->set_max_queue_delay_microseconds(
        static_cast<uint64_t>(std::max<int64_t>(0, src.max_queue_delay_us())));
    if (src.max_queue_size() > 0) {
      batching->mutable_default_queue_policy()->set_max_queue_size(static_cast<uint32_t>(src.max_queue_size()));
    }
  }
}

void FillModelStatistics(const ServableStats& stats, inference::ModelStatistics* out) {
  out->set_name(stats.name);
  out->set_version(std::to_string(stats.version));
  out->set_last_inference(stats.last_inference_ms);
  out->set_inference_count(stats.inference_count);
  out->set_execution_count(stats.execution_count);
  inference::InferStatistics* infer = out->mutable_inference_stats();
  SetDuration(stats.success, infer->mutable_success());
  SetDuration(stats.fail, infer->mutable_fail());
  SetDuration(stats.queue, infer->mutable_queue());
  SetDuration(stats.compute_input, infer->mutable_compute_input());
  SetDuration(stats.compute_infer, infer->mutable_compute_infer());
  SetDuration(stats.compute_output, infer->mutable_compute_output());
  SetDuration(stats.cache_hit, infer->mutable_cache_hit());
  SetDuration(stats.cache_miss, infer->mutable_cache_miss());
  for (const ServableStats::BatchStat& batch : stats.batch_stats) {
    inference::InferBatchStatistics* dst = out->add_batch_stats();
    dst->set_batch_size(static_cast<uint64_t>(batch.batch_size));
    SetDuration(batch.compute_input, dst->mutable_compute_input());
    SetDuration(batch.compute_infer, dst->mutable_compute_infer());
    SetDuration(batch.compute_output, dst->mutable_compute_output());
  }
}

}  // namespace cnnserve
