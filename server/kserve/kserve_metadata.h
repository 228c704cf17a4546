// KServe v2 metadata, configuration and statistics messages from cnnserve's servable descriptions: the pure
// conversions behind ModelMetadata, ModelConfig, ModelStatistics and ServerMetadata (no gRPC service code, so
// they are tested as plain functions).
//
// What a Triton client learns about a model:
//   ModelMetadata: platform (ServableInfo::platform: "onnx", "ensemble", "null"), the ready versions, one input
//     {input_name, "FP32", [-1, C, H, W]} (UINT8 [N,H,W,C] and BYTES [N] images are accepted too; see
//     kserve_tensors.h) and one output {output_name, "FP32", [-1, num_classes]}.
//   ModelConfig: name, platform, max_batch_size (>= 1: every input has the batch dimension), the input
//     (TYPE_FP32, FORMAT_NCHW, dims C, H, W), the output (TYPE_FP32, dims [num_classes], label_filename when the
//     model has labels), instance_group (count, KIND_CPU) and dynamic_batching (preferred sizes, queue delay,
//     queue size), from the model's config.pbtxt.
//   ModelStatistics: ServableStats as Triton reports them (durations in ns, last_inference in ms).
//
// Thread-safety: pure functions.
#ifndef CNNSERVE_SERVER_KSERVE_KSERVE_METADATA_H_
#define CNNSERVE_SERVER_KSERVE_KSERVE_METADATA_H_

#include <cstdint>
#include <string>
#include <vector>

#include "inference/grpc_service.pb.h"
#include "server/servables/servable.h"
#include "server/service/inference_service.h"

namespace cnnserve {

// The protocol extensions cnnserve implements, as ServerMetadata advertises them.
std::vector<std::string> KServeExtensions();

// The ready versions of model `name` (InferenceService::Index), ascending.
std::vector<int64_t> ReadyVersions(const InferenceService& service, const std::string& name);

// `versions`: the model's ready versions, ascending.
void FillModelMetadata(const ServableInfo& info, const std::vector<int64_t>& versions,
                       inference::ModelMetadataResponse* response);

void FillModelConfig(const ServableInfo& info, inference::ModelConfig* config);

void FillModelStatistics(const ServableStats& stats, inference::ModelStatistics* out);

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_KSERVE_KSERVE_METADATA_H_
