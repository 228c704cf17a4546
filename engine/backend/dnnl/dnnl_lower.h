// Lowering of a Graph to the oneDNN backend's op list (private to engine/backend/dnnl).
//
// Runs once per backend, independent of the batch size: decides which nodes fuse (Conv/Gemm/MatMul + constant
// per-channel Add + Relu; Gemm/MatMul with a constant 2-D B become inner products), checks the attribute and
// input combinations the backend supports (UNIMPLEMENTED names node and reason), and prepares the constants the
// primitives read (bias sums, alpha-scaled weights, beta-scaled Gemm C). No oneDNN type appears here.
// Thread-safety: the result is immutable and shared by all plans.
#ifndef CNNSERVE_ENGINE_BACKEND_DNNL_DNNL_LOWER_H_
#define CNNSERVE_ENGINE_BACKEND_DNNL_DNNL_LOWER_H_

#include <string>
#include <vector>

#include "engine/common/status.h"
#include "engine/graph/graph.h"

namespace cnnserve::dnnl_internal {

enum class LoweredKind {
  kConv,    // convolution (+ bias, + relu)
  kFc,      // inner product: Gemm/MatMul with constant 2-D B and plain A (+ bias, + relu)
  kMatMul,  // matmul primitive: everything else Gemm/MatMul can express (+ binary add of C, + relu)
  kRelu,    // standalone eltwise relu
  kPool,    // MaxPool, AveragePool, GlobalAveragePool
  kLrn,
  kSoftmax,
  kBatchNorm,  // standalone batch_normalization (inference, global stats)
  kAdd,        // binary add (+ relu)
  kView,       // Flatten/Reshape: reinterpretation of the plain layout
  kAlias,      // Identity/Dropout: the output is the input
};

struct LoweredOp {
  LoweredKind kind = LoweredKind::kAlias;
  const Node* node = nullptr;  // the main node (owned by the Graph)
  std::string name;            // node name, plus fused node names joined with '+'
  std::string src;             // first value input
  std::string src2;            // Add: the other input; MatMul: B when not constant
  std::string dst;             // output value after fusion (the fused Relu's/Add's output)
  bool relu = false;           // Relu fused as a post-op

  // Conv / Fc / constant-B MatMul weights as stored (graph constant or `owned_weights`).
  const float* weights = nullptr;
  Dims weights_dims;
  bool weights_kn = false;  // Fc/MatMul: B stored as [K, N] (otherwise [N, K], i.e. transB)
  std::vector<float> owned_weights;
  std::vector<float> bias;  // empty: no bias

  // MatMul (Gemm semantics when node->type is kGemm).
  float alpha = 1.0f;
  bool trans_a = false;
  bool trans_b = false;
  std::vector<float> c_const;  // beta * C when C is constant (added by a binary add)
  Dims c_dims;
  std::string c_value;  // C when it is a runtime value (beta == 1)

  // BatchNormalization constants.
  const float* bn_scale = nullptr;
  const float* bn_shift = nullptr;
  const float* bn_mean = nullptr;
  const float* bn_var = nullptr;
  float epsilon = 1e-5f;

  const float* weights_data() const { return owned_weights.empty() ? weights : owned_weights.data(); }
  // The graph constant `weights` points into when it is a view of a mapped file (Tensor::View), else nullptr:
  // whoever converts the weights may then drop the file's pages behind it.
  const Tensor* weights_view() const { return owned_weights.empty() ? view : nullptr; }
  const Tensor* view = nullptr;
};

// Points `op`'s weights at `tensor` (a graph constant).
void SetWeights(LoweredOp& op, const Tensor& tensor);

// Lowers `graph` (any graph Graph::Create accepted). UNIMPLEMENTED for combinations the backend cannot run.
StatusOr<std::vector<LoweredOp>> LowerGraph(const Graph& graph);

}  // namespace cnnserve::dnnl_internal

#endif  // CNNSERVE_ENGINE_BACKEND_DNNL_DNNL_LOWER_H_
