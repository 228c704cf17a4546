// Plan sizes, padding and SessionBatchRunner on the real LeNet-5 (no fake engine).
#include "server/inference/model_runner.h"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "models/repository/model_repository.h"
#include "tests/models/repository/test_repository.h"
#include "tests/server/inference/fashion_testdata.h"

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

  // The request with images [first, first + count) of input.npy.
  std::shared_ptr<ClassifyRequest> MakeRequest(int64_t first, int64_t count, int top_k) {
    auto request = std::make_shared<ClassifyRequest>();
    request->item_input_size = kItemSize;
    request->top_k = top_k;
    request->inputs.assign(input_.data() + first * kItemSize, input_.data() + (first + count) * kItemSize);
    request->results.resize(static_cast<size_t>(count));
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

  // Three images in two tasks (two requests) run as one batch padded to 4.
  std::shared_ptr<ClassifyRequest> a = MakeRequest(0, 1, 3);
  std::shared_ptr<ClassifyRequest> b = MakeRequest(1, 2, 10);
  ClassifyTask task_a(a, 0, 1, [](Status) {});
  ClassifyTask task_b(b, 0, 2, [](Status) {});
  std::vector<Task*> batch = {&task_a, &task_b};
  std::vector<Status> statuses(2);
  ASSERT_TRUE((*runner)->RunBatch(batch, statuses).ok());
  EXPECT_TRUE(statuses[0].ok());
  EXPECT_TRUE(statuses[1].ok());
  EXPECT_EQ((*runner)->runs_by_plan_size()[4], 1);

  const std::vector<std::vector<ScoredClass>> reference = Reference(0, 3);
  ExpectSame(a->results[0], reference[0], 3);
  ExpectSame(b->results[0], reference[1], 10);
  ExpectSame(b->results[1], reference[2], 10);
  EXPECT_GE(a->inference_us(), 0);

  // One task that fills a plan exactly runs from its own buffer.
  std::shared_ptr<ClassifyRequest> c = MakeRequest(3, 4, 5);
  ClassifyTask task_c(c, 0, 4, [](Status) {});
  std::vector<Task*> exact = {&task_c};
  std::vector<Status> exact_statuses(1);
  ASSERT_TRUE((*runner)->RunBatch(exact, exact_statuses).ok());
  EXPECT_EQ((*runner)->runs_by_plan_size()[4], 2);
  const std::vector<std::vector<ScoredClass>> reference_c = Reference(3, 4);
  for (size_t i = 0; i < 4; ++i) ExpectSame(c->results[i], reference_c[i], 5);

  // A single image uses the batch-1 plan; a task's images may start mid-request.
  std::shared_ptr<ClassifyRequest> d = MakeRequest(0, 8, 2);
  ClassifyTask task_d(d, 6, 1, [](Status) {});
  std::vector<Task*> single = {&task_d};
  std::vector<Status> single_statuses(1);
  ASSERT_TRUE((*runner)->RunBatch(single, single_statuses).ok());
  EXPECT_EQ((*runner)->runs_by_plan_size()[1], 1);
  ExpectSame(d->results[6], Reference(6, 1)[0], 2);
  EXPECT_TRUE(d->results[5].empty());  // other images of the request are untouched
}

TEST_F(SessionBatchRunnerTest, TooLargeABatchIsAnError) {
  StatusOr<std::unique_ptr<SessionBatchRunner>> runner = SessionBatchRunner::Create(model_, {1, 2}, false);
  ASSERT_TRUE(runner.ok());
  std::shared_ptr<ClassifyRequest> r = MakeRequest(0, 3, 1);
  ClassifyTask task(r, 0, 3, [](Status) {});
  std::vector<Task*> batch = {&task};
  std::vector<Status> statuses(1);
  const Status status = (*runner)->RunBatch(batch, statuses);
  EXPECT_EQ(status.code(), StatusCode::kInternal);
  EXPECT_EQ(status.message(), "a batch of 3 images is larger than the largest plan (2)");
}

TEST_F(SessionBatchRunnerTest, CreateValidates) {
  EXPECT_EQ(SessionBatchRunner::Create(nullptr, {1}, false).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(SessionBatchRunner::Create(model_, {}, false).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(SessionBatchRunner::Create(model_, {0, 4}, false).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace cnnserve
