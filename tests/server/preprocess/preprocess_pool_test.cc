// PreprocessPool: jobs run on its workers, its queue is bounded (UNAVAILABLE naming the bound, the job dropped),
// and destroying it runs what is still queued.
#include "server/preprocess/preprocess_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>
#include <vector>

namespace cnnserve {
namespace {

TEST(PreprocessPoolTest, OptionsAreChecked) {
  EXPECT_EQ(PreprocessPool::Create({.threads = 0, .max_queued = 1}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(PreprocessPool::Create({.threads = 1, .max_queued = 0}).status().code(), StatusCode::kInvalidArgument);
}

TEST(PreprocessPoolTest, JobsRunOnWorkersAndTheQueueIsBounded) {
  std::unique_ptr<PreprocessPool> pool = *PreprocessPool::Create({.threads = 1, .max_queued = 2});
  ASSERT_EQ(pool->threads(), 1);
  // Hold the only worker.
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::promise<std::thread::id> started;
  ASSERT_TRUE(pool->Submit([&started, released] {
                    started.set_value(std::this_thread::get_id());
                    released.wait();
                  }).ok());
  EXPECT_NE(started.get_future().get(), std::this_thread::get_id());
  std::atomic<int> ran{0};
  EXPECT_TRUE(pool->Submit([&ran] { ++ran; }).ok());
  EXPECT_TRUE(pool->Submit([&ran] { ++ran; }).ok());
  const Status full = pool->Submit([&ran] { ran += 100; });
  EXPECT_EQ(full.code(), StatusCode::kUnavailable);
  EXPECT_NE(full.message().find("at most 2 may wait"), std::string::npos) << full.ToString();
  PreprocessPool::Counters counters = pool->counters();
  EXPECT_EQ(counters.queued, 2);
  EXPECT_EQ(counters.running, 1);
  EXPECT_EQ(counters.refused, 1);
  release.set_value();
  pool.reset();  // runs the queued jobs, then joins
  EXPECT_EQ(ran.load(), 2) << "the refused job must not run";
}

// The expected wait is the jobs ahead (running ones count half) times the recent job time, over the workers; it
// is 0 until a job has been timed. Jobs here sleep, so their measured time is at least the sleep: the estimate
// has a lower bound that does not depend on the machine's speed.
TEST(PreprocessPoolTest, ExpectedWaitGrowsWithTheJobsAhead) {
  std::unique_ptr<PreprocessPool> pool = *PreprocessPool::Create({.threads = 1, .max_queued = 10});
  EXPECT_EQ(pool->ExpectedWaitMicros(), 0) << "nothing timed yet";
  constexpr auto kJob = std::chrono::milliseconds(20);
  std::promise<void> first_done;
  ASSERT_TRUE(pool->Submit([&first_done, kJob] {
                    std::this_thread::sleep_for(kJob);
                    first_done.set_value();
                  }).ok());
  first_done.get_future().wait();
  pool->WaitIdle();
  EXPECT_EQ(pool->ExpectedWaitMicros(), 0) << "an idle pool: no wait";
  // Hold the worker, queue 4 jobs: at least (4 + 1/2) x 20 ms ahead of the next one.
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::promise<void> holding;
  ASSERT_TRUE(pool->Submit([&holding, released] {
                    holding.set_value();
                    released.wait();
                  }).ok());
  holding.get_future().wait();
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(pool->Submit([] {}).ok());
  EXPECT_GE(pool->ExpectedWaitMicros(), 90'000);
  release.set_value();
  pool->WaitIdle();
  EXPECT_EQ(pool->ExpectedWaitMicros(), 0);
}

TEST(PreprocessPoolTest, DestroyingRunsEveryQueuedJob) {
  std::atomic<int> ran{0};
  {
    std::unique_ptr<PreprocessPool> pool = *PreprocessPool::Create({.threads = 2, .max_queued = 100});
    for (int i = 0; i < 50; ++i) ASSERT_TRUE(pool->Submit([&ran] { ++ran; }).ok());
  }
  EXPECT_EQ(ran.load(), 50);
}

}  // namespace
}  // namespace cnnserve
