#include "engine/ops/gemm.h"

#include <algorithm>
#include <span>
#include <string>

#include "engine/ops/op_util.h"

namespace cnnserve {
namespace {

using ops_internal::BroadcastDims;
using ops_internal::BroadcastsTo;
using ops_internal::BroadcastStrides;
using ops_internal::CheckInputs;
using ops_internal::CheckKernelArgs;
using ops_internal::CheckSingleOutput;
using ops_internal::InputDims;
using ops_internal::KernelAttrs;
using ops_internal::kMaxBroadcastRank;
using ops_internal::MutableAttrs;
using ops_internal::SetSingleOutput;
using ops_internal::ShapeStr;

// M, K and N of a Gemm.
struct GemmSizes {
  int64_t m = 0;
  int64_t k = 0;
  int64_t n = 0;
};

StatusOr<GemmSizes> ComputeGemmSizes(const Dims& a, const Dims& b, const GemmAttrs& attrs) {
  if (a.size() != 2) {
    return InvalidArgumentError("input 'A' has shape " + ShapeStr(a) + " of rank " + std::to_string(a.size()) +
                                "; expected rank 2");
  }
  if (b.size() != 2) {
    return InvalidArgumentError("input 'B' has shape " + ShapeStr(b) + " of rank " + std::to_string(b.size()) +
                                "; expected rank 2");
  }
  GemmSizes sizes;
  sizes.m = attrs.trans_a ? a[1] : a[0];
  sizes.k = attrs.trans_a ? a[0] : a[1];
  const int64_t b_k = attrs.trans_b ? b[1] : b[0];
  sizes.n = attrs.trans_b ? b[0] : b[1];
  if (sizes.k != b_k) {
    return InvalidArgumentError("inner dimensions differ: input 'A' " + ShapeStr(a) +
                                " (attribute 'transA'=" + std::to_string(attrs.trans_a ? 1 : 0) +
                                ") has K=" + std::to_string(sizes.k) + " but input 'B' " + ShapeStr(b) +
                                " (attribute 'transB'=" + std::to_string(attrs.trans_b ? 1 : 0) +
                                ") has K=" + std::to_string(b_k));
  }
  return sizes;
}

// C viewed as rows x cols (rank 0 -> 1 x 1, rank 1 -> 1 x d0), or an error if it does not broadcast to m x n.
Status CheckGemmBias(const Dims& c, int64_t m, int64_t n) {
  const int64_t rows = c.size() == 2 ? c[0] : 1;
  const int64_t cols = c.empty() ? 1 : c.back();
  if (c.size() > 2 || (rows != 1 && rows != m) || (cols != 1 && cols != n)) {
    return InvalidArgumentError("input 'C' has shape " + ShapeStr(c) +
                                " which does not broadcast to the output [" + std::to_string(m) + "x" +
                                std::to_string(n) + "]");
  }
  return OkStatus();
}

// Numpy matmul operands promoted to rank >= 2 (1-D A -> 1 x K, 1-D B -> K x 1) and the output shape.
struct MatMulShapes {
  Dims a;      // promoted A
  Dims b;      // promoted B
  Dims batch;  // broadcast batch (leading) dims of the output
  Dims out;    // output dims (promoted axes dropped)
};

StatusOr<MatMulShapes> ComputeMatMulShapes(const Dims& a, const Dims& b) {
  auto check_rank = [](const Dims& dims, const char* name) -> Status {
    if (dims.empty()) {
      return InvalidArgumentError(std::string("input '") + name + "' is a scalar; MatMul needs rank >= 1");
    }
    if (dims.size() > static_cast<size_t>(kMaxBroadcastRank)) {
      return UnimplementedError(std::string("input '") + name + "' has shape " + ShapeStr(dims) +
                                "; ranks above " + std::to_string(kMaxBroadcastRank) + " are not supported");
    }
    return OkStatus();
  };
  CNN_RETURN_IF_ERROR(check_rank(a, "A"));
  CNN_RETURN_IF_ERROR(check_rank(b, "B"));
  MatMulShapes s;
  s.a = a.size() == 1 ? Dims{1, a[0]} : a;
  s.b = b.size() == 1 ? Dims{b[0], 1} : b;
  const int64_t k_a = s.a[s.a.size() - 1];
  const int64_t k_b = s.b[s.b.size() - 2];
  if (k_a != k_b) {
    return InvalidArgumentError("inner dimensions differ: input 'A' " + ShapeStr(a) +
                                " has K=" + std::to_string(k_a) + " but input 'B' " + ShapeStr(b) +
                                " has K=" + std::to_string(k_b));
  }
  const Dims a_batch(s.a.begin(), s.a.end() - 2);
  const Dims b_batch(s.b.begin(), s.b.end() - 2);
  CNN_ASSIGN_OR_RETURN(s.batch, BroadcastDims(a_batch, b_batch, "A", "B"));
  s.out = s.batch;
  if (a.size() > 1) s.out.push_back(s.a[s.a.size() - 2]);
  if (b.size() > 1) s.out.push_back(s.b.back());
  return s;
}

}  // namespace

Status InferGemm(Node& node, const InputDims& inputs, std::vector<Dims>* outputs) {
  CNN_RETURN_IF_ERROR(CheckInputs(inputs, 2, 3, {"A", "B", "C"}));
  CNN_RETURN_IF_ERROR(CheckSingleOutput(node));
  CNN_ASSIGN_OR_RETURN(GemmAttrs * attrs, MutableAttrs<GemmAttrs>(node, "Gemm"));
  CNN_ASSIGN_OR_RETURN(const GemmSizes sizes, ComputeGemmSizes(*inputs[0], *inputs[1], *attrs));
  if (inputs.size() > 2 && inputs[2].has_value()) CNN_RETURN_IF_ERROR(CheckGemmBias(*inputs[2], sizes.m, sizes.n));
  return SetSingleOutput({sizes.m, sizes.n}, outputs);
}

Status GemmReference(const KernelArgs& args) {
  CNN_RETURN_IF_ERROR(CheckKernelArgs(args, 2, "Gemm"));
  CNN_ASSIGN_OR_RETURN(const GemmAttrs* attrs, KernelAttrs<GemmAttrs>(args, "Gemm"));
  const Tensor& a = *args.inputs[0];
  const Tensor& b = *args.inputs[1];
  const Tensor* c = args.inputs.size() > 2 ? args.inputs[2] : nullptr;
  Tensor& y = *args.outputs[0];
  StatusOr<GemmSizes> sizes_or = ComputeGemmSizes(a.dims(), b.dims(), *attrs);
  if (!sizes_or.ok()) return FailedPreconditionError("Gemm kernel: " + sizes_or.status().message());
  const auto [m, k, n] = *sizes_or;
  if (y.rank() != 2 || y.dims()[0] != m || y.dims()[1] != n ||
      (c != nullptr && !CheckGemmBias(c->dims(), m, n).ok())) {
    return FailedPreconditionError("Gemm kernel: Y " + ShapeStr(y.dims()) + " or C does not fit A and B");
  }
  const int64_t a_rows = a.dims()[1];  // row length of A as stored
  const int64_t b_rows = b.dims()[1];
  const int64_t c_rows = c == nullptr || c->rank() < 2 ? 1 : c->dims()[0];
  const int64_t c_cols = c == nullptr || c->rank() == 0 ? 1 : c->dims().back();
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0.0;
      for (int64_t p = 0; p < k; ++p) {
        const double a_ip = attrs->trans_a ? a[p * a_rows + i] : a[i * a_rows + p];
        const double b_pj = attrs->trans_b ? b[j * b_rows + p] : b[p * b_rows + j];
        acc += a_ip * b_pj;
      }
      double value = static_cast<double>(attrs->alpha) * acc;
      if (c != nullptr) {
        const int64_t ci = c_rows == 1 ? 0 : i;
        const int64_t cj = c_cols == 1 ? 0 : j;
        value += static_cast<double>(attrs->beta) * (*c)[ci * c_cols + cj];
      }
      y[i * n + j] = static_cast<float>(value);
    }
  }
  return OkStatus();
}

Status InferMatMul(Node& node, const InputDims& inputs, std::vector<Dims>* outputs) {
  CNN_RETURN_IF_ERROR(CheckInputs(inputs, 2, 2, {"A", "B"}));
  CNN_RETURN_IF_ERROR(CheckSingleOutput(node));
  CNN_ASSIGN_OR_RETURN(MatMulShapes shapes, ComputeMatMulShapes(*inputs[0], *inputs[1]));
  return SetSingleOutput(std::move(shapes.out), outputs);
}

Status MatMulReference(const KernelArgs& args) {
  CNN_RETURN_IF_ERROR(CheckKernelArgs(args, 2, "MatMul"));
  const Tensor& a = *args.inputs[0];
  const Tensor& b = *args.inputs[1];
  Tensor& y = *args.outputs[0];
  const Dims& a_dims = a.dims();
  const Dims& b_dims = b.dims();
  const Dims& y_dims = y.dims();
  // Without allocating (this runs inside Plan::Run): a 1-D A is 1 x K, a 1-D B is K x 1.
  const size_t a_rank = a_dims.size();
  const size_t b_rank = b_dims.size();
  const int64_t m = a_rank >= 2 ? a_dims[a_rank - 2] : 1;
  const int64_t k = a_rank >= 1 ? a_dims[a_rank - 1] : 0;
  const int64_t b_k = b_rank >= 2 ? b_dims[b_rank - 2] : (b_rank == 1 ? b_dims[0] : 0);
  const int64_t n = b_rank >= 2 ? b_dims[b_rank - 1] : 1;
  const size_t a_batch_rank = a_rank >= 2 ? a_rank - 2 : 0;
  const size_t b_batch_rank = b_rank >= 2 ? b_rank - 2 : 0;
  const size_t dropped = (a_rank == 1 ? 1 : 0) + (b_rank == 1 ? 1 : 0);
  const size_t batch_rank = std::max(a_batch_rank, b_batch_rank);
  const std::span<const int64_t> a_batch(a_dims.data(), a_batch_rank);
  const std::span<const int64_t> b_batch(b_dims.data(), b_batch_rank);
  const std::span<const int64_t> batch(y_dims.data(), std::min(batch_rank, y_dims.size()));
  int64_t batch_count = 1;
  for (int64_t d : batch) batch_count *= d;
  if (a_rank == 0 || b_rank == 0 || k != b_k || batch_rank > static_cast<size_t>(kMaxBroadcastRank) ||
      y_dims.size() != batch_rank + 2 - dropped || !BroadcastsTo(a_batch, batch) ||
      !BroadcastsTo(b_batch, batch) || y.size() != batch_count * m * n) {
    return FailedPreconditionError("MatMul kernel: A " + ShapeStr(a_dims) + ", B " + ShapeStr(b_dims) + " and Y " +
                                   ShapeStr(y_dims) + " do not fit");
  }
  // Strides in units of whole matrices; 0 on broadcast axes.
  const auto a_strides = BroadcastStrides(a_batch, batch_rank);
  const auto b_strides = BroadcastStrides(b_batch, batch_rank);
  for (int64_t t = 0; t < batch_count; ++t) {
    int64_t a_matrix = 0;
    int64_t b_matrix = 0;
    int64_t rest = t;
    for (int64_t axis = static_cast<int64_t>(batch_rank) - 1; axis >= 0; --axis) {
      const int64_t coord = rest % batch[axis];
      rest /= batch[axis];
      a_matrix += coord * a_strides[axis];
      b_matrix += coord * b_strides[axis];
    }
    const float* a_data = a.data() + a_matrix * m * k;
    const float* b_data = b.data() + b_matrix * k * n;
    float* y_data = y.data() + t * m * n;
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        double acc = 0.0;
        for (int64_t p = 0; p < k; ++p) {
          acc += static_cast<double>(a_data[i * k + p]) * static_cast<double>(b_data[p * n + j]);
        }
        y_data[i * n + j] = static_cast<float>(acc);
      }
    }
  }
  return OkStatus();
}

}  // namespace cnnserve
