#include "engine/backend/dnnl/dnnl_backend.h"

#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "dnnl.hpp"
#include "engine/backend/dnnl/dnnl_backend_internal.h"
#include "engine/backend/dnnl/dnnl_lower.h"
#include "engine/backend/dnnl/dnnl_model_state.h"
#include "engine/backend/dnnl/dnnl_plan.h"
#include "engine/backend/dnnl/dnnl_plan_builder.h"
#include "engine/backend/dnnl/dnnl_util.h"

namespace cnnserve {
namespace {

using dnnl_internal::DnnlPlan;
using dnnl_internal::Guarded;
using dnnl_internal::LoweredOp;
using dnnl_internal::ModelState;
using dnnl_internal::PlanBuilder;
using dnnl_internal::ResolveThreads;
using dnnl_internal::ScopedOmpThreads;

class DnnlBackend : public Backend {
 public:
  explicit DnnlBackend(std::shared_ptr<ModelState> model) : model_(std::move(model)) {}

  std::string name() const override { return "onednn"; }

  StatusOr<std::unique_ptr<Plan>> Compile(int64_t batch) override {
    if (batch <= 0) return InvalidArgumentError("batch must be positive, got " + std::to_string(batch));
    // Primitive descriptors size their scratchpads for the creating thread's OpenMP team: compile with the
    // thread count the plan runs with.
    ScopedOmpThreads threads(ResolveThreads(model_->options().num_threads));
    StatusOr<std::unique_ptr<Plan>> plan = InternalError("unreachable");
    const Status status = Guarded(model_->graph().name(), [&] {
      plan = PlanBuilder(model_, batch).Build();
      return OkStatus();
    });
    if (!status.ok()) return status;
    return plan;
  }

  ModelState& model() const { return *model_; }

 private:
  std::shared_ptr<ModelState> model_;
};

}  // namespace

StatusOr<std::unique_ptr<Backend>> CreateDnnlBackend(std::shared_ptr<const Graph> graph,
                                                     const BackendOptions& options) {
  if (graph == nullptr) return InvalidArgumentError("CreateDnnlBackend: graph is null");
  if (options.num_threads < 0) {
    return InvalidArgumentError("num_threads must be >= 0, got " + std::to_string(options.num_threads));
  }
  CNN_ASSIGN_OR_RETURN(std::vector<LoweredOp> ops, dnnl_internal::LowerGraph(*graph));
  std::unique_ptr<Backend> backend;
  CNN_RETURN_IF_ERROR(Guarded(graph->name(), [&] {
    dnnl::engine engine(dnnl::engine::kind::cpu, 0);
    backend = std::make_unique<DnnlBackend>(
        std::make_shared<ModelState>(std::move(graph), options, std::move(engine), std::move(ops)));
    return OkStatus();
  }));
  return backend;
}

std::string DnnlIsaName() {
  switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_all:
      return "all";
    case dnnl_cpu_isa_sse41:
      return "sse41";
    case dnnl_cpu_isa_avx:
      return "avx";
    case dnnl_cpu_isa_avx2:
      return "avx2";
    case dnnl_cpu_isa_avx2_vnni:
      return "avx2_vnni";
    case dnnl_cpu_isa_avx512_mic:
      return "avx512_mic";
    case dnnl_cpu_isa_avx512_mic_4ops:
      return "avx512_mic_4ops";
    case dnnl_cpu_isa_avx512_core:
      return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni:
      return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16:
      return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx:
      return "avx512_core_amx";
  }
  return "unknown";
}

namespace dnnl_internal {

StatusOr<BackendCounters> GetBackendCounters(const Backend& backend) {
  const auto* dnnl_backend = dynamic_cast<const DnnlBackend*>(&backend);
  if (dnnl_backend == nullptr) return InvalidArgumentError("not a oneDNN backend: " + backend.name());
  return dnnl_backend->model().counters();
}

StatusOr<PlanInfo> DescribePlan(const Plan& plan) {
  const auto* dnnl_plan = dynamic_cast<const DnnlPlan*>(&plan);
  if (dnnl_plan == nullptr) return InvalidArgumentError("not a oneDNN plan");
  return dnnl_plan->info();
}

std::map<std::string, size_t> WeightBytesByType(const PlanInfo& info) {
  std::map<std::string, size_t> bytes;
  std::set<const void*> seen;
  for (const StepInfo& step : info.steps) {
    if (step.weights_data == nullptr || !seen.insert(step.weights_data).second) continue;
    bytes[step.weights_type] += step.weights_bytes;
  }
  return bytes;
}

std::string FormatPlanInfo(const PlanInfo& info) {
  std::string out;
  for (const StepInfo& step : info.steps) {
    out += step.node + " | " + step.kind + " | " + step.impl + " | src " + step.src + " " + step.src_type;
    if (!step.weights.empty()) out += " | wei " + step.weights + " " + step.weights_type;
    out += " | dst " + step.dst + " " + step.dst_type + "\n";
  }
  out += "activations " + std::to_string(info.activation_bytes) + " B, scratchpad " +
         std::to_string(info.scratchpad_bytes) + " B, weights";
  for (const auto& [type, bytes] : WeightBytesByType(info)) out += " " + type + " " + std::to_string(bytes) + " B";
  return out + "\n";
}

}  // namespace dnnl_internal
}  // namespace cnnserve
