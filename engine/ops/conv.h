// Conv (ONNX Conv, opset 1-22): N-D convolution (1 to 3 spatial axes) with groups, strides, dilations and
// explicit or automatic padding. Inputs X (N x C x D...), W (M x C/group x k...), optional B (M).
//
// Shape inference canonicalises ConvAttrs: kernel_shape is filled from W (and must match it when given),
// strides/dilations default to 1s, pads always has 2 * spatial entries afterwards, and auto_pad is resolved
// into pads and reset to AutoPad::kNotSet.
// Thread-safety: stateless functions; reentrant.
#ifndef CNNSERVE_ENGINE_OPS_CONV_H_
#define CNNSERVE_ENGINE_OPS_CONV_H_

#include <optional>
#include <vector>

#include "engine/common/status.h"
#include "engine/ops/op.h"

namespace cnnserve {

Status InferConv(Node& node, const std::vector<std::optional<Dims>>& inputs, std::vector<Dims>* outputs);
Status ConvReference(const KernelArgs& args);

}  // namespace cnnserve

#endif  // CNNSERVE_ENGINE_OPS_CONV_H_
