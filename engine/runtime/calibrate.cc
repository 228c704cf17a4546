// Calibrate (declared in calibration.h): measures activation ranges by running the graph truncated at each
// tensor (Model::UpToLayer) over the calibration images in fp32, then (max_output_error) keeps the input tensors
// of the layers int8 hurts most in fp32.
#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "engine/runtime/calibration.h"
#include "engine/runtime/model.h"

namespace cnnserve {
namespace {

// The values of one tensor over all images: exact min/max and an even sample for percentiles.
class RangeMeter {
 public:
  RangeMeter(int64_t total_values, int64_t max_samples)
      : stride_(std::max<int64_t>(1, (total_values + max_samples - 1) / max_samples)) {}

  void Add(const float* values, int64_t count) {
    for (int64_t i = 0; i < count; ++i) {
      lo_ = std::min(lo_, values[i]);
      hi_ = std::max(hi_, values[i]);
      if ((seen_ + i) % stride_ == 0) samples_.push_back(values[i]);
    }
    seen_ += count;
  }

  TensorRange Range(const CalibrateOptions& options) {
    if (options.method == CalibrationMethod::kMinMax || samples_.empty()) return TensorRange{lo_, hi_};
    const auto quantile = [&](double q) {
      const size_t k =
          std::min(samples_.size() - 1, static_cast<size_t>(q * static_cast<double>(samples_.size())));
      std::nth_element(samples_.begin(), samples_.begin() + static_cast<std::ptrdiff_t>(k), samples_.end());
      return samples_[k];
    };
    const float hi = quantile(options.percentile / 100.0);
    // A tensor without negative values keeps 0 as its floor (u8 in int8 plans).
    const float lo = lo_ >= 0.0f ? lo_ : std::min(0.0f, quantile(1.0 - options.percentile / 100.0));
    return TensorRange{lo, std::max(hi, lo)};
  }

 private:
  const int64_t stride_;
  int64_t seen_ = 0;
  float lo_ = std::numeric_limits<float>::infinity();
  float hi_ = -std::numeric_limits<float>::infinity();
  std::vector<float> samples_;
};

Status CheckInputs(const Graph& graph, const Tensor& images, const CalibrateOptions& options) {
  const Dims& in = graph.input_dims();
  bool ok = images.rank() == static_cast<int64_t>(in.size()) && images.rank() >= 1 && images.dims()[0] > 0;
  for (size_t i = 1; ok && i < in.size(); ++i) ok = images.dims()[i] == in[i];
  if (!ok) {
    return InvalidArgumentError("calibration images have shape [" + DimsToString(images.dims()) +
                                "], expected [N x " + DimsToString(Dims(in.begin() + 1, in.end())) + "]");
  }
  if (options.batch < 1 || options.max_samples < 1 || !(options.max_output_error >= 0)) {
    return InvalidArgumentError("calibration batch and max_samples must be positive, max_output_error >= 0");
  }
  if (options.method == CalibrationMethod::kPercentile &&
      !(options.percentile > 50.0 && options.percentile <= 100.0)) {
    return InvalidArgumentError("calibration percentile must be in (50, 100]");
  }
  const float* values = images.data();
  if (!std::all_of(values, values + images.size(), [](float v) { return std::isfinite(v); })) {
    return InvalidArgumentError("calibration images contain NaN or infinity");
  }
  return OkStatus();
}

// The range of `model`'s output over all images, run `options.batch` at a time.
StatusOr<TensorRange> MeasureOutput(const Model& model, const Tensor& images, const CalibrateOptions& options) {
  const int64_t n = images.dims()[0];
  const int64_t item_in = model.item_input_size();
  const int64_t item_out = model.item_output_size();
  RangeMeter meter(n * item_out, options.max_samples);
  std::unique_ptr<Session> session = model.NewSession();
  std::vector<float> out(static_cast<size_t>(options.batch * item_out));
  for (int64_t start = 0; start < n; start += options.batch) {
    const int64_t count = std::min(options.batch, n - start);
    CNN_RETURN_IF_ERROR(session->Run(images.data() + start * item_in, count, out.data()));
    meter.Add(out.data(), count * item_out);
  }
  return meter.Range(options);
}

// Ops whose output holds the same values as their first input.
bool CopiesInput(OpType type) {
  return type == OpType::kFlatten || type == OpType::kReshape || type == OpType::kDropout ||
         type == OpType::kIdentity;
}

// The outputs of a model over all images, run `options.batch` at a time.
StatusOr<std::vector<float>> RunAll(const Model& model, const Tensor& images, const CalibrateOptions& options) {
  const int64_t n = images.dims()[0];
  std::vector<float> out(static_cast<size_t>(n * model.item_output_size()));
  std::unique_ptr<Session> session = model.NewSession();
  for (int64_t start = 0; start < n; start += options.batch) {
    const int64_t count = std::min(options.batch, n - start);
    CNN_RETURN_IF_ERROR(session->Run(images.data() + start * model.item_input_size(), count,
                                     out.data() + start * model.item_output_size()));
  }
  return out;
}

// max|int8 - fp32| / max|fp32| over the images, with `fp32_tensors` kept in fp32.
StatusOr<double> Int8Error(const std::shared_ptr<const Graph>& graph, const Tensor& images,
                           const Calibration& calibration, const std::vector<float>& want,
                           const CalibrateOptions& options) {
  ModelOptions int8;
  int8.num_threads = options.num_threads;
  int8.precision = Precision::kInt8;
  int8.ranges = Int8Ranges(calibration);
  CNN_ASSIGN_OR_RETURN(std::shared_ptr<const Model> model, Model::Create(graph, int8));
  CNN_ASSIGN_OR_RETURN(const std::vector<float> got, RunAll(*model, images, options));
  double diff = 0, ref = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    diff = std::max(diff, static_cast<double>(std::fabs(got[i] - want[i])));
    ref = std::max(ref, static_cast<double>(std::fabs(want[i])));
  }
  return ref > 0 ? diff / ref : diff;
}

// The per-layer fallback: each layer's source alone in fp32 is tried once; then they go to fp32 in the order of
// the error they leave, smallest first, until the error is within the bound (or every one is fp32).
Status ChooseFp32Tensors(const std::shared_ptr<const Graph>& graph, const Model& fp32, const Tensor& images,
                         const CalibrateOptions& options, Calibration& calibration) {
  CNN_ASSIGN_OR_RETURN(const std::vector<float> want, RunAll(fp32, images, options));
  CNN_ASSIGN_OR_RETURN(double error, Int8Error(graph, images, calibration, want, options));
  if (error <= options.max_output_error) return OkStatus();
  std::vector<std::pair<double, std::string>> alone;
  for (const Node& node : graph->nodes()) {
    const bool layer = node.type == OpType::kConv || node.type == OpType::kGemm || node.type == OpType::kMatMul;
    if (!layer || node.inputs.empty() || calibration.fp32_tensors.count(node.inputs[0]) > 0) continue;
    Calibration trial = calibration;
    trial.fp32_tensors.insert(node.inputs[0]);
    CNN_ASSIGN_OR_RETURN(const double trial_error, Int8Error(graph, images, trial, want, options));
    alone.emplace_back(trial_error, node.inputs[0]);
  }
  std::sort(alone.begin(), alone.end());
  for (size_t i = 0; i < alone.size() && error > options.max_output_error; ++i) {
    calibration.fp32_tensors.insert(alone[i].second);
    CNN_ASSIGN_OR_RETURN(error, Int8Error(graph, images, calibration, want, options));
  }
  return OkStatus();
}

}  // namespace

StatusOr<Calibration> Calibrate(std::shared_ptr<const Graph> graph, const Tensor& images,
                                const CalibrateOptions& options) {
  if (graph == nullptr) return InvalidArgumentError("Calibrate: graph is null");
  CNN_RETURN_IF_ERROR(CheckInputs(*graph, images, options));
  ModelOptions model_options;
  model_options.num_threads = options.num_threads;
  model_options.allow_winograd = false;  // same values, far less to compile for every truncated graph
  CNN_ASSIGN_OR_RETURN(std::shared_ptr<const Model> model, Model::Create(graph, model_options));
  Calibration calibration;
  calibration.method = options.method;
  calibration.percentile = options.percentile;
  calibration.images = images.dims()[0];
  calibration.source = options.source;
  RangeMeter input(images.size(), options.max_samples);
  input.Add(images.data(), images.size());
  calibration.ranges[graph->input_name()] = input.Range(options);
  for (const Node& node : graph->nodes()) {
    if (node.outputs.empty() || node.outputs[0].empty()) continue;
    const std::string& value = node.outputs[0];
    auto copied = calibration.ranges.find(node.inputs.empty() ? std::string() : node.inputs[0]);
    if (CopiesInput(node.type) && copied != calibration.ranges.end()) {
      const TensorRange range = copied->second;
      calibration.ranges[value] = range;
      continue;
    }
    CNN_ASSIGN_OR_RETURN(std::shared_ptr<const Model> truncated, model->UpToLayer(value));
    CNN_ASSIGN_OR_RETURN(calibration.ranges[value], MeasureOutput(*truncated, images, options));
  }
  if (options.max_output_error > 0) {
    CNN_RETURN_IF_ERROR(ChooseFp32Tensors(graph, *model, images, options, calibration));
  }
  return calibration;
}

}  // namespace cnnserve
