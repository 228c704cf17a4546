// Clock, FakeClock and Task basics.
#include "server/batching/clock.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

#include "server/batching/fake_clock.h"
#include "server/batching/task.h"

namespace cnnserve {
namespace {

TEST(AddMicrosTest, Saturates) {
  EXPECT_EQ(AddMicros(10, 5), 15);
  EXPECT_EQ(AddMicros(Clock::kInfiniteFuture - 3, 5), Clock::kInfiniteFuture);
  EXPECT_EQ(AddMicros(Clock::kInfiniteFuture, 0), Clock::kInfiniteFuture);
}

TEST(RealClockTest, IsMonotonic) {
  Clock* clock = Clock::Real();
  const int64_t a = clock->NowMicros();
  const int64_t b = clock->NowMicros();
  EXPECT_LE(a, b);
  EXPECT_EQ(clock, Clock::Real());
}

TEST(RealClockTest, WaitUntilPastDeadlineReturnsAtOnceHoldingTheLock) {
  std::mutex mu;
  std::condition_variable cv;
  std::unique_lock<std::mutex> lock(mu);
  Clock::Real()->WaitUntil(lock, cv, Clock::Real()->NowMicros() - 1);
  EXPECT_TRUE(lock.owns_lock());
}

TEST(RealClockTest, WaitUntilReturnsByTheDeadline) {
  std::mutex mu;
  std::condition_variable cv;
  std::unique_lock<std::mutex> lock(mu);
  Clock* clock = Clock::Real();
  const int64_t deadline_us = clock->NowMicros() + 2000;
  while (clock->NowMicros() < deadline_us) clock->WaitUntil(lock, cv, deadline_us);
  EXPECT_TRUE(lock.owns_lock());
  EXPECT_GE(clock->NowMicros(), deadline_us);
}

// A thread's CPU time moves while it computes and stands still while it sleeps (as while it is preempted).
TEST(RealClockTest, ThreadCpuTimeCountsWorkNotSleep) {
  Clock* clock = Clock::Real();
  const int64_t cpu_before_sleep = clock->ThreadCpuMicros();
  const int64_t wall_before_sleep = clock->NowMicros();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_GE(clock->NowMicros() - wall_before_sleep, 50000);
  EXPECT_LT(clock->ThreadCpuMicros() - cpu_before_sleep, 10000);
  // Spin until the thread has used 20 ms of CPU; the wall clock moves as far (give or take the two clocks'
  // rounding to microseconds).
  const int64_t cpu_start = clock->ThreadCpuMicros();
  const int64_t wall_start = clock->NowMicros();
  volatile uint64_t sink = 0;
  while (clock->ThreadCpuMicros() - cpu_start < 20000) {
    for (int i = 0; i < 1000; ++i) sink = sink + static_cast<uint64_t>(i);
  }
  const int64_t cpu_used = clock->ThreadCpuMicros() - cpu_start;
  EXPECT_GE(clock->NowMicros() - wall_start + 10, cpu_used);
}

// Its CPU time moves with it, except for the time declared idle (a preempted thread's).
TEST(FakeClockTest, TimeMovesOnlyWhenAdvanced) {
  FakeClock clock(1000);
  EXPECT_EQ(clock.NowMicros(), 1000);
  clock.AdvanceMicros(250);
  EXPECT_EQ(clock.NowMicros(), 1250);
  clock.AdvanceMicros(0);
  EXPECT_EQ(clock.NowMicros(), 1250);
  EXPECT_EQ(clock.ThreadCpuMicros(), 1250);
  clock.AdvanceIdleMicros(5000);
  EXPECT_EQ(clock.NowMicros(), 6250);
  EXPECT_EQ(clock.ThreadCpuMicros(), 1250);
  clock.AdvanceMicros(100);
  EXPECT_EQ(clock.ThreadCpuMicros(), 1350);
}

TEST(FakeClockTest, WaitUntilPastDeadlineReturnsAtOnce) {
  FakeClock clock(100);
  std::mutex mu;
  std::condition_variable cv;
  std::unique_lock<std::mutex> lock(mu);
  clock.WaitUntil(lock, cv, 100);
  EXPECT_TRUE(lock.owns_lock());
  EXPECT_EQ(clock.NumWaiters(), 0);
}

TEST(FakeClockTest, WaiterWakesOnlyWhenItsDeadlineIsReached) {
  FakeClock clock;
  std::mutex mu;
  std::condition_variable cv;
  bool woke = false;
  std::thread waiter([&] {
    std::unique_lock<std::mutex> lock(mu);
    while (clock.NowMicros() < 100) clock.WaitUntil(lock, cv, 100);
    woke = true;
  });
  ASSERT_TRUE(clock.BlockUntilWaitingFor(100));
  clock.AdvanceMicros(99);
  // Not woken: still registered with its deadline (AdvanceMicros removes the waiters it wakes at once).
  EXPECT_EQ(clock.NumWaiters(), 1);
  {
    std::lock_guard<std::mutex> guard(mu);
    EXPECT_FALSE(woke);
  }
  clock.AdvanceMicros(1);
  waiter.join();
  EXPECT_TRUE(woke);
  EXPECT_EQ(clock.NumWaiters(), 0);
}

TEST(FakeClockTest, NotifyWakesAWaiterWithoutTimeMoving) {
  FakeClock clock;
  std::mutex mu;
  std::condition_variable cv;
  bool go = false;
  std::thread waiter([&] {
    std::unique_lock<std::mutex> lock(mu);
    while (!go) clock.WaitUntil(lock, cv, Clock::kInfiniteFuture);
  });
  ASSERT_TRUE(clock.BlockUntilWaiters(1));
  {
    std::lock_guard<std::mutex> guard(mu);
    go = true;
  }
  cv.notify_all();
  waiter.join();
  EXPECT_EQ(clock.NumWaiters(), 0);
  EXPECT_EQ(clock.NowMicros(), 0);
}

TEST(FakeClockTest, AdvanceWakesEveryDueWaiter) {
  FakeClock clock;
  std::mutex mu;
  std::condition_variable cv;
  std::thread early([&] {
    std::unique_lock<std::mutex> lock(mu);
    while (clock.NowMicros() < 10) clock.WaitUntil(lock, cv, 10);
  });
  std::thread late([&] {
    std::unique_lock<std::mutex> lock(mu);
    while (clock.NowMicros() < 20) clock.WaitUntil(lock, cv, 20);
  });
  ASSERT_TRUE(clock.BlockUntilWaitingFor(10));
  ASSERT_TRUE(clock.BlockUntilWaitingFor(20));
  clock.AdvanceMicros(50);
  early.join();
  late.join();
  EXPECT_EQ(clock.NumWaiters(), 0);
}

TEST(FakeClockTest, BlockUntilTimesOutInsteadOfHanging) {
  FakeClock clock;
  EXPECT_FALSE(clock.BlockUntilWaiters(1, /*timeout_ms=*/1));
  EXPECT_FALSE(clock.BlockUntilWaitingFor(5, /*timeout_ms=*/1));
}

TEST(TaskTest, FinishCallsTheCallbackOnce) {
  int calls = 0;
  Status seen;
  Task task(3, [&](Status status) {
    ++calls;
    seen = std::move(status);
  });
  EXPECT_EQ(task.num_items(), 3);
  EXPECT_EQ(task.deadline_us(), Clock::kInfiniteFuture);
  EXPECT_FALSE(task.IsCancelled());
  EXPECT_FALSE(task.finished());
  task.Finish(CancelledError("x"));
  task.Finish(OkStatus());
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(seen.code(), StatusCode::kCancelled);
  EXPECT_TRUE(task.finished());
}

TEST(TaskTest, CancellationCheckIsConsulted) {
  bool cancelled = false;
  Task task(1, nullptr);
  task.set_cancellation_check([&] { return cancelled; });
  EXPECT_FALSE(task.IsCancelled());
  cancelled = true;
  EXPECT_TRUE(task.IsCancelled());
  task.Finish(OkStatus());  // a null callback is allowed
}

}  // namespace
}  // namespace cnnserve
