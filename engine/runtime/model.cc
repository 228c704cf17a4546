#include "engine/runtime/model.h"

#include "engine/backend/dnnl/dnnl_backend.h"
#include "engine/backend/reference/reference_backend.h"
#include "engine/graph/passes.h"
#include "engine/graph/truncate.h"

namespace cnnserve {

StatusOr<std::shared_ptr<const Model>> Model::Create(std::shared_ptr<const Graph> graph,
                                                     const ModelOptions& options) {
  if (graph == nullptr) return InvalidArgumentError("Model::Create: graph is null");
  if (options.num_threads < 0) {
    return InvalidArgumentError("num_threads must be >= 0, got " + std::to_string(options.num_threads));
  }
  if (options.precision != Precision::kFp32 && options.backend != "dnnl") {
    return InvalidArgumentError(std::string("precision ") + PrecisionName(options.precision) +
                                " needs the dnnl backend (the " + options.backend + " backend computes in fp32)");
  }
  if (options.precision == Precision::kInt8 && (options.ranges == nullptr || options.ranges->empty())) {
    return InvalidArgumentError("precision int8 needs calibrated activation ranges (a calibration file)");
  }
  auto model = std::shared_ptr<Model>(new Model());
  model->options_ = options;
  model->graph_ = graph;
  if (options.optimize) {
    CNN_ASSIGN_OR_RETURN(model->optimized_, OptimizeForInference(*graph));
  } else {
    model->optimized_ = graph;
  }
  BackendOptions backend_options;
  backend_options.num_threads = options.num_threads;
  backend_options.allow_winograd = options.allow_winograd;
  backend_options.winograd_policy = options.winograd_policy;
  backend_options.fc_blocked_weights_min_batch = options.fc_blocked_weights_min_batch;
  backend_options.precision = options.precision;
  backend_options.ranges = options.ranges;
  if (options.backend == "dnnl") {
    CNN_ASSIGN_OR_RETURN(model->backend_, CreateDnnlBackend(model->optimized_, backend_options));
  } else if (options.backend == "reference") {
    CNN_ASSIGN_OR_RETURN(model->backend_, CreateReferenceBackend(model->optimized_));
  } else {
    return InvalidArgumentError("unknown backend \"" + options.backend + "\" (expected dnnl or reference)");
  }
  const Dims& in = graph->input_dims();
  model->item_input_dims_.assign(in.begin() + 1, in.end());
  const Dims& out = graph->output_dims();
  model->item_output_dims_.assign(out.begin() + (out.empty() ? 0 : 1), out.end());
  return std::shared_ptr<const Model>(std::move(model));
}

StatusOr<std::shared_ptr<const Model>> Model::UpToLayer(const std::string& layer) const {
  CNN_ASSIGN_OR_RETURN(std::shared_ptr<const Graph> truncated, TruncateGraph(*graph_, layer));
  return Create(std::move(truncated), options_);
}

std::unique_ptr<Session> Model::NewSession() const { return std::make_unique<Session>(shared_from_this()); }

StatusOr<std::unique_ptr<Plan>> Model::Compile(int64_t batch) const { return backend_->Compile(batch); }

StatusOr<Plan*> Session::PlanFor(int64_t batch) {
  auto it = plans_.find(batch);
  if (it != plans_.end()) return it->second.get();
  if (batch <= 0) return InvalidArgumentError("batch size must be positive, got " + std::to_string(batch));
  CNN_ASSIGN_OR_RETURN(std::unique_ptr<Plan> plan, model_->Compile(batch));
  Plan* raw = plan.get();
  plans_.emplace(batch, std::move(plan));
  return raw;
}

Status Session::Prepare(int64_t batch) { return PlanFor(batch).status(); }

Status Session::Run(const float* src, int64_t batch, float* dst) {
  CNN_ASSIGN_OR_RETURN(Plan * plan, PlanFor(batch));
  return plan->Run(src, dst);
}

StatusOr<Tensor> Session::Run(const Tensor& input) {
  const Dims& item = model_->item_input_dims();
  bool ok = input.rank() == static_cast<int64_t>(item.size()) + 1;
  for (size_t i = 0; ok && i < item.size(); ++i) ok = input.dims()[i + 1] == item[i];
  if (!ok || input.dims()[0] <= 0) {
    return InvalidArgumentError("input has shape [" + DimsToString(input.dims()) + "], expected [N x " +
                                DimsToString(item) + "]");
  }
  const int64_t batch = input.dims()[0];
  Dims out_dims{batch};
  out_dims.insert(out_dims.end(), model_->item_output_dims().begin(), model_->item_output_dims().end());
  Tensor out(out_dims);
  CNN_RETURN_IF_ERROR(Run(input.data(), batch, out.data()));
  return out;
}

}  // namespace cnnserve
