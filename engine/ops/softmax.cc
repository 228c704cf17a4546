#include "engine/ops/softmax.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "engine/ops/op_util.h"

namespace cnnserve {

using ops_internal::CheckInputs;
using ops_internal::CheckKernelArgs;
using ops_internal::CheckSingleOutput;
using ops_internal::InputDims;
using ops_internal::KernelAttrs;
using ops_internal::MutableAttrs;
using ops_internal::NormalizeAxis;
using ops_internal::SetSingleOutput;
using ops_internal::ShapeStr;

Status InferSoftmax(Node& node, const InputDims& inputs, std::vector<Dims>* outputs) {
  CNN_RETURN_IF_ERROR(CheckInputs(inputs, 1, 1, {"input"}));
  CNN_RETURN_IF_ERROR(CheckSingleOutput(node));
  CNN_ASSIGN_OR_RETURN(SoftmaxAttrs * attrs, MutableAttrs<SoftmaxAttrs>(node, "Softmax"));
  const Dims& x = *inputs[0];
  if (x.empty()) return InvalidArgumentError("input 'input' is a scalar; Softmax needs rank >= 1");
  CNN_ASSIGN_OR_RETURN(const int64_t axis,
                       NormalizeAxis(attrs->axis, static_cast<int64_t>(x.size()), /*allow_rank=*/false, "axis"));
  attrs->axis = axis;
  return SetSingleOutput(x, outputs);
}

Status SoftmaxReference(const KernelArgs& args) {
  CNN_RETURN_IF_ERROR(CheckKernelArgs(args, 1, "Softmax"));
  CNN_ASSIGN_OR_RETURN(const SoftmaxAttrs* attrs, KernelAttrs<SoftmaxAttrs>(args, "Softmax"));
  const Tensor& x = *args.inputs[0];
  Tensor& y = *args.outputs[0];
  if (x.dims() != y.dims() || attrs->axis < 0 || attrs->axis >= x.rank()) {
    return FailedPreconditionError("Softmax kernel: X " + ShapeStr(x.dims()) + ", Y " + ShapeStr(y.dims()) +
                                   ", axis " + std::to_string(attrs->axis));
  }
  // View X as outer x length x inner and normalise along the middle.
  int64_t outer = 1;
  for (int64_t i = 0; i < attrs->axis; ++i) outer *= x.dims()[i];
  int64_t length = x.dims()[attrs->axis];
  int64_t inner = x.size() / (outer * length);
  if (attrs->coerce_2d) {
    length *= inner;
    inner = 1;
  }
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      const int64_t base = o * length * inner + i;
      double max_value = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < length; ++j) max_value = std::max<double>(max_value, x[base + j * inner]);
      double sum = 0.0;
      for (int64_t j = 0; j < length; ++j) sum += std::exp(x[base + j * inner] - max_value);
      for (int64_t j = 0; j < length; ++j) {
        y[base + j * inner] = static_cast<float>(std::exp(x[base + j * inner] - max_value) / sum);
      }
    }
  }
  return OkStatus();
}

}  // namespace cnnserve
