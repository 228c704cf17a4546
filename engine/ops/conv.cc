#include "engine/ops/conv.h"

#include <string>

#include "engine/ops/op_util.h"

namespace cnnserve {

using ops_internal::CanonicalizeWindow;
using ops_internal::CheckInputs;
using ops_internal::CheckKernelArgs;
using ops_internal::CheckSingleOutput;
using ops_internal::InputDims;
using ops_internal::KernelAttrs;
using ops_internal::kMaxSpatialRank;
using ops_internal::ListStr;
using ops_internal::MakeWindow3d;
using ops_internal::MutableAttrs;
using ops_internal::SetSingleOutput;
using ops_internal::ShapeStr;
using ops_internal::Window3d;
using ops_internal::WindowOutputSize;

Status InferConv(Node& node, const InputDims& inputs, std::vector<Dims>* outputs) {
  CNN_RETURN_IF_ERROR(CheckInputs(inputs, 2, 3, {"X", "W", "B"}));
  CNN_RETURN_IF_ERROR(CheckSingleOutput(node));
  CNN_ASSIGN_OR_RETURN(ConvAttrs * attrs, MutableAttrs<ConvAttrs>(node, "Conv"));
  const Dims& x = *inputs[0];
  const Dims& w = *inputs[1];
  if (x.size() < 3) {
    return InvalidArgumentError("input 'X' has shape " + ShapeStr(x) + " of rank " + std::to_string(x.size()) +
                                "; expected N x C x spatial (rank >= 3)");
  }
  if (x.size() > 2 + kMaxSpatialRank) {
    return UnimplementedError("input 'X' has shape " + ShapeStr(x) + "; at most " +
                              std::to_string(kMaxSpatialRank) + " spatial axes are supported");
  }
  if (w.size() != x.size()) {
    return InvalidArgumentError("input 'W' has shape " + ShapeStr(w) + " of rank " + std::to_string(w.size()) +
                                "; expected the rank of input 'X' " + ShapeStr(x) + " (" +
                                std::to_string(x.size()) + ")");
  }
  const int64_t group = attrs->group;
  if (group < 1) {
    return InvalidArgumentError("attribute 'group'=" + std::to_string(group) + " must be positive");
  }
  const int64_t in_channels = x[1];
  const int64_t out_channels = w[0];
  if (in_channels % group != 0) {
    return InvalidArgumentError("attribute 'group'=" + std::to_string(group) + " does not divide input channels " +
                                std::to_string(in_channels));
  }
  if (out_channels % group != 0) {
    return InvalidArgumentError("attribute 'group'=" + std::to_string(group) +
                                " does not divide output channels " + std::to_string(out_channels) +
                                " (dim 0 of input 'W' " + ShapeStr(w) + ")");
  }
  if (w[1] != in_channels / group) {
    return InvalidArgumentError("input 'W' " + ShapeStr(w) + " has " + std::to_string(w[1]) +
                                " input channels per group (dim 1) but input 'X' " + ShapeStr(x) + " has " +
                                std::to_string(in_channels) + " channels / group " + std::to_string(group) +
                                " = " + std::to_string(in_channels / group));
  }
  const std::vector<int64_t> w_kernel(w.begin() + 2, w.end());
  if (attrs->kernel_shape.empty()) {
    attrs->kernel_shape = w_kernel;
  } else if (attrs->kernel_shape != w_kernel) {
    return InvalidArgumentError("attribute 'kernel_shape'=" + ListStr(attrs->kernel_shape) +
                                " does not match the spatial dims of input 'W' " + ShapeStr(w));
  }
  if (inputs.size() > 2 && inputs[2].has_value()) {
    const Dims& b = *inputs[2];
    if (b.size() != 1 || b[0] != out_channels) {
      return InvalidArgumentError("input 'B' has shape " + ShapeStr(b) + "; expected [" +
                                  std::to_string(out_channels) + "] (output channels)");
    }
  }
  const Dims in_spatial(x.begin() + 2, x.end());
  CNN_RETURN_IF_ERROR(CanonicalizeWindow(in_spatial, {&attrs->kernel_shape, &attrs->strides, &attrs->pads,
                                                      &attrs->dilations, &attrs->auto_pad})
                          .status());
  const size_t spatial = in_spatial.size();
  Dims y = {x[0], out_channels};
  for (size_t i = 0; i < spatial; ++i) {
    CNN_ASSIGN_OR_RETURN(int64_t extent,
                         WindowOutputSize(in_spatial[i], attrs->kernel_shape[i], attrs->strides[i],
                                          attrs->dilations[i], attrs->pads[i], attrs->pads[spatial + i],
                                          /*ceil_mode=*/false, i));
    y.push_back(extent);
  }
  return SetSingleOutput(std::move(y), outputs);
}

Status ConvReference(const KernelArgs& args) {
  CNN_RETURN_IF_ERROR(CheckKernelArgs(args, 2, "Conv"));
  CNN_ASSIGN_OR_RETURN(const ConvAttrs* attrs, KernelAttrs<ConvAttrs>(args, "Conv"));
  const Tensor& x = *args.inputs[0];
  const Tensor& w = *args.inputs[1];
  const Tensor* b = args.inputs.size() > 2 ? args.inputs[2] : nullptr;
  Tensor& y = *args.outputs[0];
  CNN_ASSIGN_OR_RETURN(const Window3d win, MakeWindow3d(x.dims(), y.dims(), attrs->kernel_shape, attrs->strides,
                                                        attrs->dilations, attrs->pads));
  const int64_t batch = x.dims()[0];
  const int64_t in_channels = x.dims()[1];
  const int64_t out_channels = y.dims()[1];
  const int64_t group = attrs->group;
  if (group < 1 || in_channels % group != 0 || out_channels % group != 0 || w.dims().size() < 2 ||
      w.dims()[0] != out_channels || w.dims()[1] != in_channels / group) {
    return FailedPreconditionError("Conv kernel: W " + ShapeStr(w.dims()) + " does not fit X " +
                                   ShapeStr(x.dims()) + ", Y " + ShapeStr(y.dims()) + ", group " +
                                   std::to_string(group));
  }
  const int64_t in_per_group = in_channels / group;
  const int64_t out_per_group = out_channels / group;
  const auto& [in_d, in_h, in_w] = win.in;
  const auto& [out_d, out_h, out_w] = win.out;
  const auto& [k_d, k_h, k_w] = win.kernel;

  for (int64_t n = 0; n < batch; ++n) {
    for (int64_t oc = 0; oc < out_channels; ++oc) {
      const int64_t g = oc / out_per_group;
      for (int64_t od = 0; od < out_d; ++od) {
        for (int64_t oh = 0; oh < out_h; ++oh) {
          for (int64_t ow = 0; ow < out_w; ++ow) {
            double acc = b != nullptr ? (*b)[oc] : 0.0;
            for (int64_t icg = 0; icg < in_per_group; ++icg) {
              const int64_t ic = g * in_per_group + icg;
              for (int64_t kd = 0; kd < k_d; ++kd) {
                const int64_t id = od * win.stride[0] - win.pad_begin[0] + kd * win.dilation[0];
                if (id < 0 || id >= in_d) continue;
                for (int64_t kh = 0; kh < k_h; ++kh) {
                  const int64_t ih = oh * win.stride[1] - win.pad_begin[1] + kh * win.dilation[1];
                  if (ih < 0 || ih >= in_h) continue;
                  for (int64_t kw = 0; kw < k_w; ++kw) {
                    const int64_t iw = ow * win.stride[2] - win.pad_begin[2] + kw * win.dilation[2];
                    if (iw < 0 || iw >= in_w) continue;
                    const int64_t x_index = (((n * in_channels + ic) * in_d + id) * in_h + ih) * in_w + iw;
                    const int64_t w_index = (((oc * in_per_group + icg) * k_d + kd) * k_h + kh) * k_w + kw;
                    acc += static_cast<double>(x[x_index]) * static_cast<double>(w[w_index]);
                  }
                }
              }
            }
            y[(((n * out_channels + oc) * out_d + od) * out_h + oh) * out_w + ow] = static_cast<float>(acc);
          }
        }
      }
    }
  }
  return OkStatus();
}

}  // namespace cnnserve
