// DynamicBatcher's overlap (DynamicBatcherOptions::overlap_answers): while tasks wait, a batch's answers are sent
// by the worker's hand-off thread during the next batch's run; at most one batch's answers wait there; when
// nothing waits, the worker answers itself. The clock is fake (no batch ever waits on time); the runner and the
// callbacks meet at gates, each bounded by a real-time guard so that a broken batcher fails instead of hanging.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "server/batching/dynamic_batcher.h"
#include "server/batching/fake_clock.h"

namespace cnnserve {
namespace {

// Long enough for any healthy wait here; a batcher that serialises answer and run fails after it.
constexpr auto kGuard = std::chrono::seconds(5);

// Named conditions that threads set and wait for.
class Events {
 public:
  void Set(const std::string& name) {
    std::lock_guard<std::mutex> lock(mu_);
    set_.push_back(name);
    cv_.notify_all();
  }
  bool WaitFor(const std::string& name) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, kGuard, [&] { return IsSetLocked(name); });
  }
  bool IsSet(const std::string& name) {
    std::lock_guard<std::mutex> lock(mu_);
    return IsSetLocked(name);
  }
  // The order in which the events were first set.
  std::vector<std::string> Order() {
    std::lock_guard<std::mutex> lock(mu_);
    return set_;
  }

 private:
  bool IsSetLocked(const std::string& name) const {
    for (const std::string& s : set_)
      if (s == name) return true;
    return false;
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> set_;
};

// Batch k (1, 2, ...): sets "run k started", runs `hooks[k]` if any, records its thread, sets "run k ended".
class ScriptedRunner : public BatchRunner {
 public:
  ScriptedRunner(Events* events, std::vector<std::function<void()>> hooks)
      : events_(events), hooks_(std::move(hooks)) {}
  Status RunBatch(std::span<Task* const> /*batch*/, std::span<Status> /*statuses*/) override {
    const size_t k = ++runs_;
    events_->Set("run " + std::to_string(k) + " started");
    if (k < hooks_.size() && hooks_[k]) hooks_[k]();
    thread_ = std::this_thread::get_id();
    events_->Set("run " + std::to_string(k) + " ended");
    return OkStatus();
  }
  std::thread::id thread() const { return thread_; }

 private:
  Events* events_;
  std::vector<std::function<void()>> hooks_;
  size_t runs_ = 0;
  std::thread::id thread_;
};

struct Fixture {
  FakeClock clock;
  Events events;
  ScriptedRunner* runner = nullptr;
  std::unique_ptr<DynamicBatcher> batcher;
  std::vector<std::thread::id> answer_threads = std::vector<std::thread::id>(8);

  // One task per batch (max_batch_size 1), no delay: each Schedule is one run.
  void Start(std::vector<std::function<void()>> hooks) {
    DynamicBatcherOptions options;
    options.max_batch_size = 1;
    options.clock = &clock;
    auto made = DynamicBatcher::Create(options, [&](int) -> StatusOr<std::unique_ptr<BatchRunner>> {
      auto r = std::make_unique<ScriptedRunner>(&events, hooks);
      runner = r.get();
      return std::unique_ptr<BatchRunner>(std::move(r));
    });
    ASSERT_TRUE(made.ok()) << made.status().ToString();
    batcher = std::move(*made);
  }
  // Task k: its callback records its thread, runs `hook`, then sets "answer k".
  void Schedule(int k, std::function<void()> hook = nullptr) {
    auto task = std::make_unique<Task>(1, [this, k, hook](Status status) {
      EXPECT_TRUE(status.ok()) << status.ToString();
      answer_threads[k] = std::this_thread::get_id();
      if (hook) hook();
      events.Set("answer " + std::to_string(k));
    });
    ASSERT_TRUE(batcher->Schedule(task).ok());
  }
};

TEST(OverlapTest, AnswersOfABatchAreSentWhileTheNextRuns) {
  Fixture f;
  // Run 1 ends only once task 2 waits; run 2 ends only once task 1 is answered.
  f.Start({nullptr, [&] { EXPECT_TRUE(f.events.WaitFor("task 2 queued")); },
           [&] { EXPECT_TRUE(f.events.WaitFor("answer 1")) << "run 2 ended before batch 1 was answered"; }});
  // Answering task 1 takes until run 2 has started: possible only if they overlap.
  f.Schedule(1, [&] { EXPECT_TRUE(f.events.WaitFor("run 2 started")) << "batch 1 answered before run 2 began"; });
  ASSERT_TRUE(f.events.WaitFor("run 1 started"));
  f.Schedule(2);
  f.events.Set("task 2 queued");
  ASSERT_TRUE(f.events.WaitFor("answer 2"));
  EXPECT_NE(f.answer_threads[1], f.runner->thread()) << "task 1 waited: answered on the hand-off thread";
  EXPECT_EQ(f.answer_threads[2], f.runner->thread()) << "nothing waited: the worker answered itself";
  EXPECT_TRUE(f.batcher->Shutdown(f.clock.NowMicros()).ok());
}

TEST(OverlapTest, AtMostOneBatchOfAnswersWaitsAndShutdownSendsIt) {
  Fixture f;
  f.Start({nullptr, [&] { EXPECT_TRUE(f.events.WaitFor("tasks 2 and 3 queued")); }});
  // Task 1's answer is held until the test lets it go.
  f.Schedule(1, [&] { EXPECT_TRUE(f.events.WaitFor("release answer 1")); });
  ASSERT_TRUE(f.events.WaitFor("run 1 started"));
  f.Schedule(2);
  f.Schedule(3);
  f.events.Set("tasks 2 and 3 queued");
  ASSERT_TRUE(f.events.WaitFor("run 2 ended"));
  // Batch 2's answers cannot be handed over while batch 1's are held, so run 3 does not start.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(f.events.IsSet("run 3 started"));
  EXPECT_FALSE(f.events.IsSet("answer 2"));
  f.events.Set("release answer 1");
  ASSERT_TRUE(f.events.WaitFor("answer 3"));
  ASSERT_TRUE(f.events.WaitFor("answer 2"));
  const std::vector<std::string> order = f.events.Order();
  const auto at = [&](const std::string& name) { return std::find(order.begin(), order.end(), name); };
  EXPECT_LT(at("answer 1"), at("answer 2"));
  EXPECT_LT(at("answer 1"), at("run 3 started"));
  EXPECT_TRUE(f.batcher->Shutdown(f.clock.NowMicros()).ok());
  const DynamicBatcherStats stats = f.batcher->stats();
  EXPECT_EQ(stats.tasks_admitted, 3);
  EXPECT_EQ(stats.tasks_succeeded, 3);
}

TEST(OverlapTest, ShutdownReturnsOnlyAfterHandedAnswersAreSent) {
  Fixture f;
  f.Start({nullptr, [&] { EXPECT_TRUE(f.events.WaitFor("task 2 queued")); }});
  f.Schedule(1, [&] { std::this_thread::sleep_for(std::chrono::milliseconds(50)); });
  ASSERT_TRUE(f.events.WaitFor("run 1 started"));
  f.Schedule(2);
  f.events.Set("task 2 queued");
  ASSERT_TRUE(f.events.WaitFor("run 2 started"));
  // The drain deadline is now: whatever already ran is still answered before Shutdown returns.
  (void)f.batcher->Shutdown(f.clock.NowMicros());
  EXPECT_TRUE(f.events.IsSet("answer 1"));
  EXPECT_TRUE(f.events.IsSet("answer 2"));
  const DynamicBatcherStats stats = f.batcher->stats();
  EXPECT_EQ(stats.tasks_admitted, stats.tasks_succeeded + stats.tasks_drain_failed);
}

TEST(OverlapTest, WithoutOverlapTheWorkerAnswersEveryBatch) {
  FakeClock clock;
  Events events;
  ScriptedRunner* runner = nullptr;
  DynamicBatcherOptions options;
  options.max_batch_size = 1;
  options.clock = &clock;
  options.overlap_answers = false;
  auto batcher = DynamicBatcher::Create(options, [&](int) -> StatusOr<std::unique_ptr<BatchRunner>> {
    auto r = std::make_unique<ScriptedRunner>(
        &events, std::vector<std::function<void()>>{nullptr, [&] { EXPECT_TRUE(events.WaitFor("queued")); }});
    runner = r.get();
    return std::unique_ptr<BatchRunner>(std::move(r));
  });
  ASSERT_TRUE(batcher.ok());
  std::thread::id answered_on;
  auto first = std::make_unique<Task>(1, [&](Status) { answered_on = std::this_thread::get_id(); });
  ASSERT_TRUE((*batcher)->Schedule(first).ok());
  ASSERT_TRUE(events.WaitFor("run 1 started"));
  auto second = std::make_unique<Task>(1, [&](Status) { events.Set("answer 2"); });
  ASSERT_TRUE((*batcher)->Schedule(second).ok());
  events.Set("queued");
  ASSERT_TRUE(events.WaitFor("answer 2"));
  EXPECT_EQ(answered_on, runner->thread());
  EXPECT_TRUE((*batcher)->Shutdown(clock.NowMicros()).ok());
}

}  // namespace
}  // namespace cnnserve
