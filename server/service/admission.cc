#include "server/service/admission.h"

#include <string>

#include "engine/common/units.h"
#include "server/batching/clock.h"
#include "server/preprocess/image_header.h"
#include "server/preprocess/preprocess.h"

namespace cnnserve {
namespace {

std::string Millis(int64_t micros) { return std::to_string(micros / kMicrosPerMilli) + " ms"; }

}  // namespace

Status AdmitRequest(Servable& servable, const RunRequest& run, const AdmissionInput& input) {
  const int64_t items = static_cast<int64_t>(run.items.size());
  // The decode worker's wait is spent before the model's queue sees the request.
  int64_t by_us = run.deadline_us;
  if (by_us > 0 && input.decode_wait_us > 0) {
    if (AddMicros(input.now_us, input.decode_wait_us) >= by_us) {
      return UnavailableError("overloaded: the requests waiting to be decoded would take about " +
                              Millis(input.decode_wait_us) + ", past the deadline in " +
                              Millis(by_us - input.now_us) + "; retry later or with a longer deadline");
    }
    by_us -= input.decode_wait_us;
  }
  CNN_RETURN_IF_ERROR(servable.CheckAdmission(items, by_us));
  if (input.max_queue_wait_us <= 0) return OkStatus();
  // The bound is on the wait before the request's own work starts, so a large request is not refused for its size.
  const int64_t wait_us = AddMicros(input.decode_wait_us, servable.ExpectedWorkMicros(0));
  if (wait_us <= input.max_queue_wait_us) return OkStatus();
  return UnavailableError("overloaded: about " + Millis(wait_us) + " of work is queued ahead of this request (" +
                          Millis(input.decode_wait_us) + " of it waiting to be decoded), more than --max-queue-wait-ms " +
                          std::to_string(input.max_queue_wait_us / kMicrosPerMilli) + "; retry later");
}

bool NeedsDecodeWorker(const RunRequest& run, int64_t max_pixels) {
  int64_t bytes = 0;
  for (const ImageItem& item : run.items) {
    if (item.kind == ImageItem::Kind::kTensor) continue;
    if (item.kind == ImageItem::Kind::kPixels) {
      bytes += static_cast<int64_t>(item.data.size());
    } else {
      StatusOr<ImageHeader> header = InspectImage(item.data, max_pixels);
      if (!header.ok()) return true;
      bytes += DecodedBytes(*header);
    }
    if (bytes > kInlineDecodeBytes) return true;
  }
  return false;
}

}  // namespace cnnserve
