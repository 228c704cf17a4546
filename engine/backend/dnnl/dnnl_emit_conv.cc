#include <optional>
#include <vector>

#include "engine/backend/dnnl/dnnl_plan_builder.h"

namespace cnnserve::dnnl_internal {
namespace {

// Reference and im2col+GEMM convolutions: worth a reorder to get a direct JIT kernel instead.
bool IsSlowConvolution(const dnnl::primitive_desc_base& pd) {
  const std::string impl = pd.impl_info_str();
  return impl.find("ref") != std::string::npos || impl.rfind("gemm", 0) == 0;
}

// The algorithm to try first for a Winograd-eligible convolution producing `dst_pixels` (minibatch x output
// pixels) under `policy`, or nullopt for direct.
std::optional<dnnl::algorithm> WinogradAlgorithm(WinogradPolicy policy, int64_t dst_pixels) {
  switch (policy) {
    case WinogradPolicy::kHeuristic:
      if (dst_pixels < kWinogradMinPixels) return std::nullopt;
      return dnnl::algorithm::convolution_winograd;
    case WinogradPolicy::kLibraryAuto:
      return dnnl::algorithm::convolution_auto;
    case WinogradPolicy::kAlways:
      return dnnl::algorithm::convolution_winograd;
  }
  return std::nullopt;
}

}  // namespace

PlanBuilder::ConvShape PlanBuilder::ConvShapeOf(const LoweredOp& op, size_t spatial) const {
  const auto& attrs = std::get<ConvAttrs>(op.node->attrs);
  ConvShape shape;
  shape.strides.assign(spatial, 1);
  shape.dilates.assign(spatial, 0);
  shape.pad_l.assign(spatial, 0);
  shape.pad_r.assign(spatial, 0);
  for (size_t i = 0; i < spatial; ++i) {
    if (i < attrs.strides.size()) shape.strides[i] = attrs.strides[i];
    if (i < attrs.dilations.size()) shape.dilates[i] = attrs.dilations[i] - 1;
    if (attrs.pads.size() == 2 * spatial) {
      shape.pad_l[i] = attrs.pads[i];
      shape.pad_r[i] = attrs.pads[spatial + i];
    }
  }
  shape.groups = attrs.group;
  shape.weights_dims = op.weights_dims;
  if (shape.groups > 1) {
    shape.weights_dims.insert(shape.weights_dims.begin(), shape.groups);
    shape.weights_dims[1] /= shape.groups;
  }
  return shape;
}

Status PlanBuilder::EmitConv(const LoweredOp& op) {
  const Dims& src_dims = DimsOf(op.src);
  const Dims& dst_dims = shapes_.at(op.dst);
  const size_t spatial = src_dims.size() - 2;
  const ConvShape shape = ConvShapeOf(op, spatial);
  if (int8_) {
    CNN_ASSIGN_OR_RETURN(const bool emitted, EmitConvInt8(op, shape));
    if (emitted) return OkStatus();
  }
  const memory::dims& strides = shape.strides;
  const memory::dims& dilates = shape.dilates;
  const memory::dims& pad_l = shape.pad_l;
  const memory::dims& pad_r = shape.pad_r;
  const int64_t groups = shape.groups;
  const Dims& weights_dims = shape.weights_dims;
  const Md user_weights = PlainMd(weights_dims);
  const Md bias_md = PlainMd({op.weights_dims[0]});
  // oneDNN 2.6 has no bf16 Winograd (DESIGN.md section 6): direct only below fp32.
  bool winograd_eligible = model_->options().allow_winograd && compute_type_ == kF32 && groups == 1 &&
                           spatial == 2 && op.weights_dims[0] % 16 == 0 && op.weights_dims[1] % 16 == 0;
  for (size_t i = 0; i < spatial; ++i) {
    winograd_eligible = winograd_eligible && op.weights_dims[2 + i] == 3 && strides[i] == 1 && dilates[i] == 0;
  }
  const auto make_pd = [&](const Md& src_md, const Md& weights_md, dnnl::algorithm algorithm) {
    if (op.bias.empty()) {
      return dnnl::convolution_forward::primitive_desc(
          dnnl::convolution_forward::desc(kInference, algorithm, src_md, weights_md,
                                          AnyMd(dst_dims, DstType(op.dst)), strides, dilates, pad_l, pad_r),
          FusedAttr(op.relu), engine_);
    }
    return dnnl::convolution_forward::primitive_desc(
        dnnl::convolution_forward::desc(kInference, algorithm, src_md, weights_md, bias_md,
                                        AnyMd(dst_dims, DstType(op.dst)), strides, dilates, pad_l, pad_r),
        FusedAttr(op.relu), engine_);
  };
  // Candidates, best first: keep the layout the source already has (no reorder) when a fast kernel takes
  // it; reuse the weight layout another plan already prepared (shared weights); else oneDNN's choice.
  CNN_ASSIGN_OR_RETURN(MemRef current, Get(op.src));
  const bool internal_src = buffers_[current.buffer].kind == BufKind::kSlot;
  std::vector<Md> src_candidates;
  if (internal_src) src_candidates.push_back(current.md);
  // A one-channel image straight from the input (LeNet-5): the plain NCHW source picks the first-layer direct
  // kernel (blocked output) instead of oneDNN's own choice, NHWC brgconv: the layer takes 0.20 instead of 0.29 ms
  // and the whole LeNet-5 runs 12% (batch 1) and 19% (batch 32) faster on 1 thread. With 3 channels (AlexNet,
  // VGG) it is no faster, so it is not tried there.
  if (!internal_src && src_dims[1] == 1 && compute_type_ == kF32) src_candidates.push_back(current.md);
  src_candidates.push_back(AnyMd(src_dims, compute_type_));
  std::vector<Md> weights_candidates;
  if (auto preferred = model_->PreferredWeights(op.name)) weights_candidates.push_back(*preferred);
  weights_candidates.push_back(AnyMd(weights_dims, compute_type_));
  std::vector<dnnl::algorithm> algorithms;
  if (winograd_eligible) {
    if (auto winograd = WinogradAlgorithm(model_->options().winograd_policy, NumElements(dst_dims) / dst_dims[1]))
      algorithms.push_back(*winograd);
  }
  algorithms.push_back(dnnl::algorithm::convolution_direct);
  std::optional<dnnl::convolution_forward::primitive_desc> chosen;
  for (size_t a = 0; a < algorithms.size() && !chosen; ++a) {
    for (size_t s = 0; s < src_candidates.size() && !chosen; ++s) {
      for (size_t w = 0; w < weights_candidates.size() && !chosen; ++w) {
        auto pd = TryCreate([&] { return make_pd(src_candidates[s], weights_candidates[w], algorithms[a]); });
        const bool last_resort = s + 1 == src_candidates.size() && w + 1 == weights_candidates.size();
        if (pd && (last_resort || !IsSlowConvolution(*pd))) chosen = std::move(pd);
      }
    }
  }
  if (!chosen) {
    chosen = make_pd(AnyMd(src_dims, compute_type_), AnyMd(weights_dims, compute_type_),
                     dnnl::algorithm::convolution_direct);
  }
  const dnnl::convolution_forward::primitive_desc& pd = *chosen;

  CNN_ASSIGN_OR_RETURN(MemRef src, GetAs(op.src, pd.src_desc()));
  std::vector<std::pair<int, MemRef>> args = {{DNNL_ARG_SRC, src},
                                              {DNNL_ARG_WEIGHTS, Weights(op, user_weights, pd.weights_desc())}};
  if (!op.bias.empty()) args.push_back({DNNL_ARG_BIAS, Constant(op.bias.data(), bias_md)});
  const MemRef dst = NewActivation(pd.dst_desc());
  args.push_back({DNNL_ARG_DST, dst});
  AddStep(op.name, pd, std::move(args));
  Define(op.dst, dst);
  return OkStatus();
}

}  // namespace cnnserve::dnnl_internal
