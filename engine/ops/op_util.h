// Helpers shared by the op implementations under engine/ops/: argument and attribute checking, error message
// formatting, sliding-window geometry (Conv and pooling) and numpy broadcasting.
//
// Internal to engine/ops: backends and the graph use OpDef (op.h) and the per-op headers, not this file.
// Thread-safety: pure functions; reentrant.
#ifndef CNNSERVE_ENGINE_OPS_OP_UTIL_H_
#define CNNSERVE_ENGINE_OPS_OP_UTIL_H_

#include <array>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "engine/common/status.h"
#include "engine/ops/op.h"
#include "engine/tensor/tensor.h"

namespace cnnserve::ops_internal {

using InputDims = std::vector<std::optional<Dims>>;

// Largest kernel extent, stride, dilation or pad accepted; keeps all window arithmetic far from int64 overflow.
inline constexpr int64_t kMaxWindowAttr = int64_t{1} << 24;
// Largest tensor rank the broadcasting ops (Add, MatMul) support; lets kernels index without heap allocation.
inline constexpr int kMaxBroadcastRank = 8;
// Conv and pooling support 1, 2 or 3 spatial axes.
inline constexpr int kMaxSpatialRank = 3;

// "[1x3x227x227]" ("[scalar]" for rank 0).
std::string ShapeStr(const Dims& dims);
// "[1, 0, 1, 0]".
std::string ListStr(const std::vector<int64_t>& values);

// Checks that there are between `min_inputs` and `max_inputs` inputs, that the first `min_inputs` are present,
// and that every present input has valid (positive) dims. `names` holds the ONNX input names, used in messages.
Status CheckInputs(const InputDims& inputs, int min_inputs, int max_inputs,
                   std::initializer_list<std::string_view> names);

// Checks that `node` has exactly one real output (trailing empty names, i.e. absent optional outputs, are fine).
Status CheckSingleOutput(const Node& node);

// Validates `dims` as an output shape and stores it as the single output.
Status SetSingleOutput(Dims dims, std::vector<Dims>* outputs);

// The attributes of `node` as T. A node without attributes (std::monostate) gets default-constructed T, so that
// an importer may leave defaults implicit. Any other attribute type is INVALID_ARGUMENT.
template <typename T>
StatusOr<T*> MutableAttrs(Node& node, std::string_view op_name) {
  if (std::holds_alternative<std::monostate>(node.attrs)) node.attrs.emplace<T>();
  T* attrs = std::get_if<T>(&node.attrs);
  if (attrs == nullptr) {
    return InvalidArgumentError("node attributes have the wrong type for op " + std::string(op_name));
  }
  return attrs;
}

// For reference kernels: checks that `args` has at least `min_inputs` non-null inputs in front and one
// preallocated output, and returns the attributes as T (default T when the node has none). Errors are
// FAILED_PRECONDITION (the kernel was called without a successful `infer`).
Status CheckKernelArgs(const KernelArgs& args, int min_inputs, std::string_view op_name);
template <typename T>
StatusOr<const T*> KernelAttrs(const KernelArgs& args, std::string_view op_name) {
  static const T kDefaults{};
  if (std::holds_alternative<std::monostate>(args.node.attrs)) return &kDefaults;
  const T* attrs = std::get_if<T>(&args.node.attrs);
  if (attrs == nullptr) {
    return FailedPreconditionError("node attributes have the wrong type for op " + std::string(op_name));
  }
  return attrs;
}

// Normalises `axis` into [0, rank) (or [0, rank] when `allow_rank`), naming `attr` in the error.
StatusOr<int64_t> NormalizeAxis(int64_t axis, int64_t rank, bool allow_rank, std::string_view attr);

// ---- Sliding windows (Conv, MaxPool, AveragePool) ----

// The window attributes of one node, as references into its attribute struct.
struct WindowAttrs {
  std::vector<int64_t>* kernel_shape;
  std::vector<int64_t>* strides;
  std::vector<int64_t>* pads;
  std::vector<int64_t>* dilations;
  AutoPad* auto_pad;
};

// Validates the window attributes against `in_spatial` (the spatial input extents) and canonicalises them:
// kernel_shape must already have one entry per spatial axis; empty strides/dilations become 1s, empty pads 0s;
// auto_pad SAME_UPPER/SAME_LOWER/VALID is resolved into explicit pads and reset to kNotSet. Returns whether
// auto_pad was set (the caller may need it: pooling's ceil_mode has no effect under auto_pad).
// Does not compute the output size (see WindowOutputSize).
StatusOr<bool> CanonicalizeWindow(const Dims& in_spatial, const WindowAttrs& attrs);

// Output extent of one spatial axis with explicit pads. With `ceil_mode`, the count is rounded up but a last
// window that would start in the right padding is dropped (ONNX/PyTorch rule). INVALID_ARGUMENT when the
// dilated kernel does not fit in the padded input.
StatusOr<int64_t> WindowOutputSize(int64_t in, int64_t kernel, int64_t stride, int64_t dilation, int64_t pad_begin,
                                   int64_t pad_end, bool ceil_mode, size_t axis);

// The geometry of a canonicalised window, padded to three spatial axes (depth, height, width) with leading unit
// axes, so that one loop nest serves 1-D, 2-D and 3-D data.
struct Window3d {
  std::array<int64_t, 3> in{1, 1, 1};
  std::array<int64_t, 3> out{1, 1, 1};
  std::array<int64_t, 3> kernel{1, 1, 1};
  std::array<int64_t, 3> stride{1, 1, 1};
  std::array<int64_t, 3> dilation{1, 1, 1};
  std::array<int64_t, 3> pad_begin{0, 0, 0};
  std::array<int64_t, 3> pad_end{0, 0, 0};
};

// Builds the Window3d of input `x` (N, C, spatial...) and output `y`. FAILED_PRECONDITION when the attributes
// are not canonical for these dims (infer did not run).
StatusOr<Window3d> MakeWindow3d(const Dims& x, const Dims& y, const std::vector<int64_t>& kernel_shape,
                                const std::vector<int64_t>& strides, const std::vector<int64_t>& dilations,
                                const std::vector<int64_t>& pads);

// ---- Broadcasting ----

// Numpy multidirectional broadcast of `a` and `b`; the names are used in the error message.
StatusOr<Dims> BroadcastDims(const Dims& a, const Dims& b, std::string_view a_name, std::string_view b_name);

// Element strides of `in` viewed as a tensor of rank `out_rank` (right-aligned): 0 on missing and size-1 axes,
// so that offset = sum(coord[i] * strides[i]) reads the broadcast element. Precondition: in.size() <= out_rank
// <= kMaxBroadcastRank. Allocates nothing (kernels call it at run time).
std::array<int64_t, kMaxBroadcastRank> BroadcastStrides(std::span<const int64_t> in, size_t out_rank);

// Whether `in` (right-aligned) broadcasts to `out`: each axis of `in` is 1 or equal. Allocates nothing.
bool BroadcastsTo(std::span<const int64_t> in, std::span<const int64_t> out);

}  // namespace cnnserve::ops_internal

#endif  // CNNSERVE_ENGINE_OPS_OP_UTIL_H_
