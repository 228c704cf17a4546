// RequestErrorLog: the log lines of failed requests, bounded under overload.
//
// Every failed request is logged once (DESIGN.md: errors), at info for the client's own mistakes
// (INVALID_ARGUMENT, NOT_FOUND, CANCELLED) and at warn otherwise. Load errors are different: past capacity the
// server refuses thousands of requests a second (UNAVAILABLE) or lets them time out (DEADLINE_EXCEEDED), and a
// line each cost more than the refusal itself (an overload run wrote 130,000 warn lines). So the first load error
// of each interval is logged in full and the others are counted; when the interval has ended, the next call (Log
// or Flush, which the service makes as requests finish) writes one line with the counts by code and the last one's
// message, e.g. `1204 more requests failed under load in the last 1.0 s (UNAVAILABLE 1200, DEADLINE_EXCEEDED
// 4); last: request 77 (model "m"): UNAVAILABLE: ...`.
//
// Thread-safety: every method may be called from any thread concurrently. Flush is cheap when nothing is pending
// (one atomic load), so it can be called on every request's answer.
#ifndef CNNSERVE_SERVER_SERVICE_REQUEST_ERROR_LOG_H_
#define CNNSERVE_SERVER_SERVICE_REQUEST_ERROR_LOG_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "engine/common/status.h"
#include "engine/common/units.h"

namespace cnnserve {

class RequestErrorLog {
 public:
  // `interval_us` > 0: how often at most a load error is logged in full.
  explicit RequestErrorLog(int64_t interval_us = kMicrosPerSecond) : interval_us_(interval_us) {}

  // Logs that request `request_id` of `model` failed with `status` (not OK), or counts it (see above). `now_us`
  // is the steady clock.
  void Log(std::string_view request_id, std::string_view model, const Status& status, int64_t now_us);

  // Writes the counted load errors' line if their interval has ended by `now_us`, or in any case when `force`
  // (at shutdown). Nothing when none is pending.
  void Flush(int64_t now_us, bool force = false);

  // Whether `status` is a load error: UNAVAILABLE or DEADLINE_EXCEEDED.
  static bool IsLoadError(const Status& status);

 private:
  // Writes and resets the pending line; with mu_ held.
  void WritePendingLocked(int64_t now_us);

  const int64_t interval_us_;
  std::atomic<int64_t> pending_{0};  // load errors counted and not yet written
  std::mutex mu_;
  int64_t interval_start_us_ = 0;       // guarded by mu_; when the current interval's full line was written
  bool interval_open_ = false;          // guarded by mu_
  std::map<StatusCode, int64_t> codes_;  // guarded by mu_; counts by code in the current interval
  std::string last_;                    // guarded by mu_; the last counted error's line
};

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_SERVICE_REQUEST_ERROR_LOG_H_
