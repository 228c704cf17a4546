// KServeService in process: a GrpcServer on 127.0.0.1:0 over a fake InferenceService whose one servable answers
// on threads of its own after a delay the request chooses, so the tests control completion order. They check what
// the service adds over the pure conversions: ModelStreamInfer answers in completion order with each request's
// id and keeps going after an error, repository loads run off gRPC's threads, and the status mapping.
// The real InferenceService is exercised by tests/integration/kserve_test.py.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "inference/grpc_service.grpc.pb.h"
#include "server/service/inference_service.h"
#include "server/transport/grpc_server.h"

namespace cnnserve {
namespace {

constexpr auto kCallTimeout = std::chrono::seconds(20);

// Items are 2 floats (C, H, W = 1, 1, 2). Run waits item 0's first float in milliseconds, then answers scores
// equal to the items' floats, or fails with INVALID_ARGUMENT when item 0's second float is negative.
class FakeServable final : public Servable {
 public:
  FakeServable() {
    info_.name = "fake";
    info_.version = 1;
    info_.platform = "onnx";
    info_.item_input_dims = {1, 1, 2};
    info_.num_classes = 2;
    info_.labels = {"zero", "one"};
    info_.output_name = "out";
  }
  ~FakeServable() override { Join(); }

  const ServableInfo& info() const override { return info_; }

  void Run(std::shared_ptr<const RunRequest> request, RunResult* result,
           std::function<void(Status)> done) override {
    std::vector<float> values;
    for (const ImageItem& item : request->items) {
      float pair[2];
      std::memcpy(pair, item.data.data(), sizeof(pair));
      values.insert(values.end(), pair, pair + 2);
    }
    std::lock_guard<std::mutex> lock(mu_);
    threads_.emplace_back([request, result, values, done = std::move(done)] {
      std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int>(values[0])));
      if (values[1] < 0) return done(InvalidArgumentError(request->ItemName(0) + ": fake failure"));
      result->model = "fake";
      result->version = 1;
      result->num_classes = 2;
      result->num_items = static_cast<int64_t>(values.size() / 2);
      result->scores = values;
      result->probabilities.assign(values.size(), 0.5f);
      done(OkStatus());
    });
  }

  ServableStats Stats() const override { return {}; }
  Status Shutdown(int64_t) override { return OkStatus(); }

  void Join() {
    std::vector<std::thread> threads;
    {
      std::lock_guard<std::mutex> lock(mu_);
      threads.swap(threads_);
    }
    for (std::thread& t : threads) t.join();
  }

 private:
  ServableInfo info_;
  std::mutex mu_;
  std::vector<std::thread> threads_;
};

class FakeInferenceService final : public InferenceService {
 public:
  // The service layer's request path, reduced to what the KServe front end relies on: Find, the front end's
  // build_items, then the servable's Run.
  void Infer(InferRequest request, std::shared_ptr<InferOutcome> outcome,
             std::function<void(Status)> done) override {
    StatusOr<std::shared_ptr<Servable>> found = Find(request.model, request.version);
    if (!found.ok()) return done(found.status());
    outcome->servable = *found;
    outcome->request_id = request.request_id;
    auto run = std::make_shared<RunRequest>();
    if (Status status = request.build_items(outcome->servable->info(), run.get()); !status.ok()) return done(status);
    run->deadline_us = request.deadline_us;
    run->cancelled = std::move(request.cancelled);
    Servable* const servable = outcome->servable.get();
    servable->Run(std::move(run), &outcome->result, [outcome, done = std::move(done)](Status status) {
      done(std::move(status));
    });
  }
  StatusOr<std::shared_ptr<Servable>> Find(const std::string& name, int64_t version) const override {
    if (name != "fake") return NotFoundError("model '" + name + "' not found");
    if (version > 1) return NotFoundError("model 'fake' has no version " + std::to_string(version));
    if (unloaded_) return UnavailableError("model 'fake' is unloaded");
    return std::static_pointer_cast<Servable>(servable_);
  }
  std::vector<VersionRow> Index() const override {
    return {{"fake", 1, unloaded_ ? "UNAVAILABLE" : "READY", unloaded_ ? "unloaded" : ""}};
  }
  StatusOr<std::vector<ServableStats>> Statistics(const std::string& name, int64_t) const override {
    if (!name.empty() && name != "fake") return NotFoundError("model '" + name + "' not found");
    ServableStats stats;
    stats.name = "fake";
    stats.version = 1;
    stats.inference_count = 7;
    return std::vector<ServableStats>{stats};
  }
  // Blocks until OpenLoadGate().
  Status LoadModel(const std::string& name) override {
    if (name != "fake") return NotFoundError("no folder for model '" + name + "'");
    load_started_.set_value();
    std::unique_lock<std::mutex> lock(mu_);
    gate_cv_.wait(lock, [this] { return gate_open_; });
    unloaded_ = false;
    return OkStatus();
  }
  Status UnloadModel(const std::string& name) override {
    if (name != "fake") return NotFoundError("model '" + name + "' not found");
    unloaded_ = true;
    return OkStatus();
  }
  const InferenceServiceOptions& options() const override { return options_; }
  std::vector<ModelSummary> Models() const override { return {}; }
  StatusOr<ModelDescription> Describe(const std::string& name, int64_t) const override {
    return NotFoundError("model '" + name + "' not found");
  }
  bool Ready() const override { return true; }
  std::vector<std::string> ReadyModels() const override { return {"fake"}; }
  Status Shutdown(int64_t) override {
    OpenLoadGate();
    servable_->Join();
    return OkStatus();
  }

  void OpenLoadGate() {
    std::lock_guard<std::mutex> lock(mu_);
    gate_open_ = true;
    gate_cv_.notify_all();
  }

  std::promise<void> load_started_;

 private:
  InferenceServiceOptions options_;
  std::shared_ptr<FakeServable> servable_ = std::make_shared<FakeServable>();
  std::atomic<bool> unloaded_{false};
  std::mutex mu_;
  std::condition_variable gate_cv_;
  bool gate_open_ = false;
};

class KServeServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    GrpcServerOptions options;
    options.address = "127.0.0.1:0";
    StatusOr<std::unique_ptr<GrpcServer>> server = GrpcServer::Create(options, &inference_);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
    server_->UpdateHealth();
    stub_ = inference::GRPCInferenceService::NewStub(
        grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    if (server_ != nullptr) (void)server_->Shutdown(SteadyNowMicros() + 5'000'000);
    server_.reset();
  }

  static inference::ModelInferRequest Request(const std::string& id, std::vector<float> values) {
    inference::ModelInferRequest request;
    request.set_model_name("fake");
    request.set_id(id);
    auto* input = request.add_inputs();
    input->set_name("input");
    input->set_datatype("FP32");
    for (int64_t d : {static_cast<int64_t>(values.size() / 2), int64_t{1}, int64_t{1}, int64_t{2}}) {
      input->add_shape(d);
    }
    request.add_raw_input_contents(
        std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float)));
    return request;
  }

  static std::vector<float> Scores(const inference::ModelInferResponse& response) {
    std::vector<float> scores(response.raw_output_contents(0).size() / sizeof(float));
    std::memcpy(scores.data(), response.raw_output_contents(0).data(), response.raw_output_contents(0).size());
    return scores;
  }

  static std::unique_ptr<grpc::ClientContext> Context() {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + kCallTimeout);
    return context;
  }

  FakeInferenceService inference_;
  std::unique_ptr<GrpcServer> server_;
  std::unique_ptr<inference::GRPCInferenceService::Stub> stub_;
};

TEST_F(KServeServiceTest, UnaryInferEchoesIdAndMapsErrors) {
  inference::ModelInferResponse response;
  grpc::Status status = stub_->ModelInfer(Context().get(), Request("a1", {0, 3, 0, 4}), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.id(), "a1");
  EXPECT_EQ(response.model_name(), "fake");
  EXPECT_EQ(response.model_version(), "1");
  EXPECT_EQ(response.outputs(0).name(), "out");
  EXPECT_EQ(Scores(response), (std::vector<float>{0, 3, 0, 4}));

  status = stub_->ModelInfer(Context().get(), Request("a2", {0, -1}), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "input 'input'[0]: fake failure");

  inference::ModelInferRequest unknown = Request("a3", {0, 0});
  unknown.set_model_name("nope");
  EXPECT_EQ(stub_->ModelInfer(Context().get(), unknown, &response).error_code(), grpc::StatusCode::NOT_FOUND);
  inference::ModelInferRequest version = Request("a4", {0, 0});
  version.set_model_version("v1");
  status = stub_->ModelInfer(Context().get(), version, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("model_version 'v1'"), std::string::npos) << status.error_message();
}

TEST_F(KServeServiceTest, StreamAnswersInCompletionOrderAndGoesOnAfterAnError) {
  auto context = Context();
  auto stream = stub_->ModelStreamInfer(context.get());
  // Completing after 900, 0, 300 (an error) and 600 ms: answered 1, bad, 3, 0.
  ASSERT_TRUE(stream->Write(Request("0", {900, 0})));
  ASSERT_TRUE(stream->Write(Request("1", {0, 1})));
  ASSERT_TRUE(stream->Write(Request("bad", {300, -1})));
  ASSERT_TRUE(stream->Write(Request("3", {600, 3})));
  ASSERT_TRUE(stream->WritesDone());
  std::vector<std::string> ids;
  inference::ModelStreamInferResponse response;
  while (stream->Read(&response)) {
    const std::string& id = response.infer_response().id();
    ids.push_back(id);
    if (id == "bad") {
      EXPECT_EQ(response.error_message(), "INVALID_ARGUMENT: input 'input'[0]: fake failure");
      EXPECT_EQ(response.infer_response().model_name(), "fake");
    } else {
      EXPECT_EQ(response.error_message(), "");
      EXPECT_EQ(Scores(response.infer_response())[1], std::stof(id));
    }
  }
  EXPECT_TRUE(stream->Finish().ok());
  ASSERT_EQ(ids.size(), 4u);
  EXPECT_EQ(ids[0], "1");
  EXPECT_EQ(ids[1], "bad");
  EXPECT_EQ(ids[2], "3");
  EXPECT_EQ(ids[3], "0");
}

TEST_F(KServeServiceTest, RepositoryLoadDoesNotBlockOtherCalls) {
  inference::RepositoryModelUnloadResponse unloaded;
  inference::RepositoryModelUnloadRequest unload;
  unload.set_model_name("fake");
  ASSERT_TRUE(stub_->RepositoryModelUnload(Context().get(), unload, &unloaded).ok());
  inference::ModelReadyRequest ready_request;
  ready_request.set_name("fake");
  inference::ModelReadyResponse ready;
  ASSERT_TRUE(stub_->ModelReady(Context().get(), ready_request, &ready).ok());
  EXPECT_FALSE(ready.ready());
  inference::ModelInferResponse response;
  EXPECT_EQ(stub_->ModelInfer(Context().get(), Request("u", {0, 0}), &response).error_code(),
            grpc::StatusCode::UNAVAILABLE);

  // The load blocks inside LoadModel until the gate opens; meanwhile the server answers.
  std::future<grpc::Status> load = std::async(std::launch::async, [this] {
    inference::RepositoryModelLoadRequest request;
    request.set_model_name("fake");
    inference::RepositoryModelLoadResponse response;
    return stub_->RepositoryModelLoad(Context().get(), request, &response);
  });
  inference_.load_started_.get_future().wait();
  inference::ServerLiveResponse live;
  ASSERT_TRUE(stub_->ServerLive(Context().get(), {}, &live).ok());
  EXPECT_TRUE(live.live());
  inference::RepositoryIndexResponse index;
  ASSERT_TRUE(stub_->RepositoryIndex(Context().get(), {}, &index).ok());
  ASSERT_EQ(index.models_size(), 1);
  EXPECT_EQ(index.models(0).state(), "UNAVAILABLE");
  EXPECT_EQ(index.models(0).reason(), "unloaded");
  EXPECT_EQ(load.wait_for(std::chrono::milliseconds(100)), std::future_status::timeout);
  inference_.OpenLoadGate();
  EXPECT_TRUE(load.get().ok());
  ASSERT_TRUE(stub_->ModelReady(Context().get(), ready_request, &ready).ok());
  EXPECT_TRUE(ready.ready());

  inference::RepositoryModelLoadRequest missing;
  missing.set_model_name("missing");
  inference::RepositoryModelLoadResponse loaded;
  EXPECT_EQ(stub_->RepositoryModelLoad(Context().get(), missing, &loaded).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(KServeServiceTest, StatisticsAndMetadata) {
  inference::ModelStatisticsRequest request;
  inference::ModelStatisticsResponse response;
  ASSERT_TRUE(stub_->ModelStatistics(Context().get(), request, &response).ok());
  ASSERT_EQ(response.model_stats_size(), 1);
  EXPECT_EQ(response.model_stats(0).inference_count(), 7u);
  request.set_name("nope");
  EXPECT_EQ(stub_->ModelStatistics(Context().get(), request, &response).error_code(), grpc::StatusCode::NOT_FOUND);
  request.set_name("fake");
  request.set_version("x");
  EXPECT_EQ(stub_->ModelStatistics(Context().get(), request, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  inference::ServerMetadataResponse server;
  ASSERT_TRUE(stub_->ServerMetadata(Context().get(), {}, &server).ok());
  EXPECT_EQ(server.name(), "cnnserve");
  EXPECT_FALSE(server.version().empty());

  inference::ModelMetadataRequest metadata_request;
  metadata_request.set_name("fake");
  inference::ModelMetadataResponse metadata;
  ASSERT_TRUE(stub_->ModelMetadata(Context().get(), metadata_request, &metadata).ok());
  ASSERT_EQ(metadata.versions_size(), 1);
  EXPECT_EQ(metadata.versions(0), "1");
  EXPECT_EQ(metadata.outputs(0).name(), "out");
}

}  // namespace
}  // namespace cnnserve
