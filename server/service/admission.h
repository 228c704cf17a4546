// AdmitRequest: whether the service lets a request go on to be decoded and queued, decided before any work is
// spent on it (issue 13: overload is shed at admission).
//
// The request must be expected to finish by its deadline, and, whatever the deadline, the work queued ahead of it
// must be expected to take at most max_queue_wait_us (--max-queue-wait-ms; 0: no such bound): past capacity the
// admitted requests then wait about that long at most and the rest are refused at once. The bound is on the wait,
// not on the request's own run time, so a large request on an idle server is admitted. A request with images first
// waits for a decode worker (PreprocessPool::ExpectedWaitMicros): that wait is part of the wait and is taken off
// the time left before the servable's queue is asked (Servable::CheckAdmission; Servable::ExpectedWorkMicros(0)
// for the wait, which for an ensemble adds up its members'). Errors: UNAVAILABLE "overloaded" (naming the
// deadline or --max-queue-wait-ms), or the servable's own refusal (queue full, shutting down, DEADLINE_EXCEEDED).
// Thread-safety: as thread-safe as the servable's CheckAdmission.
#ifndef CNNSERVE_SERVER_SERVICE_ADMISSION_H_
#define CNNSERVE_SERVER_SERVICE_ADMISSION_H_

#include <cstdint>

#include "engine/common/status.h"
#include "server/servables/servable.h"

namespace cnnserve {

struct AdmissionInput {
  int64_t now_us = 0;             // steady clock
  int64_t decode_wait_us = 0;     // expected wait for a decode worker; 0 when the request decodes nothing
  int64_t max_queue_wait_us = 0;  // 0: no bound but the deadline
};

Status AdmitRequest(Servable& servable, const RunRequest& run, const AdmissionInput& input);

// Requests whose images together take at most this much memory to decode (DecodedBytes: a 28x28 gray PNG takes
// 784 bytes, a 224x224 RGB JPEG 147 KiB) are decoded on the thread that received them: their decode costs about
// as much as parsing the request, less than handing it to a decode worker and back. Larger ones, and images whose
// header does not parse (their error comes from the worker), go to the decode workers, so that a costly image
// never holds a front-end thread.
inline constexpr int64_t kInlineDecodeBytes = 64 << 10;

// Whether `run` has images that go to a decode worker (see kInlineDecodeBytes; `max_pixels` as DecodeLimits).
bool NeedsDecodeWorker(const RunRequest& run, int64_t max_pixels);

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_SERVICE_ADMISSION_H_
