// The protocol-neutral service layer on a real repository (a copy of the trained LeNet-5): Infer's one request
// path (the order of its checks, build_items, request ids, the outcome), the neutral metadata (Models, Describe)
// and Infer after Shutdown. The wire protocols' translations are tested in tests/server/transport.
#include "server/service/inference_service.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/models/repository/test_repository.h"

namespace cnnserve {
namespace {

using ::cnnserve::testing::CopyLenet;
using ::cnnserve::testing::TempDir;

constexpr char kModel[] = "lenet";
constexpr int64_t kItemFloats = 32 * 32;
constexpr auto kWaitLimit = std::chrono::seconds(60);

struct Answer {
  Status status;
  std::shared_ptr<InferOutcome> outcome = std::make_shared<InferOutcome>();
  int build_calls = 0;
};

// Runs one Infer of `items` zero tensors (the model's input size) and waits for its answer.
Answer InferTensors(InferenceService& service, InferRequest request, int items = 1) {
  Answer answer;
  const std::string zeros(static_cast<size_t>(kItemFloats) * sizeof(float), '\0');
  if (!request.build_items) {
    request.build_items = [&answer, &zeros, items](const ServableInfo& info, RunRequest* run) {
      ++answer.build_calls;
      EXPECT_EQ(info.item_input_dims, (Dims{1, 32, 32}));
      for (int i = 0; i < items; ++i) run->items.push_back({ImageItem::Kind::kTensor, zeros});
      return OkStatus();
    };
  }
  std::promise<Status> done;
  service.Infer(std::move(request), answer.outcome, [&done](Status status) { done.set_value(std::move(status)); });
  std::future<Status> future = done.get_future();
  answer.status =
      future.wait_for(kWaitLimit) == std::future_status::ready ? future.get() : InternalError("test: no answer");
  return answer;
}

class InferenceServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CopyLenet(repo_.path(), kModel);
    ASSERT_NO_FATAL_FAILURE(Start({}));
  }

  void Start(InferenceServiceOptions options) {
    service_.reset();
    options.model_repository = repo_.path().string();
    StatusOr<std::unique_ptr<InferenceService>> service = InferenceService::Create(options);
    ASSERT_TRUE(service.ok()) << service.status().ToString();
    service_ = *std::move(service);
  }

  // Starts an Infer on another thread whose build_items blocks until `release` is fulfilled (a request that is
  // still being decoded or validated). Returns once build_items has been entered.
  std::thread StartHeld(std::shared_future<void> release, std::promise<Status>* answer) {
    std::promise<void> entered;
    std::future<void> entered_future = entered.get_future();
    std::thread thread([this, release, answer, entered = std::move(entered)]() mutable {
      InferRequest request = Request();
      request.build_items = [release, &entered, this](const ServableInfo&, RunRequest* run) {
        entered.set_value();
        release.wait();
        run->items.push_back({ImageItem::Kind::kTensor, zeros_});
        return OkStatus();
      };
      service_->Infer(std::move(request), std::make_shared<InferOutcome>(),
                      [answer](Status status) { answer->set_value(std::move(status)); });
    });
    entered_future.wait();
    return thread;
  }

  InferRequest Request(const std::string& model = kModel) {
    InferRequest request;
    request.model = model;
    return request;
  }

  TempDir repo_;
  std::unique_ptr<InferenceService> service_;
  const std::string zeros_ = std::string(static_cast<size_t>(kItemFloats) * sizeof(float), '\0');
};

TEST_F(InferenceServiceTest, InferRunsTheItemsAndReportsTheOutcome) {
  const Answer answer = InferTensors(*service_, Request(), 3);
  ASSERT_TRUE(answer.status.ok()) << answer.status.ToString();
  EXPECT_EQ(answer.build_calls, 1);
  ASSERT_NE(answer.outcome->servable, nullptr);
  EXPECT_EQ(answer.outcome->servable->info().name, kModel);
  const RunResult& result = answer.outcome->result;
  EXPECT_EQ(result.model, kModel);
  EXPECT_EQ(result.version, 1);
  EXPECT_EQ(result.num_items, 3);
  EXPECT_EQ(result.num_classes, 10);
  ASSERT_EQ(result.probabilities.size(), 30u);
  // Three equal inputs, three equal rows.
  EXPECT_EQ(std::vector<float>(result.probabilities.begin(), result.probabilities.begin() + 10),
            std::vector<float>(result.probabilities.begin() + 20, result.probabilities.end()));
  EXPECT_FALSE(answer.outcome->request_id.empty()) << "the service assigns an id";
  EXPECT_GT(answer.outcome->start_us, 0);
  EXPECT_LE(answer.outcome->start_us, SteadyNowMicros());

  InferRequest named = Request();
  named.request_id = "mine";
  const Answer second = InferTensors(*service_, std::move(named));
  ASSERT_TRUE(second.status.ok());
  EXPECT_EQ(second.outcome->request_id, "mine");
  EXPECT_NE(InferTensors(*service_, Request()).outcome->request_id, answer.outcome->request_id);
}

TEST_F(InferenceServiceTest, FailuresBeforeBuildItemsLeaveItUncalled) {
  const Answer unknown = InferTensors(*service_, Request("nope"));
  EXPECT_EQ(unknown.status.code(), StatusCode::kNotFound);
  EXPECT_EQ(unknown.build_calls, 0);
  EXPECT_EQ(unknown.outcome->servable, nullptr);

  InferRequest bad_version = Request();
  bad_version.version = 9;
  EXPECT_EQ(InferTensors(*service_, std::move(bad_version)).status.code(), StatusCode::kNotFound);

  InferRequest late = Request();
  late.deadline_us = SteadyNowMicros() - 1;
  const Answer expired = InferTensors(*service_, std::move(late));
  EXPECT_EQ(expired.status.code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(expired.build_calls, 0);

  InferRequest cancelled = Request();
  cancelled.cancelled = [] { return true; };
  const Answer gone = InferTensors(*service_, std::move(cancelled));
  EXPECT_EQ(gone.status.code(), StatusCode::kCancelled);
  EXPECT_EQ(gone.build_calls, 0);
}

TEST_F(InferenceServiceTest, BuildItemsErrorsAndRunErrorsAreTheRequestsErrors) {
  InferRequest refused = Request();
  refused.build_items = [](const ServableInfo&, RunRequest*) { return InvalidArgumentError("field x: bad"); };
  const Answer answer = InferTensors(*service_, std::move(refused));
  EXPECT_EQ(answer.status, InvalidArgumentError("field x: bad"));

  InferRequest short_tensor = Request();
  const std::string bytes(12, '\0');
  short_tensor.build_items = [&bytes](const ServableInfo&, RunRequest* run) {
    run->items.push_back({ImageItem::Kind::kTensor, bytes});
    return OkStatus();
  };
  EXPECT_EQ(InferTensors(*service_, std::move(short_tensor)).status.code(), StatusCode::kInvalidArgument);

  InferRequest no_builder = Request();
  no_builder.build_items = nullptr;
  std::promise<Status> done;
  service_->Infer(std::move(no_builder), std::make_shared<InferOutcome>(),
                  [&done](Status status) { done.set_value(std::move(status)); });
  EXPECT_EQ(done.get_future().get().code(), StatusCode::kInternal);
}

TEST_F(InferenceServiceTest, ModelsAndDescribe) {
  const std::vector<InferenceService::ModelSummary> models = service_->Models();
  ASSERT_EQ(models.size(), 1u);
  const InferenceService::ModelSummary& lenet = models[0];
  EXPECT_EQ(lenet.name, kModel);
  ASSERT_EQ(lenet.versions.size(), 1u);
  EXPECT_EQ(lenet.versions[0].version, 1);
  EXPECT_EQ(lenet.versions[0].state, "READY");
  EXPECT_EQ(lenet.input_dims, (Dims{1, 32, 32}));
  EXPECT_EQ(lenet.num_classes, 10);
  EXPECT_EQ(lenet.platform, "onnx");

  StatusOr<InferenceService::ModelDescription> described = service_->Describe(kModel, 0);
  ASSERT_TRUE(described.ok()) << described.status().ToString();
  EXPECT_EQ(described->summary.name, kModel);
  ASSERT_TRUE(described->config.has_value());
  EXPECT_EQ(described->config->max_batch_size(), 64);
  ASSERT_TRUE(described->stats.has_value());
  EXPECT_EQ(described->stats->total_params, 61706);
  EXPECT_EQ(described->stats->layers.size(), 12u);
  EXPECT_NE(described->layer_table.find("61,706"), std::string::npos) << described->layer_table;
  EXPECT_EQ(described->labels.size(), 10u);
  EXPECT_TRUE(service_->Describe(kModel, 1).ok());

  EXPECT_EQ(service_->Describe(kModel, 7).status(), NotFoundError("version 7 of model \"lenet\" not found"));
  EXPECT_EQ(service_->Describe("nope", 0).status(), NotFoundError("model \"nope\" not found"));
  EXPECT_EQ(service_->Describe("", 0).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(service_->Describe(kModel, -1).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(InferenceServiceTest, InferAfterShutdownIsUnavailable) {
  ASSERT_TRUE(service_->Shutdown(SteadyNowMicros() + 1'000'000).ok());
  const Answer answer = InferTensors(*service_, Request());
  EXPECT_EQ(answer.status.code(), StatusCode::kUnavailable);
  EXPECT_EQ(answer.build_calls, 0);
}

TEST_F(InferenceServiceTest, ARequestWithoutDeadlineGetsTheDefaultTimeout) {
  InferenceServiceOptions options;
  options.default_timeout_us = 1;
  ASSERT_NO_FATAL_FAILURE(Start(options));
  EXPECT_EQ(InferTensors(*service_, Request()).status.code(), StatusCode::kDeadlineExceeded);
  InferRequest own_deadline = Request();
  own_deadline.deadline_us = SteadyNowMicros() + 60'000'000;
  EXPECT_TRUE(InferTensors(*service_, std::move(own_deadline)).status.ok());
}

// --max-queue-wait-ms bounds the wait ahead of a request, not its own run time: on an idle server a request
// whose own run is expected to take far longer than the bound is admitted, and answered.
TEST_F(InferenceServiceTest, TheQueueWaitBoundDoesNotRefuseALargeRequestOnAnIdleServer) {
  constexpr int kItems = 4096;
  InferenceServiceOptions options;
  options.max_queue_wait_us = 5000;  // far above what the warm-up leaves running, also under ASan
  options.max_images_per_request = kItems;
  ASSERT_NO_FATAL_FAILURE(Start(options));
  const Answer warm = InferTensors(*service_, Request(), 4);  // times the model's batches
  ASSERT_TRUE(warm.status.ok()) << warm.status.ToString();
  ASSERT_GT(warm.outcome->servable->ExpectedWorkMicros(kItems), 2 * options.max_queue_wait_us)
      << "the request's own run must be expected to take longer than the bound, or the test proves nothing";
  const Answer large = InferTensors(*service_, Request(), kItems);
  ASSERT_TRUE(large.status.ok()) << large.status.ToString();
  EXPECT_EQ(large.outcome->result.num_items, kItems);
  options.model_repository = repo_.path().string();
  options.max_queue_wait_us = -1;
  const Status negative = InferenceService::Create(options).status();
  EXPECT_EQ(negative.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(negative.message().find("max_queue_wait_us -1"), std::string::npos) << negative.ToString();
}

TEST_F(InferenceServiceTest, MaxInFlightRefusesBeforeAnyWork) {
  InferenceServiceOptions options;
  options.max_in_flight = 1;
  ASSERT_NO_FATAL_FAILURE(Start(options));
  std::promise<void> release;
  std::promise<Status> held_answer;
  std::thread held = StartHeld(release.get_future().share(), &held_answer);
  const Answer refused = InferTensors(*service_, Request());
  EXPECT_EQ(refused.status.code(), StatusCode::kUnavailable);
  EXPECT_NE(refused.status.message().find("--max-in-flight 1"), std::string::npos) << refused.status.ToString();
  EXPECT_EQ(refused.build_calls, 0);
  release.set_value();
  held.join();
  EXPECT_TRUE(held_answer.get_future().get().ok());
  EXPECT_TRUE(InferTensors(*service_, Request()).status.ok()) << "admitted again once the first has left";
}

// A request still being decoded when Shutdown starts is answered, not cut off: Shutdown waits for it.
TEST_F(InferenceServiceTest, ShutdownAnswersARequestStillBeingPrepared) {
  std::promise<void> release;
  std::promise<Status> held_answer;
  std::thread held = StartHeld(release.get_future().share(), &held_answer);
  std::future<Status> shutdown =
      std::async(std::launch::async, [this] { return service_->Shutdown(SteadyNowMicros() + 60'000'000); });
  EXPECT_EQ(shutdown.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout)
      << "Shutdown must wait for the admitted request";
  EXPECT_EQ(InferTensors(*service_, Request()).status.code(), StatusCode::kUnavailable) << "no new requests";
  release.set_value();
  held.join();
  EXPECT_TRUE(held_answer.get_future().get().ok());
  EXPECT_TRUE(shutdown.get().ok());
}

}  // namespace
}  // namespace cnnserve
