// RequestGate: the service layer's count of requests between admission and answer, every front end and model
// together, and of those among them still being prepared (decoded, validated: not yet handed to their servable).
// It enforces the per-server limit (--max-in-flight: a request past it is refused with UNAVAILABLE before any work
// is spent on it), closes on shutdown (later requests are refused with UNAVAILABLE), lets the shutdown wait until
// no admitted request is still being prepared (so none meets a servable that stopped admitting) or none is in
// flight, and counts how the requests that were in flight when it closed were answered (the drain report the
// server logs).
// Thread-safety: every method may be called from any thread. Enter and Leave take one short lock.
#ifndef CNNSERVE_SERVER_SERVICE_REQUEST_GATE_H_
#define CNNSERVE_SERVER_SERVICE_REQUEST_GATE_H_

#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "engine/common/status.h"

namespace cnnserve {

class RequestGate {
 public:
  // `max_in_flight` > 0: at most that many requests at once; 0: no limit.
  explicit RequestGate(int64_t max_in_flight) : max_in_flight_(max_in_flight) {}

  // OK: admitted, and Prepared and Leave must each be called exactly once (in either order): Prepared once the
  // request is in its servable's hands or has failed before, Leave with its answer. UNAVAILABLE when closed or
  // full.
  Status Enter();
  void Prepared();
  void Leave(const Status& answer);

  // Refuses every later Enter. Returns how many requests are in flight now. Idempotent.
  int64_t Close();
  // Blocks until no admitted request is in flight or until `deadline_us` (steady clock, SteadyNowMicros).
  // Returns true when none is in flight.
  bool WaitIdle(int64_t deadline_us);
  // Blocks until no admitted request is still being prepared or until `deadline_us`; true when none is.
  bool WaitPrepared(int64_t deadline_us);

  struct DrainReport {
    int64_t in_flight_at_close = 0;
    int64_t answered_ok = 0;
    std::map<StatusCode, int64_t> failed;  // answers after Close, by code
    int64_t unanswered = 0;                // still in flight now
    std::string ToString() const;
  };
  // How the requests in flight at Close have been answered so far.
  DrainReport Report() const;

  int64_t in_flight() const;

 private:
  const int64_t max_in_flight_;
  mutable std::mutex mu_;
  std::condition_variable idle_cv_;
  int64_t in_flight_ = 0;
  int64_t preparing_ = 0;
  bool closed_ = false;
  DrainReport report_;
};

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_SERVICE_REQUEST_GATE_H_
