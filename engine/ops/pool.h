// Pooling: MaxPool, AveragePool (ONNX, 1 to 3 spatial axes) and GlobalAveragePool (any number of spatial axes).
//
// Shape inference canonicalises PoolAttrs: kernel_shape is required; strides/dilations default to 1s; pads always
// has 2 * spatial entries afterwards; auto_pad is resolved into pads and reset to AutoPad::kNotSet, and then
// ceil_mode is cleared (under auto_pad the output size does not depend on it, so the explicit-pad formula with
// ceil_mode off gives the same size). Each pad must be smaller than the dilated kernel, so every window touches
// the input or the left padding.
//
// Output size per spatial axis (explicit pads): floor or, with ceil_mode, ceil of
// (in + pad_begin + pad_end - ((kernel - 1) * dilation + 1)) / stride, plus 1; in ceil mode a last window that
// would start in the right padding (start >= in + pad_begin) is dropped (ONNX/PyTorch). With ceil_mode the last
// window may extend past pad_end; backends with a pad-defined output size (oneDNN) need an effective right pad
// of (out - 1) * stride + (kernel - 1) * dilation + 1 - in - pad_begin on that axis.
//
// MaxPool ignores padded positions. AveragePool divides by the number of window positions that lie in the input
// (count_include_pad false) or in the explicitly padded input [-pad_begin, in + pad_end) (count_include_pad
// true); positions beyond pad_end that ceil_mode adds are never counted. AveragePool supports dilations of 1
// only (UNIMPLEMENTED otherwise); MaxPool's optional Indices output is UNIMPLEMENTED.
// Thread-safety: stateless functions; reentrant.
#ifndef CNNSERVE_ENGINE_OPS_POOL_H_
#define CNNSERVE_ENGINE_OPS_POOL_H_

#include <optional>
#include <vector>

#include "engine/common/status.h"
#include "engine/ops/op.h"

namespace cnnserve {

Status InferMaxPool(Node& node, const std::vector<std::optional<Dims>>& inputs, std::vector<Dims>* outputs);
Status MaxPoolReference(const KernelArgs& args);

Status InferAveragePool(Node& node, const std::vector<std::optional<Dims>>& inputs, std::vector<Dims>* outputs);
Status AveragePoolReference(const KernelArgs& args);

// Output N x C x 1 x ... x 1: the mean over all spatial positions.
Status InferGlobalAveragePool(Node& node, const std::vector<std::optional<Dims>>& inputs,
                              std::vector<Dims>* outputs);
Status GlobalAveragePoolReference(const KernelArgs& args);

}  // namespace cnnserve

#endif  // CNNSERVE_ENGINE_OPS_POOL_H_
