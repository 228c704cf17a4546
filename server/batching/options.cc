#include "server/batching/options.h"

#include <string>

namespace cnnserve {

Status ValidateDynamicBatcherOptions(const DynamicBatcherOptions& options) {
  if (options.max_batch_size < 1) {
    return InvalidArgumentError("max_batch_size must be >= 1, got " + std::to_string(options.max_batch_size));
  }
  if (options.max_queue_delay_us < 0) {
    return InvalidArgumentError("max_queue_delay_us must be >= 0, got " +
                                std::to_string(options.max_queue_delay_us));
  }
  for (int64_t size : options.preferred_batch_sizes) {
    if (size < 1 || size > options.max_batch_size) {
      return InvalidArgumentError("preferred_batch_sizes entry " + std::to_string(size) +
                                  " must be in [1, max_batch_size " + std::to_string(options.max_batch_size) +
                                  "]");
    }
  }
  if (options.max_queue_size < 1) {
    return InvalidArgumentError("max_queue_size must be >= 1, got " + std::to_string(options.max_queue_size));
  }
  if (options.plan_timing_stride < 1) {
    return InvalidArgumentError("plan_timing_stride must be >= 1, got " +
                                std::to_string(options.plan_timing_stride));
  }
  if (options.max_inline_run_us < 0) {
    return InvalidArgumentError("max_inline_run_us must be >= 0, got " +
                                std::to_string(options.max_inline_run_us));
  }
  if (options.num_instances < 1) {
    return InvalidArgumentError("num_instances must be >= 1, got " + std::to_string(options.num_instances));
  }
  return OkStatus();
}

}  // namespace cnnserve
