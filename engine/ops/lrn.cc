#include "engine/ops/lrn.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "engine/ops/op_util.h"

namespace cnnserve {

using ops_internal::CheckInputs;
using ops_internal::CheckKernelArgs;
using ops_internal::CheckSingleOutput;
using ops_internal::InputDims;
using ops_internal::KernelAttrs;
using ops_internal::MutableAttrs;
using ops_internal::SetSingleOutput;
using ops_internal::ShapeStr;

Status InferLrn(Node& node, const InputDims& inputs, std::vector<Dims>* outputs) {
  CNN_RETURN_IF_ERROR(CheckInputs(inputs, 1, 1, {"X"}));
  CNN_RETURN_IF_ERROR(CheckSingleOutput(node));
  CNN_ASSIGN_OR_RETURN(LrnAttrs * attrs, MutableAttrs<LrnAttrs>(node, "LRN"));
  const Dims& x = *inputs[0];
  if (x.size() < 2) {
    return InvalidArgumentError("input 'X' has shape " + ShapeStr(x) + " of rank " + std::to_string(x.size()) +
                                "; expected N x C x ... (rank >= 2)");
  }
  if (attrs->size < 1) {
    return InvalidArgumentError("attribute 'size'=" + std::to_string(attrs->size) + " must be positive");
  }
  if (!std::isfinite(attrs->alpha) || !std::isfinite(attrs->beta) || !std::isfinite(attrs->bias)) {
    return InvalidArgumentError("attributes 'alpha', 'beta' and 'bias' must be finite");
  }
  return SetSingleOutput(x, outputs);
}

Status LrnReference(const KernelArgs& args) {
  CNN_RETURN_IF_ERROR(CheckKernelArgs(args, 1, "LRN"));
  CNN_ASSIGN_OR_RETURN(const LrnAttrs* attrs, KernelAttrs<LrnAttrs>(args, "LRN"));
  const Tensor& x = *args.inputs[0];
  Tensor& y = *args.outputs[0];
  if (x.rank() < 2 || y.dims() != x.dims() || attrs->size < 1) {
    return FailedPreconditionError("LRN kernel: X " + ShapeStr(x.dims()) + ", Y " + ShapeStr(y.dims()) +
                                   ", size " + std::to_string(attrs->size));
  }
  const int64_t batch = x.dims()[0];
  const int64_t channels = x.dims()[1];
  const int64_t inner = x.size() / (batch * channels);  // spatial positions per channel
  const int64_t before = (attrs->size - 1) / 2;         // floor((size - 1) / 2)
  const int64_t after = attrs->size - 1 - before;       // ceil((size - 1) / 2)
  const double scale = static_cast<double>(attrs->alpha) / static_cast<double>(attrs->size);
  for (int64_t n = 0; n < batch; ++n) {
    for (int64_t c = 0; c < channels; ++c) {
      const int64_t first = std::max<int64_t>(0, c - before);
      const int64_t last = std::min<int64_t>(channels - 1, c + after);
      for (int64_t i = 0; i < inner; ++i) {
        double square_sum = 0.0;
        for (int64_t j = first; j <= last; ++j) {
          const double v = x[(n * channels + j) * inner + i];
          square_sum += v * v;
        }
        const int64_t index = (n * channels + c) * inner + i;
        const double denominator = std::pow(attrs->bias + scale * square_sum, static_cast<double>(attrs->beta));
        y[index] = static_cast<float>(x[index] / denominator);
      }
    }
  }
  return OkStatus();
}

}  // namespace cnnserve
