// FakeClock: a Clock whose time only moves when a test calls AdvanceMicros, for deterministic timing tests. Its
// CPU time (ThreadCpuMicros) moves with it, except for the steps a test declares idle (AdvanceIdleMicros).
//
// A thread in WaitUntil(lock, cv, deadline) stays blocked until `cv` is notified by its owner, or until a call of
// AdvanceMicros moves the time to or past `deadline` (AdvanceMicros then notifies `cv` while holding the waiter's
// mutex, so the wake-up cannot be lost). Tests synchronise with the code under test through BlockUntilWaiters /
// BlockUntilWaitingFor ("the batcher is now parked until time T") instead of sleeping.
// Thread-safety: thread-safe. Contract: the mutex and condition variable passed to WaitUntil must not be destroyed
// while AdvanceMicros runs on another thread (in practice: advance and destroy from the same test thread).
// Test support: linked as cnnserve::batching_testing, not part of the serving library.
#ifndef CNNSERVE_SERVER_BATCHING_FAKE_CLOCK_H_
#define CNNSERVE_SERVER_BATCHING_FAKE_CLOCK_H_

#include <condition_variable>
#include <cstdint>
#include <list>
#include <mutex>

#include "engine/common/units.h"
#include "server/batching/clock.h"

namespace cnnserve {

class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t start_us = 0) : now_us_(start_us) {}
  FakeClock(const FakeClock&) = delete;
  FakeClock& operator=(const FakeClock&) = delete;

  int64_t NowMicros() const override;
  // NowMicros() less every AdvanceIdleMicros so far: the fake CPU time of whichever thread asks. Counted
  // (cpu_reads).
  int64_t ThreadCpuMicros() const override;
  // How many times ThreadCpuMicros was called.
  int64_t cpu_reads() const;
  void WaitUntil(std::unique_lock<std::mutex>& lock, std::condition_variable& cv, int64_t deadline_us) override;

  // Moves the time forward by delta_us (>= 0) and wakes every waiter whose deadline is now reached. Does not wait
  // for the woken threads to run. Must not be called while holding a mutex that some waiter passed to WaitUntil.
  void AdvanceMicros(int64_t delta_us);

  // As AdvanceMicros, but the time passes without CPU time (ThreadCpuMicros does not move): a thread preempted or
  // sleeping for delta_us.
  void AdvanceIdleMicros(int64_t delta_us);

  // Number of threads currently blocked in WaitUntil. A waiter woken by AdvanceMicros stops counting at once; one
  // woken by a notify of its condition variable stops counting when it has re-acquired its mutex.
  int NumWaiters() const;

  // The BlockUntil* functions wait in real time for other threads to reach a state; the timeout only guards a
  // broken test against hanging (they return false on timeout, true otherwise). They never move fake time.
  static constexpr int64_t kDefaultBlockTimeoutMs = kSecondsPerMinute * kMillisPerSecond;
  // Blocks until at least `count` threads are blocked in WaitUntil.
  bool BlockUntilWaiters(int count, int64_t timeout_ms = kDefaultBlockTimeoutMs);
  // Blocks until some thread is blocked in WaitUntil with exactly this deadline.
  bool BlockUntilWaitingFor(int64_t deadline_us, int64_t timeout_ms = kDefaultBlockTimeoutMs);

 private:
  struct Waiter {
    std::mutex* mutex;
    std::condition_variable* cv;
    int64_t deadline_us;
  };

  // AdvanceMicros, and AdvanceIdleMicros when `idle` (which adds the step to idle_us_ too): then wakes waiters.
  void Advance(int64_t delta_us, bool idle);

  mutable std::mutex mu_;
  std::condition_variable waiters_changed_;  // signalled when a waiter registers
  int64_t now_us_;                           // guarded by mu_
  int64_t idle_us_ = 0;                      // guarded by mu_: the sum of AdvanceIdleMicros
  mutable int64_t cpu_reads_ = 0;            // guarded by mu_
  std::list<Waiter*> waiters_;               // guarded by mu_; each points into a WaitUntil frame
};

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_BATCHING_FAKE_CLOCK_H_
