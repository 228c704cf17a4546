// DeadlineTimer on a FakeClock: order, cancellation, callbacks that schedule, Stop from a callback.
#include "server/ensemble/deadline_timer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "server/batching/fake_clock.h"

namespace cnnserve {
namespace {

// What the callbacks did, in order; waitable.
class Log {
 public:
  void Add(int value) {
    std::lock_guard<std::mutex> lock(mu_);
    values_.push_back(value);
    cv_.notify_all();
  }
  // Waits (real time, bounded) until `count` values are in.
  std::vector<int> WaitFor(size_t count) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(30), [&] { return values_.size() >= count; });
    return values_;
  }
  std::vector<int> Now() {
    std::lock_guard<std::mutex> lock(mu_);
    return values_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int> values_;
};

TEST(DeadlineTimerTest, RunsCallbacksInDeadlineOrderWhenTheClockGetsThere) {
  FakeClock clock(1000);
  std::shared_ptr<DeadlineTimer> timer = DeadlineTimer::Start(&clock);
  Log log;
  timer->Schedule(1300, [&] { log.Add(3); });
  timer->Schedule(1100, [&] { log.Add(1); });
  timer->Schedule(1200, [&] { log.Add(2); });
  timer->Schedule(1200, [&] { log.Add(22); });  // equal deadlines: scheduling order
  ASSERT_TRUE(clock.BlockUntilWaitingFor(1100));
  EXPECT_TRUE(log.Now().empty());
  clock.AdvanceMicros(100);
  EXPECT_EQ(log.WaitFor(1), std::vector<int>({1}));
  ASSERT_TRUE(clock.BlockUntilWaitingFor(1200));
  clock.AdvanceMicros(500);
  EXPECT_EQ(log.WaitFor(4), std::vector<int>({1, 2, 22, 3}));
  timer->Stop();
}

TEST(DeadlineTimerTest, PastDeadlineRunsAtOnce) {
  FakeClock clock(5000);
  std::shared_ptr<DeadlineTimer> timer = DeadlineTimer::Start(&clock);
  Log log;
  timer->Schedule(10, [&] { log.Add(7); });
  EXPECT_EQ(log.WaitFor(1), std::vector<int>({7}));
  timer->Stop();
}

TEST(DeadlineTimerTest, CancelledCallbackNeverRuns) {
  FakeClock clock(0);
  std::shared_ptr<DeadlineTimer> timer = DeadlineTimer::Start(&clock);
  Log log;
  const DeadlineTimer::Id cancelled = timer->Schedule(100, [&] { log.Add(1); });
  timer->Schedule(200, [&] { log.Add(2); });
  EXPECT_NE(cancelled, 0u);
  EXPECT_EQ(timer->Pending(), 2u);
  timer->Cancel(cancelled);
  timer->Cancel(cancelled);  // twice: no effect
  timer->Cancel(12345);      // unknown: no effect
  EXPECT_EQ(timer->Pending(), 1u);
  ASSERT_TRUE(clock.BlockUntilWaitingFor(200));
  clock.AdvanceMicros(300);
  EXPECT_EQ(log.WaitFor(1), std::vector<int>({2}));
  timer->Stop();
}

TEST(DeadlineTimerTest, CallbackMaySchedule) {
  FakeClock clock(0);
  std::shared_ptr<DeadlineTimer> timer = DeadlineTimer::Start(&clock);
  Log log;
  timer->Schedule(0, [&] {
    log.Add(1);
    timer->Schedule(50, [&] { log.Add(2); });
  });
  EXPECT_EQ(log.WaitFor(1), std::vector<int>({1}));
  ASSERT_TRUE(clock.BlockUntilWaitingFor(50));
  clock.AdvanceMicros(50);
  EXPECT_EQ(log.WaitFor(2), std::vector<int>({1, 2}));
  timer->Stop();
}

TEST(DeadlineTimerTest, StopDropsPendingAndLaterSchedules) {
  FakeClock clock(0);
  std::shared_ptr<DeadlineTimer> timer = DeadlineTimer::Start(&clock);
  std::atomic<int> ran{0};
  timer->Schedule(100, [&] { ++ran; });
  timer->Stop();
  timer->Stop();  // idempotent
  EXPECT_EQ(timer->Schedule(0, [&] { ++ran; }), 0u);
  clock.AdvanceMicros(1000);
  EXPECT_EQ(ran.load(), 0);
  EXPECT_EQ(timer->Pending(), 0u);
}

TEST(DeadlineTimerTest, StopFromItsOwnCallbackDetaches) {
  FakeClock clock(0);
  std::weak_ptr<DeadlineTimer> weak;
  std::promise<void> stopped;
  {
    std::shared_ptr<DeadlineTimer> timer = DeadlineTimer::Start(&clock);
    weak = timer;
    // The owner lets go first; the callback stops the timer it runs on.
    timer->Schedule(0, [raw = timer.get(), &stopped] {
      raw->Stop();
      stopped.set_value();
    });
  }
  ASSERT_EQ(stopped.get_future().wait_for(std::chrono::seconds(30)), std::future_status::ready);
  // The thread ends and releases the timer.
  for (int i = 0; i < 3000 && !weak.expired(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_TRUE(weak.expired());
}

}  // namespace
}  // namespace cnnserve
