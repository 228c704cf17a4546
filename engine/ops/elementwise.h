// Element-wise ops: Relu, Add (numpy multidirectional broadcasting, rank <= 8), Identity and Dropout.
//
// Dropout is inference-only and therefore the identity on output 0. Its OpDef allows up to 3 inputs (data,
// ratio, training_mode; ratio and training_mode must hold one element) and num_outputs is 2 so that ONNX nodes
// naming the mask output reach shape inference, which rejects a non-empty second output with UNIMPLEMENTED
// "mask output not supported". The reference kernel rejects a training_mode input that is true. No op here has
// attributes.
// Thread-safety: stateless functions; reentrant.
#ifndef CNNSERVE_ENGINE_OPS_ELEMENTWISE_H_
#define CNNSERVE_ENGINE_OPS_ELEMENTWISE_H_

#include <optional>
#include <vector>

#include "engine/common/status.h"
#include "engine/ops/op.h"

namespace cnnserve {

Status InferRelu(Node& node, const std::vector<std::optional<Dims>>& inputs, std::vector<Dims>* outputs);
Status ReluReference(const KernelArgs& args);

Status InferAdd(Node& node, const std::vector<std::optional<Dims>>& inputs, std::vector<Dims>* outputs);
Status AddReference(const KernelArgs& args);

Status InferIdentity(Node& node, const std::vector<std::optional<Dims>>& inputs, std::vector<Dims>* outputs);
Status IdentityReference(const KernelArgs& args);

Status InferDropout(Node& node, const std::vector<std::optional<Dims>>& inputs, std::vector<Dims>* outputs);
Status DropoutReference(const KernelArgs& args);

}  // namespace cnnserve

#endif  // CNNSERVE_ENGINE_OPS_ELEMENTWISE_H_
