#include "engine/ops/shape_ops.h"

#include <cstring>
#include <string>
#include <string_view>

#include "engine/ops/op_util.h"

namespace cnnserve {
namespace {

using ops_internal::CheckInputs;
using ops_internal::CheckKernelArgs;
using ops_internal::CheckSingleOutput;
using ops_internal::InputDims;
using ops_internal::ListStr;
using ops_internal::MutableAttrs;
using ops_internal::NormalizeAxis;
using ops_internal::SetSingleOutput;
using ops_internal::ShapeStr;

Status CopyData(const KernelArgs& args, std::string_view op_name) {
  CNN_RETURN_IF_ERROR(CheckKernelArgs(args, 1, op_name));
  const Tensor& x = *args.inputs[0];
  Tensor& y = *args.outputs[0];
  if (x.size() != y.size()) {
    return FailedPreconditionError(std::string(op_name) + " kernel: input " + ShapeStr(x.dims()) + " and output " +
                                   ShapeStr(y.dims()) + " differ in size");
  }
  if (x.size() > 0) std::memcpy(y.data(), x.data(), x.bytes());
  return OkStatus();
}

}  // namespace

Status InferFlatten(Node& node, const InputDims& inputs, std::vector<Dims>* outputs) {
  CNN_RETURN_IF_ERROR(CheckInputs(inputs, 1, 1, {"input"}));
  CNN_RETURN_IF_ERROR(CheckSingleOutput(node));
  CNN_ASSIGN_OR_RETURN(FlattenAttrs * attrs, MutableAttrs<FlattenAttrs>(node, "Flatten"));
  const Dims& x = *inputs[0];
  const int64_t rank = static_cast<int64_t>(x.size());
  CNN_ASSIGN_OR_RETURN(const int64_t axis, NormalizeAxis(attrs->axis, rank, /*allow_rank=*/true, "axis"));
  attrs->axis = axis;
  int64_t outer = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= x[i];
  return SetSingleOutput({outer, NumElements(x) / outer}, outputs);
}

Status FlattenReference(const KernelArgs& args) { return CopyData(args, "Flatten"); }

Status InferReshape(Node& node, const InputDims& inputs, std::vector<Dims>* outputs) {
  CNN_RETURN_IF_ERROR(CheckInputs(inputs, 1, 1, {"data"}));
  CNN_RETURN_IF_ERROR(CheckSingleOutput(node));
  CNN_ASSIGN_OR_RETURN(ReshapeAttrs * attrs, MutableAttrs<ReshapeAttrs>(node, "Reshape"));
  const Dims& x = *inputs[0];
  const std::vector<int64_t>& shape = attrs->shape;
  const int64_t count = NumElements(x);
  Dims y(shape.size());
  int64_t inferred_axis = -1;
  int64_t known = 1;  // product of the entries other than -1
  for (size_t i = 0; i < shape.size(); ++i) {
    const int64_t v = shape[i];
    if (v == -1) {
      if (inferred_axis >= 0) {
        return InvalidArgumentError("attribute 'shape'=" + ListStr(shape) + " has more than one -1");
      }
      inferred_axis = static_cast<int64_t>(i);
      continue;
    }
    if (v < -1) {
      return InvalidArgumentError("attribute 'shape'=" + ListStr(shape) + " has invalid entry " +
                                  std::to_string(v));
    }
    if (v == 0) {
      if (attrs->allow_zero) {
        return UnimplementedError(
            "attribute 'shape'=" + ListStr(shape) +
            " with 'allowzero'=1 asks for an empty dimension; empty tensors are not supported");
      }
      if (i >= x.size()) {
        return InvalidArgumentError("attribute 'shape'=" + ListStr(shape) + " has 0 at index " +
                                    std::to_string(i) + " but input 'data' " + ShapeStr(x) + " has rank " +
                                    std::to_string(x.size()));
      }
      y[i] = x[i];
    } else {
      y[i] = v;
    }
    if (known > count / y[i]) {
      return InvalidArgumentError("attribute 'shape'=" + ListStr(shape) + " has more elements than the " +
                                  std::to_string(count) + " of input 'data' " + ShapeStr(x));
    }
    known *= y[i];
  }
  if (inferred_axis >= 0) {
    if (known == 0 || count % known != 0) {
      return InvalidArgumentError("attribute 'shape'=" + ListStr(shape) + " cannot reshape input 'data' " +
                                  ShapeStr(x) + " (" + std::to_string(count) + " elements is not a multiple of " +
                                  std::to_string(known) + ")");
    }
    y[inferred_axis] = count / known;
  } else if (known != count) {
    return InvalidArgumentError("attribute 'shape'=" + ListStr(shape) + " has " + std::to_string(known) +
                                " elements but input 'data' " + ShapeStr(x) + " has " + std::to_string(count));
  }
  return SetSingleOutput(std::move(y), outputs);
}

Status ReshapeReference(const KernelArgs& args) { return CopyData(args, "Reshape"); }

}  // namespace cnnserve
