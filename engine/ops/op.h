// The operator set of the engine: op types, their attributes, graph nodes, and the per-op definition
// (input arity, shape inference and the naive reference kernel that is the correctness oracle).
//
// Adding an op: one file pair under engine/ops/ (attribute handling, shape inference, reference kernel) and one
// line in registry.cc. Backends other than the reference one implement the op separately.
// Thread-safety: everything here is immutable after static initialisation; OpDef functions are reentrant.
#ifndef CNNSERVE_ENGINE_OPS_OP_H_
#define CNNSERVE_ENGINE_OPS_OP_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "engine/common/status.h"
#include "engine/tensor/tensor.h"

namespace cnnserve {

enum class OpType {
  kConv,
  kRelu,
  kMaxPool,
  kAveragePool,
  kGlobalAveragePool,
  kLrn,
  kGemm,
  kMatMul,
  kAdd,
  kFlatten,
  kReshape,
  kDropout,
  kSoftmax,
  kBatchNormalization,
  kIdentity,
};

// ONNX spelling, e.g. "Conv", "LRN", "BatchNormalization".
std::string_view OpTypeName(OpType type);
// Inverse of OpTypeName; nullopt for ops the engine does not support.
std::optional<OpType> OpTypeFromName(std::string_view name);

enum class AutoPad { kNotSet, kSameUpper, kSameLower, kValid };

// Spatial attribute vectors have one entry per spatial axis (2 for images); `pads` holds all begins then all
// ends (ONNX order: h_begin, w_begin, h_end, w_end). Empty vectors mean "ONNX default" until shape inference
// fills them in from the input shape (kernel_shape from the weights, strides/dilations 1, pads 0 or auto_pad).
struct ConvAttrs {
  int64_t group = 1;
  std::vector<int64_t> kernel_shape = {};
  std::vector<int64_t> strides = {};
  std::vector<int64_t> pads = {};
  std::vector<int64_t> dilations = {};
  AutoPad auto_pad = AutoPad::kNotSet;
};

// MaxPool and AveragePool.
struct PoolAttrs {
  std::vector<int64_t> kernel_shape = {};
  std::vector<int64_t> strides = {};
  std::vector<int64_t> pads = {};
  std::vector<int64_t> dilations = {};  // MaxPool only
  bool ceil_mode = false;
  bool count_include_pad = false;  // AveragePool only
  AutoPad auto_pad = AutoPad::kNotSet;
};

// ONNX LRN: y = x / (bias + alpha / size * sum over the `size` nearest channels of x^2) ^ beta.
struct LrnAttrs {
  int64_t size = 0;
  float alpha = 1e-4f;
  float beta = 0.75f;
  float bias = 1.0f;
};

// Y = alpha * op(A) * op(B) + beta * C, C broadcast to the output (unidirectional).
struct GemmAttrs {
  float alpha = 1.0f;
  float beta = 1.0f;
  bool trans_a = false;
  bool trans_b = false;
};

struct FlattenAttrs {
  int64_t axis = 1;  // may be negative until shape inference normalises it
};

// The target shape is a constant (ONNX passes it as an input; the importer moves it here).
struct ReshapeAttrs {
  std::vector<int64_t> shape = {};
  bool allow_zero = false;
};

// Opset >= 13: softmax along `axis`. Opset < 13 (`coerce_2d`): input flattened to 2-D at `axis`, softmax over
// the inner block.
struct SoftmaxAttrs {
  int64_t axis = -1;
  bool coerce_2d = false;
};

struct BatchNormAttrs {
  float epsilon = 1e-5f;
};

using OpAttrs = std::variant<std::monostate, ConvAttrs, PoolAttrs, LrnAttrs, GemmAttrs, FlattenAttrs,
                             ReshapeAttrs, SoftmaxAttrs, BatchNormAttrs>;

// One operator application. Inputs and outputs are value names; an empty input name is an absent optional input
// (ONNX convention). Constant inputs (weights) are values held by the Graph.
struct Node {
  std::string name;
  OpType type = OpType::kIdentity;
  std::vector<std::string> inputs;
  std::vector<std::string> outputs;
  OpAttrs attrs;
};

// Arguments to a reference kernel. `inputs[i]` is nullptr for an absent optional input.
struct KernelArgs {
  const Node& node;
  std::vector<const Tensor*> inputs;
  std::vector<Tensor*> outputs;  // preallocated with the inferred shapes
};

struct OpDef {
  OpType type;
  int min_inputs;
  int max_inputs;
  int num_outputs;
  // Validates `node`'s attributes against the input dims (nullopt entries: absent optional inputs),
  // canonicalises them in place (defaults filled in, negative axes normalised, auto_pad resolved into pads) and
  // returns the output dims. Errors name the attribute and the offending value; the caller adds the node name.
  // Must be idempotent: running it again on its own output leaves the node unchanged.
  Status (*infer)(Node& node, const std::vector<std::optional<Dims>>& inputs, std::vector<Dims>* outputs);
  // The reference kernel: plain loops, no shortcuts. Precondition: `infer` succeeded on this node and these dims.
  Status (*reference)(const KernelArgs& args);
};

// The definition for `type` (never null for a valid OpType).
const OpDef& GetOpDef(OpType type);

}  // namespace cnnserve

#endif  // CNNSERVE_ENGINE_OPS_OP_H_
