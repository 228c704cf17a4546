#include "engine/ops/pool.h"

#include <algorithm>
#include <limits>
#include <string>
#include <string_view>

#include "engine/ops/op_util.h"

namespace cnnserve {
namespace {

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

enum class PoolKind { kMax, kAverage };

Status InferPool(PoolKind kind, Node& node, const InputDims& inputs, std::vector<Dims>* outputs) {
  const std::string_view op_name = kind == PoolKind::kMax ? "MaxPool" : "AveragePool";
  CNN_RETURN_IF_ERROR(CheckInputs(inputs, 1, 1, {"X"}));
  if (kind == PoolKind::kMax && node.outputs.size() > 1 && !node.outputs[1].empty()) {
    return UnimplementedError("MaxPool output 'Indices' ('" + node.outputs[1] + "') is not supported");
  }
  CNN_RETURN_IF_ERROR(CheckSingleOutput(node));
  CNN_ASSIGN_OR_RETURN(PoolAttrs * attrs, MutableAttrs<PoolAttrs>(node, op_name));
  const Dims& x = *inputs[0];
  if (x.size() < 3) {
    return InvalidArgumentError("input 'X' has shape " + ShapeStr(x) + " of rank " + std::to_string(x.size()) +
                                "; expected N x C x spatial (rank >= 3)");
  }
  if (x.size() > 2 + kMaxSpatialRank) {
    return UnimplementedError("input 'X' has shape " + ShapeStr(x) + "; at most " +
                              std::to_string(kMaxSpatialRank) + " spatial axes are supported");
  }
  if (attrs->kernel_shape.empty()) return InvalidArgumentError("attribute 'kernel_shape' is required");
  if (kind == PoolKind::kAverage &&
      std::any_of(attrs->dilations.begin(), attrs->dilations.end(), [](int64_t d) { return d != 1; })) {
    return UnimplementedError("attribute 'dilations'=" + ListStr(attrs->dilations) +
                              " is not supported for AveragePool (only 1s)");
  }
  const Dims in_spatial(x.begin() + 2, x.end());
  const size_t spatial = in_spatial.size();
  CNN_ASSIGN_OR_RETURN(const bool had_auto_pad,
                       CanonicalizeWindow(in_spatial, {&attrs->kernel_shape, &attrs->strides, &attrs->pads,
                                                       &attrs->dilations, &attrs->auto_pad}));
  if (had_auto_pad) attrs->ceil_mode = false;
  Dims y = {x[0], x[1]};
  for (size_t i = 0; i < spatial; ++i) {
    const int64_t extent = (attrs->kernel_shape[i] - 1) * attrs->dilations[i] + 1;
    for (int64_t pad : {attrs->pads[i], attrs->pads[spatial + i]}) {
      if (pad >= extent) {
        return InvalidArgumentError(
            "attribute 'pads'=" + ListStr(attrs->pads) + " has pad " + std::to_string(pad) + " on spatial axis " +
            std::to_string(i) + "; pooling pads must be smaller than the kernel extent " + std::to_string(extent));
      }
    }
    CNN_ASSIGN_OR_RETURN(int64_t out, WindowOutputSize(in_spatial[i], attrs->kernel_shape[i], attrs->strides[i],
                                                       attrs->dilations[i], attrs->pads[i],
                                                       attrs->pads[spatial + i], attrs->ceil_mode, i));
    y.push_back(out);
  }
  return SetSingleOutput(std::move(y), outputs);
}

// Number of window positions start + k * dilation (k < kernel) that lie in [lo, hi).
int64_t CountInRange(int64_t start, int64_t kernel, int64_t dilation, int64_t lo, int64_t hi) {
  int64_t count = 0;
  for (int64_t k = 0; k < kernel; ++k) {
    const int64_t pos = start + k * dilation;
    if (pos >= lo && pos < hi) ++count;
  }
  return count;
}

Status PoolReference(PoolKind kind, const KernelArgs& args) {
  const std::string_view op_name = kind == PoolKind::kMax ? "MaxPool" : "AveragePool";
  CNN_RETURN_IF_ERROR(CheckKernelArgs(args, 1, op_name));
  CNN_ASSIGN_OR_RETURN(const PoolAttrs* attrs, KernelAttrs<PoolAttrs>(args, op_name));
  const Tensor& x = *args.inputs[0];
  Tensor& y = *args.outputs[0];
  CNN_ASSIGN_OR_RETURN(const Window3d win, MakeWindow3d(x.dims(), y.dims(), attrs->kernel_shape, attrs->strides,
                                                        attrs->dilations, attrs->pads));
  if (x.dims()[0] != y.dims()[0] || x.dims()[1] != y.dims()[1]) {
    return FailedPreconditionError(std::string(op_name) + " kernel: X " + ShapeStr(x.dims()) + " and Y " +
                                   ShapeStr(y.dims()) + " differ in N or C");
  }
  const int64_t planes = x.dims()[0] * x.dims()[1];  // N * C independent planes
  const auto& [in_d, in_h, in_w] = win.in;
  const auto& [out_d, out_h, out_w] = win.out;
  const auto& [k_d, k_h, k_w] = win.kernel;

  for (int64_t p = 0; p < planes; ++p) {
    const float* src = x.data() + p * in_d * in_h * in_w;
    float* dst = y.data() + p * out_d * out_h * out_w;
    for (int64_t od = 0; od < out_d; ++od) {
      const int64_t start_d = od * win.stride[0] - win.pad_begin[0];
      for (int64_t oh = 0; oh < out_h; ++oh) {
        const int64_t start_h = oh * win.stride[1] - win.pad_begin[1];
        for (int64_t ow = 0; ow < out_w; ++ow) {
          const int64_t start_w = ow * win.stride[2] - win.pad_begin[2];
          float max_value = -std::numeric_limits<float>::infinity();
          double sum = 0.0;
          int64_t valid = 0;
          for (int64_t kd = 0; kd < k_d; ++kd) {
            const int64_t id = start_d + kd * win.dilation[0];
            if (id < 0 || id >= in_d) continue;
            for (int64_t kh = 0; kh < k_h; ++kh) {
              const int64_t ih = start_h + kh * win.dilation[1];
              if (ih < 0 || ih >= in_h) continue;
              for (int64_t kw = 0; kw < k_w; ++kw) {
                const int64_t iw = start_w + kw * win.dilation[2];
                if (iw < 0 || iw >= in_w) continue;
                const float v = src[(id * in_h + ih) * in_w + iw];
                max_value = std::max(max_value, v);
                sum += v;
                ++valid;
              }
            }
          }
          float result;
          if (kind == PoolKind::kMax) {
            result = max_value;
          } else {
            int64_t divisor = valid;
            if (attrs->count_include_pad) {
              // Window positions inside the explicitly padded input; ceil-mode overhang is not counted.
              divisor = CountInRange(start_d, k_d, win.dilation[0], -win.pad_begin[0], in_d + win.pad_end[0]) *
                        CountInRange(start_h, k_h, win.dilation[1], -win.pad_begin[1], in_h + win.pad_end[1]) *
                        CountInRange(start_w, k_w, win.dilation[2], -win.pad_begin[2], in_w + win.pad_end[2]);
            }
            result = divisor > 0 ? static_cast<float>(sum / static_cast<double>(divisor)) : 0.0f;
          }
          dst[(od * out_h + oh) * out_w + ow] = result;
        }
      }
    }
  }
  return OkStatus();
}

}  // namespace

Status InferMaxPool(Node& node, const InputDims& inputs, std::vector<Dims>* outputs) {
  return InferPool(PoolKind::kMax, node, inputs, outputs);
}

Status MaxPoolReference(const KernelArgs& args) { return PoolReference(PoolKind::kMax, args); }

Status InferAveragePool(Node& node, const InputDims& inputs, std::vector<Dims>* outputs) {
  return InferPool(PoolKind::kAverage, node, inputs, outputs);
}

Status AveragePoolReference(const KernelArgs& args) { return PoolReference(PoolKind::kAverage, args); }

Status InferGlobalAveragePool(Node& node, const InputDims& inputs, std::vector<Dims>* outputs) {
  CNN_RETURN_IF_ERROR(CheckInputs(inputs, 1, 1, {"X"}));
  CNN_RETURN_IF_ERROR(CheckSingleOutput(node));
  const Dims& x = *inputs[0];
  if (x.size() < 3) {
    return InvalidArgumentError("input 'X' has shape " + ShapeStr(x) + " of rank " + std::to_string(x.size()) +
                                "; expected N x C x spatial (rank >= 3)");
  }
  Dims y(x.size(), 1);
  y[0] = x[0];
  y[1] = x[1];
  return SetSingleOutput(std::move(y), outputs);
}

Status GlobalAveragePoolReference(const KernelArgs& args) {
  CNN_RETURN_IF_ERROR(CheckKernelArgs(args, 1, "GlobalAveragePool"));
  const Tensor& x = *args.inputs[0];
  Tensor& y = *args.outputs[0];
  if (x.rank() < 3 || y.size() != x.dims()[0] * x.dims()[1]) {
    return FailedPreconditionError("GlobalAveragePool kernel: X " + ShapeStr(x.dims()) + " and Y " +
                                   ShapeStr(y.dims()) + " do not fit");
  }
  const int64_t planes = y.size();
  const int64_t plane_size = x.size() / planes;
  for (int64_t p = 0; p < planes; ++p) {
    double sum = 0.0;
    for (int64_t i = 0; i < plane_size; ++i) sum += x[p * plane_size + i];
    y[p] = static_cast<float>(sum / static_cast<double>(plane_size));
  }
  return OkStatus();
}

}  // namespace cnnserve
