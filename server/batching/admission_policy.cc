#include "server/batching/admission_policy.h"

#include <algorithm>

#include "engine/common/units.h"

namespace cnnserve {

AdmissionDecision DecideAdmission(const AdmissionSnapshot& queue, int64_t task_items, int64_t now_us,
                                  int64_t deadline_us) {
  AdmissionDecision decision;
  decision.expected_finish_us = now_us;
  if (queue.queued_tasks >= queue.max_queue_size) {
    decision.action = AdmissionDecision::Action::kQueueFull;
    return decision;
  }
  if (queue.item_service_ns <= 0) return decision;
  // In doubles: queue sizes times nanoseconds can exceed int64 only in absurd cases, but must not overflow then.
  const double ahead_items = static_cast<double>(queue.queued_items) + static_cast<double>(queue.running_items) / 2;
  const double wait_us = ahead_items * static_cast<double>(queue.item_service_ns) /
                         static_cast<double>(std::max(1, queue.num_instances)) / kNanosPerMicro;
  const double own_us = static_cast<double>(task_items) * static_cast<double>(queue.item_service_ns) / kNanosPerMicro;
  const double finish_us = static_cast<double>(now_us) + wait_us + own_us;
  constexpr double kMaxMicros = 9e18;  // below Clock::kInfiniteFuture, and exact in both types
  decision.expected_wait_us = static_cast<int64_t>(std::min(wait_us, kMaxMicros));
  decision.expected_finish_us = static_cast<int64_t>(std::min(finish_us, kMaxMicros));
  if (deadline_us != Clock::kInfiniteFuture && finish_us > static_cast<double>(deadline_us)) {
    decision.action = AdmissionDecision::Action::kMissesDeadline;
  }
  return decision;
}

}  // namespace cnnserve
