// The native Classify path (ClassifyNative, native metadata) over the real InferenceService, without gRPC: the
// real default repository (the trained LeNet-5), real Fashion-MNIST PNG/JPEG files from the fixture, real engine
// sessions and batchers. Accuracy, equality with the engine run directly on the training input, request splitting
// and order, the error catalogue, queue-full, broken models, versions, concurrency and draining on shutdown.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "models/repository/model_repository.h"
#include "server/native/native_metadata.h"
#include "server/native/native_request.h"
#include "server/servables/classification.h"
#include "server/service/inference_service.h"
#include "tests/models/repository/test_repository.h"
#include "tests/server/servables/fashion_testdata.h"

namespace cnnserve {
namespace {

namespace fs = std::filesystem;
using ::cnnserve::testing::CopyLenet;
using ::cnnserve::testing::DefaultRepository;
using ::cnnserve::testing::EditConfig;
using ::cnnserve::testing::FashionImage;
using ::cnnserve::testing::kLenetModel;
using ::cnnserve::testing::LoadFashionImages;
using ::cnnserve::testing::LoadFashionInputNpy;
using ::cnnserve::testing::RandomBytes;
using ::cnnserve::testing::ReadFileBytes;
using ::cnnserve::testing::TempDir;
using ::cnnserve::testing::WriteFileBytes;

constexpr int64_t kItemSize = 32 * 32;
constexpr int kClasses = 10;
constexpr auto kWaitLimit = std::chrono::seconds(60);

// One Classify call in flight: owns its request (ClassifyNative borrows it until `done`: images are decoded later,
// on a decode worker) and its response, and receives the status.
struct Call {
  v1::ClassifyRequest request;
  v1::ClassifyResponse response;
  std::promise<Status> promise;
  std::future<Status> future = promise.get_future();
  std::atomic<int> done_calls{0};

  bool Done() const { return future.wait_for(std::chrono::seconds(0)) == std::future_status::ready; }
  Status Wait() {
    if (future.wait_for(kWaitLimit) != std::future_status::ready) return InternalError("test: no answer in 60 s");
    return future.get();
  }
};

std::unique_ptr<Call> StartClassify(InferenceService& service, const v1::ClassifyRequest& request,
                                    int64_t deadline_us = 0, std::function<bool()> cancelled = nullptr) {
  auto call = std::make_unique<Call>();
  Call* raw = call.get();
  raw->request = request;
  ClassifyNative(service, raw->request, &raw->response, deadline_us, std::move(cancelled), [raw](Status status) {
    if (raw->done_calls.fetch_add(1) == 0) raw->promise.set_value(std::move(status));
  });
  return call;
}

// Waits (at most kWaitLimit) until `model`'s queue holds `depth` tasks: images are decoded on a decode worker, so
// a request is in its queue some time after ClassifyNative returned. False when it never got there.
bool WaitForQueueDepth(InferenceService& service, const std::string& model, int64_t depth) {
  const auto give_up = std::chrono::steady_clock::now() + kWaitLimit;
  while (std::chrono::steady_clock::now() < give_up) {
    StatusOr<std::vector<ServableStats>> stats = service.Statistics(model, 0);
    if (stats.ok() && !stats->empty() && stats->front().queue_depth == depth) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

struct Answer {
  Status status;
  v1::ClassifyResponse response;
};

Answer Classify(InferenceService& service, const v1::ClassifyRequest& request, int64_t deadline_us = 0,
                std::function<bool()> cancelled = nullptr) {
  std::unique_ptr<Call> call = StartClassify(service, request, deadline_us, std::move(cancelled));
  Answer answer;
  answer.status = call->Wait();
  EXPECT_EQ(call->done_calls.load(), 1);
  answer.response = std::move(call->response);
  return answer;
}

v1::ClassifyRequest ImageRequest(const std::vector<const FashionImage*>& images, int top_k = 0,
                                 const std::string& model = kLenetModel) {
  v1::ClassifyRequest request;
  request.set_model(model);
  request.set_top_k(top_k);
  for (const FashionImage* image : images) request.add_inputs()->set_image(image->bytes);
  return request;
}

void AddTensor(v1::ClassifyRequest& request, const Dims& shape, const float* data, size_t bytes) {
  v1::RawTensor* tensor = request.add_inputs()->mutable_tensor();
  for (int64_t d : shape) tensor->add_shape(d);
  tensor->set_data(std::string(reinterpret_cast<const char*>(data), bytes));
}

std::unique_ptr<InferenceService> CreateService(const fs::path& repository, InferenceServiceOptions options = {}) {
  options.model_repository = repository.string();
  StatusOr<std::unique_ptr<InferenceService>> service = InferenceService::Create(options);
  EXPECT_TRUE(service.ok()) << service.status().ToString();
  return service.ok() ? *std::move(service) : nullptr;
}

const v1::ModelSummary* FindSummary(const v1::ListModelsResponse& list, const std::string& name) {
  for (const v1::ModelSummary& m : list.models()) {
    if (m.name() == name) return &m;
  }
  return nullptr;
}

// The default repository, shared by the tests that do not change or stop the service.
class InferenceServiceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    service_ = CreateService(DefaultRepository()).release();
    png_ = new std::vector<FashionImage>(LoadFashionImages(".png"));
    jpg_ = new std::vector<FashionImage>(LoadFashionImages(".jpg"));
  }
  static void TearDownTestSuite() {
    delete service_;
    delete png_;
    delete jpg_;
    service_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(service_, nullptr);
    ASSERT_EQ(png_->size(), 200u);
    ASSERT_EQ(jpg_->size(), 200u);
  }

  static std::vector<const FashionImage*> Pointers(const std::vector<FashionImage>& images, size_t first,
                                                   size_t count) {
    std::vector<const FashionImage*> out;
    for (size_t i = first; i < first + count && i < images.size(); ++i) out.push_back(&images[i]);
    return out;
  }

  static InferenceService* service_;
  static std::vector<FashionImage>* png_;
  static std::vector<FashionImage>* jpg_;
};

InferenceService* InferenceServiceTest::service_ = nullptr;
std::vector<FashionImage>* InferenceServiceTest::png_ = nullptr;
std::vector<FashionImage>* InferenceServiceTest::jpg_ = nullptr;

TEST_F(InferenceServiceTest, ReadyListAndDescribe) {
  EXPECT_TRUE(service_->Ready());
  const std::vector<std::string> ready = service_->ReadyModels();  // the default repository has more models
  EXPECT_NE(std::find(ready.begin(), ready.end(), kLenetModel), ready.end());

  v1::ListModelsResponse list;
  ListModelsNative(*service_, &list);
  const v1::ModelSummary* lenet = FindSummary(list, kLenetModel);
  ASSERT_NE(lenet, nullptr);
  ASSERT_EQ(lenet->versions_size(), 1);
  EXPECT_EQ(lenet->versions(0).version(), 1);
  EXPECT_EQ(lenet->versions(0).state(), "READY");
  EXPECT_EQ(lenet->versions(0).reason(), "");
  EXPECT_EQ(std::vector<int64_t>(lenet->input_shape().begin(), lenet->input_shape().end()),
            (std::vector<int64_t>{1, 32, 32}));
  EXPECT_EQ(lenet->num_classes(), kClasses);
  EXPECT_EQ(lenet->platform(), "onnx");

  v1::DescribeModelRequest describe;
  describe.set_model(kLenetModel);
  v1::DescribeModelResponse description;
  ASSERT_TRUE(DescribeModelNative(*service_, describe, &description).ok());
  EXPECT_EQ(description.summary().name(), kLenetModel);
  EXPECT_EQ(description.config().name(), kLenetModel);
  EXPECT_EQ(description.config().max_batch_size(), 64);
  EXPECT_EQ(description.total_params(), 61706);
  ASSERT_EQ(description.layers_size(), 12);  // conv1 relu1 pool1 conv2 relu2 pool2 flatten fc1 relu3 fc2 relu4 fc3
  EXPECT_EQ(description.layers(0).name(), "conv1");
  EXPECT_EQ(description.layers(0).op(), "Conv");
  EXPECT_EQ(std::vector<int64_t>(description.layers(0).output_shape().begin(),
                                 description.layers(0).output_shape().end()),
            (std::vector<int64_t>{6, 28, 28}));
  EXPECT_EQ(description.layers(0).receptive_field(), 5);
  EXPECT_EQ(description.layers(0).output_name(), "conv1");
  EXPECT_EQ(description.layers(0).activation_values(), 6 * 28 * 28);
  EXPECT_EQ(description.layers(0).activation_bytes(), 4 * 6 * 28 * 28);
  EXPECT_EQ(description.layers(1).activation_values(), 0);  // relu1 runs in place
  EXPECT_EQ(description.layers(11).output_name(), "logits");
  // 1,024 input + 4,704 conv1 + 1,176 pool1 + 1,600 conv2 + 400 pool2 + 120 + 84 + 10 (fc1..fc3)
  EXPECT_EQ(description.input_values(), 1024);
  EXPECT_EQ(description.total_activation_values(), 9118);
  EXPECT_EQ(description.total_activation_bytes(), 9118 * 4);
  EXPECT_EQ(description.layers(11).name(), "fc3");
  EXPECT_EQ(description.layers(11).receptive_field(), 0);  // the whole input
  EXPECT_NE(description.layer_table().find("conv1"), std::string::npos);
  EXPECT_NE(description.layer_table().find("61,706"), std::string::npos) << description.layer_table();

  describe.set_version(1);
  EXPECT_TRUE(DescribeModelNative(*service_, describe, &description).ok());
  describe.set_version(7);
  const Status no_version = DescribeModelNative(*service_, describe, &description);
  EXPECT_EQ(no_version.code(), StatusCode::kNotFound);
  EXPECT_EQ(no_version.message(), "version 7 of model \"lenet5_fashion\" not found");
  describe.set_model("nope");
  EXPECT_EQ(DescribeModelNative(*service_, describe, &description).message(), "model \"nope\" not found");
}

// Accuracy on real PNGs sent in one request of 200 images (split into tasks of at most max_batch_size 64), and
// the results equal the engine run directly on the training script's input for the same images.
TEST_F(InferenceServiceTest, PngsAreClassifiedLikeTheEngineOnTheTrainingInput) {
  v1::ClassifyRequest request = ImageRequest(Pointers(*png_, 0, png_->size()), kClasses);
  request.set_request_id("png-200");
  Answer answer = Classify(*service_, request);
  ASSERT_TRUE(answer.status.ok()) << answer.status.ToString();
  EXPECT_EQ(answer.response.model(), kLenetModel);
  EXPECT_EQ(answer.response.version(), 1);
  EXPECT_EQ(answer.response.request_id(), "png-200");
  ASSERT_EQ(answer.response.results_size(), 200);

  // The engine directly, on input.npy, batch by batch.
  StatusOr<std::unique_ptr<ModelRepository>> repository = ModelRepository::Load(DefaultRepository().string());
  ASSERT_TRUE(repository.ok());
  std::unique_ptr<Session> session = (*repository)->Find(kLenetModel)->DefaultVersion()->model->NewSession();
  const Tensor input = LoadFashionInputNpy();
  StatusOr<Tensor> logits = session->Run(input);
  ASSERT_TRUE(logits.ok()) << logits.status().ToString();

  int correct = 0;
  for (int i = 0; i < 200; ++i) {
    const FashionImage& image = (*png_)[static_cast<size_t>(i)];
    const v1::Classification& result = answer.response.results(i);
    ASSERT_EQ(result.classes_size(), kClasses);
    if (result.classes(0).index() == image.label) ++correct;
    const std::vector<ScoredClass> expected =
        TopK(std::span<const float>(logits->data() + image.index * kClasses, kClasses), kClasses);
    for (int j = 0; j < kClasses; ++j) {
      EXPECT_EQ(result.classes(j).index(), expected[static_cast<size_t>(j)].index) << image.name << " rank " << j;
      EXPECT_NEAR(result.classes(j).score(), expected[static_cast<size_t>(j)].score, 1e-4f) << image.name;
      EXPECT_NEAR(result.classes(j).probability(), expected[static_cast<size_t>(j)].probability, 1e-5f);
    }
    EXPECT_EQ(result.classes(0).label(),
              (*repository)->Find(kLenetModel)->labels[static_cast<size_t>(result.classes(0).index())]);
  }
  const double accuracy = correct / 200.0;
  std::printf("LeNet-5 top-1 on 200 Fashion-MNIST PNGs through InferenceService: %.1f%%\n", 100 * accuracy);
  EXPECT_GT(accuracy, 0.85);
}

TEST_F(InferenceServiceTest, JpegsAreClassifiedAccurately) {
  Answer answer = Classify(*service_, ImageRequest(Pointers(*jpg_, 0, jpg_->size()), 1));
  ASSERT_TRUE(answer.status.ok()) << answer.status.ToString();
  ASSERT_EQ(answer.response.results_size(), 200);
  int correct = 0;
  for (int i = 0; i < 200; ++i) {
    ASSERT_EQ(answer.response.results(i).classes_size(), 1);
    if (answer.response.results(i).classes(0).index() == (*jpg_)[static_cast<size_t>(i)].label) ++correct;
  }
  std::printf("LeNet-5 top-1 on 200 Fashion-MNIST JPEGs (q95): %.1f%%\n", correct / 2.0);
  EXPECT_GT(correct / 200.0, 0.85);
}

// The same image answers the same, alone or anywhere in a large request, as an image or as its raw tensor.
TEST_F(InferenceServiceTest, ResultsKeepInputOrderAcrossSplitsAndInputKinds) {
  std::vector<v1::Classification> alone;
  for (size_t i = 0; i < 70; ++i) {
    Answer a = Classify(*service_, ImageRequest({&(*png_)[i]}, 3));
    ASSERT_TRUE(a.status.ok());
    ASSERT_EQ(a.response.results_size(), 1);
    alone.push_back(a.response.results(0));
  }
  // 70 images > max_batch_size 64: two tasks, answered in input order. Reversed order to catch any sorting.
  std::vector<const FashionImage*> reversed;
  for (size_t i = 70; i-- > 0;) reversed.push_back(&(*png_)[i]);
  Answer many = Classify(*service_, ImageRequest(reversed, 3));
  ASSERT_TRUE(many.status.ok()) << many.status.ToString();
  ASSERT_EQ(many.response.results_size(), 70);
  for (int i = 0; i < 70; ++i) {
    const v1::Classification& got = many.response.results(i);
    const v1::Classification& want = alone[static_cast<size_t>(69 - i)];
    ASSERT_EQ(got.classes_size(), 3);
    for (int j = 0; j < 3; ++j) {
      EXPECT_EQ(got.classes(j).index(), want.classes(j).index()) << i;
      EXPECT_NEAR(got.classes(j).score(), want.classes(j).score(), 1e-4f) << i;
    }
  }

  // Raw tensors: the training input of images 0..4 as [1,32,32] x 2 and one [3,1,32,32], between two images.
  const Tensor input = LoadFashionInputNpy();
  v1::ClassifyRequest mixed = ImageRequest({&(*png_)[0]}, 3);
  AddTensor(mixed, {1, 32, 32}, input.data(), kItemSize * sizeof(float));
  AddTensor(mixed, {1, 32, 32}, input.data() + kItemSize, kItemSize * sizeof(float));
  AddTensor(mixed, {3, 1, 32, 32}, input.data() + 2 * kItemSize, 3 * kItemSize * sizeof(float));
  mixed.add_inputs()->set_image((*png_)[4].bytes);
  Answer answer = Classify(*service_, mixed);
  ASSERT_TRUE(answer.status.ok()) << answer.status.ToString();
  ASSERT_EQ(answer.response.results_size(), 7);  // one result per image: the [3,...] tensor gives three
  const std::vector<int> expected_image = {0, 0, 1, 2, 3, 4, 4};
  for (int i = 0; i < 7; ++i) {
    const v1::Classification& want = alone[static_cast<size_t>(expected_image[static_cast<size_t>(i)])];
    for (int j = 0; j < 3; ++j) {
      EXPECT_EQ(answer.response.results(i).classes(j).index(), want.classes(j).index()) << i;
      EXPECT_NEAR(answer.response.results(i).classes(j).score(), want.classes(j).score(), 1e-4f) << i;
    }
  }
}

TEST_F(InferenceServiceTest, TopKDefaultsAndClamps) {
  for (const auto& [top_k, expected] :
       {std::pair{0, 5}, std::pair{1, 1}, std::pair{3, 3}, std::pair{10, 10}, std::pair{1000, 10}}) {
    Answer a = Classify(*service_, ImageRequest({&(*png_)[0]}, top_k));
    ASSERT_TRUE(a.status.ok());
    ASSERT_EQ(a.response.results_size(), 1);
    EXPECT_EQ(a.response.results(0).classes_size(), expected) << "top_k " << top_k;
    float previous = 2.0f;
    for (const v1::Class& c : a.response.results(0).classes()) {
      EXPECT_LE(c.probability(), previous);
      previous = c.probability();
    }
  }
}

TEST_F(InferenceServiceTest, TimingsAndRequestIds) {
  v1::ClassifyRequest request = ImageRequest(Pointers(*png_, 0, 3));
  request.set_include_timings(true);
  Answer a = Classify(*service_, request);
  ASSERT_TRUE(a.status.ok());
  const v1::Timings& t = a.response.timings();
  EXPECT_GT(t.decode_us(), 0);
  EXPECT_LE(t.queue_us(), t.total_us());
  EXPECT_GT(t.inference_us(), 0);
  EXPECT_GE(t.total_us(), t.decode_us() + t.inference_us());
  EXPECT_FALSE(a.response.request_id().empty());  // generated
  Answer b = Classify(*service_, ImageRequest(Pointers(*png_, 0, 1)));
  EXPECT_NE(b.response.request_id(), a.response.request_id());
  EXPECT_FALSE(b.response.has_timings());
}

struct ErrorCase {
  std::string name;
  v1::ClassifyRequest request;
  StatusCode code;
  std::string message;  // exact, or a prefix when it ends with "..."
};

TEST_F(InferenceServiceTest, ErrorCatalogue) {
  const std::string& png = (*png_)[0].bytes;
  std::vector<ErrorCase> cases;
  auto add = [&](std::string name, StatusCode code, std::string message, auto&& edit) {
    v1::ClassifyRequest request = ImageRequest({&(*png_)[0]});
    edit(request);
    cases.push_back({std::move(name), std::move(request), code, std::move(message)});
  };
  add("unknown model", StatusCode::kNotFound, "model \"nope\" not found",
      [](v1::ClassifyRequest& r) { r.set_model("nope"); });
  add("no model", StatusCode::kInvalidArgument, "field model is empty: name a model (see ListModels)",
      [](v1::ClassifyRequest& r) { r.clear_model(); });
  add("unknown version", StatusCode::kNotFound, "version 99 of model \"lenet5_fashion\" not found (versions: 1)",
      [](v1::ClassifyRequest& r) { r.set_version(99); });
  add("negative version", StatusCode::kInvalidArgument,
      "field version: -1 must be >= 0 (0: the newest ready version)",
      [](v1::ClassifyRequest& r) { r.set_version(-1); });
  add("top_k -1", StatusCode::kInvalidArgument, "field top_k: -1 must be >= 0 (0 means 5)",
      [](v1::ClassifyRequest& r) { r.set_top_k(-1); });
  add("no inputs", StatusCode::kInvalidArgument, "field inputs: the request has no inputs (send 1 to 256 images)",
      [](v1::ClassifyRequest& r) { r.clear_inputs(); });
  add("257 inputs", StatusCode::kInvalidArgument,
      "field inputs: 257 inputs, more than max_images_per_request (256)", [&](v1::ClassifyRequest& r) {
        for (int i = 1; i < 257; ++i) r.add_inputs()->set_image(png);
      });
  add("a tensor of 300 images", StatusCode::kInvalidArgument,
      "inputs: more than max_images_per_request (256) images (counting each raw tensor's batch)",
      [&](v1::ClassifyRequest& r) {
        std::vector<float> zeros(300 * kItemSize);
        AddTensor(r, {300, 1, 32, 32}, zeros.data(), zeros.size() * sizeof(float));
      });
  add("empty image", StatusCode::kInvalidArgument, "inputs[1].image: ...",
      [](v1::ClassifyRequest& r) { r.add_inputs()->set_image(""); });
  add("random bytes", StatusCode::kInvalidArgument, "inputs[1].image: ...",
      [](v1::ClassifyRequest& r) { r.add_inputs()->set_image(RandomBytes(4096, 3)); });
  add("truncated PNG", StatusCode::kInvalidArgument, "inputs[1].image: ...",
      [&](v1::ClassifyRequest& r) { r.add_inputs()->set_image(png.substr(0, png.size() / 2)); });
  add("GIF", StatusCode::kInvalidArgument, "inputs[1].image: ...", [](v1::ClassifyRequest& r) {
    r.add_inputs()->set_image(std::string("GIF89a\x01\x00\x01\x00\x00\x00\x00;", 14));
  });
  add("neither image nor tensor", StatusCode::kInvalidArgument, "inputs[1]: neither image nor tensor is set",
      [](v1::ClassifyRequest& r) { r.add_inputs(); });
  add("tensor of the wrong shape", StatusCode::kInvalidArgument,
      "inputs[1].tensor: raw tensor shape [3x32x32] does not match the model input [1x32x32] (or [N x 1x32x32] "
      "with N >= 1)",
      [](v1::ClassifyRequest& r) {
        std::vector<float> zeros(3 * kItemSize);
        AddTensor(r, {3, 32, 32}, zeros.data(), zeros.size() * sizeof(float));
      });
  add("tensor of the wrong rank", StatusCode::kInvalidArgument, "inputs[1].tensor: raw tensor shape [32x32] ...",
      [](v1::ClassifyRequest& r) {
        std::vector<float> zeros(kItemSize);
        AddTensor(r, {32, 32}, zeros.data(), zeros.size() * sizeof(float));
      });
  add("tensor with the wrong byte count", StatusCode::kInvalidArgument,
      "inputs[1].tensor: raw tensor data has 4092 bytes but shape [1x32x32] of float32 needs 4096 bytes (1024 "
      "values x 4 bytes)",
      [](v1::ClassifyRequest& r) {
        std::vector<float> zeros(kItemSize);
        AddTensor(r, {1, 32, 32}, zeros.data(), zeros.size() * sizeof(float) - 4);
      });

  for (const ErrorCase& c : cases) {
    SCOPED_TRACE(c.name);
    Answer a = Classify(*service_, c.request);
    EXPECT_EQ(a.status.code(), c.code) << a.status.ToString();
    if (c.message.size() > 3 && c.message.compare(c.message.size() - 3, 3, "...") == 0) {
      const std::string prefix = c.message.substr(0, c.message.size() - 3);
      EXPECT_EQ(a.status.message().rfind(prefix, 0), 0u) << a.status.message();
      EXPECT_GT(a.status.message().size(), prefix.size() + 10) << a.status.message();
    } else {
      EXPECT_EQ(a.status.message(), c.message);
    }
    EXPECT_EQ(a.response.results_size(), 0);
  }
  // Still serving.
  EXPECT_TRUE(Classify(*service_, ImageRequest({&(*png_)[0]})).status.ok());
  EXPECT_TRUE(service_->Ready());
}

TEST_F(InferenceServiceTest, DeadlinesAndCancellation) {
  const v1::ClassifyRequest request = ImageRequest({&(*png_)[0]});
  Answer expired = Classify(*service_, request, /*deadline_us=*/1);
  EXPECT_EQ(expired.status.code(), StatusCode::kDeadlineExceeded) << expired.status.ToString();
  Answer past = Classify(*service_, request, SteadyNowMicros() - 1000);
  EXPECT_EQ(past.status.code(), StatusCode::kDeadlineExceeded);
  Answer cancelled = Classify(*service_, request, 0, [] { return true; });
  EXPECT_EQ(cancelled.status.code(), StatusCode::kCancelled) << cancelled.status.ToString();
  Answer future = Classify(*service_, request, SteadyNowMicros() + 30'000'000, [] { return false; });
  EXPECT_TRUE(future.status.ok()) << future.status.ToString();
}

// 8 clients x 12 requests of 1..5 images each at once: every answer equals the sequential one.
TEST_F(InferenceServiceTest, ConcurrentClientsGetTheSequentialResults) {
  constexpr int kClients = 8;
  constexpr int kRequests = 12;
  auto request_for = [&](int client, int r) {
    const size_t first = static_cast<size_t>((client * kRequests + r) % 190);
    return ImageRequest(Pointers(*png_, first, 1 + static_cast<size_t>((client + r) % 5)), 3);
  };
  std::vector<std::vector<v1::ClassifyResponse>> sequential(kClients);
  for (int c = 0; c < kClients; ++c) {
    for (int r = 0; r < kRequests; ++r) {
      Answer a = Classify(*service_, request_for(c, r));
      ASSERT_TRUE(a.status.ok());
      sequential[static_cast<size_t>(c)].push_back(a.response);
    }
  }
  std::vector<std::vector<Answer>> concurrent(kClients);
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      for (int r = 0; r < kRequests; ++r)
        concurrent[static_cast<size_t>(c)].push_back(Classify(*service_, request_for(c, r)));
    });
  }
  for (std::thread& t : clients) t.join();
  for (int c = 0; c < kClients; ++c) {
    for (int r = 0; r < kRequests; ++r) {
      const Answer& got = concurrent[static_cast<size_t>(c)][static_cast<size_t>(r)];
      const v1::ClassifyResponse& want = sequential[static_cast<size_t>(c)][static_cast<size_t>(r)];
      ASSERT_TRUE(got.status.ok()) << got.status.ToString();
      ASSERT_EQ(got.response.results_size(), want.results_size());
      for (int i = 0; i < want.results_size(); ++i) {
        for (int j = 0; j < 3; ++j) {
          EXPECT_EQ(got.response.results(i).classes(j).index(), want.results(i).classes(j).index());
          EXPECT_NEAR(got.response.results(i).classes(j).score(), want.results(i).classes(j).score(), 1e-4f);
        }
      }
    }
  }
}

TEST(InferenceServiceCreateTest, Errors) {
  InferenceServiceOptions options;
  options.model_repository = "/no/such/repository";
  StatusOr<std::unique_ptr<InferenceService>> missing = InferenceService::Create(options);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);

  options.model_repository = DefaultRepository().string();
  options.max_images_per_request = 0;
  StatusOr<std::unique_ptr<InferenceService>> bad = InferenceService::Create(options);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "max_images_per_request 0 must be >= 1");
}

// A tiny queue that holds its one request for a minute: the next request is turned away with UNAVAILABLE at
// once; Shutdown then runs the queued request (no waiting for the delay) and answers it, and later requests get
// UNAVAILABLE "shutting down".
TEST(InferenceServiceQueueTest, QueueFullIsUnavailableAndShutdownDrains) {
  TempDir repo;
  const fs::path dir = CopyLenet(repo.path(), "tiny_queue");
  EditConfig(dir, "max_queue_delay_us: 500",
             "max_queue_delay_us: 60000000\n  max_queue_size: 1\n  policy: FIXED_DELAY");
  std::unique_ptr<InferenceService> service = CreateService(repo.path());
  ASSERT_NE(service, nullptr);
  ASSERT_TRUE(service->Ready());
  const std::vector<FashionImage> png = LoadFashionImages(".png");
  ASSERT_GE(png.size(), 2u);

  std::unique_ptr<Call> queued = StartClassify(*service, ImageRequest({&png[0]}, 0, "tiny_queue"));
  ASSERT_TRUE(WaitForQueueDepth(*service, "tiny_queue", 1));
  Answer rejected = Classify(*service, ImageRequest({&png[1]}, 0, "tiny_queue"));
  EXPECT_EQ(rejected.status.code(), StatusCode::kUnavailable) << rejected.status.ToString();
  EXPECT_EQ(rejected.status.message(), "model \"tiny_queue\" version 1: queue full: max_queue_size 1 tasks");
  EXPECT_FALSE(queued->Done());  // waiting for a fuller batch (up to a minute)

  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(service->Shutdown(SteadyNowMicros() + 30'000'000).ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));  // did not wait for the delay
  ASSERT_TRUE(queued->Done());
  const Status drained = queued->Wait();
  EXPECT_TRUE(drained.ok()) << drained.ToString();
  ASSERT_EQ(queued->response.results_size(), 1);
  EXPECT_EQ(queued->response.results(0).classes(0).index(), png[0].label);

  EXPECT_FALSE(service->Ready());
  EXPECT_TRUE(service->ReadyModels().empty());
  Answer after = Classify(*service, ImageRequest({&png[0]}, 0, "tiny_queue"));
  EXPECT_EQ(after.status.code(), StatusCode::kUnavailable);
  EXPECT_EQ(after.status.message(), "shutting down: not accepting new requests");
  EXPECT_TRUE(service->Shutdown(SteadyNowMicros()).ok());  // idempotent
}

// Destroying the service answers what is still queued or waiting to be decoded (a drain given no time:
// DEADLINE_EXCEEDED) instead of dropping it.
TEST(InferenceServiceQueueTest, DestructionAnswersQueuedRequests) {
  TempDir repo;
  const fs::path dir = CopyLenet(repo.path(), "slow_queue");
  EditConfig(dir, "max_queue_delay_us: 500", "max_queue_delay_us: 60000000\n  policy: FIXED_DELAY");
  std::unique_ptr<InferenceService> service = CreateService(repo.path());
  ASSERT_NE(service, nullptr);
  const std::vector<FashionImage> png = LoadFashionImages(".png");
  ASSERT_FALSE(png.empty());
  std::unique_ptr<Call> queued = StartClassify(*service, ImageRequest({&png[0]}, 0, "slow_queue"));
  EXPECT_FALSE(queued->Done());
  service.reset();
  ASSERT_TRUE(queued->Done());
  // DEADLINE_EXCEEDED from the batcher's drain ("... before this task ran") or, when the request was still
  // waiting for a decode worker, from the service ("... before this request was decoded").
  const Status status = queued->Wait();
  EXPECT_EQ(status.code(), StatusCode::kDeadlineExceeded) << status.ToString();
  EXPECT_EQ(status.message().rfind("shutting down: the drain timeout ended before this ", 0), 0u) << status.ToString();
  EXPECT_EQ(queued->done_calls.load(), 1);
}

// A repository with one good model and broken ones: the service starts, serves the good model and reports the
// others UNAVAILABLE with their reasons; requests for them get UNAVAILABLE with that reason.
TEST(InferenceServiceRepositoryTest, BrokenModelsAreUnavailableAndTheGoodOneServes) {
  TempDir repo;
  CopyLenet(repo.path(), "good");
  const fs::path broken_config = CopyLenet(repo.path(), "broken_config");
  WriteFileBytes(broken_config / "config.pbtxt", "name: \"broken_config\"\nmax_batch_size: [[[ oops\n");
  const fs::path corrupt = CopyLenet(repo.path(), "corrupt_onnx");
  const std::string onnx = ReadFileBytes(corrupt / "1" / "model.onnx");
  WriteFileBytes(corrupt / "1" / "model.onnx", onnx.substr(0, onnx.size() / 3));
  const fs::path versions = CopyLenet(repo.path(), "versions");
  fs::copy(versions / "1", versions / "2", fs::copy_options::recursive);
  WriteFileBytes(versions / "3" / "model.onnx", RandomBytes(1000, 5));

  std::unique_ptr<InferenceService> service = CreateService(repo.path());
  ASSERT_NE(service, nullptr);
  EXPECT_FALSE(service->Ready()) << "strict readiness: two models of the repository are unavailable";
  EXPECT_EQ(service->ReadyModels(), (std::vector<std::string>{"good", "versions"}));

  v1::ListModelsResponse list;
  ListModelsNative(*service, &list);
  ASSERT_EQ(list.models_size(), 4);
  const v1::ModelSummary* bc = FindSummary(list, "broken_config");
  ASSERT_NE(bc, nullptr);
  ASSERT_EQ(bc->versions_size(), 1);
  EXPECT_EQ(bc->versions(0).state(), "UNAVAILABLE");
  EXPECT_EQ(bc->versions(0).reason().rfind("broken_config/config.pbtxt:2:17: ", 0), 0u)
      << bc->versions(0).reason();
  const v1::ModelSummary* co = FindSummary(list, "corrupt_onnx");
  ASSERT_NE(co, nullptr);
  EXPECT_EQ(co->versions(0).state(), "UNAVAILABLE");
  EXPECT_EQ(co->versions(0).reason().rfind("corrupt_onnx/1/model.onnx", 0), 0u);
  const v1::ModelSummary* vs = FindSummary(list, "versions");
  ASSERT_NE(vs, nullptr);
  ASSERT_EQ(vs->versions_size(), 3);
  EXPECT_EQ(vs->versions(0).state(), "READY");
  EXPECT_EQ(vs->versions(1).state(), "READY");
  EXPECT_EQ(vs->versions(2).state(), "UNAVAILABLE");

  const std::vector<FashionImage> png = LoadFashionImages(".png");
  Answer good = Classify(*service, ImageRequest({&png[0]}, 0, "good"));
  EXPECT_TRUE(good.status.ok()) << good.status.ToString();

  Answer a = Classify(*service, ImageRequest({&png[0]}, 0, "broken_config"));
  EXPECT_EQ(a.status.code(), StatusCode::kUnavailable);
  EXPECT_EQ(a.status.message(), "model \"broken_config\" is unavailable: " + bc->versions(0).reason());
  Answer b = Classify(*service, ImageRequest({&png[0]}, 0, "corrupt_onnx"));
  EXPECT_EQ(b.status.code(), StatusCode::kUnavailable);

  // The newest READY version serves by default; a pinned version answers with its number.
  Answer newest = Classify(*service, ImageRequest({&png[0]}, 0, "versions"));
  ASSERT_TRUE(newest.status.ok());
  EXPECT_EQ(newest.response.version(), 2);
  v1::ClassifyRequest pinned = ImageRequest({&png[0]}, 0, "versions");
  pinned.set_version(1);
  Answer one = Classify(*service, pinned);
  ASSERT_TRUE(one.status.ok());
  EXPECT_EQ(one.response.version(), 1);
  pinned.set_version(3);
  Answer three = Classify(*service, pinned);
  EXPECT_EQ(three.status.code(), StatusCode::kUnavailable);
  EXPECT_EQ(
      three.status.message().rfind("version 3 of model \"versions\" is unavailable: versions/3/model.onnx", 0), 0u)
      << three.status.message();

  // A broken model can still be described (its summary says why).
  v1::DescribeModelRequest describe;
  describe.set_model("broken_config");
  v1::DescribeModelResponse description;
  ASSERT_TRUE(DescribeModelNative(*service, describe, &description).ok());
  EXPECT_EQ(description.summary().versions(0).state(), "UNAVAILABLE");
  EXPECT_EQ(description.layers_size(), 0);
}

}  // namespace
}  // namespace cnnserve
