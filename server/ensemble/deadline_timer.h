// DeadlineTimer: runs callbacks at absolute times on one background thread. The ensemble servable uses it to stop
// waiting for members that have not answered by their deadline (a member may be stuck in a long batch or never
// answer at all; the ensemble answers without it).
//
// Time comes from an injected Clock (server/batching/clock.h), so tests drive it with a FakeClock instead of
// sleeping. Callbacks run on the timer thread, one at a time, in deadline order (equal deadlines in scheduling
// order), without the timer's lock held: they may call Schedule and Cancel. A callback that blocks delays the
// ones after it.
//
// Lifetime: create with Start and end with Stop (the owner's destructor). Stop may be called from a callback
// (the timer thread then detaches and ends after that callback returns); the thread keeps the timer object
// alive until it has ended.
// Thread-safety: all methods are thread-safe.
#ifndef CNNSERVE_SERVER_ENSEMBLE_DEADLINE_TIMER_H_
#define CNNSERVE_SERVER_ENSEMBLE_DEADLINE_TIMER_H_

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>

#include "server/batching/clock.h"

namespace cnnserve {

class DeadlineTimer : public std::enable_shared_from_this<DeadlineTimer> {
 public:
  // Identifies one scheduled callback (for Cancel). Never 0.
  using Id = uint64_t;

  // Starts the thread. `clock` is not owned and must outlive the thread (until Stop has returned and the last
  // callback has finished).
  static std::shared_ptr<DeadlineTimer> Start(Clock* clock);

  DeadlineTimer(const DeadlineTimer&) = delete;
  DeadlineTimer& operator=(const DeadlineTimer&) = delete;
  ~DeadlineTimer();

  // Runs `callback` once the clock reaches `deadline_us` (at once if it already has). After Stop: dropped, 0.
  Id Schedule(int64_t deadline_us, std::function<void()> callback);

  // Drops a callback that has not started; no effect on one that is running or done, or on an unknown id.
  // Does not block.
  void Cancel(Id id);

  // Callbacks scheduled and not yet started or cancelled.
  size_t Pending() const;

  // Drops every pending callback and ends the thread: joins it (waiting for a running callback), or detaches it
  // when called on the timer thread itself (from a callback). Idempotent; a second call does not wait.
  void Stop();

 private:
  explicit DeadlineTimer(Clock* clock) : clock_(clock) {}
  void Loop();

  Clock* const clock_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // guarded by mu_
  Id next_id_ = 1;         // guarded by mu_
  std::map<std::pair<int64_t, Id>, std::function<void()>>
      callbacks_;                    // guarded by mu_; (deadline, id) -> callback
  std::map<Id, int64_t> deadlines_;  // guarded by mu_; id -> deadline
  std::thread thread_;               // guarded by mu_ after Start
};

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_ENSEMBLE_DEADLINE_TIMER_H_
