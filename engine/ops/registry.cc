// The op registry: one line per op (ONNX name and OpDef), indexed by OpType.
#include <array>
#include <cstddef>
#include <optional>
#include <string_view>

#include "engine/ops/batch_norm.h"
#include "engine/ops/conv.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/gemm.h"
#include "engine/ops/lrn.h"
#include "engine/ops/op.h"
#include "engine/ops/pool.h"
#include "engine/ops/shape_ops.h"
#include "engine/ops/softmax.h"

namespace cnnserve {
namespace {

struct Registration {
  std::string_view name;  // ONNX op_type
  OpDef def;
};

// In OpType order (checked below). Columns: type, min inputs, max inputs, num outputs, infer, reference.
constexpr Registration kRegistry[] = {
    {"Conv", {OpType::kConv, 2, 3, 1, &InferConv, &ConvReference}},
    {"Relu", {OpType::kRelu, 1, 1, 1, &InferRelu, &ReluReference}},
    {"MaxPool", {OpType::kMaxPool, 1, 1, 1, &InferMaxPool, &MaxPoolReference}},
    {"AveragePool", {OpType::kAveragePool, 1, 1, 1, &InferAveragePool, &AveragePoolReference}},
    {"GlobalAveragePool",
     {OpType::kGlobalAveragePool, 1, 1, 1, &InferGlobalAveragePool, &GlobalAveragePoolReference}},
    {"LRN", {OpType::kLrn, 1, 1, 1, &InferLrn, &LrnReference}},
    {"Gemm", {OpType::kGemm, 2, 3, 1, &InferGemm, &GemmReference}},
    {"MatMul", {OpType::kMatMul, 2, 2, 1, &InferMatMul, &MatMulReference}},
    {"Add", {OpType::kAdd, 2, 2, 1, &InferAdd, &AddReference}},
    {"Flatten", {OpType::kFlatten, 1, 1, 1, &InferFlatten, &FlattenReference}},
    {"Reshape", {OpType::kReshape, 1, 1, 1, &InferReshape, &ReshapeReference}},
    {"Dropout", {OpType::kDropout, 1, 3, 2, &InferDropout, &DropoutReference}},
    {"Softmax", {OpType::kSoftmax, 1, 1, 1, &InferSoftmax, &SoftmaxReference}},
    {"BatchNormalization", {OpType::kBatchNormalization, 5, 5, 1, &InferBatchNorm, &BatchNormReference}},
    {"Identity", {OpType::kIdentity, 1, 1, 1, &InferIdentity, &IdentityReference}},
};

constexpr bool RegistryMatchesOpTypeOrder() {
  for (size_t i = 0; i < std::size(kRegistry); ++i) {
    if (static_cast<size_t>(kRegistry[i].def.type) != i) return false;
  }
  return static_cast<size_t>(OpType::kIdentity) + 1 == std::size(kRegistry);
}
static_assert(RegistryMatchesOpTypeOrder(), "kRegistry must list every OpType once, in enum order");

}  // namespace

const OpDef& GetOpDef(OpType type) { return kRegistry[static_cast<size_t>(type)].def; }

std::string_view OpTypeName(OpType type) { return kRegistry[static_cast<size_t>(type)].name; }

std::optional<OpType> OpTypeFromName(std::string_view name) {
  for (const Registration& r : kRegistry) {
    if (r.name == name) return r.def.type;
  }
  return std::nullopt;
}

}  // namespace cnnserve
