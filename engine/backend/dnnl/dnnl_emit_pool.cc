#include <string>

#include "engine/backend/dnnl/dnnl_plan_builder.h"

namespace cnnserve::dnnl_internal {

Status PlanBuilder::EmitPool(const LoweredOp& op) {
  const Node& node = *op.node;
  const Dims src_dims = DimsOf(op.src);
  const Dims& dst_dims = shapes_.at(op.dst);
  const size_t spatial = src_dims.size() - 2;
  memory::dims kernel(spatial), strides(spatial, 1), dilates(spatial, 0), pad_l(spatial, 0), pad_r(spatial, 0);
  dnnl::algorithm algorithm = dnnl::algorithm::pooling_avg_exclude_padding;
  if (node.type == OpType::kGlobalAveragePool) {
    for (size_t i = 0; i < spatial; ++i) kernel[i] = src_dims[2 + i];
  } else {
    const auto& attrs = std::get<PoolAttrs>(node.attrs);
    if (attrs.kernel_shape.size() != spatial) {
      return InvalidArgumentError("node '" + op.name + "': kernel_shape has " +
                                  std::to_string(attrs.kernel_shape.size()) + " entries for " +
                                  std::to_string(spatial) + " spatial axes");
    }
    for (size_t i = 0; i < spatial; ++i) {
      kernel[i] = attrs.kernel_shape[i];
      if (i < attrs.strides.size()) strides[i] = attrs.strides[i];
      if (node.type == OpType::kMaxPool && i < attrs.dilations.size()) dilates[i] = attrs.dilations[i] - 1;
      if (attrs.pads.size() == 2 * spatial) {
        pad_l[i] = attrs.pads[i];
        pad_r[i] = attrs.pads[spatial + i];
      }
    }
    if (node.type == OpType::kMaxPool) {
      algorithm = dnnl::algorithm::pooling_max;
    } else if (attrs.count_include_pad) {
      algorithm = dnnl::algorithm::pooling_avg_include_padding;
    }
  }
  // ceil_mode: grow the right padding until oneDNN's (floor) output size matches the inferred one.
  memory::dims pad_r_eff = pad_r;
  bool overhang = false;
  for (size_t i = 0; i < spatial; ++i) {
    const int64_t extent = (kernel[i] - 1) * (dilates[i] + 1) + 1;
    const int64_t in = src_dims[2 + i];
    const int64_t out = dst_dims[2 + i];
    if ((in + pad_l[i] + pad_r[i] - extent) / strides[i] + 1 != out) {
      pad_r_eff[i] = (out - 1) * strides[i] + extent - in - pad_l[i];
      if (pad_r_eff[i] < 0) return InternalError("node '" + op.name + "': inconsistent pooling output size");
      overhang = overhang || pad_r_eff[i] > pad_r[i];
    }
  }
  CNN_ASSIGN_OR_RETURN(MemRef src, Get(op.src));
  // An int8 source stays int8 (same scale) when what reads the result takes int8; else it is pooled in fp32.
  if (IsInt8(src.md) && (fp32_values_.count(op.dst) > 0 || !Int8Consumers(op.dst))) {
    CNN_ASSIGN_OR_RETURN(src, GetPlain(op.src));
  }
  if (algorithm == dnnl::algorithm::pooling_avg_include_padding && overhang) {
    // oneDNN divides by the whole kernel, but the ceil_mode overhang beyond the explicit pads must not count:
    // copy the input into a zero-bordered buffer (the explicit pads become real zeros) and average with
    // exclude_padding over the overhang only.
    Dims padded = src_dims;
    memory::dims offsets(src_dims.size(), 0);
    for (size_t i = 0; i < spatial; ++i) {
      padded[2 + i] += pad_l[i] + pad_r[i];
      offsets[2 + i] = pad_l[i];
      pad_r_eff[i] -= pad_r[i];
      pad_l[i] = 0;
    }
    const Md padded_md = PlainMd(padded, src.md.data_type());
    const int buffer = NewBuffer(BufKind::kZeroed, padded_md.get_size());
    const MemRef interior{buffer, padded_md.submemory_desc(src_dims, offsets)};
    const dnnl::reorder::primitive_desc copy_pd(engine_, src.md, engine_, interior.md, ScratchpadAttr());
    AddStep(op.name + " (pad)", copy_pd, {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, interior}});
    src = MemRef{buffer, padded_md, src.scale};
    algorithm = dnnl::algorithm::pooling_avg_exclude_padding;
  }
  const dnnl::pooling_v2_forward::primitive_desc pd(
      dnnl::pooling_v2_forward::desc(kInference, algorithm, src.md, AnyMd(dst_dims, src.md.data_type()), strides,
                                     kernel, dilates, pad_l, pad_r_eff),
      ScratchpadAttr(), engine_);
  if (!(pd.src_desc() == src.md))
    return InternalError("node '" + op.name + "': pooling changed its source layout");
  MemRef dst = NewActivation(pd.dst_desc());
  dst.scale = src.scale;
  AddStep(op.name, pd, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}});
  Define(op.dst, dst);
  return OkStatus();
}

Status PlanBuilder::EmitLrn(const LoweredOp& op) {
  const auto& attrs = std::get<LrnAttrs>(op.node->attrs);
  const Dims& dims = DimsOf(op.src);
  MemRef src;
  if (dims.size() == 2) {
    // [N, C]: LRN across channels of 1x1 images.
    CNN_ASSIGN_OR_RETURN(MemRef plain, GetPlain(op.src));
    src = MemRef{plain.buffer, PlainMd({dims[0], dims[1], 1, 1})};
  } else {
    CNN_ASSIGN_OR_RETURN(src, Get(op.src));
  }
  MemRef dst;
  if (op.owned_weights.empty()) {
    const dnnl::lrn_forward::primitive_desc pd(
        dnnl::lrn_forward::desc(kInference, dnnl::algorithm::lrn_across_channels, src.md, attrs.size, attrs.alpha,
                                attrs.beta, attrs.bias),
        ScratchpadAttr(), engine_);
    dst = NewActivation(pd.dst_desc());
    AddStep(op.name, pd, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}});
  } else {
    // Even size (see LowerLrn): square, 1x1 banded conv + bias with a pow post-op, multiply by the input.
    const dnnl::eltwise_forward::primitive_desc square_pd(
        dnnl::eltwise_forward::desc(kInference, dnnl::algorithm::eltwise_square, src.md, 0.0f, 0.0f),
        ScratchpadAttr(), engine_);
    const MemRef squares = NewActivation(square_pd.dst_desc());
    AddStep(op.name + " (square)", square_pd, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, squares}});
    const int64_t channels = dims[1];
    Dims weights_dims = {channels, channels};
    weights_dims.resize(src.md.dims().size(), 1);
    dnnl::primitive_attr attr = ScratchpadAttr();
    dnnl::post_ops post_ops;
    post_ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_pow, 1.0f, -attrs.beta);
    attr.set_post_ops(post_ops);
    const memory::dims ones(weights_dims.size() - 2, 1), zeros(weights_dims.size() - 2, 0);
    const Md bias_md = PlainMd({channels});
    const dnnl::convolution_forward::primitive_desc conv_pd(
        dnnl::convolution_forward::desc(kInference, dnnl::algorithm::convolution_direct, squares.md,
                                        AnyMd(weights_dims, src.md.data_type()), bias_md, squares.md, ones, zeros,
                                        zeros, zeros),
        attr, engine_);
    const MemRef scale = NewActivation(conv_pd.dst_desc());
    AddStep(op.name + " (window)", conv_pd,
            {{DNNL_ARG_SRC, squares},
             {DNNL_ARG_WEIGHTS, Weights(op, PlainMd(weights_dims), conv_pd.weights_desc())},
             {DNNL_ARG_BIAS, Constant(op.bias.data(), bias_md)},
             {DNNL_ARG_DST, scale}});
    const dnnl::binary::primitive_desc mul_pd(
        dnnl::binary::desc(dnnl::algorithm::binary_mul, src.md, scale.md, src.md), ScratchpadAttr(), engine_);
    dst = NewActivation(mul_pd.dst_desc());
    AddStep(op.name, mul_pd, {{DNNL_ARG_SRC_0, src}, {DNNL_ARG_SRC_1, scale}, {DNNL_ARG_DST, dst}});
  }
  if (dims.size() == 2) {
    Define(op.dst, MemRef{dst.buffer, PlainMd(dims)});
  } else {
    Define(op.dst, dst);
  }
  return OkStatus();
}

}  // namespace cnnserve::dnnl_internal
