// LRN (ONNX LRN, opset 1-13): local response normalisation across channels of X (N x C x ...).
//
// square_sum[n, c, ...] = sum of x[n, j, ...]^2 for j in [c - floor((size - 1) / 2), c + ceil((size - 1) / 2)]
// clipped to [0, C); y = x / (bias + alpha / size * square_sum) ^ beta. `size` must be positive; shape inference
// changes no attribute.
// Thread-safety: stateless functions; reentrant.
#ifndef CNNSERVE_ENGINE_OPS_LRN_H_
#define CNNSERVE_ENGINE_OPS_LRN_H_

#include <optional>
#include <vector>

#include "engine/common/status.h"
#include "engine/ops/op.h"

namespace cnnserve {

Status InferLrn(Node& node, const std::vector<std::optional<Dims>>& inputs, std::vector<Dims>* outputs);
Status LrnReference(const KernelArgs& args);

}  // namespace cnnserve

#endif  // CNNSERVE_ENGINE_OPS_LRN_H_
