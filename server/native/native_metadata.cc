#include "server/native/native_metadata.h"

#include <algorithm>

namespace cnnserve {

void FillModelSummary(const InferenceService::ModelSummary& summary, v1::ModelSummary* out) {
  out->set_name(summary.name);
  for (const InferenceService::VersionRow& row : summary.versions) {
    v1::ModelVersionState* state = out->add_versions();
    state->set_version(row.version);
    state->set_state(row.state);
    state->set_reason(row.reason);
  }
  for (int64_t d : summary.input_dims) out->add_input_shape(d);
  out->set_num_classes(static_cast<int32_t>(summary.num_classes));
  out->set_platform(summary.platform);
}

void ListModelsNative(const InferenceService& service, v1::ListModelsResponse* response) {
  response->clear_models();
  for (const InferenceService::ModelSummary& summary : service.Models()) {
    FillModelSummary(summary, response->add_models());
  }
}

void FillDescribeModelResponse(const InferenceService::ModelDescription& described,
                               v1::DescribeModelResponse* response) {
  response->Clear();
  FillModelSummary(described.summary, response->mutable_summary());
  if (described.config.has_value()) *response->mutable_config() = *described.config;
  if (!described.stats.has_value()) return;
  for (const LayerStats& layer : described.stats->layers) {
    v1::LayerInfo* info = response->add_layers();
    info->set_name(layer.name);
    info->set_op(layer.op);
    for (int64_t d : layer.output_dims) info->add_output_shape(d);
    info->set_params(layer.params);
    info->set_macs(layer.macs);
    info->set_receptive_field(layer.global_receptive_field ? 0 : std::max(layer.receptive_h, layer.receptive_w));
    info->set_output_name(layer.output_name);
    info->set_activation_values(layer.activation_values);
    info->set_activation_bytes(layer.activation_values * static_cast<int64_t>(sizeof(float)));
  }
  response->set_total_params(described.stats->total_params);
  response->set_total_macs(described.stats->total_macs);
  response->set_layer_table(described.layer_table);
  response->set_input_values(described.stats->input_values);
  response->set_total_activation_values(described.stats->total_activation_values);
  response->set_total_activation_bytes(described.stats->total_activation_bytes);
}

Status DescribeModelNative(const InferenceService& service, const v1::DescribeModelRequest& request,
                           v1::DescribeModelResponse* response) {
  StatusOr<InferenceService::ModelDescription> described = service.Describe(request.model(), request.version());
  if (!described.ok()) return described.status();
  FillDescribeModelResponse(*described, response);
  return OkStatus();
}

}  // namespace cnnserve
