// BatchNormalization (ONNX, inference form): inputs X (N x C x ...), scale, B, input_mean, input_var (each [C]);
// y = scale * (x - mean) / sqrt(var + epsilon) + B per channel. Only output Y; epsilon must be finite and >= 0.
// Shape inference changes no attribute. (The graph normally folds BatchNormalization into the preceding Conv.)
// Thread-safety: stateless functions; reentrant.
#ifndef CNNSERVE_ENGINE_OPS_BATCH_NORM_H_
#define CNNSERVE_ENGINE_OPS_BATCH_NORM_H_

#include <optional>
#include <vector>

#include "engine/common/status.h"
#include "engine/ops/op.h"

namespace cnnserve {

Status InferBatchNorm(Node& node, const std::vector<std::optional<Dims>>& inputs, std::vector<Dims>* outputs);
Status BatchNormReference(const KernelArgs& args);

}  // namespace cnnserve

#endif  // CNNSERVE_ENGINE_OPS_BATCH_NORM_H_
