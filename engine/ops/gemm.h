// Matrix products: Gemm and MatMul (ONNX).
//
// Gemm: Y = alpha * op(A) * op(B) + beta * C, with A M x K (K x M when trans_a), B K x N (N x K when trans_b),
// and optional C broadcast unidirectionally to M x N (rank 0, 1 or 2; each dim 1 or equal). Attributes are not
// changed by shape inference.
// MatMul: numpy matmul. A 1-D A is treated as 1 x K and a 1-D B as K x 1 (the added axis is dropped from the
// output); leading (batch) axes broadcast multidirectionally; rank at most 8.
// Thread-safety: stateless functions; reentrant.
#ifndef CNNSERVE_ENGINE_OPS_GEMM_H_
#define CNNSERVE_ENGINE_OPS_GEMM_H_

#include <optional>
#include <vector>

#include "engine/common/status.h"
#include "engine/ops/op.h"

namespace cnnserve {

Status InferGemm(Node& node, const std::vector<std::optional<Dims>>& inputs, std::vector<Dims>* outputs);
Status GemmReference(const KernelArgs& args);

Status InferMatMul(Node& node, const std::vector<std::optional<Dims>>& inputs, std::vector<Dims>* outputs);
Status MatMulReference(const KernelArgs& args);

}  // namespace cnnserve

#endif  // CNNSERVE_ENGINE_OPS_GEMM_H_
