// The compiled plan of the oneDNN backend (private to engine/backend/dnnl): the run path.
//
// A DnnlPlan holds its primitives, their argument lists, one arena for activations and the scratchpad, and the
// memories bound to them; Run only binds the caller's input and output buffers and executes the primitives in
// order, so it creates and allocates nothing. PlanBuilder (dnnl_plan_builder.h) fills it.
// Thread-safety: as Plan (one thread at a time).
#ifndef CNNSERVE_ENGINE_BACKEND_DNNL_DNNL_PLAN_H_
#define CNNSERVE_ENGINE_BACKEND_DNNL_DNNL_PLAN_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "engine/backend/backend.h"
#include "engine/backend/dnnl/dnnl_backend_internal.h"
#include "engine/backend/dnnl/dnnl_model_state.h"
#include "engine/backend/dnnl/dnnl_util.h"

namespace cnnserve::dnnl_internal {

class DnnlPlan : public Plan {
 public:
  int64_t batch() const override { return batch_; }
  const Dims& input_dims() const override { return input_dims_; }
  const Dims& output_dims() const override { return output_dims_; }

  // INVALID_ARGUMENT for a null buffer; INTERNAL (naming the node) when oneDNN fails.
  Status Run(const float* src, float* dst) override;

  const PlanInfo& info() const { return info_; }

 private:
  friend class PlanBuilder;

  std::shared_ptr<ModelState> model_;  // keeps shared weights alive for the plan's lifetime
  int64_t batch_ = 0;
  Dims input_dims_;
  Dims output_dims_;
  int num_threads_ = 1;
  dnnl::stream stream_;
  std::unique_ptr<char, FreeDeleter> arena_;
  std::vector<dnnl::memory> memories_;
  std::vector<dnnl::primitive> primitives_;
  std::vector<std::vector<dnnl_exec_arg_t>> args_;
  std::vector<dnnl_memory_t> src_memories_;  // bound to Run's `src`
  std::vector<dnnl_memory_t> dst_memories_;  // bound to Run's `dst`
  PlanInfo info_;
};

}  // namespace cnnserve::dnnl_internal

#endif  // CNNSERVE_ENGINE_BACKEND_DNNL_DNNL_PLAN_H_
