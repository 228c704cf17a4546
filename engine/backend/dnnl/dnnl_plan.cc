#include "engine/backend/dnnl/dnnl_plan.h"

#include <omp.h>

#include <string>

#include "dnnl_debug.h"

namespace cnnserve::dnnl_internal {

Status DnnlPlan::Run(const float* src, float* dst) {
  if (src == nullptr || dst == nullptr) return InvalidArgumentError("Run: src and dst must not be null");
  omp_set_num_threads(num_threads_);
  for (dnnl_memory_t mem : src_memories_) {
    if (dnnl_memory_set_data_handle_v2(mem, const_cast<float*>(src), nullptr) != dnnl_success) {
      return InternalError("oneDNN could not bind the input buffer");
    }
  }
  for (dnnl_memory_t mem : dst_memories_) {
    if (dnnl_memory_set_data_handle_v2(mem, dst, nullptr) != dnnl_success) {
      return InternalError("oneDNN could not bind the output buffer");
    }
  }
  for (size_t i = 0; i < primitives_.size(); ++i) {
    const std::vector<dnnl_exec_arg_t>& args = args_[i];
    const dnnl_status_t status =
        dnnl_primitive_execute(primitives_[i].get(), stream_.get(), static_cast<int>(args.size()), args.data());
    if (status != dnnl_success) {
      return InternalError("oneDNN execution failed at node '" + info_.steps[i].node + "' (" +
                           info_.steps[i].kind + "): " + dnnl_status2str(status));
    }
  }
  const dnnl_status_t status = dnnl_stream_wait(stream_.get());
  if (status != dnnl_success) return InternalError(std::string("oneDNN stream wait: ") + dnnl_status2str(status));
  return OkStatus();
}

}  // namespace cnnserve::dnnl_internal
