#include "server/service/admission.h"

#include <string>

#include "engine/common/units.h"
#include "server/batching/clock.h"

namespace cnnserve {

Status AdmitRequest(Servable& servable, const RunRequest& run, const AdmissionInput& input) {
  const int64_t now_us = input.now_us;
  // The queue's answer must come by the deadline, and within max_queue_wait_us whatever the deadline.
  int64_t by_us = run.deadline_us;
  const bool bounded = input.max_queue_wait_us > 0 &&
                       (by_us == 0 || AddMicros(now_us, input.max_queue_wait_us) < by_us);
  if (bounded) by_us = AddMicros(now_us, input.max_queue_wait_us);
  const std::string bound_name =
      bounded ? "--max-queue-wait-ms " + std::to_string(input.max_queue_wait_us / kMicrosPerMilli) : "deadline";
  // The decode worker's wait is spent before the model's queue sees the request.
  if (by_us > 0 && input.decode_wait_us > 0) {
    if (AddMicros(now_us, input.decode_wait_us) >= by_us) {
      return UnavailableError("overloaded: the requests waiting to be decoded would take about " +
                              std::to_string(input.decode_wait_us / kMicrosPerMilli) + " ms, past the " +
                              bound_name + " (" + std::to_string((by_us - now_us) / kMicrosPerMilli) +
                              " ms); retry later");
    }
    by_us -= input.decode_wait_us;
  }
  const int64_t items = static_cast<int64_t>(run.items.size());
  Status admitted = servable.CheckAdmission(items, by_us);
  // Refused for the bound, not for a full queue or the deadline: say which bound.
  if (bounded && admitted.code() == StatusCode::kUnavailable && servable.CheckAdmission(items, run.deadline_us).ok()) {
    return admitted.WithContext("bound: " + bound_name);
  }
  return admitted;
}

}  // namespace cnnserve
