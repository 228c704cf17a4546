#include "engine/ops/op_util.h"

#include <algorithm>
#include <utility>

namespace cnnserve::ops_internal {
namespace {

// Checks that `values` has `expected` entries, each in [min_value, kMaxWindowAttr]; empty `values` become
// `expected` copies of `fill`.
Status CheckOrFill(std::string_view attr, size_t expected, int64_t min_value, int64_t fill,
                   std::vector<int64_t>* values) {
  if (values->empty()) {
    values->assign(expected, fill);
    return OkStatus();
  }
  if (values->size() != expected) {
    return InvalidArgumentError("attribute '" + std::string(attr) + "'=" + ListStr(*values) + " has " +
                                std::to_string(values->size()) + " entries, expected " + std::to_string(expected));
  }
  for (int64_t v : *values) {
    if (v < min_value || v > kMaxWindowAttr) {
      return InvalidArgumentError("attribute '" + std::string(attr) + "'=" + ListStr(*values) + " has value " +
                                  std::to_string(v) + ", expected " + std::to_string(min_value) + ".." +
                                  std::to_string(kMaxWindowAttr));
    }
  }
  return OkStatus();
}

int64_t EffectiveKernel(int64_t kernel, int64_t dilation) { return dilation * (kernel - 1) + 1; }

}  // namespace

std::string ShapeStr(const Dims& dims) {
  std::string out = "[";
  out += DimsToString(dims);
  out += "]";
  return out;
}

std::string ListStr(const std::vector<int64_t>& values) {
  std::string out = "[";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(values[i]);
  }
  return out + "]";
}

Status CheckInputs(const InputDims& inputs, int min_inputs, int max_inputs,
                   std::initializer_list<std::string_view> names) {
  const int count = static_cast<int>(inputs.size());
  if (count < min_inputs || count > max_inputs) {
    return InvalidArgumentError("has " + std::to_string(count) + " inputs, expected " +
                                (min_inputs == max_inputs
                                     ? std::to_string(min_inputs)
                                     : std::to_string(min_inputs) + ".." + std::to_string(max_inputs)));
  }
  for (int i = 0; i < count; ++i) {
    std::string name = "#";
    if (i < static_cast<int>(names.size())) {
      name = names.begin()[i];
    } else {
      name += std::to_string(i);
    }
    if (!inputs[i].has_value()) {
      if (i < min_inputs) return InvalidArgumentError("required input '" + name + "' is missing");
      continue;
    }
    Status valid = ValidateDims(*inputs[i]);
    if (!valid.ok()) return Status(valid.code(), "input '" + name + "': " + valid.message());
  }
  return OkStatus();
}

Status CheckSingleOutput(const Node& node) {
  if (node.outputs.empty() || node.outputs[0].empty()) return InvalidArgumentError("output 0 has no name");
  for (size_t i = 1; i < node.outputs.size(); ++i) {
    if (!node.outputs[i].empty()) {
      return InvalidArgumentError("has " + std::to_string(node.outputs.size()) + " outputs ('" + node.outputs[i] +
                                  "' is output " + std::to_string(i) + "), expected 1");
    }
  }
  return OkStatus();
}

Status SetSingleOutput(Dims dims, std::vector<Dims>* outputs) {
  Status valid = ValidateDims(dims);
  if (!valid.ok()) return Status(valid.code(), "output: " + valid.message());
  outputs->clear();
  outputs->push_back(std::move(dims));
  return OkStatus();
}

Status CheckKernelArgs(const KernelArgs& args, int min_inputs, std::string_view op_name) {
  if (static_cast<int>(args.inputs.size()) < min_inputs) {
    return FailedPreconditionError(std::string(op_name) + " kernel got " + std::to_string(args.inputs.size()) +
                                   " inputs, expected at least " + std::to_string(min_inputs));
  }
  for (int i = 0; i < min_inputs; ++i) {
    if (args.inputs[i] == nullptr) {
      return FailedPreconditionError(std::string(op_name) + " kernel input " + std::to_string(i) + " is null");
    }
  }
  if (args.outputs.empty() || args.outputs[0] == nullptr) {
    return FailedPreconditionError(std::string(op_name) + " kernel has no output tensor");
  }
  return OkStatus();
}

StatusOr<int64_t> NormalizeAxis(int64_t axis, int64_t rank, bool allow_rank, std::string_view attr) {
  const int64_t upper = allow_rank ? rank : rank - 1;
  if (axis < -rank || axis > upper) {
    return InvalidArgumentError("attribute '" + std::string(attr) + "'=" + std::to_string(axis) +
                                " is out of range [" + std::to_string(-rank) + ", " + std::to_string(upper) +
                                "] for input rank " + std::to_string(rank));
  }
  return axis < 0 ? axis + rank : axis;
}

StatusOr<bool> CanonicalizeWindow(const Dims& in_spatial, const WindowAttrs& attrs) {
  const size_t spatial = in_spatial.size();
  if (attrs.kernel_shape->size() != spatial) {
    return InvalidArgumentError("attribute 'kernel_shape'=" + ListStr(*attrs.kernel_shape) + " has " +
                                std::to_string(attrs.kernel_shape->size()) + " entries, expected " +
                                std::to_string(spatial) + " (one per spatial axis)");
  }
  CNN_RETURN_IF_ERROR(CheckOrFill("kernel_shape", spatial, 1, 1, attrs.kernel_shape));
  CNN_RETURN_IF_ERROR(CheckOrFill("strides", spatial, 1, 1, attrs.strides));
  CNN_RETURN_IF_ERROR(CheckOrFill("dilations", spatial, 1, 1, attrs.dilations));
  CNN_RETURN_IF_ERROR(CheckOrFill("pads", 2 * spatial, 0, 0, attrs.pads));

  const AutoPad auto_pad = *attrs.auto_pad;
  if (auto_pad == AutoPad::kNotSet) return false;
  const bool any_pad = std::any_of(attrs.pads->begin(), attrs.pads->end(), [](int64_t p) { return p != 0; });
  if (any_pad) {
    return InvalidArgumentError("attribute 'pads'=" + ListStr(*attrs.pads) +
                                " must not be given together with attribute 'auto_pad'");
  }
  std::vector<int64_t>& pads = *attrs.pads;
  for (size_t i = 0; i < spatial; ++i) {
    const int64_t in = in_spatial[i];
    const int64_t stride = (*attrs.strides)[i];
    const int64_t extent = EffectiveKernel((*attrs.kernel_shape)[i], (*attrs.dilations)[i]);
    if (auto_pad == AutoPad::kValid) {
      if (extent > in) {
        return InvalidArgumentError("kernel extent " + std::to_string(extent) + " on spatial axis " +
                                    std::to_string(i) + " exceeds the input extent " + std::to_string(in) +
                                    " (attribute 'auto_pad'=VALID)");
      }
      continue;  // pads stay 0
    }
    // SAME_UPPER / SAME_LOWER: the output has ceil(in / stride) positions; the padding that takes is split in
    // half, the odd element going to the end (UPPER) or the beginning (LOWER).
    const int64_t out = (in + stride - 1) / stride;
    const int64_t total = std::max<int64_t>(0, (out - 1) * stride + extent - in);
    const int64_t smaller = total / 2;
    const int64_t larger = total - smaller;
    pads[i] = auto_pad == AutoPad::kSameUpper ? smaller : larger;
    pads[i + spatial] = auto_pad == AutoPad::kSameUpper ? larger : smaller;
  }
  *attrs.auto_pad = AutoPad::kNotSet;
  return true;
}

StatusOr<int64_t> WindowOutputSize(int64_t in, int64_t kernel, int64_t stride, int64_t dilation, int64_t pad_begin,
                                   int64_t pad_end, bool ceil_mode, size_t axis) {
  const int64_t extent = EffectiveKernel(kernel, dilation);
  const int64_t padded = in + pad_begin + pad_end;
  if (extent > padded) {
    return InvalidArgumentError("kernel extent " + std::to_string(extent) + " (kernel " + std::to_string(kernel) +
                                ", dilation " + std::to_string(dilation) + ") on spatial axis " +
                                std::to_string(axis) + " exceeds the padded input extent " +
                                std::to_string(padded) + " (input " + std::to_string(in) + " + pads " +
                                std::to_string(pad_begin) + "+" + std::to_string(pad_end) + ")");
  }
  const int64_t span = padded - extent;  // >= 0: how far the window can slide
  int64_t out = (ceil_mode ? (span + stride - 1) / stride : span / stride) + 1;
  // In ceil mode a last window that would start in the right padding is dropped.
  if (ceil_mode && (out - 1) * stride >= in + pad_begin) --out;
  return out;
}

StatusOr<Window3d> MakeWindow3d(const Dims& x, const Dims& y, const std::vector<int64_t>& kernel_shape,
                                const std::vector<int64_t>& strides, const std::vector<int64_t>& dilations,
                                const std::vector<int64_t>& pads) {
  const size_t rank = x.size();
  if (rank < 3 || rank > 2 + kMaxSpatialRank || y.size() != rank) {
    return FailedPreconditionError("window kernel got input " + ShapeStr(x) + " and output " + ShapeStr(y));
  }
  const size_t spatial = rank - 2;
  if (kernel_shape.size() != spatial || strides.size() != spatial || dilations.size() != spatial ||
      pads.size() != 2 * spatial) {
    return FailedPreconditionError("window attributes are not canonical (shape inference did not run)");
  }
  Window3d w;
  const size_t offset = 3 - spatial;  // leading unit axes
  for (size_t i = 0; i < spatial; ++i) {
    w.in[offset + i] = x[2 + i];
    w.out[offset + i] = y[2 + i];
    w.kernel[offset + i] = kernel_shape[i];
    w.stride[offset + i] = strides[i];
    w.dilation[offset + i] = dilations[i];
    w.pad_begin[offset + i] = pads[i];
    w.pad_end[offset + i] = pads[spatial + i];
  }
  return w;
}

StatusOr<Dims> BroadcastDims(const Dims& a, const Dims& b, std::string_view a_name, std::string_view b_name) {
  const size_t rank = std::max(a.size(), b.size());
  Dims out(rank, 1);
  for (size_t i = 0; i < rank; ++i) {
    // Right-aligned: axis i of the output is axis i - (rank - size) of each operand.
    const int64_t da = i + a.size() >= rank ? a[i + a.size() - rank] : 1;
    const int64_t db = i + b.size() >= rank ? b[i + b.size() - rank] : 1;
    if (da != db && da != 1 && db != 1) {
      return InvalidArgumentError("input '" + std::string(a_name) + "' " + ShapeStr(a) + " and input '" +
                                  std::string(b_name) + "' " + ShapeStr(b) + " do not broadcast (output axis " +
                                  std::to_string(i) + ": " + std::to_string(da) + " vs " + std::to_string(db) +
                                  ")");
    }
    out[i] = std::max(da, db);
  }
  return out;
}

std::array<int64_t, kMaxBroadcastRank> BroadcastStrides(std::span<const int64_t> in, size_t out_rank) {
  std::array<int64_t, kMaxBroadcastRank> strides{};
  int64_t stride = 1;
  for (size_t k = 0; k < in.size(); ++k) {
    const size_t in_axis = in.size() - 1 - k;
    const size_t out_axis = out_rank - 1 - k;
    strides[out_axis] = in[in_axis] == 1 ? 0 : stride;
    stride *= in[in_axis];
  }
  return strides;
}

bool BroadcastsTo(std::span<const int64_t> in, std::span<const int64_t> out) {
  if (in.size() > out.size()) return false;
  for (size_t k = 0; k < in.size(); ++k) {
    const int64_t d = in[in.size() - 1 - k];
    if (d != 1 && d != out[out.size() - 1 - k]) return false;
  }
  return true;
}

}  // namespace cnnserve::ops_internal
