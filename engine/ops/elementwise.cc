#include "engine/ops/elementwise.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <string_view>

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
using ops_internal::kMaxBroadcastRank;
using ops_internal::SetSingleOutput;
using ops_internal::ShapeStr;

// Output 0 is a copy of input 0.
Status CopyReference(const KernelArgs& args, std::string_view op_name) {
  CNN_RETURN_IF_ERROR(CheckKernelArgs(args, 1, op_name));
  const Tensor& x = *args.inputs[0];
  Tensor& y = *args.outputs[0];
  if (x.size() != y.size()) {
    return FailedPreconditionError(std::string(op_name) + " kernel: X " + ShapeStr(x.dims()) + " and Y " +
                                   ShapeStr(y.dims()) + " differ in size");
  }
  if (x.size() > 0) std::memcpy(y.data(), x.data(), x.bytes());
  return OkStatus();
}

}  // namespace

Status InferRelu(Node& node, const InputDims& inputs, std::vector<Dims>* outputs) {
  CNN_RETURN_IF_ERROR(CheckInputs(inputs, 1, 1, {"X"}));
  CNN_RETURN_IF_ERROR(CheckSingleOutput(node));
  return SetSingleOutput(*inputs[0], outputs);
}

Status ReluReference(const KernelArgs& args) {
  CNN_RETURN_IF_ERROR(CheckKernelArgs(args, 1, "Relu"));
  const Tensor& x = *args.inputs[0];
  Tensor& y = *args.outputs[0];
  if (x.dims() != y.dims()) {
    return FailedPreconditionError("Relu kernel: X " + ShapeStr(x.dims()) + " and Y " + ShapeStr(y.dims()) +
                                   " differ");
  }
  for (int64_t i = 0; i < x.size(); ++i) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
  return OkStatus();
}

Status InferAdd(Node& node, const InputDims& inputs, std::vector<Dims>* outputs) {
  CNN_RETURN_IF_ERROR(CheckInputs(inputs, 2, 2, {"A", "B"}));
  CNN_RETURN_IF_ERROR(CheckSingleOutput(node));
  const Dims& a = *inputs[0];
  const Dims& b = *inputs[1];
  if (a.size() > static_cast<size_t>(kMaxBroadcastRank) || b.size() > static_cast<size_t>(kMaxBroadcastRank)) {
    return UnimplementedError("inputs " + ShapeStr(a) + " and " + ShapeStr(b) + ": ranks above " +
                              std::to_string(kMaxBroadcastRank) + " are not supported");
  }
  CNN_ASSIGN_OR_RETURN(Dims y, BroadcastDims(a, b, "A", "B"));
  return SetSingleOutput(std::move(y), outputs);
}

Status AddReference(const KernelArgs& args) {
  CNN_RETURN_IF_ERROR(CheckKernelArgs(args, 2, "Add"));
  const Tensor& a = *args.inputs[0];
  const Tensor& b = *args.inputs[1];
  Tensor& y = *args.outputs[0];
  const int64_t out_rank = std::max(a.rank(), b.rank());
  if (y.rank() != out_rank || y.rank() > kMaxBroadcastRank || !BroadcastsTo(a.dims(), y.dims()) ||
      !BroadcastsTo(b.dims(), y.dims())) {
    return FailedPreconditionError("Add kernel: A " + ShapeStr(a.dims()) + ", B " + ShapeStr(b.dims()) +
                                   " and Y " + ShapeStr(y.dims()) + " do not fit");
  }
  const auto a_strides = BroadcastStrides(a.dims(), y.dims().size());
  const auto b_strides = BroadcastStrides(b.dims(), y.dims().size());
  const Dims& dims = y.dims();
  for (int64_t i = 0; i < y.size(); ++i) {
    int64_t a_index = 0;
    int64_t b_index = 0;
    int64_t rest = i;
    for (int64_t axis = y.rank() - 1; axis >= 0; --axis) {
      const int64_t coord = rest % dims[axis];
      rest /= dims[axis];
      a_index += coord * a_strides[axis];
      b_index += coord * b_strides[axis];
    }
    y[i] = a[a_index] + b[b_index];
  }
  return OkStatus();
}

Status InferIdentity(Node& node, const InputDims& inputs, std::vector<Dims>* outputs) {
  CNN_RETURN_IF_ERROR(CheckInputs(inputs, 1, 1, {"input"}));
  CNN_RETURN_IF_ERROR(CheckSingleOutput(node));
  return SetSingleOutput(*inputs[0], outputs);
}

Status IdentityReference(const KernelArgs& args) { return CopyReference(args, "Identity"); }

Status InferDropout(Node& node, const InputDims& inputs, std::vector<Dims>* outputs) {
  CNN_RETURN_IF_ERROR(CheckInputs(inputs, 1, 3, {"data", "ratio", "training_mode"}));
  if (node.outputs.size() > 1 && !node.outputs[1].empty()) {
    return UnimplementedError("Dropout output 'mask' ('" + node.outputs[1] + "'): mask output not supported");
  }
  CNN_RETURN_IF_ERROR(CheckSingleOutput(node));
  const char* const names[] = {"data", "ratio", "training_mode"};
  for (size_t i = 1; i < inputs.size(); ++i) {
    if (inputs[i].has_value() && NumElements(*inputs[i]) != 1) {
      return InvalidArgumentError(std::string("input '") + names[i] + "' has shape " + ShapeStr(*inputs[i]) +
                                  "; expected a scalar");
    }
  }
  return SetSingleOutput(*inputs[0], outputs);
}

Status DropoutReference(const KernelArgs& args) {
  if (args.inputs.size() > 2 && args.inputs[2] != nullptr && args.inputs[2]->size() == 1 &&
      (*args.inputs[2])[0] != 0.0f) {
    return UnimplementedError("Dropout input 'training_mode' is true; only inference is supported");
  }
  return CopyReference(args, "Dropout");
}

}  // namespace cnnserve
