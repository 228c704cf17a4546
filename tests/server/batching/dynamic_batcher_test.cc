// DynamicBatcher with a fake clock and fake runners. Timing is driven by FakeClock::AdvanceMicros and observed
// through FakeClock::BlockUntil*, never by sleeping. Waits on other threads carry a generous real-time timeout
// that only keeps a broken build from hanging.
#include "server/batching/dynamic_batcher.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "server/batching/fake_clock.h"

namespace cnnserve {
namespace {

constexpr auto kHangGuard = std::chrono::seconds(60);

// A task that carries an id, so that the runner and the recorder can tell tasks apart.
class TestTask : public Task {
 public:
  TestTask(int id, int64_t items, DoneCallback done) : Task(items, std::move(done)), id_(id) {}
  int id() const { return id_; }

 private:
  int id_;
};

// Collects every callback: how often each task id was finished and with which status.
class Recorder {
 public:
  Task::DoneCallback Callback(int id) {
    return [this, id](Status status) {
      std::lock_guard<std::mutex> guard(mu_);
      calls_[id].push_back(std::move(status));
      ++total_;
      cv_.notify_all();
    };
  }
  std::unique_ptr<Task> NewTask(int id, int64_t items = 1) {
    return std::make_unique<TestTask>(id, items, Callback(id));
  }
  // Blocks until `count` callbacks have been recorded in total.
  bool WaitForCount(int count) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, kHangGuard, [&] { return total_ >= count; });
  }
  int total() {
    std::lock_guard<std::mutex> guard(mu_);
    return total_;
  }
  int CallsFor(int id) {
    std::lock_guard<std::mutex> guard(mu_);
    auto it = calls_.find(id);
    return it == calls_.end() ? 0 : static_cast<int>(it->second.size());
  }
  // The status of the (single) call for `id`; INTERNAL "no call" when there was none.
  Status StatusFor(int id) {
    std::lock_guard<std::mutex> guard(mu_);
    auto it = calls_.find(id);
    return it == calls_.end() || it->second.empty() ? InternalError("no call") : it->second.front();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<int, std::vector<Status>> calls_;
  int total_ = 0;
};

// A latch that runners can be made to wait on, with a count of runners that have arrived.
class Gate {
 public:
  explicit Gate(bool open) : open_(open) {}
  void Open() {
    std::lock_guard<std::mutex> guard(mu_);
    open_ = true;
    cv_.notify_all();
  }
  void Close() {
    std::lock_guard<std::mutex> guard(mu_);
    open_ = false;
  }
  // Called by runners.
  void Pass() {
    std::unique_lock<std::mutex> lock(mu_);
    ++arrived_;
    cv_.notify_all();
    cv_.wait_for(lock, kHangGuard, [&] { return open_; });
  }
  bool BlockUntilArrived(int count) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, kHangGuard, [&] { return arrived_ >= count; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_;
  int arrived_ = 0;
};

struct BatchRecord {
  int instance;
  std::vector<int> ids;
  int64_t items;
};

// What all fake runners of one batcher share.
struct RunLog {
  std::mutex mu;
  std::vector<BatchRecord> batches;
  std::map<int, std::set<std::thread::id>> threads_by_instance;
  Gate gate{true};
  // Task ids whose entry the runner sets to INTERNAL, and an overall status to return.
  std::set<int> fail_ids;
  Status overall;
  std::vector<PlanCost> plan_costs;           // what the runners report as measured before serving
  std::function<void(int64_t items)> on_run;  // called by every run (e.g. to advance the fake clock)
  bool on_calling_thread = true;              // what the runners say of BatchRunner::RunsOnCallingThread

  std::vector<BatchRecord> Batches() {
    std::lock_guard<std::mutex> guard(mu);
    return batches;
  }
};

class FakeRunner : public BatchRunner {
 public:
  FakeRunner(int instance, RunLog* log) : instance_(instance), log_(log) {}

  std::vector<PlanCost> PlanCosts() const override { return log_->plan_costs; }
  bool RunsOnCallingThread() const override { return log_->on_calling_thread; }

  Status RunBatch(std::span<Task* const> batch, std::span<Status> task_statuses) override {
    BatchRecord record{instance_, {}, 0};
    for (size_t i = 0; i < batch.size(); ++i) {
      const auto* task = static_cast<const TestTask*>(batch[i]);
      record.ids.push_back(task->id());
      record.items += task->num_items();
    }
    Status overall;
    {
      std::lock_guard<std::mutex> guard(log_->mu);
      log_->batches.push_back(record);
      log_->threads_by_instance[instance_].insert(std::this_thread::get_id());
      for (size_t i = 0; i < batch.size(); ++i) {
        if (log_->fail_ids.count(record.ids[i]) != 0) task_statuses[i] = InternalError("task failed in runner");
      }
      overall = log_->overall;
    }
    if (log_->on_run) log_->on_run(record.items);
    log_->gate.Pass();
    return overall;
  }

 private:
  const int instance_;
  RunLog* const log_;
};

BatchRunnerFactory FakeRunners(RunLog* log) {
  return [log](int instance) -> StatusOr<std::unique_ptr<BatchRunner>> {
    return std::unique_ptr<BatchRunner>(std::make_unique<FakeRunner>(instance, log));
  };
}

std::vector<std::vector<int>> BatchIds(const std::vector<BatchRecord>& batches) {
  std::vector<std::vector<int>> ids;
  for (const BatchRecord& batch : batches) ids.push_back(batch.ids);
  return ids;
}

class DynamicBatcherTest : public ::testing::Test {
 protected:
  // The fixed-delay policy, whose waits these tests drive with the fake clock (adaptive: its own tests).
  DynamicBatcherOptions Options(int64_t max_batch_size, int64_t delay_us) {
    DynamicBatcherOptions options;
    options.policy = BatchingPolicy::kFixedDelay;
    options.max_batch_size = max_batch_size;
    options.max_queue_delay_us = delay_us;
    // Every run of kAdaptive timed, so that the tests of the plan figures see each run they stage.
    options.plan_timing_stride = 1;
    options.clock = &clock_;
    return options;
  }
  std::unique_ptr<DynamicBatcher> MakeBatcher(const DynamicBatcherOptions& options) {
    StatusOr<std::unique_ptr<DynamicBatcher>> batcher = DynamicBatcher::Create(options, FakeRunners(&log_));
    EXPECT_TRUE(batcher.ok()) << batcher.status().ToString();
    return batcher.ok() ? std::move(*batcher) : nullptr;
  }
  // Schedules a new task that must be admitted.
  void Admit(DynamicBatcher& batcher, int id, int64_t items = 1) {
    std::unique_ptr<Task> task = recorder_.NewTask(id, items);
    ASSERT_TRUE(batcher.Schedule(task).ok());
    ASSERT_EQ(task, nullptr);
  }

  // An adaptive batcher over plans 1, 4, 8 costing 100, 380 and 760 us whose runners say `on_calling_thread`:
  // eight batches of one, each using its plan's 100 us of CPU but taking 5,100 us of wall time (preempted), then
  // three one-item tasks gathered behind a ninth. Returns the batches that ran after the ninth.
  std::vector<std::vector<int>> PreemptedSinglesThenThreeGathered(bool on_calling_thread) {
    DynamicBatcherOptions options = Options(8, 0);
    options.policy = BatchingPolicy::kAdaptive;
    options.preferred_batch_sizes = {1, 4, 8};
    log_.plan_costs = {{1, 100}, {4, 380}, {8, 760}};
    log_.on_calling_thread = on_calling_thread;
    log_.on_run = [this](int64_t) {
      clock_.AdvanceMicros(100);
      clock_.AdvanceIdleMicros(5000);
    };
    std::unique_ptr<DynamicBatcher> batcher = MakeBatcher(options);
    if (batcher == nullptr) return {};
    int id = 0;
    for (; id < 8; ++id) {
      Admit(*batcher, id);
      EXPECT_TRUE(recorder_.WaitForCount(id + 1));
    }
    log_.gate.Close();
    Admit(*batcher, id++);
    EXPECT_TRUE(log_.gate.BlockUntilArrived(9));
    for (int i = 0; i < 3; ++i) Admit(*batcher, id++);
    log_.gate.Open();
    EXPECT_TRUE(recorder_.WaitForCount(12));
    EXPECT_TRUE(batcher->Shutdown(clock_.NowMicros()).ok());
    const std::vector<std::vector<int>> ids = BatchIds(log_.Batches());
    return std::vector<std::vector<int>>(ids.begin() + std::min<size_t>(9, ids.size()), ids.end());
  }

  FakeClock clock_;
  RunLog log_;
  Recorder recorder_;
};

// --- Construction and admission.

TEST_F(DynamicBatcherTest, CreateRejectsBadOptions) {
  struct Case {
    std::string field;
    DynamicBatcherOptions options;
  };
  std::vector<Case> cases;
  cases.push_back({"max_batch_size", Options(0, 0)});
  cases.push_back({"max_queue_delay_us", Options(4, -1)});
  cases.push_back({"preferred_batch_sizes", Options(4, 0)});
  cases.back().options.preferred_batch_sizes = {2, 5};
  cases.push_back({"preferred_batch_sizes", Options(4, 0)});
  cases.back().options.preferred_batch_sizes = {0};
  cases.push_back({"max_queue_size", Options(4, 0)});
  cases.back().options.max_queue_size = 0;
  cases.push_back({"num_instances", Options(4, 0)});
  cases.back().options.num_instances = 0;
  cases.push_back({"plan_timing_stride", Options(4, 0)});
  cases.back().options.plan_timing_stride = 0;
  cases.push_back({"max_inline_run_us", Options(4, 0)});
  cases.back().options.max_inline_run_us = -1;
  for (const Case& c : cases) {
    StatusOr<std::unique_ptr<DynamicBatcher>> batcher = DynamicBatcher::Create(c.options, FakeRunners(&log_));
    ASSERT_FALSE(batcher.ok()) << c.field;
    EXPECT_EQ(batcher.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(batcher.status().message().find(c.field), std::string::npos) << batcher.status().ToString();
  }
  StatusOr<std::unique_ptr<DynamicBatcher>> no_factory = DynamicBatcher::Create(Options(4, 0), nullptr);
  EXPECT_EQ(no_factory.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(DynamicBatcherTest, CreatePropagatesRunnerFactoryErrors) {
  DynamicBatcherOptions options = Options(4, 0);
  options.num_instances = 3;
  std::vector<int> made;
  auto failing = [&](int instance) -> StatusOr<std::unique_ptr<BatchRunner>> {
    made.push_back(instance);
    if (instance == 1) return ResourceExhaustedError("no memory for a session");
    return std::unique_ptr<BatchRunner>(std::make_unique<FakeRunner>(instance, &log_));
  };
  StatusOr<std::unique_ptr<DynamicBatcher>> batcher = DynamicBatcher::Create(options, failing);
  ASSERT_FALSE(batcher.ok());
  EXPECT_EQ(batcher.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(batcher.status().message().find("runner 1"), std::string::npos) << batcher.status().ToString();
  EXPECT_EQ(made, (std::vector<int>{0, 1}));

  auto null_factory = [](int) -> StatusOr<std::unique_ptr<BatchRunner>> { return std::unique_ptr<BatchRunner>(); };
  EXPECT_EQ(DynamicBatcher::Create(options, null_factory).status().code(), StatusCode::kInternal);
}

TEST_F(DynamicBatcherTest, ScheduleRejectsBadTasksAndKeepsThem) {
  std::unique_ptr<DynamicBatcher> batcher = MakeBatcher(Options(4, 0));
  std::unique_ptr<Task> null_task;
  EXPECT_EQ(batcher->Schedule(null_task).code(), StatusCode::kInvalidArgument);

  std::unique_ptr<Task> big = recorder_.NewTask(1, 5);
  Status status = batcher->Schedule(big);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("max_batch_size 4"), std::string::npos) << status.ToString();
  EXPECT_NE(big, nullptr);

  std::unique_ptr<Task> empty = recorder_.NewTask(2, 0);
  EXPECT_EQ(batcher->Schedule(empty).code(), StatusCode::kInvalidArgument);
  EXPECT_NE(empty, nullptr);

  EXPECT_TRUE(batcher->Shutdown(clock_.NowMicros()).ok());
  EXPECT_EQ(recorder_.total(), 0);
  EXPECT_EQ(batcher->stats().tasks_rejected_invalid, 3);
}

TEST_F(DynamicBatcherTest, QueueFullReturnsUnavailableAndDoesNotTakeTheTask) {
  DynamicBatcherOptions options = Options(8, 1000);
  options.max_queue_size = 2;
  std::unique_ptr<DynamicBatcher> batcher = MakeBatcher(options);
  Admit(*batcher, 0);
  Admit(*batcher, 1);
  EXPECT_EQ(batcher->QueueDepth(), 2);

  std::unique_ptr<Task> third = recorder_.NewTask(2);
  Status status = batcher->Schedule(third);
  EXPECT_EQ(status.code(), StatusCode::kUnavailable);
  EXPECT_NE(status.message().find("max_queue_size 2"), std::string::npos) << status.ToString();
  ASSERT_NE(third, nullptr);  // still ours
  EXPECT_EQ(batcher->stats().tasks_rejected_queue_full, 1);

  // Once the queued batch has run there is room again.
  ASSERT_TRUE(clock_.BlockUntilWaitingFor(1000));
  clock_.AdvanceMicros(1000);
  ASSERT_TRUE(recorder_.WaitForCount(2));
  ASSERT_TRUE(batcher->Schedule(third).ok());
  EXPECT_TRUE(batcher->Shutdown(clock_.NowMicros() + 1000).ok());
  EXPECT_EQ(recorder_.CallsFor(2), 1);
  EXPECT_EQ(BatchIds(log_.Batches()), (std::vector<std::vector<int>>{{0, 1}, {2}}));
}

// Load shedding: once a batch has been timed, a task whose deadline the work ahead of it would pass is refused at
// once (UNAVAILABLE "overloaded", the task stays with the caller); one whose deadline leaves room is admitted.
TEST_F(DynamicBatcherTest, RefusesATaskTheQueueWouldCarryPastItsDeadline) {
  std::unique_ptr<DynamicBatcher> batcher = MakeBatcher(Options(4, 0));
  EXPECT_EQ(batcher->item_service_ns(), 0);
  log_.gate.Close();
  // One batch of 4 items that takes 4 ms of (fake) time: 1 ms per item.
  Admit(*batcher, 0, 4);
  ASSERT_TRUE(log_.gate.BlockUntilArrived(1));
  clock_.AdvanceMicros(4000);
  log_.gate.Open();
  ASSERT_TRUE(recorder_.WaitForCount(1));
  EXPECT_EQ(batcher->item_service_ns(), 1'000'000);

  // 4 items running (half done on average) and 4 queued: a new 1-item task expects 6 ms of wait + 1 ms of its own.
  log_.gate.Close();
  Admit(*batcher, 1, 4);
  ASSERT_TRUE(log_.gate.BlockUntilArrived(2));
  Admit(*batcher, 2, 4);
  const int64_t now = clock_.NowMicros();
  std::unique_ptr<Task> tight = recorder_.NewTask(3);
  tight->set_deadline_us(now + 6999);
  const Status refused = batcher->Schedule(tight);
  EXPECT_EQ(refused.code(), StatusCode::kUnavailable);
  EXPECT_NE(
      refused.message().find("overloaded: the 8 images ahead would take about 6 ms, past the deadline in 6 ms"),
      std::string::npos)
      << refused.ToString();
  ASSERT_NE(tight, nullptr);  // still ours
  EXPECT_EQ(batcher->CheckAdmission(1, 1, now + 6999).code(), StatusCode::kUnavailable);
  EXPECT_TRUE(batcher->CheckAdmission(1, 1, now + 7001).ok());
  EXPECT_TRUE(batcher->CheckAdmission(1, 1, Clock::kInfiniteFuture).ok());  // no deadline: only the queue bound
  // The expected work of 1 more item: the same 6 ms of wait + 1 ms.
  EXPECT_EQ(batcher->ExpectedWorkMicros(1), 7000);
  // Items admitted elsewhere and still being decoded count as queued: 3 more items, 3 ms more.
  batcher->AddIncoming(3);
  EXPECT_EQ(batcher->ExpectedWorkMicros(1), 10'000);
  EXPECT_EQ(batcher->CheckAdmission(1, 1, now + 7001).code(), StatusCode::kUnavailable);
  EXPECT_TRUE(batcher->CheckAdmission(1, 1, now + 10'001).ok());
  batcher->AddIncoming(-3);
  EXPECT_EQ(batcher->ExpectedWorkMicros(1), 7000);
  tight->set_deadline_us(now + 7001);
  ASSERT_TRUE(batcher->Schedule(tight).ok());
  EXPECT_EQ(batcher->stats().tasks_rejected_overloaded, 3);

  log_.gate.Open();
  EXPECT_TRUE(batcher->Shutdown(clock_.NowMicros() + 1000).ok());
  EXPECT_EQ(recorder_.StatusFor(3).code(), StatusCode::kOk);
}

// --- Timing.

TEST_F(DynamicBatcherTest, WaitsForTheDelayOnlyUntilTheClockIsAdvanced) {
  std::unique_ptr<DynamicBatcher> batcher = MakeBatcher(Options(8, 100));
  Admit(*batcher, 0);
  ASSERT_TRUE(clock_.BlockUntilWaitingFor(100));  // the worker is parked until the oldest task's delay ends
  Admit(*batcher, 1, 2);
  clock_.AdvanceMicros(99);
  ASSERT_TRUE(clock_.BlockUntilWaitingFor(100));
  EXPECT_TRUE(log_.Batches().empty());
  EXPECT_EQ(recorder_.total(), 0);

  clock_.AdvanceMicros(1);
  ASSERT_TRUE(recorder_.WaitForCount(2));
  const std::vector<BatchRecord> batches = log_.Batches();
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[0].ids, (std::vector<int>{0, 1}));
  EXPECT_EQ(batches[0].items, 3);
  EXPECT_TRUE(recorder_.StatusFor(0).ok());
  EXPECT_TRUE(recorder_.StatusFor(1).ok());
  EXPECT_EQ(batcher->QueueDepth(), 0);
}

// The adaptive policy: a free instance runs a lone task at once whatever the delay; tasks that arrive while the
// instance is busy gather and go in one batch; when items arrive faster than they are served, it waits for the
// next plan only until the missing items are due (fake time), not for the delay.
TEST_F(DynamicBatcherTest, AdaptiveRunsAtOnceGathersWhileBusyAndWaitsOnlyForItemsDue) {
  DynamicBatcherOptions options = Options(8, 1000000);
  options.policy = BatchingPolicy::kAdaptive;
  options.preferred_batch_sizes = {1, 4, 8};
  // Batching pays: 4 items cost 2.4x one. 3 queued run best padded to plan 4 (800 us each); waiting for a 4th
  // saves 4 x 800 - 2400 = 800 us, more than the 769 us wait below.
  log_.plan_costs = {{1, 1000}, {4, 2400}, {8, 3000}};
  std::unique_ptr<DynamicBatcher> batcher = MakeBatcher(options);
  log_.gate.Close();
  Admit(*batcher, 0);
  ASSERT_TRUE(log_.gate.BlockUntilArrived(1));  // running at once, time still 0
  EXPECT_EQ(clock_.NowMicros(), 0);
  clock_.AdvanceMicros(1000);  // while the batch of 1 runs, 3 tasks arrive 10 us apart
  Admit(*batcher, 1);
  clock_.AdvanceMicros(10);
  Admit(*batcher, 2);
  clock_.AdvanceMicros(10);
  Admit(*batcher, 3);
  log_.gate.Open();  // the batch took 1020 us for 1 item
  // Gaps per item 1000, 10, 10 -> moving average (1/8, integer) 1000, 877, 769 us < 1020 us of service: the 4th
  // item (plan 4) is due at 1020 + 769 = 1789.
  ASSERT_TRUE(clock_.BlockUntilWaitingFor(1789));
  ASSERT_TRUE(recorder_.WaitForCount(1));
  EXPECT_EQ(BatchIds(log_.Batches()), (std::vector<std::vector<int>>{{0}}));
  clock_.AdvanceMicros(768);
  ASSERT_TRUE(clock_.BlockUntilWaitingFor(1789));
  clock_.AdvanceMicros(1);
  ASSERT_TRUE(recorder_.WaitForCount(4));
  EXPECT_EQ(BatchIds(log_.Batches()), (std::vector<std::vector<int>>{{0}, {1, 2, 3}}));
  EXPECT_EQ(clock_.NowMicros(), 1789);
}

// Tasks that gathered while the instance was busy have waited longer than the delay by the time it is free. With
// items still being decoded behind them, the adaptive policy waits for those up to the delay, counted from the
// moment the instance became free (not from the oldest task's arrival, which would run them at once).
TEST_F(DynamicBatcherTest, AdaptiveWaitsForItemsComingUpToTheDelayAfterTheInstanceFrees) {
  DynamicBatcherOptions options = Options(8, 500);
  options.policy = BatchingPolicy::kAdaptive;
  options.preferred_batch_sizes = {1, 4, 8};
  log_.plan_costs = {{1, 1000}, {4, 1200}, {8, 1500}};  // 2 + 2 items: 1200 + 1200 apart, 1200 together
  std::unique_ptr<DynamicBatcher> batcher = MakeBatcher(options);
  log_.gate.Close();
  Admit(*batcher, 0);
  ASSERT_TRUE(log_.gate.BlockUntilArrived(1));
  clock_.AdvanceMicros(2000);
  Admit(*batcher, 1);
  Admit(*batcher, 2);
  batcher->AddDecoding(2);
  clock_.AdvanceMicros(1000);  // the oldest queued task has waited 1000 us, twice the delay
  log_.gate.Open();            // the instance is free at 3000
  ASSERT_TRUE(clock_.BlockUntilWaitingFor(3500));
  ASSERT_TRUE(recorder_.WaitForCount(1));
  EXPECT_EQ(BatchIds(log_.Batches()), (std::vector<std::vector<int>>{{0}}));
  clock_.AdvanceMicros(500);
  ASSERT_TRUE(recorder_.WaitForCount(3));
  EXPECT_EQ(BatchIds(log_.Batches()), (std::vector<std::vector<int>>{{0}, {1, 2}}));
  batcher->AddDecoding(-2);
}

// A plan timed once too slow (at warm-up, say) would never run again under the adaptive policy, which cuts
// batches short of it. Once kStalePlanBatches batches have run on other plans, the whole candidate runs on it,
// and that run's time replaces the stale figure instead of moving an average by an eighth.
TEST_F(DynamicBatcherTest, AdaptiveTimesAStalePlanAgainAndTakesItsNewCost) {
  DynamicBatcherOptions options = Options(8, 0);
  options.policy = BatchingPolicy::kAdaptive;
  options.preferred_batch_sizes = {1, 4, 8};
  log_.plan_costs = {{1, 100}, {4, 200}, {8, 1000000}};  // plan 8's figure: far too slow
  std::unique_ptr<DynamicBatcher> batcher = MakeBatcher(options);
  int id = 0;
  // Runs a batch of one (held at the gate) while `gathered` one-item tasks queue behind it; returns when those
  // have run.
  const auto gather_behind_one = [&](int gathered) {
    log_.gate.Close();
    const int before = recorder_.total();
    const int held = static_cast<int>(log_.Batches().size()) + 1;  // gate arrivals once this batch is held
    Admit(*batcher, id++);
    ASSERT_TRUE(log_.gate.BlockUntilArrived(held));
    for (int i = 0; i < gathered; ++i) Admit(*batcher, id++);
    log_.gate.Open();
    ASSERT_TRUE(recorder_.WaitForCount(before + 1 + gathered));
  };
  // Fresh figures: 6 gathered items go as 4 (plan 4) then 2, not padded to the slow plan 8.
  ASSERT_NO_FATAL_FAILURE(gather_behind_one(6));
  std::vector<BatchRecord> batches = log_.Batches();
  ASSERT_GE(batches.size(), 2u);
  EXPECT_EQ(batches[1].items, 4);
  // Batches of one until plan 8 has gone kStalePlanBatches batches untimed.
  while (static_cast<int64_t>(log_.Batches().size()) < kStalePlanBatches) {
    const int before = recorder_.total();
    Admit(*batcher, id++);
    ASSERT_TRUE(recorder_.WaitForCount(before + 1));
  }
  // Stale: the 6 gathered items run together on plan 8, which takes 0 us of the fake clock.
  size_t first_new = log_.Batches().size() + 1;
  ASSERT_NO_FATAL_FAILURE(gather_behind_one(6));
  batches = log_.Batches();
  ASSERT_GT(batches.size(), first_new);
  EXPECT_EQ(batches[first_new].items, 6);
  // Its new cost (1 us, replacing the stale one; an average would still be 875,000) makes 6 on plan 8 the best
  // rate: the next 6 gathered items run together again, on a fresh figure.
  first_new = log_.Batches().size() + 1;
  ASSERT_NO_FATAL_FAILURE(gather_behind_one(6));
  batches = log_.Batches();
  ASSERT_GT(batches.size(), first_new);
  EXPECT_EQ(batches[first_new].items, 6);
  EXPECT_TRUE(batcher->Shutdown(clock_.NowMicros()).ok());
}

// One run of a cheap plan that takes 50 times its figure (preempted on a busy machine) counts as twice the figure:
// the tasks gathered behind it still run one by one, not padded to a larger plan. Averaged in unclamped, it would
// price a single item at 712 us, and the 3 gathered items would run as one batch padded to plan 4.
TEST_F(DynamicBatcherTest, AdaptiveIsNotSwayedByOnePreemptedRun) {
  DynamicBatcherOptions options = Options(8, 0);
  options.policy = BatchingPolicy::kAdaptive;
  options.preferred_batch_sizes = {1, 4, 8};
  log_.plan_costs = {{1, 100}, {4, 380}, {8, 760}};
  std::unique_ptr<DynamicBatcher> batcher = MakeBatcher(options);
  log_.gate.Close();
  Admit(*batcher, 0);
  ASSERT_TRUE(log_.gate.BlockUntilArrived(1));
  clock_.AdvanceMicros(5000);  // the batch of one takes 5000 us
  for (int id = 1; id <= 3; ++id) Admit(*batcher, id);
  log_.gate.Open();
  ASSERT_TRUE(recorder_.WaitForCount(4));
  EXPECT_EQ(BatchIds(log_.Batches()), (std::vector<std::vector<int>>{{0}, {1}, {2}, {3}}));
  EXPECT_TRUE(batcher->Shutdown(clock_.NowMicros()).ok());
}

// A runner that computes on the batcher's thread is timed by that thread's CPU time: preempted runs of plan 1 keep
// its figure at 100 us, and the three gathered tasks run one by one (3 on plan 4 would cost 127 us each). Timed by
// the wall clock, the eight runs would have moved the figure to 256 us (each counted as twice the figure at most).
TEST_F(DynamicBatcherTest, AdaptiveTimesAPlanByTheCpuTimeOfTheThreadThatRanIt) {
  EXPECT_EQ(PreemptedSinglesThenThreeGathered(/*on_calling_thread=*/true),
            (std::vector<std::vector<int>>{{9}, {10}, {11}}));
}

// A runner that hands the work to other threads (a compute lane) is timed by the wall clock: the same runs make
// plan 1 dear, and the three gathered tasks run together on plan 4.
TEST_F(DynamicBatcherTest, AdaptiveTimesALaneRunnerByTheWallClock) {
  EXPECT_EQ(PreemptedSinglesThenThreeGathered(/*on_calling_thread=*/false),
            (std::vector<std::vector<int>>{{9, 10, 11}}));
}

// The CPU clock is read (twice: before and after) only on the batches PlanRunIsTimed picks: with a stride of 4,
// 12 batches of one on plan 1 (timed at warm-up) time 3 runs, and the first batch on plan 4 (no figure) is timed.
// A lane runner's wall time is read on every run, and the other policies time no plan.
TEST_F(DynamicBatcherTest, AdaptiveReadsTheCpuClockOnlyOnTheRunsItTimes) {
  const auto cpu_reads = [this](BatchingPolicy policy, bool on_calling_thread) -> int64_t {
    DynamicBatcherOptions options = Options(8, 0);
    options.policy = policy;
    options.preferred_batch_sizes = {1, 4, 8};
    options.plan_timing_stride = 4;
    log_.plan_costs = {{1, 100}};
    log_.on_calling_thread = on_calling_thread;
    std::unique_ptr<DynamicBatcher> batcher = MakeBatcher(options);
    if (batcher == nullptr) return -1;
    const int64_t before = clock_.cpu_reads();
    const int done = recorder_.total();
    for (int id = 0; id < 12; ++id) {
      Admit(*batcher, id);
      EXPECT_TRUE(recorder_.WaitForCount(done + id + 1));
    }
    Admit(*batcher, 12, /*items=*/3);
    EXPECT_TRUE(recorder_.WaitForCount(done + 13));
    EXPECT_TRUE(batcher->Shutdown(clock_.NowMicros()).ok());
    return clock_.cpu_reads() - before;
  };
  EXPECT_EQ(cpu_reads(BatchingPolicy::kAdaptive, /*on_calling_thread=*/true), 2 * (3 + 1));
  EXPECT_EQ(cpu_reads(BatchingPolicy::kAdaptive, /*on_calling_thread=*/false), 0);
  EXPECT_EQ(cpu_reads(BatchingPolicy::kFixedDelay, /*on_calling_thread=*/true), 0);
}

// A re-timing that confirms a stale plan's figure doubles the interval before the next one, so a plan that really
// is too slow for the traffic is padded to ever more rarely.
TEST_F(DynamicBatcherTest, AdaptiveTimesAConfirmedPlanLessOften) {
  DynamicBatcherOptions options = Options(8, 0);
  options.policy = BatchingPolicy::kAdaptive;
  options.preferred_batch_sizes = {1, 4, 8};
  log_.plan_costs = {{1, 100}, {4, 200}, {8, 1000}};
  // Every batch takes its plan's figure of the fake clock, so each re-timing confirms the figure.
  log_.on_run = [this](int64_t items) { clock_.AdvanceMicros(items <= 1 ? 100 : items <= 4 ? 200 : 1000); };
  std::unique_ptr<DynamicBatcher> batcher = MakeBatcher(options);
  int id = 0;
  const auto run_one = [&] {
    const int before = recorder_.total();
    Admit(*batcher, id++);
    ASSERT_TRUE(recorder_.WaitForCount(before + 1));
  };
  // A batch of one held at the gate while 6 one-item tasks queue behind it; returns the items of the batch that
  // took the first of them, once all have run.
  const auto gather_six_behind_one = [&]() -> int64_t {
    log_.gate.Close();
    const int before = recorder_.total();
    const size_t held = log_.Batches().size();
    Admit(*batcher, id++);
    EXPECT_TRUE(log_.gate.BlockUntilArrived(static_cast<int>(held) + 1));
    for (int i = 0; i < 6; ++i) Admit(*batcher, id++);
    log_.gate.Open();
    EXPECT_TRUE(recorder_.WaitForCount(before + 7));
    const std::vector<BatchRecord> batches = log_.Batches();
    return batches.size() > held + 1 ? batches[held + 1].items : -1;
  };
  // Batches of one until plan 8 is stale after kStalePlanBatches: the 6 run on it, and its time confirms 1000 us.
  while (static_cast<int64_t>(log_.Batches().size()) < kStalePlanBatches) ASSERT_NO_FATAL_FAILURE(run_one());
  ASSERT_EQ(gather_six_behind_one(), 6);
  const int64_t timed_at = static_cast<int64_t>(log_.Batches().size()) - 1;  // the batch of 6: the last one
  // The held batch of one is the n-th batch after the re-timing: plan 8's figure is that many batches old when
  // the 6 gathered behind it are decided.
  const auto gather_when_plan_8_is = [&](int64_t batches_old) -> int64_t {
    while (static_cast<int64_t>(log_.Batches().size()) < timed_at + batches_old) run_one();
    return gather_six_behind_one();
  };
  // kStalePlanBatches batches later the figure is not stale: its interval is now twice that.
  EXPECT_EQ(gather_when_plan_8_is(kStalePlanBatches), 4);
  // One batch short of twice kStalePlanBatches it still is not; at twice, the 6 run on plan 8 again.
  EXPECT_EQ(gather_when_plan_8_is(2 * kStalePlanBatches - 1), 4);
  EXPECT_EQ(gather_when_plan_8_is(2 * kStalePlanBatches + 2), 6);
  EXPECT_TRUE(batcher->Shutdown(clock_.NowMicros()).ok());
}

TEST_F(DynamicBatcherTest, RunsAtOnceWhenMaxBatchSizeIsReached) {
  std::unique_ptr<DynamicBatcher> batcher = MakeBatcher(Options(4, 1000000));
  Admit(*batcher, 0, 3);
  Admit(*batcher, 1, 1);
  ASSERT_TRUE(recorder_.WaitForCount(2));  // time never moved
  EXPECT_EQ(clock_.NowMicros(), 0);
  EXPECT_EQ(BatchIds(log_.Batches()), (std::vector<std::vector<int>>{{0, 1}}));
}

TEST_F(DynamicBatcherTest, RunsAtOnceWhenAPreferredSizeIsReached) {
  DynamicBatcherOptions options = Options(8, 1000000);
  options.preferred_batch_sizes = {2};
  std::unique_ptr<DynamicBatcher> batcher = MakeBatcher(options);
  Admit(*batcher, 0);
  Admit(*batcher, 1);
  ASSERT_TRUE(recorder_.WaitForCount(2));
  EXPECT_EQ(clock_.NowMicros(), 0);
  EXPECT_EQ(BatchIds(log_.Batches()), (std::vector<std::vector<int>>{{0, 1}}));
}

TEST_F(DynamicBatcherTest, ZeroDelayRunsWithoutTimeMoving) {
  std::unique_ptr<DynamicBatcher> batcher = MakeBatcher(Options(8, 0));
  Admit(*batcher, 0);
  ASSERT_TRUE(recorder_.WaitForCount(1));
  EXPECT_EQ(clock_.NowMicros(), 0);
}

TEST_F(DynamicBatcherTest, ExpiredTaskGetsDeadlineExceededAndIsNotRun) {
  std::unique_ptr<DynamicBatcher> batcher = MakeBatcher(Options(8, 1000));
  std::unique_ptr<Task> doomed = recorder_.NewTask(0);
  doomed->set_deadline_us(300);
  ASSERT_TRUE(batcher->Schedule(doomed).ok());
  Admit(*batcher, 1);

  ASSERT_TRUE(clock_.BlockUntilWaitingFor(300));  // wakes at the deadline, before the delay ends
  clock_.AdvanceMicros(300);
  ASSERT_TRUE(recorder_.WaitForCount(1));
  EXPECT_EQ(recorder_.StatusFor(0).code(), StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(log_.Batches().empty());

  ASSERT_TRUE(clock_.BlockUntilWaitingFor(1000));
  clock_.AdvanceMicros(700);
  ASSERT_TRUE(recorder_.WaitForCount(2));
  EXPECT_TRUE(recorder_.StatusFor(1).ok());
  EXPECT_EQ(BatchIds(log_.Batches()), (std::vector<std::vector<int>>{{1}}));
  EXPECT_EQ(batcher->stats().tasks_expired, 1);
}

TEST_F(DynamicBatcherTest, ScheduleRejectsATaskWhoseDeadlineHasPassed) {
  clock_.AdvanceMicros(500);
  std::unique_ptr<DynamicBatcher> batcher = MakeBatcher(Options(8, 0));
  std::unique_ptr<Task> late = recorder_.NewTask(0);
  late->set_deadline_us(500);
  EXPECT_EQ(batcher->Schedule(late).code(), StatusCode::kDeadlineExceeded);
  EXPECT_NE(late, nullptr);
  EXPECT_EQ(batcher->stats().tasks_rejected_expired, 1);
}

TEST_F(DynamicBatcherTest, CancelledTaskGetsCancelledAndIsNotRun) {
  std::unique_ptr<DynamicBatcher> batcher = MakeBatcher(Options(8, 1000));
  std::atomic<bool> cancelled{false};
  std::unique_ptr<Task> task = recorder_.NewTask(0);
  task->set_cancellation_check([&cancelled] { return cancelled.load(); });
  ASSERT_TRUE(batcher->Schedule(task).ok());
  Admit(*batcher, 1);
  ASSERT_TRUE(clock_.BlockUntilWaitingFor(1000));
  cancelled = true;  // noticed at the next decision
  clock_.AdvanceMicros(1000);
  ASSERT_TRUE(recorder_.WaitForCount(2));
  EXPECT_EQ(recorder_.StatusFor(0).code(), StatusCode::kCancelled);
  EXPECT_TRUE(recorder_.StatusFor(1).ok());
  EXPECT_EQ(BatchIds(log_.Batches()), (std::vector<std::vector<int>>{{1}}));
  EXPECT_EQ(batcher->stats().tasks_cancelled, 1);
}

// --- Runner results.

TEST_F(DynamicBatcherTest, RunnerStatusesReachTheirTasks) {
  log_.fail_ids = {1};
  std::unique_ptr<DynamicBatcher> batcher = MakeBatcher(Options(3, 0));
  log_.gate.Pass();  // counts as one arrival; the gate is open
  Admit(*batcher, 0, 3);
  ASSERT_TRUE(recorder_.WaitForCount(1));
  {
    std::lock_guard<std::mutex> guard(log_.mu);
    log_.overall = UnavailableError("device lost");
  }
  Admit(*batcher, 1, 3);
  ASSERT_TRUE(recorder_.WaitForCount(2));
  Admit(*batcher, 2, 3);
  ASSERT_TRUE(recorder_.WaitForCount(3));
  EXPECT_TRUE(recorder_.StatusFor(0).ok());
  EXPECT_EQ(recorder_.StatusFor(1).code(), StatusCode::kInternal);     // its own entry wins
  EXPECT_EQ(recorder_.StatusFor(2).code(), StatusCode::kUnavailable);  // the overall status
  const DynamicBatcherStats stats = batcher->stats();
  EXPECT_EQ(stats.tasks_succeeded, 1);
  EXPECT_EQ(stats.tasks_failed, 2);
}

class ThrowingRunner : public BatchRunner {
 public:
  Status RunBatch(std::span<Task* const>, std::span<Status>) override { throw std::runtime_error("boom"); }
};

TEST_F(DynamicBatcherTest, ARunnerExceptionBecomesInternal) {
  auto factory = [](int) -> StatusOr<std::unique_ptr<BatchRunner>> {
    return std::unique_ptr<BatchRunner>(std::make_unique<ThrowingRunner>());
  };
  StatusOr<std::unique_ptr<DynamicBatcher>> batcher = DynamicBatcher::Create(Options(4, 0), factory);
  ASSERT_TRUE(batcher.ok());
  std::unique_ptr<Task> task = recorder_.NewTask(0);
  ASSERT_TRUE((*batcher)->Schedule(task).ok());
  ASSERT_TRUE(recorder_.WaitForCount(1));
  EXPECT_EQ(recorder_.StatusFor(0).code(), StatusCode::kInternal);
  EXPECT_NE(recorder_.StatusFor(0).message().find("boom"), std::string::npos);
}

// --- Instances.

// Each runner waits until all three are inside RunBatch at once, so the test only passes if three workers run
// batches concurrently.
class BarrierRunner : public BatchRunner {
 public:
  struct Shared {
    std::mutex mu;
    std::condition_variable cv;
    int inside = 0;
    int max_inside = 0;
    std::map<int, std::set<std::thread::id>> threads_by_instance;
  };
  BarrierRunner(int instance, int parties, Shared* shared) : instance_(instance), parties_(parties), s_(shared) {}

  Status RunBatch(std::span<Task* const>, std::span<Status>) override {
    std::unique_lock<std::mutex> lock(s_->mu);
    s_->threads_by_instance[instance_].insert(std::this_thread::get_id());
    ++s_->inside;
    s_->max_inside = std::max(s_->max_inside, s_->inside);
    s_->cv.notify_all();
    const bool met = s_->cv.wait_for(lock, kHangGuard, [&] { return s_->max_inside >= parties_; });
    --s_->inside;
    return met ? OkStatus() : DeadlineExceededError("barrier not met");
  }

 private:
  const int instance_;
  const int parties_;
  Shared* const s_;
};

TEST_F(DynamicBatcherTest, InstancesRunBatchesConcurrentlyEachWithItsOwnRunner) {
  static constexpr int kInstances = 3;
  DynamicBatcherOptions options = Options(1, 0);
  options.num_instances = kInstances;
  BarrierRunner::Shared shared;
  auto factory = [&shared](int instance) -> StatusOr<std::unique_ptr<BatchRunner>> {
    return std::unique_ptr<BatchRunner>(std::make_unique<BarrierRunner>(instance, kInstances, &shared));
  };
  StatusOr<std::unique_ptr<DynamicBatcher>> batcher = DynamicBatcher::Create(options, factory);
  ASSERT_TRUE(batcher.ok());
  for (int id = 0; id < kInstances; ++id) {
    std::unique_ptr<Task> task = recorder_.NewTask(id);
    ASSERT_TRUE((*batcher)->Schedule(task).ok());
  }
  ASSERT_TRUE(recorder_.WaitForCount(kInstances));
  for (int id = 0; id < kInstances; ++id) EXPECT_TRUE(recorder_.StatusFor(id).ok()) << id;
  EXPECT_TRUE((*batcher)->Shutdown(clock_.NowMicros()).ok());

  std::lock_guard<std::mutex> guard(shared.mu);
  EXPECT_EQ(shared.max_inside, kInstances);
  ASSERT_EQ(shared.threads_by_instance.size(), static_cast<size_t>(kInstances));
  std::set<std::thread::id> all_threads;
  for (const auto& [instance, threads] : shared.threads_by_instance) {
    EXPECT_EQ(threads.size(), 1u) << "runner " << instance << " used by more than one thread";
    all_threads.insert(threads.begin(), threads.end());
  }
  EXPECT_EQ(all_threads.size(), static_cast<size_t>(kInstances));
}

// --- Run to completion (max_inline_run_us).

// The threads that ran batches, over every instance.
std::set<std::thread::id> RunnerThreads(RunLog& log) {
  std::lock_guard<std::mutex> guard(log.mu);
  std::set<std::thread::id> threads;
  for (const auto& [instance, ids] : log.threads_by_instance) threads.insert(ids.begin(), ids.end());
  return threads;
}

TEST_F(DynamicBatcherTest, AnIdleCheapBatchRunsAndIsAnsweredOnTheSchedulingThread) {
  DynamicBatcherOptions options = Options(4, 1000);
  options.policy = BatchingPolicy::kAdaptive;
  options.max_inline_run_us = 100;
  log_.plan_costs = {{1, 40}, {4, 90}};
  std::unique_ptr<DynamicBatcher> batcher = MakeBatcher(options);
  Admit(*batcher, 0);
  EXPECT_EQ(recorder_.total(), 1) << "answered before Schedule returned";
  Admit(*batcher, 1, 4);  // 90 us: still cheap enough
  EXPECT_EQ(recorder_.total(), 2);
  EXPECT_EQ(RunnerThreads(log_), (std::set<std::thread::id>{std::this_thread::get_id()}));
  EXPECT_EQ(BatchIds(log_.Batches()), (std::vector<std::vector<int>>{{0}, {1}}));
  const DynamicBatcherStats stats = batcher->stats();
  EXPECT_EQ(stats.batches_run, 2);
  EXPECT_EQ(stats.batches_run_inline, 2);
  EXPECT_EQ(stats.tasks_succeeded, 2);
  EXPECT_EQ(stats.queue_depth, 0);
  EXPECT_TRUE(batcher->Shutdown(clock_.NowMicros()).ok());
}

TEST_F(DynamicBatcherTest, CostlyBatchesAndTheDefaultGoToAWorker) {
  DynamicBatcherOptions options = Options(4, 0);
  options.max_inline_run_us = 100;
  log_.plan_costs = {{1, 40}, {4, 500}};
  std::unique_ptr<DynamicBatcher> batcher = MakeBatcher(options);
  Admit(*batcher, 0, 3);  // padded to the plan of 4: 500 us
  ASSERT_TRUE(recorder_.WaitForCount(1));
  EXPECT_EQ(RunnerThreads(log_).count(std::this_thread::get_id()), 0u);
  EXPECT_EQ(batcher->stats().batches_run_inline, 0);
  EXPECT_TRUE(batcher->Shutdown(clock_.NowMicros()).ok());

  RunLog other;
  StatusOr<std::unique_ptr<DynamicBatcher>> plain = DynamicBatcher::Create(Options(4, 0), FakeRunners(&other));
  ASSERT_TRUE(plain.ok());
  std::unique_ptr<Task> task = recorder_.NewTask(1);
  ASSERT_TRUE((*plain)->Schedule(task).ok());
  ASSERT_TRUE(recorder_.WaitForCount(2));
  EXPECT_EQ(RunnerThreads(other).count(std::this_thread::get_id()), 0u) << "max_inline_run_us 0: never inline";
  EXPECT_EQ((*plain)->stats().batches_run_inline, 0);
}

TEST_F(DynamicBatcherTest, ATaskThatWouldWaitForCompanyGoesToAWorker) {
  DynamicBatcherOptions options = Options(4, 1000);  // fixed delay: a lone task waits up to 1000 us
  options.max_inline_run_us = 100;
  std::unique_ptr<DynamicBatcher> batcher = MakeBatcher(options);
  Admit(*batcher, 0);
  EXPECT_EQ(recorder_.total(), 0);
  ASSERT_TRUE(clock_.BlockUntilWaitingFor(1000));
  clock_.AdvanceMicros(1000);
  ASSERT_TRUE(recorder_.WaitForCount(1));
  EXPECT_EQ(RunnerThreads(log_).count(std::this_thread::get_id()), 0u);
  EXPECT_EQ(batcher->stats().batches_run_inline, 0);
}

TEST_F(DynamicBatcherTest, WhileTheRunnerIsBusyInlineArrivalsQueueForTheWorker) {
  DynamicBatcherOptions options = Options(4, 0);
  options.max_inline_run_us = 100;
  std::unique_ptr<DynamicBatcher> batcher = MakeBatcher(options);
  log_.gate.Close();
  std::thread::id inline_thread;
  std::thread first([&] {
    inline_thread = std::this_thread::get_id();
    Admit(*batcher, 0);  // runs here and waits at the gate
  });
  ASSERT_TRUE(log_.gate.BlockUntilArrived(1));
  Admit(*batcher, 1);  // the only runner is busy: queued, and the worker may not touch the runner yet
  Admit(*batcher, 2);
  EXPECT_EQ(recorder_.total(), 0);
  log_.gate.Open();
  first.join();
  ASSERT_TRUE(recorder_.WaitForCount(3));
  EXPECT_EQ(BatchIds(log_.Batches()), (std::vector<std::vector<int>>{{0}, {1, 2}}));
  const std::set<std::thread::id> threads = RunnerThreads(log_);
  EXPECT_EQ(threads.size(), 2u);  // the first caller's, then the worker's
  EXPECT_EQ(threads.count(inline_thread), 1u);
  EXPECT_EQ(threads.count(std::this_thread::get_id()), 0u);
  EXPECT_EQ(batcher->stats().batches_run_inline, 1);
  EXPECT_TRUE(batcher->Shutdown(clock_.NowMicros()).ok());
}

// --- Shutdown.

TEST_F(DynamicBatcherTest, ShutdownRunsAdmittedTasksWithoutDelayAndRejectsNewOnes) {
  log_.gate.Close();
  std::unique_ptr<DynamicBatcher> batcher = MakeBatcher(Options(8, 1000000));
  Admit(*batcher, 0);
  Admit(*batcher, 1, 2);
  Admit(*batcher, 2);

  Status result = InternalError("not returned");
  std::thread shutter([&] { result = batcher->Shutdown(/*drain_deadline_us=*/500); });
  // Not full, no preferred size and time does not move: only the flush can start this batch.
  ASSERT_TRUE(log_.gate.BlockUntilArrived(1));
  std::unique_ptr<Task> late = recorder_.NewTask(3);
  Status status = batcher->Schedule(late);
  EXPECT_EQ(status.code(), StatusCode::kUnavailable);
  EXPECT_NE(status.message().find("shutting down"), std::string::npos) << status.ToString();
  EXPECT_NE(late, nullptr);

  log_.gate.Open();
  shutter.join();
  EXPECT_TRUE(result.ok()) << result.ToString();
  EXPECT_EQ(recorder_.total(), 3);
  for (int id = 0; id < 3; ++id) EXPECT_TRUE(recorder_.StatusFor(id).ok());
  EXPECT_EQ(BatchIds(log_.Batches()), (std::vector<std::vector<int>>{{0, 1, 2}}));
  EXPECT_EQ(batcher->Schedule(late).code(), StatusCode::kUnavailable);
  EXPECT_EQ(batcher->stats().tasks_rejected_shutdown, 2);
  EXPECT_EQ(batcher->Shutdown(0), result);  // later calls return the first result
}

TEST_F(DynamicBatcherTest, ShutdownFailsQueuedTasksAtTheDrainDeadline) {
  log_.gate.Close();
  std::unique_ptr<DynamicBatcher> batcher = MakeBatcher(Options(1, 0));
  Admit(*batcher, 0);
  ASSERT_TRUE(log_.gate.BlockUntilArrived(1));  // the only worker is busy with task 0
  Admit(*batcher, 1);
  Admit(*batcher, 2);

  Status result;
  std::thread shutter([&] { result = batcher->Shutdown(/*drain_deadline_us=*/500); });
  ASSERT_TRUE(clock_.BlockUntilWaitingFor(500));
  clock_.AdvanceMicros(499);
  ASSERT_TRUE(clock_.BlockUntilWaitingFor(500));
  EXPECT_EQ(recorder_.total(), 0);
  clock_.AdvanceMicros(1);
  ASSERT_TRUE(recorder_.WaitForCount(2));  // tasks 1 and 2, failed by the shutting-down thread
  // The drain was given time and ran out of it.
  EXPECT_EQ(recorder_.StatusFor(1).code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(recorder_.StatusFor(2).code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(recorder_.CallsFor(0), 0);  // still running

  log_.gate.Open();  // the running batch always finishes
  shutter.join();
  EXPECT_EQ(result.code(), StatusCode::kDeadlineExceeded);
  EXPECT_NE(result.message().find("2 queued tasks; they were finished with DEADLINE_EXCEEDED"), std::string::npos)
      << result.ToString();
  EXPECT_TRUE(recorder_.StatusFor(0).ok());
  EXPECT_EQ(batcher->stats().tasks_drain_failed, 2);
}

TEST_F(DynamicBatcherTest, DestructorFinishesQueuedTasksWithUnavailable) {
  std::unique_ptr<DynamicBatcher> batcher = MakeBatcher(Options(8, 1000));
  Admit(*batcher, 0);
  Admit(*batcher, 1);
  batcher.reset();
  EXPECT_EQ(recorder_.total(), 2);
  EXPECT_EQ(recorder_.StatusFor(0).code(), StatusCode::kUnavailable);
  EXPECT_EQ(recorder_.StatusFor(1).code(), StatusCode::kUnavailable);
}

TEST_F(DynamicBatcherTest, ConcurrentShutdownCallsAllWaitForTheFirst) {
  std::unique_ptr<DynamicBatcher> batcher = MakeBatcher(Options(8, 1000));
  Admit(*batcher, 0);
  std::vector<Status> results(4, InternalError("not returned"));
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) threads.emplace_back([&, i] { results[i] = batcher->Shutdown(100); });
  for (std::thread& thread : threads) thread.join();
  for (const Status& result : results) EXPECT_TRUE(result.ok()) << result.ToString();
  EXPECT_EQ(recorder_.CallsFor(0), 1);
}

// --- Statistics.

TEST_F(DynamicBatcherTest, StatsCountBatchesBySizeAndQueueDepth) {
  log_.gate.Close();
  std::unique_ptr<DynamicBatcher> batcher = MakeBatcher(Options(4, 0));
  Admit(*batcher, 0);
  ASSERT_TRUE(log_.gate.BlockUntilArrived(1));  // batch {0} of 1 item is running
  Admit(*batcher, 1, 2);
  Admit(*batcher, 2, 2);
  Admit(*batcher, 3, 3);
  EXPECT_EQ(batcher->QueueDepth(), 3);
  EXPECT_EQ(batcher->stats().queue_depth, 3);
  log_.gate.Open();
  ASSERT_TRUE(recorder_.WaitForCount(4));
  EXPECT_TRUE(batcher->Shutdown(clock_.NowMicros()).ok());

  EXPECT_EQ(BatchIds(log_.Batches()), (std::vector<std::vector<int>>{{0}, {1, 2}, {3}}));
  const DynamicBatcherStats stats = batcher->stats();
  EXPECT_EQ(stats.batches_by_size, (std::vector<int64_t>{0, 1, 0, 1, 1}));
  EXPECT_EQ(stats.batches_run, 3);
  EXPECT_EQ(stats.items_run, 8);
  EXPECT_EQ(stats.tasks_admitted, 4);
  EXPECT_EQ(stats.tasks_succeeded, 4);
  EXPECT_EQ(stats.queue_depth, 0);
}

// --- Stress: real clock, zero delay, many producers; every admitted task's callback runs exactly once.

class CountingRunner : public BatchRunner {
 public:
  CountingRunner(int64_t max_batch_size, std::atomic<int>* oversized)
      : max_batch_size_(max_batch_size), oversized_(oversized) {}
  Status RunBatch(std::span<Task* const> batch, std::span<Status> task_statuses) override {
    int64_t items = 0;
    for (size_t i = 0; i < batch.size(); ++i) {
      items += batch[i]->num_items();
      if (static_cast<const TestTask*>(batch[i])->id() % 17 == 0) task_statuses[i] = InternalError("odd one");
    }
    if (items > max_batch_size_ || batch.empty()) oversized_->fetch_add(1);
    return OkStatus();
  }

 private:
  const int64_t max_batch_size_;
  std::atomic<int>* const oversized_;
};

TEST(DynamicBatcherStressTest, EveryCallbackIsCalledExactlyOnce) {
  constexpr int kProducers = 8;
  constexpr int kTasksPerProducer = 2000;
  constexpr int kTasks = kProducers * kTasksPerProducer;
  DynamicBatcherOptions options;
  options.max_batch_size = 8;
  options.max_queue_delay_us = 0;
  options.preferred_batch_sizes = {4};
  options.max_queue_size = 64;
  options.num_instances = 2;
  std::atomic<int> oversized{0};
  auto factory = [&](int) -> StatusOr<std::unique_ptr<BatchRunner>> {
    return std::unique_ptr<BatchRunner>(std::make_unique<CountingRunner>(options.max_batch_size, &oversized));
  };
  StatusOr<std::unique_ptr<DynamicBatcher>> created = DynamicBatcher::Create(options, factory);
  ASSERT_TRUE(created.ok());
  DynamicBatcher& batcher = **created;

  std::vector<std::atomic<int>> calls(kTasks);
  std::vector<std::atomic<int>> codes(kTasks);
  std::vector<char> admitted(kTasks, 0);  // each producer writes only its own slice
  std::vector<std::atomic<bool>> cancel(kTasks);
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (int i = 0; i < kTasksPerProducer; ++i) {
        const int id = p * kTasksPerProducer + i;
        auto task = std::make_unique<TestTask>(id, 1 + id % 3, [&calls, &codes, id](const Status& status) {
          codes[id].store(static_cast<int>(status.code()));
          calls[id].fetch_add(1);
        });
        if (id % 7 == 0) task->set_cancellation_check([&cancel, id] { return cancel[id].load(); });
        if (id % 11 == 0) task->set_deadline_us(Clock::Real()->NowMicros() + 20);
        std::unique_ptr<Task> owned = std::move(task);
        for (int attempt = 0; attempt < 50 && owned != nullptr; ++attempt) {
          const Status status = batcher.Schedule(owned);
          if (status.ok()) break;
          if (status.code() != StatusCode::kUnavailable) break;  // e.g. deadline already passed
          std::this_thread::yield();
        }
        if (owned == nullptr) {
          admitted[id] = 1;
          if (id % 7 == 0 && id % 2 == 0) cancel[id].store(true);
        }
      }
    });
  }
  for (std::thread& producer : producers) producer.join();
  ASSERT_TRUE(batcher.Shutdown(Clock::Real()->NowMicros() + int64_t{60} * 1000 * 1000).ok());

  int total_admitted = 0;
  int ok = 0;
  for (int id = 0; id < kTasks; ++id) {
    ASSERT_EQ(calls[id].load(), admitted[id] ? 1 : 0) << "task " << id;
    total_admitted += admitted[id];
    if (admitted[id] && codes[id].load() == static_cast<int>(StatusCode::kOk)) ++ok;
  }
  EXPECT_EQ(oversized.load(), 0);
  const DynamicBatcherStats stats = batcher.stats();
  EXPECT_EQ(stats.tasks_admitted, total_admitted);
  EXPECT_EQ(stats.tasks_succeeded, ok);
  EXPECT_EQ(stats.tasks_admitted, stats.tasks_succeeded + stats.tasks_failed + stats.tasks_expired +
                                      stats.tasks_cancelled + stats.tasks_invalid + stats.tasks_drain_failed);
  int64_t batches = 0;
  int64_t items = 0;
  for (size_t size = 0; size < stats.batches_by_size.size(); ++size) {
    batches += stats.batches_by_size[size];
    items += static_cast<int64_t>(size) * stats.batches_by_size[size];
  }
  EXPECT_EQ(batches, stats.batches_run);
  EXPECT_EQ(items, stats.items_run);
  EXPECT_GT(total_admitted, kTasks / 2);
  ::testing::Test::RecordProperty("admitted", total_admitted);
  ::testing::Test::RecordProperty("rejected_queue_full", static_cast<int>(stats.tasks_rejected_queue_full));
  ::testing::Test::RecordProperty("rejected_expired", static_cast<int>(stats.tasks_rejected_expired));
  ::testing::Test::RecordProperty("expired", static_cast<int>(stats.tasks_expired));
  ::testing::Test::RecordProperty("cancelled", static_cast<int>(stats.tasks_cancelled));
  ::testing::Test::RecordProperty("batches", static_cast<int>(stats.batches_run));
  EXPECT_EQ(stats.queue_depth, 0);
}

}  // namespace
}  // namespace cnnserve
