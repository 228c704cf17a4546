// AdmitRequest: whether the service lets a request go on to be decoded and queued, decided before any work is
// spent on it (issue 13: overload is shed at admission).
//
// The request must be expected to finish by its deadline and, whatever the deadline, within max_queue_wait_us
// from now (--max-queue-wait-ms; 0: the deadline alone). A request with images first waits for a decode worker:
// that expected wait (PreprocessPool::ExpectedWaitMicros) is taken off the time left before the servable's queue
// is asked (Servable::CheckAdmission, which for an ensemble adds up its members' work). Errors: UNAVAILABLE
// "overloaded" (the decode queue alone, or the model's queue, would carry it past the bound; prefixed "bound:
// --max-queue-wait-ms N" when that bound, not the deadline, refused it), or the servable's own refusal (queue
// full, shutting down, DEADLINE_EXCEEDED).
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

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_SERVICE_ADMISSION_H_
