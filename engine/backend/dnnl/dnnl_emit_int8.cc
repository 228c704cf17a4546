// INT8 layers of a plan (Precision::kInt8): which tensors are stored in int8, the scales, and the int8
// convolution and inner product. Quantization is symmetric (zero point 0): an activation with calibrated range
// [lo, hi] is u8 with scale 255 / hi when lo >= 0, else s8 with scale 127 / max(|lo|, |hi|); weights are s8
// with one scale per output channel. oneDNN 2.x computes dst = output_scale[oc] * (acc + bias) then the
// post-ops, so the bias is given in the accumulator's units (bias x src_scale x weight_scale[oc]) and
// output_scale[oc] = dst_scale / (src_scale x weight_scale[oc]) takes the result straight to the next layer's
// int8 scale (or to fp32 with dst_scale 1). Convolutions are direct: oneDNN 2.6's int8 Winograd
// (jit_int8_wino:avx512_core_vnni) ran VGG-16 slower at every batch size measured (bench/RESULTS.md "Precision").
#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "engine/backend/dnnl/dnnl_plan_builder.h"

namespace cnnserve::dnnl_internal {
namespace {

// The bits of `f` in hex, so that a cache key tells apart every float.
std::string FloatKey(float f) {
  uint32_t bits = 0;
  std::memcpy(&bits, &f, sizeof(bits));
  char text[16];
  std::snprintf(text, sizeof(text), "%08x", bits);
  return text;
}

}  // namespace

std::optional<PlanBuilder::Quant> PlanBuilder::QuantOf(const std::string& value) const {
  const std::shared_ptr<const TensorRanges>& ranges = model_->options().ranges;
  if (ranges == nullptr) return std::nullopt;
  auto it = ranges->find(value);
  if (it == ranges->end() || !std::isfinite(it->second.min) || !std::isfinite(it->second.max)) return std::nullopt;
  const TensorRange& range = it->second;
  if (range.min >= 0.0f) return Quant{kU8, range.max > 0.0f ? 255.0f / range.max : 1.0f};
  const float largest = std::max(std::fabs(range.min), std::fabs(range.max));
  return Quant{kS8, 127.0f / largest};
}

bool PlanBuilder::Int8Consumers(const std::string& value) const {
  auto it = consumers_.find(value);
  if (it == consumers_.end() || it->second.empty()) return false;
  for (const LoweredOp* op : it->second) {
    switch (op->kind) {
      case LoweredKind::kConv:
      case LoweredKind::kFc:
        if (op->src != value || !QuantOf(value)) return false;  // it would compute in fp32
        break;
      case LoweredKind::kPool:
      case LoweredKind::kView:
      case LoweredKind::kAlias:
        if (fp32_values_.count(op->dst) > 0 || !Int8Consumers(op->dst)) return false;
        break;
      default:
        return false;
    }
  }
  return true;
}

std::optional<PlanBuilder::Quant> PlanBuilder::Int8Dst(const std::string& value) const {
  if (!int8_ || fp32_values_.count(value) > 0 || !Int8Consumers(value)) return std::nullopt;
  return QuantOf(value);
}

const std::vector<float>& PlanBuilder::WeightScales(const LoweredOp& op, int64_t out_channels) {
  return model_->Derived(op.name + "#weight-scales", [&] {
    const float* w = op.weights_data();
    const int64_t total = NumElements(op.weights_dims);
    const int64_t per_channel = total / out_channels;
    std::vector<float> largest(out_channels, 0.0f);
    // Conv [O, ...] and Fc [N, K] hold a channel's weights together; Fc stored as [K, N] interleaves them.
    // A mapped file's pages are dropped as they are read (the reorder reads them again, one slice at a time).
    constexpr int64_t kBlock = int64_t{4} << 20;
    for (int64_t begin = 0; begin < total; begin += kBlock) {
      const int64_t end = std::min(total, begin + kBlock);
      for (int64_t i = begin; i < end; ++i) {
        const int64_t oc = op.weights_kn ? i % out_channels : i / per_channel;
        largest[oc] = std::max(largest[oc], std::fabs(w[i]));
      }
      if (const Tensor* view = op.weights_view()) view->ReleasePages(begin, end);
    }
    std::vector<float> scales(out_channels);
    for (int64_t oc = 0; oc < out_channels; ++oc) scales[oc] = largest[oc] > 0.0f ? 127.0f / largest[oc] : 1.0f;
    return scales;
  });
}

dnnl::primitive_attr PlanBuilder::Int8Attr(const LoweredOp& op, const std::vector<float>& weight_scales,
                                           float src_scale, float dst_scale) {
  std::vector<float> output_scales(weight_scales.size());
  for (size_t oc = 0; oc < weight_scales.size(); ++oc) {
    output_scales[oc] = dst_scale / (src_scale * weight_scales[oc]);
  }
  dnnl::primitive_attr attr = FusedAttr(op.relu);
  attr.set_output_scales(1 << 1, output_scales);  // per channel of dst [N, C, ...]
  return attr;
}

const float* PlanBuilder::Int8Bias(const LoweredOp& op, const std::vector<float>& weight_scales, float src_scale) {
  if (op.bias.empty()) return nullptr;
  return model_
      ->Derived(op.name + "#bias@" + FloatKey(src_scale),
                [&] {
                  std::vector<float> bias(op.bias.size());
                  for (size_t oc = 0; oc < bias.size(); ++oc) {
                    bias[oc] = op.bias[oc] * src_scale * weight_scales[oc];
                  }
                  return bias;
                })
      .data();
}

StatusOr<std::vector<Md>> PlanBuilder::Int8SourceCandidates(const std::string& value, const Dims& dims,
                                                            Quant& quant) {
  CNN_ASSIGN_OR_RETURN(MemRef current, Get(value));
  std::vector<Md> candidates;
  if (IsInt8(current.md)) {
    quant = Quant{current.md.data_type(), current.scale};
    candidates.push_back(current.md);
  }
  candidates.push_back(AnyMd(dims, quant.type));
  return candidates;
}

StatusOr<PlanBuilder::MemRef> PlanBuilder::AddInt8Step(const LoweredOp& op, const dnnl::primitive_desc_base& pd,
                                                       const MemRef& src, const Md& weights_md, const Md& dst_md,
                                                       const std::vector<float>& weight_scales,
                                                       const Int8Operands& operands) {
  if (src.scale != operands.src_scale) return InternalError("node '" + op.name + "': int8 source scale changed");
  const memory weights =
      model_->QuantizedWeights(op.name + "#s8", operands.user_weights, op.weights_data(), weights_md,
                               weight_scales, operands.weights_scale_mask, op.weights_view());
  std::vector<std::pair<int, MemRef>> args = {
      {DNNL_ARG_SRC, src},
      {DNNL_ARG_WEIGHTS, MemRef{NewBuffer(BufKind::kConst, 0, weights.get_data_handle()), weights_md}}};
  if (const float* bias = Int8Bias(op, weight_scales, src.scale)) {
    const Dims bias_dims =
        operands.bias_dims.empty() ? Dims{static_cast<int64_t>(weight_scales.size())} : operands.bias_dims;
    args.push_back({DNNL_ARG_BIAS, Constant(bias, PlainMd(bias_dims))});
  }
  MemRef dst = NewActivation(dst_md);
  dst.scale = operands.dst_scale;
  args.push_back({DNNL_ARG_DST, dst});
  AddStep(op.name, pd, std::move(args));
  return dst;
}

StatusOr<bool> PlanBuilder::EmitConvInt8(const LoweredOp& op, const ConvShape& shape) {
  std::optional<Quant> src_quant = QuantOf(op.src);
  if (!src_quant) return false;
  const Dims& src_dims = DimsOf(op.src);
  const Dims& dst_dims = shapes_.at(op.dst);
  CNN_ASSIGN_OR_RETURN(const std::vector<Md> src_candidates, Int8SourceCandidates(op.src, src_dims, *src_quant));
  const std::optional<Quant> dst_quant = Int8Dst(op.dst);
  const memory::data_type dst_type = dst_quant ? dst_quant->type : kF32;
  const float dst_scale = dst_quant ? dst_quant->scale : 1.0f;
  const int64_t out_channels = op.weights_dims[0];
  const std::vector<float>& weight_scales = WeightScales(op, out_channels);
  const dnnl::primitive_attr attr = Int8Attr(op, weight_scales, src_quant->scale, dst_scale);
  const Md bias_md = PlainMd({out_channels});
  std::vector<Md> weights_candidates;
  if (auto preferred = model_->PreferredWeights(op.name + "#s8")) weights_candidates.push_back(*preferred);
  weights_candidates.push_back(AnyMd(shape.weights_dims, kS8));
  std::optional<dnnl::convolution_forward::primitive_desc> chosen;
  for (size_t s = 0; s < src_candidates.size() && !chosen; ++s) {
    for (size_t w = 0; w < weights_candidates.size() && !chosen; ++w) {
      auto pd = TryCreate([&] {
        const Md dst_md = AnyMd(dst_dims, dst_type);
        const auto desc =
            op.bias.empty()
                ? dnnl::convolution_forward::desc(kInference, dnnl::algorithm::convolution_direct,
                                                  src_candidates[s], weights_candidates[w], dst_md, shape.strides,
                                                  shape.dilates, shape.pad_l, shape.pad_r)
                : dnnl::convolution_forward::desc(kInference, dnnl::algorithm::convolution_direct,
                                                  src_candidates[s], weights_candidates[w], bias_md, dst_md,
                                                  shape.strides, shape.dilates, shape.pad_l, shape.pad_r);
        return dnnl::convolution_forward::primitive_desc(desc, attr, engine_);
      });
      if (pd && !IsReference(*pd)) chosen = std::move(pd);
    }
  }
  if (!chosen) return false;  // no int8 kernel but the reference one: this layer stays fp32
  const dnnl::convolution_forward::primitive_desc& pd = *chosen;
  const int weights_scale_mask = shape.groups > 1 ? (1 << 0) | (1 << 1) : 1 << 0;
  const Int8Operands operands{op.src, src_quant->scale, PlainMd(shape.weights_dims), weights_scale_mask, dst_scale,
                              {}};
  CNN_ASSIGN_OR_RETURN(const MemRef src, GetAs(op.src, pd.src_desc()));
  CNN_ASSIGN_OR_RETURN(const MemRef dst,
                       AddInt8Step(op, pd, src, pd.weights_desc(), pd.dst_desc(), weight_scales, operands));
  Define(op.dst, dst);
  return true;
}

StatusOr<bool> PlanBuilder::EmitFcInt8(const LoweredOp& op, const FcOperands& operands, int64_t n) {
  // An N-D MatMul input bound in its plain layout (FcSourceCandidates) stays fp32.
  if (operands.src_value == op.src && DimsOf(op.src).size() != 2) return false;
  // Both the input as the graph names it (a Flatten's output) and the N-D value it is read from need a range.
  std::optional<Quant> src_quant = QuantOf(operands.src_value);
  if (!src_quant || !QuantOf(op.src)) return false;
  CNN_ASSIGN_OR_RETURN(const std::vector<Md> src_candidates,
                       Int8SourceCandidates(operands.src_value, operands.src_dims, *src_quant));
  CNN_ASSIGN_OR_RETURN(const bool as_matmul, EmitFcInt8AsMatmul(op, operands, n, *src_quant));
  if (as_matmul) return true;
  const std::optional<Quant> dst_quant = Int8Dst(op.dst);
  const memory::data_type dst_type = dst_quant ? dst_quant->type : kF32;
  const float dst_scale = dst_quant ? dst_quant->scale : 1.0f;
  const std::vector<float>& weight_scales = WeightScales(op, n);
  const dnnl::primitive_attr attr = Int8Attr(op, weight_scales, src_quant->scale, dst_scale);
  const Md bias_md = PlainMd({n});
  const Dims dst_dims = {operands.src_dims[0], n};
  std::vector<Md> weights_candidates;
  if (auto preferred = model_->PreferredWeights(op.name + "#s8")) weights_candidates.push_back(*preferred);
  weights_candidates.push_back(AnyMd(operands.weights_dims, kS8));
  std::optional<dnnl::inner_product_forward::primitive_desc> chosen;
  for (size_t w = 0; w < weights_candidates.size() && !chosen; ++w) {
    for (size_t s = 0; s < src_candidates.size() && !chosen; ++s) {
      auto pd = TryCreate([&] {
        const Md dst_md = AnyMd(dst_dims, dst_type);
        const auto desc =
            op.bias.empty()
                ? dnnl::inner_product_forward::desc(kInference, src_candidates[s], weights_candidates[w], dst_md)
                : dnnl::inner_product_forward::desc(kInference, src_candidates[s], weights_candidates[w], bias_md,
                                                    dst_md);
        return dnnl::inner_product_forward::primitive_desc(desc, attr, engine_);
      });
      if (pd && !IsReference(*pd)) chosen = std::move(pd);
    }
  }
  if (!chosen) return false;
  const dnnl::inner_product_forward::primitive_desc& pd = *chosen;
  const Int8Operands int8{operands.src_value, src_quant->scale, operands.user_weights, 1 << 0, dst_scale, {}};
  CNN_ASSIGN_OR_RETURN(const MemRef src, GetAs(operands.src_value, pd.src_desc()));
  CNN_ASSIGN_OR_RETURN(const MemRef dst,
                       AddInt8Step(op, pd, src, pd.weights_desc(), pd.dst_desc(), weight_scales, int8));
  CNN_RETURN_IF_ERROR(DefineFcOutput(op, dst));
  return true;
}

// oneDNN 2.6 runs an int8 inner product with gemm_s8u8s32, which packs its weights again on every call; its
// brgemm matmul packs the s8 weights once (VGG-16 fc6, K 25,088, in a plan: batch 8 2.65 ms against 6.11, batch
// 32 7.5 against 12.2, batch 1 1.97 against 1.93; bench/RESULTS.md "INT8 FC layers as matmuls"). So an int8 FC
// is a matmul [M, K] x [K, N]: the source is its value's plain layout viewed as [M, K] (K in the graph's order, a
// reorder of a few KB after an NHWC pooling), the weights the graph's viewed as [K, N] (quantized in slices of N
// when W is [N, K]).
StatusOr<bool> PlanBuilder::EmitFcInt8AsMatmul(const LoweredOp& op, const FcOperands& operands, int64_t n,
                                               const Quant& src_quant) {
  const int64_t m = operands.src_dims[0];
  const int64_t k = NumElements(operands.src_dims) / m;
  const std::optional<Quant> dst_quant = Int8Dst(op.dst);
  const float dst_scale = dst_quant ? dst_quant->scale : 1.0f;
  const std::vector<float>& weight_scales = WeightScales(op, n);
  const dnnl::primitive_attr attr = Int8Attr(op, weight_scales, src_quant.scale, dst_scale);
  const Md src_md = PlainMd({m, k}, src_quant.type);
  const Md dst_md = PlainMd({m, n}, dst_quant ? dst_quant->type : kF32);
  const Md user_weights = op.weights_kn ? PlainMd({k, n}) : Md({k, n}, kF32, memory::dims{1, k});
  std::vector<Md> weights_candidates;
  if (auto preferred = model_->PreferredWeights(op.name + "#s8")) weights_candidates.push_back(*preferred);
  weights_candidates.push_back(AnyMd({k, n}, kS8));
  std::optional<dnnl::matmul::primitive_desc> chosen;
  for (size_t w = 0; w < weights_candidates.size() && !chosen; ++w) {
    auto pd = TryCreate([&] {
      const auto desc = op.bias.empty()
                            ? dnnl::matmul::desc(src_md, weights_candidates[w], dst_md)
                            : dnnl::matmul::desc(src_md, weights_candidates[w], PlainMd({1, n}), dst_md);
      return dnnl::matmul::primitive_desc(desc, attr, engine_);
    });
    if (pd && !IsReference(*pd)) chosen = std::move(pd);
  }
  if (!chosen) return false;
  const dnnl::matmul::primitive_desc& pd = *chosen;
  CNN_ASSIGN_OR_RETURN(const MemRef plain, GetAs(operands.src_value, PlainMd(operands.src_dims, src_quant.type)));
  const MemRef src{plain.buffer, src_md, plain.scale};
  const Int8Operands int8{operands.src_value, src_quant.scale, user_weights, 1 << 1, dst_scale, {1, n}};
  CNN_ASSIGN_OR_RETURN(const MemRef dst, AddInt8Step(op, pd, src, pd.weights_desc(), dst_md, weight_scales, int8));
  CNN_RETURN_IF_ERROR(DefineFcOutput(op, dst));
  return true;
}

Status PlanBuilder::DefineFcOutput(const LoweredOp& op, const MemRef& dst) {
  if (shapes_.at(op.dst).size() == 2) {
    Define(op.dst, dst);
    return OkStatus();
  }
  return DefinePlain(op.dst, dst, op.name);
}

}  // namespace cnnserve::dnnl_internal
