#include "engine/ops/batch_norm.h"

#include <cmath>
#include <string>

#include "engine/ops/op_util.h"

namespace cnnserve {
namespace {

using ops_internal::CheckInputs;
using ops_internal::CheckKernelArgs;
using ops_internal::CheckSingleOutput;
using ops_internal::InputDims;
using ops_internal::KernelAttrs;
using ops_internal::MutableAttrs;
using ops_internal::SetSingleOutput;
using ops_internal::ShapeStr;

constexpr const char* kInputNames[] = {"X", "scale", "B", "input_mean", "input_var"};
constexpr int kNumInputs = 5;

}  // namespace

Status InferBatchNorm(Node& node, const InputDims& inputs, std::vector<Dims>* outputs) {
  CNN_RETURN_IF_ERROR(CheckInputs(inputs, kNumInputs, kNumInputs, {"X", "scale", "B", "input_mean", "input_var"}));
  CNN_RETURN_IF_ERROR(CheckSingleOutput(node));
  CNN_ASSIGN_OR_RETURN(BatchNormAttrs * attrs, MutableAttrs<BatchNormAttrs>(node, "BatchNormalization"));
  if (!std::isfinite(attrs->epsilon) || attrs->epsilon < 0.0f) {
    return InvalidArgumentError("attribute 'epsilon'=" + std::to_string(attrs->epsilon) +
                                " must be finite and >= 0");
  }
  const Dims& x = *inputs[0];
  if (x.size() < 2) {
    return InvalidArgumentError("input 'X' has shape " + ShapeStr(x) + " of rank " + std::to_string(x.size()) +
                                "; expected N x C x ... (rank >= 2)");
  }
  for (int i = 1; i < kNumInputs; ++i) {
    const Dims& p = *inputs[i];
    if (p.size() != 1 || p[0] != x[1]) {
      return InvalidArgumentError("input '" + std::string(kInputNames[i]) + "' has shape " + ShapeStr(p) +
                                  "; expected [" + std::to_string(x[1]) + "] (channels of input 'X' " +
                                  ShapeStr(x) + ")");
    }
  }
  return SetSingleOutput(x, outputs);
}

Status BatchNormReference(const KernelArgs& args) {
  CNN_RETURN_IF_ERROR(CheckKernelArgs(args, kNumInputs, "BatchNormalization"));
  CNN_ASSIGN_OR_RETURN(const BatchNormAttrs* attrs, KernelAttrs<BatchNormAttrs>(args, "BatchNormalization"));
  const Tensor& x = *args.inputs[0];
  Tensor& y = *args.outputs[0];
  if (x.rank() < 2 || y.dims() != x.dims()) {
    return FailedPreconditionError("BatchNormalization kernel: X " + ShapeStr(x.dims()) + " and Y " +
                                   ShapeStr(y.dims()) + " do not fit");
  }
  const int64_t channels = x.dims()[1];
  for (int i = 1; i < kNumInputs; ++i) {
    if (args.inputs[i]->size() != channels) {
      return FailedPreconditionError("BatchNormalization kernel: input '" + std::string(kInputNames[i]) +
                                     "' has " + std::to_string(args.inputs[i]->size()) + " elements, expected " +
                                     std::to_string(channels));
    }
  }
  const Tensor& scale = *args.inputs[1];
  const Tensor& bias = *args.inputs[2];
  const Tensor& mean = *args.inputs[3];
  const Tensor& var = *args.inputs[4];
  const int64_t batch = x.dims()[0];
  const int64_t inner = x.size() / (batch * channels);
  for (int64_t n = 0; n < batch; ++n) {
    for (int64_t c = 0; c < channels; ++c) {
      const double inv_std = 1.0 / std::sqrt(static_cast<double>(var[c]) + static_cast<double>(attrs->epsilon));
      for (int64_t i = 0; i < inner; ++i) {
        const int64_t index = (n * channels + c) * inner + i;
        y[index] = static_cast<float>(scale[c] * (x[index] - static_cast<double>(mean[c])) * inv_std + bias[c]);
      }
    }
  }
  return OkStatus();
}

}  // namespace cnnserve
