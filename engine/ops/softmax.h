// Softmax (ONNX). Opset >= 13 (coerce_2d false): softmax along `axis`. Opset < 13 (coerce_2d true): the input
// is viewed as 2-D [prod(dims[0:axis]), prod(dims[axis:])] and softmax runs over each row (the importer sets
// axis to the opset's default, 1 before opset 13). Shape inference normalises SoftmaxAttrs::axis to
// [0, rank); the output has the input's dims. The reference subtracts the maximum before exponentiating.
// Thread-safety: stateless functions; reentrant.
#ifndef CNNSERVE_ENGINE_OPS_SOFTMAX_H_
#define CNNSERVE_ENGINE_OPS_SOFTMAX_H_

#include <optional>
#include <vector>

#include "engine/common/status.h"
#include "engine/ops/op.h"

namespace cnnserve {

Status InferSoftmax(Node& node, const std::vector<std::optional<Dims>>& inputs, std::vector<Dims>* outputs);
Status SoftmaxReference(const KernelArgs& args);

}  // namespace cnnserve

#endif  // CNNSERVE_ENGINE_OPS_SOFTMAX_H_
