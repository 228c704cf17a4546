// DynamicBatcher::item_work_ns: admission's cost of a queued item counts what a busy worker spends between batch
// starts (finishing tasks, waiting for a core), not only the runner's time, and never an idle gap.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>

#include "server/batching/dynamic_batcher.h"
#include "server/batching/fake_clock.h"

namespace cnnserve {
namespace {

constexpr auto kHangGuard = std::chrono::seconds(60);
constexpr int64_t kRunMicros = 4000;     // a batch of 4 items: 1 ms per item
constexpr int64_t kFinishMicros = 2000;  // each task's callback: the work the run time leaves out

// Holds the first batch until released (so that more tasks queue behind it), then takes kRunMicros of fake time.
class SlowRunner : public BatchRunner {
 public:
  explicit SlowRunner(FakeClock* clock) : clock_(clock) {}
  Status RunBatch(std::span<Task* const> /*batch*/, std::span<Status> /*statuses*/) override {
    std::unique_lock<std::mutex> lock(mu_);
    ++arrived_;
    cv_.notify_all();
    cv_.wait_for(lock, kHangGuard, [&] { return released_; });
    lock.unlock();
    clock_->AdvanceMicros(kRunMicros);
    return OkStatus();
  }
  void BlockUntilArrived() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, kHangGuard, [&] { return arrived_ > 0; });
  }
  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    released_ = true;
    cv_.notify_all();
  }

 private:
  FakeClock* clock_;
  std::mutex mu_;
  std::condition_variable cv_;
  int arrived_ = 0;
  bool released_ = false;
};

class Finished {
 public:
  std::unique_ptr<Task> NewTask(FakeClock* clock) {
    return std::make_unique<Task>(4, [this, clock](Status) {
      clock->AdvanceMicros(kFinishMicros);
      std::lock_guard<std::mutex> lock(mu_);
      ++count_;
      cv_.notify_all();
    });
  }
  bool WaitFor(int count) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, kHangGuard, [&] { return count_ >= count; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int count_ = 0;
};

TEST(BatcherCycleTest, AdmissionCountsTheBusyCycleNotTheIdleGap) {
  FakeClock clock;
  SlowRunner* runner = nullptr;
  DynamicBatcherOptions options;
  options.max_batch_size = 4;
  options.clock = &clock;
  options.overlap_answers =
      false;  // the callbacks' time stays in the worker's cycle (overlap_test: the other way)
  auto batcher = DynamicBatcher::Create(options, [&](int) -> StatusOr<std::unique_ptr<BatchRunner>> {
    auto made = std::make_unique<SlowRunner>(&clock);
    runner = made.get();
    return std::unique_ptr<BatchRunner>(std::move(made));
  });
  ASSERT_TRUE(batcher.ok()) << batcher.status().ToString();
  Finished finished;
  for (int i = 0; i < 3; ++i) {
    std::unique_ptr<Task> task = finished.NewTask(&clock);
    ASSERT_TRUE((*batcher)->Schedule(task).ok());
    if (i == 0) runner->BlockUntilArrived();  // two tasks queue behind the first batch
  }
  runner->Release();
  ASSERT_TRUE(finished.WaitFor(3));
  ASSERT_TRUE(clock.BlockUntilWaiters(1));  // the worker is back, waiting for work: nothing runs
  // Run 4 ms per 4 items; start to start 6 ms (run + the finished task's callback), taken without waiting.
  EXPECT_EQ((*batcher)->item_service_ns(), 1'000'000);
  EXPECT_EQ((*batcher)->item_work_ns(), 1'500'000);
  EXPECT_EQ((*batcher)->ExpectedWorkMicros(2), 3000);

  // A batch taken after the worker waited for work does not count its idle gap.
  clock.AdvanceMicros(100'000);
  std::unique_ptr<Task> late = finished.NewTask(&clock);
  ASSERT_TRUE((*batcher)->Schedule(late).ok());
  ASSERT_TRUE(finished.WaitFor(4));
  ASSERT_TRUE(clock.BlockUntilWaiters(1));
  EXPECT_EQ((*batcher)->item_work_ns(), 1'500'000);
  EXPECT_TRUE((*batcher)->Shutdown(clock.NowMicros() + 1000).ok());
}

}  // namespace
}  // namespace cnnserve
