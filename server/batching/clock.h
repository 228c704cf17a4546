// Clock: the batching layer's only source of time, injected so that timing can be tested without sleeping.
//
// Times are int64 microseconds on a monotonic timeline chosen by the clock (for RealClock: std::steady_clock since
// its epoch). Deadlines handed to a scheduler must be on the same timeline: convert "remaining time" into
// `clock->NowMicros() + remaining_us`.
//
// Every blocking wait of the batcher goes through Clock::WaitUntil, with the batcher's own mutex and condition
// variable. RealClock waits on the condition variable with a timeout; FakeClock (fake_clock.h) waits on the same
// condition variable but is only woken by a notify or by FakeClock::AdvanceMicros, so tests drive time.
//
// ThreadCpuMicros is the calling thread's CPU time (FakeClock: its time less what tests declared idle), by which
// the batcher times a batch that runs on its own thread, so that time lost to preemption is not counted
// (RunTimerMicros; only some batches, DynamicBatcherOptions::plan_timing_stride, as it may be a system call).
// Thread-safety: implementations are thread-safe.
#ifndef CNNSERVE_SERVER_BATCHING_CLOCK_H_
#define CNNSERVE_SERVER_BATCHING_CLOCK_H_

#include <condition_variable>
#include <cstdint>
#include <limits>
#include <mutex>

namespace cnnserve {

class Clock {
 public:
  // A time that never comes: "no deadline" / "wait for a notify only".
  static constexpr int64_t kInfiniteFuture = std::numeric_limits<int64_t>::max();

  virtual ~Clock() = default;

  // The process-wide real clock. Never null, never destroyed.
  static Clock* Real();

  virtual int64_t NowMicros() const = 0;

  // CPU time the calling thread has used, in microseconds (RealClock: CLOCK_THREAD_CPUTIME_ID; a preempted or
  // sleeping thread's does not advance). Only differences between two calls on the same thread mean anything.
  // FakeClock: NowMicros() less the time its tests declared idle.
  virtual int64_t ThreadCpuMicros() const = 0;

  // Waits on `cv` until NowMicros() >= deadline_us or `cv` is notified; may also return spuriously, so callers
  // re-check their condition in a loop. `lock` must hold the mutex that guards the state `cv` signals; it is
  // released while waiting and held again on return. deadline_us == kInfiniteFuture waits for a notify only.
  // Returns at once (without releasing `lock`) when the deadline has already passed.
  virtual void WaitUntil(std::unique_lock<std::mutex>& lock, std::condition_variable& cv, int64_t deadline_us) = 0;
};

// What a run is timed by: `clock`'s ThreadCpuMicros when the run's work is done on the calling thread, else its
// NowMicros (the work runs on other threads while this one waits). Take differences of two calls on one thread.
inline int64_t RunTimerMicros(const Clock& clock, bool work_on_calling_thread) {
  return work_on_calling_thread ? clock.ThreadCpuMicros() : clock.NowMicros();
}

// Saturating a + b for times and durations (never overflows past kInfiniteFuture). Requires b >= 0.
inline int64_t AddMicros(int64_t a, int64_t b) {
  return a > Clock::kInfiniteFuture - b ? Clock::kInfiniteFuture : a + b;
}

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_BATCHING_CLOCK_H_
