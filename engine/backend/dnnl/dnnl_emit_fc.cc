#include <algorithm>
#include <optional>
#include <vector>

#include "engine/backend/dnnl/dnnl_plan_builder.h"

namespace cnnserve::dnnl_internal {

StatusOr<PlanBuilder::FcOperands> PlanBuilder::FcOperandsOf(const LoweredOp& op, int64_t n, int64_t k) {
  CNN_ASSIGN_OR_RETURN(ValueInfo * a, Value(op.src));
  const std::string flat_of = a->flat_of;
  FcOperands operands;
  operands.src_value = op.src;
  if (!flat_of.empty() && NumElements(DimsOf(flat_of)) / DimsOf(flat_of)[0] == k) {
    operands.src_value = flat_of;
    operands.src_dims = DimsOf(flat_of);
    Dims weights_dims = operands.src_dims;
    weights_dims[0] = n;
    if (op.weights_kn) {
      // B is [K, N] with K = (c, spatial...) row-major: o has stride 1, the rest are strided by N.
      memory::dims strides(weights_dims.size());
      strides[0] = 1;
      int64_t stride = n;
      for (size_t i = weights_dims.size(); i-- > 1;) {
        strides[i] = stride;
        stride *= weights_dims[i];
      }
      operands.user_weights = Md(weights_dims, kF32, strides);
    } else {
      operands.user_weights = PlainMd(weights_dims);
    }
  } else {
    operands.src_dims = {NumElements(a->dims) / k, k};
    operands.user_weights = op.weights_kn ? Md({n, k}, kF32, Tag::ba) : PlainMd({n, k});
  }
  operands.weights_dims = operands.src_dims;
  operands.weights_dims[0] = n;
  return operands;
}

// Source layouts, best first: the source's current layout (no reorder), then plain, then oneDNN's choice (an
// activation reorder is cheap next to a copy of the weights). An N-D MatMul input is instead bound right away
// (`bound`) as its plain layout viewed as [M, K].
StatusOr<std::vector<Md>> PlanBuilder::FcSourceCandidates(const LoweredOp& op, const FcOperands& operands,
                                                          MemRef& bound) {
  std::vector<Md> candidates;
  if (operands.src_value == op.src && DimsOf(op.src).size() != 2) {
    CNN_ASSIGN_OR_RETURN(MemRef plain, GetPlain(op.src));
    bound = MemRef{plain.buffer, PlainMd(operands.src_dims)};
    candidates.push_back(bound.md);
    return candidates;
  }
  CNN_ASSIGN_OR_RETURN(MemRef current, Get(operands.src_value));
  if (current.md.data.format_kind == dnnl_blocked) candidates.push_back(current.md);
  const Md plain = PlainMd(operands.src_dims, compute_type_);
  if (!(current.md == plain)) candidates.push_back(plain);
  candidates.push_back(AnyMd(operands.src_dims, compute_type_));
  return candidates;
}

// Weight layouts, best first. Below fc_blocked_weights_min_batch the FC is bound by reading its weights and the
// graph's own plain buffer is as fast (no copy: FC weights are most of a VGG/AlexNet's bytes), then the layout
// other plans prepared, then oneDNN's choice. From there on oneDNN's blocked layout is much faster (AlexNet
// batch 32: +33%) at the price of a blocked copy of the FC weights, made once and shared by every plan of that
// size class: the blocked layout another plan prepared, oneDNN's choice, then plain.
std::vector<Md> PlanBuilder::FcWeightCandidates(const LoweredOp& op, const FcOperands& operands) {
  std::vector<Md> candidates;
  if (batch_ >= model_->options().fc_blocked_weights_min_batch) {
    if (auto blocked = model_->PreferredWeights(op.name, &operands.user_weights)) candidates.push_back(*blocked);
    candidates.push_back(AnyMd(operands.weights_dims, compute_type_));
    if (compute_type_ == kF32) candidates.push_back(operands.user_weights);
  } else {
    // Below fp32 the graph's buffer is of the wrong type: the weights are converted once (and read at half
    // the bytes per image).
    if (compute_type_ == kF32) candidates.push_back(operands.user_weights);
    if (auto prepared = model_->PreferredWeights(op.name)) candidates.push_back(*prepared);
    candidates.push_back(AnyMd(operands.weights_dims, compute_type_));
  }
  return candidates;
}

Status PlanBuilder::EmitFc(const LoweredOp& op) {
  const int64_t n = op.weights_kn ? op.weights_dims[1] : op.weights_dims[0];
  const int64_t k = op.weights_kn ? op.weights_dims[0] : op.weights_dims[1];
  const Md bias_md = PlainMd({n});
  CNN_ASSIGN_OR_RETURN(const FcOperands operands, FcOperandsOf(op, n, k));
  if (int8_) {
    CNN_ASSIGN_OR_RETURN(const bool emitted, EmitFcInt8(op, operands, n));
    if (emitted) return OkStatus();
  }
  const Dims dst_dims = {operands.src_dims[0], n};
  const auto make_pd = [&](const Md& src_md, const Md& weights_md) {
    if (op.bias.empty()) {
      return dnnl::inner_product_forward::primitive_desc(
          dnnl::inner_product_forward::desc(kInference, src_md, weights_md, AnyMd(dst_dims, DstType(op.dst))),
          FusedAttr(op.relu), engine_);
    }
    return dnnl::inner_product_forward::primitive_desc(
        dnnl::inner_product_forward::desc(kInference, src_md, weights_md, bias_md,
                                          AnyMd(dst_dims, DstType(op.dst))),
        FusedAttr(op.relu), engine_);
  };
  MemRef src;
  CNN_ASSIGN_OR_RETURN(const std::vector<Md> src_candidates, FcSourceCandidates(op, operands, src));
  const std::vector<Md> weights_candidates = FcWeightCandidates(op, operands);
  // The first non-reference implementation in the order weights x sources; the last pair in any case.
  std::optional<dnnl::inner_product_forward::primitive_desc> chosen;
  for (size_t w = 0; w < weights_candidates.size() && !chosen; ++w) {
    for (size_t s = 0; s < src_candidates.size() && !chosen; ++s) {
      auto pd = TryCreate([&] { return make_pd(src_candidates[s], weights_candidates[w]); });
      const bool last_resort = s + 1 == src_candidates.size() && w + 1 == weights_candidates.size();
      if (pd && (last_resort || !IsReference(*pd))) chosen = std::move(pd);
    }
  }
  if (!chosen) chosen = make_pd(src_candidates.back(), weights_candidates.back());
  const dnnl::inner_product_forward::primitive_desc& pd = *chosen;
  if (src.buffer < 0) {
    CNN_ASSIGN_OR_RETURN(src, GetAs(operands.src_value, pd.src_desc()));
  }
  std::vector<std::pair<int, MemRef>> args = {
      {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, Weights(op, operands.user_weights, pd.weights_desc())}};
  if (!op.bias.empty()) args.push_back({DNNL_ARG_BIAS, Constant(op.bias.data(), bias_md)});
  const MemRef dst = NewActivation(pd.dst_desc());
  args.push_back({DNNL_ARG_DST, dst});
  AddStep(op.name, pd, std::move(args));
  return DefineFcOutput(op, dst);
}

Status PlanBuilder::EmitMatMul(const LoweredOp& op) {
  const Node& node = *op.node;
  const bool gemm = node.type == OpType::kGemm;
  const std::string& a_name = node.inputs[0];
  const std::string& b_name = node.inputs[1];
  const Dims a_dims = DimsOf(a_name);
  const Dims b_dims = op.weights != nullptr ? op.weights_dims : DimsOf(b_name);
  Md a_md, b_md;
  Dims dst_dims;
  if (gemm) {
    const int64_t m = op.trans_a ? a_dims[1] : a_dims[0];
    const int64_t k = op.trans_a ? a_dims[0] : a_dims[1];
    const int64_t n = op.trans_b ? b_dims[0] : b_dims[1];
    a_md = op.trans_a ? Md({m, k}, kF32, memory::dims{1, m}) : PlainMd({m, k});
    b_md = op.trans_b ? Md({k, n}, kF32, memory::dims{1, k}) : PlainMd({k, n});
    dst_dims = {m, n};
  } else {
    Dims pa = a_dims.size() == 1 ? Dims{1, a_dims[0]} : a_dims;
    Dims pb = b_dims.size() == 1 ? Dims{b_dims[0], 1} : b_dims;
    const size_t rank = std::max(pa.size(), pb.size());
    pa.insert(pa.begin(), rank - pa.size(), 1);
    pb.insert(pb.begin(), rank - pb.size(), 1);
    dst_dims.resize(rank);
    for (size_t i = 0; i + 2 < rank; ++i) dst_dims[i] = std::max(pa[i], pb[i]);
    dst_dims[rank - 2] = pa[rank - 2];
    dst_dims[rank - 1] = pb[rank - 1];
    a_md = PlainMd(pa);
    b_md = PlainMd(pb);
  }
  CNN_ASSIGN_OR_RETURN(MemRef a_plain, GetPlain(a_name));
  const MemRef src{a_plain.buffer, a_md};
  const bool has_c = !op.c_const.empty() || !op.c_value.empty();
  dnnl::primitive_attr attr = FusedAttr(op.relu && !has_c);
  if (op.alpha != 1.0f) attr.set_output_scales(0, {op.alpha});
  const bool const_b = op.weights != nullptr;
  std::optional<dnnl::matmul::primitive_desc> chosen;
  if (const_b) {
    // As for inner products: weights already prepared by another plan, else the graph's buffer as it is.
    std::vector<Md> weights_candidates;
    if (auto preferred = model_->PreferredWeights(op.name)) weights_candidates.push_back(*preferred);
    weights_candidates.push_back(b_md);
    for (size_t w = 0; w < weights_candidates.size() && !chosen; ++w) {
      auto pd = TryCreate([&] {
        return dnnl::matmul::primitive_desc(dnnl::matmul::desc(a_md, weights_candidates[w], PlainMd(dst_dims)),
                                            attr, engine_);
      });
      if (pd && !IsReference(*pd)) chosen = std::move(pd);
    }
  }
  if (!chosen) {
    chosen = dnnl::matmul::primitive_desc(
        dnnl::matmul::desc(a_md, const_b ? AnyMd(b_md.dims()) : b_md, PlainMd(dst_dims)), attr, engine_);
  }
  const dnnl::matmul::primitive_desc& pd = *chosen;
  MemRef weights;
  if (const_b) {
    weights = Weights(op, b_md, pd.weights_desc());
  } else {
    CNN_ASSIGN_OR_RETURN(MemRef b_plain, GetPlain(b_name));
    weights = MemRef{b_plain.buffer, b_md};
  }
  MemRef dst = NewActivation(pd.dst_desc());
  AddStep(op.name, pd, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst}});
  if (has_c) {
    Dims c_dims = op.c_dims.empty() ? Dims{1} : op.c_dims;
    c_dims.insert(c_dims.begin(), dst_dims.size() - c_dims.size(), 1);
    MemRef c;
    if (!op.c_const.empty()) {
      c = Constant(op.c_const.data(), PlainMd(c_dims));
    } else {
      CNN_ASSIGN_OR_RETURN(MemRef c_plain, GetPlain(op.c_value));
      c = MemRef{c_plain.buffer, PlainMd(c_dims)};
    }
    const dnnl::binary::primitive_desc add_pd(
        dnnl::binary::desc(dnnl::algorithm::binary_add, dst.md, c.md, dst.md), FusedAttr(op.relu), engine_);
    const MemRef sum = NewActivation(dst.md);
    AddStep(op.name + " (C)", add_pd, {{DNNL_ARG_SRC_0, dst}, {DNNL_ARG_SRC_1, c}, {DNNL_ARG_DST, sum}});
    dst = sum;
  }
  return DefinePlain(op.dst, dst, op.name);
}

}  // namespace cnnserve::dnnl_internal
