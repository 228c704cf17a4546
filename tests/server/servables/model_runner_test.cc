// Plan sizes, padding and SessionBatchRunner on the real LeNet-5 (no fake engine).
#include "server/servables/model_runner.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <future>
#include <memory>
#include <thread>
#include <vector>

#include "engine/common/units.h"
#include "models/repository/model_repository.h"
#include "tests/models/repository/test_repository.h"
#include "tests/server/servables/fashion_testdata.h"

namespace cnnserve {
namespace {

using ::cnnserve::testing::DefaultRepository;
using ::cnnserve::testing::kLenetModel;
using ::cnnserve::testing::LoadFashionInputNpy;

constexpr int64_t kItemSize = 32 * 32;
constexpr int64_t kClasses = 10;

TEST(PlanBatchSizesTest, Table) {
  EXPECT_EQ(PlanBatchSizes(64, {8, 32}), (std::vector<int64_t>{1, 8, 32, 64}));
  EXPECT_EQ(PlanBatchSizes(0, {}), (std::vector<int64_t>{1}));
  EXPECT_EQ(PlanBatchSizes(1, {1}), (std::vector<int64_t>{1}));
  EXPECT_EQ(PlanBatchSizes(8, {8, 4, 4}), (std::vector<int64_t>{1, 4, 8}));
  EXPECT_EQ(PlanBatchSizes(16, {32, 0, -1}), (std::vector<int64_t>{1, 16}));  // out of range: ignored
}

TEST(PaddedBatchSizeTest, Table) {
  const std::vector<int64_t> sizes = {1, 8, 32, 64};
  const std::vector<std::pair<int64_t, int64_t>> cases = {{1, 1},   {2, 8},   {7, 8},   {8, 8}, {9, 32},
                                                          {32, 32}, {33, 64}, {64, 64}, {65, 0}};
  for (const auto& [items, padded] : cases) EXPECT_EQ(PaddedBatchSize(sizes, items), padded) << items;
}

class SessionBatchRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StatusOr<std::unique_ptr<ModelRepository>> repository = ModelRepository::Load(DefaultRepository().string());
    ASSERT_TRUE(repository.ok()) << repository.status().ToString();
    repository_ = *std::move(repository);
    const ModelEntry* entry = repository_->Find(kLenetModel);
    ASSERT_NE(entry, nullptr);
    ASSERT_NE(entry->DefaultVersion(), nullptr);
    model_ = entry->DefaultVersion()->model;
    input_ = LoadFashionInputNpy();
    ASSERT_EQ(input_.rank(), 4);
    ASSERT_GE(input_.dims()[0], 8);
  }

  // A request with images [first, first + count) of input.npy; its output rows start as NaN (untouched).
  struct Request {
    std::shared_ptr<InferState> state = std::make_shared<InferState>();
    std::vector<float> outputs;
    // The top `k` of image i's output row.
    std::vector<ScoredClass> Top(int64_t i, int k) const {
      return TopK(std::span<const float>(outputs.data() + i * kClasses, kClasses), k);
    }
  };
  std::unique_ptr<Request> MakeRequest(int64_t first, int64_t count) {
    auto request = std::make_unique<Request>();
    request->state->item_input_size = kItemSize;
    request->state->item_output_size = kClasses;
    request->state->inputs.assign(input_.data() + first * kItemSize, input_.data() + (first + count) * kItemSize);
    request->outputs.assign(static_cast<size_t>(count * kClasses), std::nanf(""));
    request->state->outputs = request->outputs.data();
    return request;
  }

  // Each image's scores run alone (batch 1) on a session of its own.
  std::vector<std::vector<ScoredClass>> Reference(int64_t first, int64_t count) {
    std::unique_ptr<Session> session = model_->NewSession();
    std::vector<std::vector<ScoredClass>> out;
    std::vector<float> scores(kClasses);
    for (int64_t i = first; i < first + count; ++i) {
      EXPECT_TRUE(session->Run(input_.data() + i * kItemSize, 1, scores.data()).ok());
      out.push_back(TopK(scores, static_cast<int>(kClasses)));
    }
    return out;
  }

  static void ExpectSame(const std::vector<ScoredClass>& got, const std::vector<ScoredClass>& want, size_t k) {
    ASSERT_EQ(got.size(), k);
    for (size_t j = 0; j < k; ++j) {
      EXPECT_EQ(got[j].index, want[j].index) << j;
      EXPECT_NEAR(got[j].score, want[j].score, 1e-4f) << j;
      EXPECT_NEAR(got[j].probability, want[j].probability, 1e-5f) << j;
    }
  }

  std::unique_ptr<ModelRepository> repository_;
  std::shared_ptr<const Model> model_;
  Tensor input_;
};

TEST_F(SessionBatchRunnerTest, PadsToTheNextPlanAndSplitsTheOutputs) {
  StatusOr<std::unique_ptr<SessionBatchRunner>> runner = SessionBatchRunner::Create(model_, {4, 1}, true);
  ASSERT_TRUE(runner.ok()) << runner.status().ToString();
  EXPECT_EQ((*runner)->plan_sizes(), (std::vector<int64_t>{1, 4}));
  // The warm-up timed each plan: the batcher's first costs.
  const std::vector<PlanCost> costs = (*runner)->PlanCosts();
  ASSERT_EQ(costs.size(), 2u);
  EXPECT_EQ(costs[0].batch_size, 1);
  EXPECT_EQ(costs[1].batch_size, 4);
  EXPECT_GT(costs[0].run_us, 0);
  EXPECT_GT(costs[1].run_us, 0);

  // Three images in two tasks (two requests) run as one batch padded to 4.
  std::unique_ptr<Request> a = MakeRequest(0, 1);
  std::unique_ptr<Request> b = MakeRequest(1, 2);
  InferTask task_a(a->state, 0, 1, [](Status) {});
  InferTask task_b(b->state, 0, 2, [](Status) {});
  std::vector<Task*> batch = {&task_a, &task_b};
  std::vector<Status> statuses(2);
  ASSERT_TRUE((*runner)->RunBatch(batch, statuses).ok());
  EXPECT_TRUE(statuses[0].ok());
  EXPECT_TRUE(statuses[1].ok());
  EXPECT_EQ((*runner)->runs_by_plan_size()[4], 1);

  const std::vector<std::vector<ScoredClass>> reference = Reference(0, 3);
  ExpectSame(a->Top(0, 3), reference[0], 3);
  ExpectSame(b->Top(0, 10), reference[1], 10);
  ExpectSame(b->Top(1, 10), reference[2], 10);
  EXPECT_GT(a->state->inference_us(), 0);  // the engine ran LeNet-5 on a batch of 4

  // One task that fills a plan exactly runs from its own buffer.
  std::unique_ptr<Request> c = MakeRequest(3, 4);
  InferTask task_c(c->state, 0, 4, [](Status) {});
  std::vector<Task*> exact = {&task_c};
  std::vector<Status> exact_statuses(1);
  ASSERT_TRUE((*runner)->RunBatch(exact, exact_statuses).ok());
  EXPECT_EQ((*runner)->runs_by_plan_size()[4], 2);
  const std::vector<std::vector<ScoredClass>> reference_c = Reference(3, 4);
  for (size_t i = 0; i < 4; ++i) ExpectSame(c->Top(static_cast<int64_t>(i), 5), reference_c[i], 5);

  // A single image uses the batch-1 plan; a task's images may start mid-request.
  std::unique_ptr<Request> d = MakeRequest(0, 8);
  InferTask task_d(d->state, 6, 1, [](Status) {});
  std::vector<Task*> single = {&task_d};
  std::vector<Status> single_statuses(1);
  ASSERT_TRUE((*runner)->RunBatch(single, single_statuses).ok());
  EXPECT_EQ((*runner)->runs_by_plan_size()[1], 1);
  ExpectSame(d->Top(6, 2), Reference(6, 1)[0], 2);
  for (int64_t j = 5 * kClasses; j < 6 * kClasses; ++j) {
    EXPECT_TRUE(std::isnan(d->outputs[static_cast<size_t>(j)]));  // other images of the request are untouched
  }
}

TEST_F(SessionBatchRunnerTest, WithoutWarmUpThereAreNoPlanCosts) {
  StatusOr<std::unique_ptr<SessionBatchRunner>> runner = SessionBatchRunner::Create(model_, {1, 4}, false);
  ASSERT_TRUE(runner.ok()) << runner.status().ToString();
  EXPECT_TRUE((*runner)->PlanCosts().empty());
}

TEST_F(SessionBatchRunnerTest, RecordsBatchStatistics) {
  auto recorder = std::make_shared<BatchStatsRecorder>();
  StatusOr<std::unique_ptr<SessionBatchRunner>> runner =
      SessionBatchRunner::Create(model_, {1, 4}, false, recorder);
  ASSERT_TRUE(runner.ok());
  for (int64_t count : {3, 3, 1}) {
    std::unique_ptr<Request> r = MakeRequest(0, count);
    InferTask task(r->state, 0, count, [](Status) {});
    std::vector<Task*> batch = {&task};
    std::vector<Status> statuses(1);
    ASSERT_TRUE((*runner)->RunBatch(batch, statuses).ok());
  }
  ServableStats stats;
  recorder->AddTo(stats);
  EXPECT_EQ(stats.execution_count, 3u);
  EXPECT_EQ(stats.compute_infer.count, 3u);
  EXPECT_GT(stats.compute_infer.total_ns, 0u);
  ASSERT_EQ(stats.batch_stats.size(), 2u);  // by unpadded size: 1 and 3
  EXPECT_EQ(stats.batch_stats[0].batch_size, 1);
  EXPECT_EQ(stats.batch_stats[0].compute_infer.count, 1u);
  EXPECT_EQ(stats.batch_stats[1].batch_size, 3);
  EXPECT_EQ(stats.batch_stats[1].compute_infer.count, 2u);
}

TEST(NullBatchRunnerTest, WritesZerosAndCounts) {
  auto recorder = std::make_shared<BatchStatsRecorder>();
  NullBatchRunner runner(recorder);
  auto state = std::make_shared<InferState>();
  state->item_input_size = 4;
  state->item_output_size = 3;
  state->inputs.assign(8, 1.0f);
  std::vector<float> outputs(6, 7.0f);
  state->outputs = outputs.data();
  InferTask task(state, 0, 2, [](Status) {});
  std::vector<Task*> batch = {&task};
  std::vector<Status> statuses(1, InternalError("unset"));
  ASSERT_TRUE(runner.RunBatch(batch, statuses).ok());
  EXPECT_TRUE(statuses[0].ok());
  EXPECT_EQ(outputs, std::vector<float>(6, 0.0f));
  ServableStats stats;
  recorder->AddTo(stats);
  EXPECT_EQ(stats.execution_count, 1u);
  ASSERT_EQ(stats.batch_stats.size(), 1u);
  EXPECT_EQ(stats.batch_stats[0].batch_size, 2);
}

TEST_F(SessionBatchRunnerTest, TooLargeABatchIsAnError) {
  StatusOr<std::unique_ptr<SessionBatchRunner>> runner = SessionBatchRunner::Create(model_, {1, 2}, false);
  ASSERT_TRUE(runner.ok());
  std::unique_ptr<Request> r = MakeRequest(0, 3);
  InferTask task(r->state, 0, 3, [](Status) {});
  std::vector<Task*> batch = {&task};
  std::vector<Status> statuses(1);
  const Status status = (*runner)->RunBatch(batch, statuses);
  EXPECT_EQ(status.code(), StatusCode::kInternal);
  EXPECT_EQ(status.message(), "a batch of 3 images is larger than the largest plan (2)");
}

// An instance with two engine threads compiles, warms up and runs on its lane; with two such instances on two
// cpus both share one lane (one OpenMP pool for the process), and their answers are the engine's.
TEST_F(SessionBatchRunnerTest, MultiThreadedInstancesRunOnTheirLane) {
  ModelOptions options = model_->options();
  options.num_threads = 2;
  StatusOr<std::shared_ptr<const Model>> two_threads = Model::Create(model_->shared_graph(), options);
  ASSERT_TRUE(two_threads.ok()) << two_threads.status().ToString();
  ComputeLanes lanes(2);
  StatusOr<std::unique_ptr<SessionBatchRunner>> a =
      SessionBatchRunner::Create(*two_threads, {1, 4}, true, nullptr, &lanes);
  StatusOr<std::unique_ptr<SessionBatchRunner>> b =
      SessionBatchRunner::Create(*two_threads, {1, 4}, true, nullptr, &lanes);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  ASSERT_NE((*a)->lane(), nullptr);
  EXPECT_FALSE((*a)->RunsOnCallingThread());  // the batcher times its plans by the wall clock
  EXPECT_EQ((*a)->lane(), (*b)->lane());
  EXPECT_EQ(lanes.lane_count(2), 1);
  EXPECT_EQ((*a)->lane()->runs(), 2);  // each Create: one closure (compile + warm-up of both plans)

  const std::vector<std::vector<ScoredClass>> reference = Reference(0, 8);
  std::vector<std::thread> workers;
  for (SessionBatchRunner* runner : {a->get(), b->get()}) {
    workers.emplace_back([&, runner] {
      for (int round = 0; round < 10; ++round) {
        std::unique_ptr<Request> r = MakeRequest(round % 5, 3);
        InferTask task(r->state, 0, 3, [](Status) {});
        std::vector<Task*> batch = {&task};
        std::vector<Status> statuses(1);
        ASSERT_TRUE(runner->RunBatch(batch, statuses).ok());
        for (int64_t i = 0; i < 3; ++i) ExpectSame(r->Top(i, 5), reference[static_cast<size_t>(round % 5 + i)], 5);
      }
    });
  }
  for (std::thread& w : workers) w.join();
  EXPECT_EQ((*a)->lane()->runs(), 2 + 20);
  // One thread: no lane, everything inline.
  StatusOr<std::unique_ptr<SessionBatchRunner>> inline_runner =
      SessionBatchRunner::Create(model_, {1}, true, nullptr, &lanes);
  ASSERT_TRUE(inline_runner.ok());
  EXPECT_EQ((*inline_runner)->lane(), nullptr);
  EXPECT_TRUE((*inline_runner)->RunsOnCallingThread());  // timed by the batcher's thread's CPU time
}

// Waiting for a lane that another instance holds is queueing, not compute: it shows in the tasks' queue time and
// not in compute_infer.
TEST_F(SessionBatchRunnerTest, WaitingForTheLaneCountsAsQueueNotCompute) {
  ModelOptions options = model_->options();
  options.num_threads = 2;
  StatusOr<std::shared_ptr<const Model>> two_threads = Model::Create(model_->shared_graph(), options);
  ASSERT_TRUE(two_threads.ok()) << two_threads.status().ToString();
  ComputeLanes lanes(2);
  auto recorder = std::make_shared<BatchStatsRecorder>();
  StatusOr<std::unique_ptr<SessionBatchRunner>> runner =
      SessionBatchRunner::Create(*two_threads, {1}, true, recorder, &lanes);
  ASSERT_TRUE(runner.ok()) << runner.status().ToString();
  std::shared_ptr<ComputeLane> lane = lanes.Assign(2);  // the same (only) lane
  ASSERT_EQ(lane.get(), (*runner)->lane());

  // Another instance holds the lane until the test releases it; the batch is handed to the lane meanwhile.
  std::promise<void> holding;
  std::promise<void> release;
  std::thread holder([&] {
    lane->Run([&] {
      holding.set_value();
      release.get_future().wait();
    });
  });
  holding.get_future().wait();
  std::unique_ptr<Request> r = MakeRequest(0, 1);
  InferTask task(r->state, 0, 1, [](Status) {});
  const int64_t enqueue_us = SteadyNowMicros();
  task.set_enqueue_time_us(enqueue_us);
  std::thread batch_thread([&] {
    std::vector<Task*> batch = {&task};
    std::vector<Status> statuses(1);
    EXPECT_TRUE((*runner)->RunBatch(batch, statuses).ok());
  });
  // Give the batch time to reach the lane, so that the wait is long next to the run (a short wait only makes the
  // test weaker, never wrong: the checks below hold however the threads are scheduled).
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const int64_t release_us = SteadyNowMicros();
  release.set_value();
  batch_thread.join();
  const int64_t done_us = SteadyNowMicros();
  holder.join();
  ExpectSame(r->Top(0, 3), Reference(0, 1)[0], 3);
  ServableStats stats;
  recorder->AddTo(stats);
  ASSERT_EQ(stats.compute_infer.count, 1u);
  // The engine ran after the release, so its time fits after it; the wait before it is the task's queue time
  // (all of it but the input copy, which is compute_input).
  EXPECT_LE(stats.compute_infer.total_ns / kNanosPerMicro, static_cast<uint64_t>(done_us - release_us));
  EXPECT_LE(r->state->inference_us(), done_us - release_us);
  EXPECT_GE(r->state->queue_us() + static_cast<int64_t>(stats.compute_input.total_ns / kNanosPerMicro) + 1,
            release_us - enqueue_us);
}

TEST_F(SessionBatchRunnerTest, CreateValidates) {
  EXPECT_EQ(SessionBatchRunner::Create(nullptr, {1}, false).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(SessionBatchRunner::Create(model_, {}, false).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(SessionBatchRunner::Create(model_, {0, 4}, false).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace cnnserve
