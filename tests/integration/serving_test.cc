// End-to-end serving of the default repository's LeNet-5 (Fashion-MNIST) by a real cnnserve process: accuracy
// of PNG and JPEG uploads against the engine's offline accuracy, concurrency, input order and streams.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/runtime/model.h"
#include "engine/tensor/npy.h"
#include "models/onnx/onnx_importer.h"
#include "tests/integration/test_env.h"

namespace cnnserve::integration {
namespace {

constexpr int kImages = 1000;
constexpr int kImagesPerRequest = 50;
constexpr double kMinAccuracy = 0.89;
constexpr double kMaxGapToOffline = 0.005;  // 0.5 points

// Top-1 of every row of `input.npy` run offline through the engine (no server, no image decoding).
std::vector<int> OfflinePredictions(std::vector<std::vector<float>>* logits_out = nullptr) {
  StatusOr<Tensor> input = ReadNpy((TestDataDir() / "input.npy").string());
  EXPECT_TRUE(input.ok()) << input.status().ToString();
  if (!input.ok()) return {};
  const std::string onnx = (DefaultRepository() / kModel / "1" / "model.onnx").string();
  auto graph = LoadOnnxGraph(onnx);
  EXPECT_TRUE(graph.ok()) << graph.status().ToString();
  if (!graph.ok()) return {};
  ModelOptions options;
  options.num_threads = 1;
  auto model = Model::Create(*graph, options);
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  if (!model.ok()) return {};
  auto session = (*model)->NewSession();
  StatusOr<Tensor> logits = session->Run(*input);
  EXPECT_TRUE(logits.ok()) << logits.status().ToString();
  if (!logits.ok()) return {};
  const int64_t rows = logits->dims()[0];
  const int64_t classes = logits->dims()[1];
  std::vector<int> top1(rows);
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = logits->data() + r * classes;
    top1[r] = static_cast<int>(std::max_element(row, row + classes) - row);  // first maximum: lower index wins
    if (logits_out != nullptr) logits_out->emplace_back(row, row + classes);
  }
  return top1;
}

// Classifies `images` in requests of kImagesPerRequest; the top-1 index of each.
std::vector<int> ServerPredictions(v1::Classifier::Stub& stub, const std::vector<LabeledImage>& images) {
  std::vector<int> top1;
  for (size_t begin = 0; begin < images.size(); begin += kImagesPerRequest) {
    std::vector<const LabeledImage*> batch;
    for (size_t i = begin; i < std::min(images.size(), begin + kImagesPerRequest); ++i)
      batch.push_back(&images[i]);
    v1::ClassifyResponse response;
    const grpc::Status status = Classify(stub, ImageRequest(batch, 1), &response);
    EXPECT_TRUE(status.ok()) << status.error_code() << ": " << status.error_message();
    EXPECT_EQ(response.results_size(), static_cast<int>(batch.size()));
    for (const v1::Classification& result : response.results()) top1.push_back(Top1(result));
  }
  return top1;
}

double Accuracy(const std::vector<int>& predictions, const std::vector<LabeledImage>& images) {
  int correct = 0;
  for (size_t i = 0; i < images.size() && i < predictions.size(); ++i)
    correct += predictions[i] == images[i].label;
  return images.empty() ? 0 : static_cast<double>(correct) / static_cast<double>(images.size());
}

class ServingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = ServerProcess::Start({"--model-repository", DefaultRepository().string()});
    ASSERT_NE(server_, nullptr);
    stub_ = server_->NewStub();
  }
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<v1::Classifier::Stub> stub_;
};

TEST_F(ServingTest, AccuracyOfPngAndJpegMatchesTheOfflineEngine) {
  const std::vector<LabeledImage> png = LoadImages(".png", kImages);
  const std::vector<LabeledImage> jpg = LoadImages(".jpg", kImages);
  const std::vector<int> offline = OfflinePredictions();
  ASSERT_EQ(offline.size(), png.size());
  const double offline_accuracy = Accuracy(offline, png);

  const std::vector<int> served_png = ServerPredictions(*stub_, png);
  const std::vector<int> served_jpg = ServerPredictions(*stub_, jpg);
  const double png_accuracy = Accuracy(served_png, png);
  const double jpg_accuracy = Accuracy(served_jpg, jpg);
  int png_disagreements = 0;
  for (size_t i = 0; i < offline.size(); ++i) png_disagreements += served_png[i] != offline[i];

  std::printf(
      "top-1 accuracy on %d Fashion-MNIST test images: offline engine %.2f%%, served PNG %.2f%%, "
      "served JPEG (q95) %.2f%%; PNG top-1 differs from offline on %d images\n",
      kImages, 100 * offline_accuracy, 100 * png_accuracy, 100 * jpg_accuracy, png_disagreements);
  RecordProperty("offline_accuracy", std::to_string(offline_accuracy));
  RecordProperty("png_accuracy", std::to_string(png_accuracy));
  RecordProperty("jpeg_accuracy", std::to_string(jpg_accuracy));

  EXPECT_GE(png_accuracy, kMinAccuracy);
  EXPECT_GE(jpg_accuracy, kMinAccuracy);
  EXPECT_LE(std::abs(png_accuracy - offline_accuracy), kMaxGapToOffline);
  EXPECT_LE(std::abs(jpg_accuracy - offline_accuracy), kMaxGapToOffline);
  // A PNG holds the exact pixels input.npy was made from: the served prediction is the offline one, up to
  // near-ties that the server's resize arithmetic may tip (at most 0.5% of the images).
  EXPECT_LE(png_disagreements, kImages / 200);
}

// 64 clients, each on its own connection, classify single images concurrently; every result equals the one of a
// sequential run: the same classes in the same order with the same labels, and the same scores and probabilities
// up to float rounding. (Bit-identical scores are not required: the dynamic batcher puts an image into batches of
// different sizes in the two runs, and oneDNN's kernels for different batch sizes may sum in a different order.)
TEST_F(ServingTest, SixtyFourConcurrentClientsGetTheSequentialResults) {
  constexpr int kClients = 64;
  constexpr int kPerKind = 160;
  constexpr float kScoreTolerance = 1e-4f;
  constexpr float kProbabilityTolerance = 1e-5f;
  std::vector<LabeledImage> images = LoadImages(".png", kPerKind);
  for (LabeledImage& image : LoadImages(".jpg", kPerKind)) images.push_back(std::move(image));

  std::vector<v1::ClassifyResponse> sequential(images.size());
  for (size_t i = 0; i < images.size(); ++i) {
    const grpc::Status status = Classify(*stub_, ImageRequest({&images[i]}, kNumClasses), &sequential[i]);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  std::vector<v1::ClassifyResponse> concurrent(images.size());
  std::vector<grpc::Status> statuses(images.size());
  std::vector<std::unique_ptr<v1::Classifier::Stub>> stubs;
  for (int c = 0; c < kClients; ++c) stubs.push_back(server_->NewStub());
  std::atomic<size_t> next{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, stub = stubs[c].get()] {
      for (size_t i = next++; i < images.size(); i = next++) {
        statuses[i] = Classify(*stub, ImageRequest({&images[i]}, kNumClasses), &concurrent[i]);
      }
    });
  }
  for (std::thread& t : clients) t.join();

  int bit_identical = 0;
  float max_score_diff = 0;
  for (size_t i = 0; i < images.size(); ++i) {
    ASSERT_TRUE(statuses[i].ok()) << images[i].name << ": " << statuses[i].error_message();
    ASSERT_EQ(concurrent[i].results_size(), 1);
    const v1::Classification& a = sequential[i].results(0);
    const v1::Classification& b = concurrent[i].results(0);
    ASSERT_EQ(a.classes_size(), kNumClasses);
    ASSERT_EQ(b.classes_size(), kNumClasses);
    bool identical = true;
    for (int k = 0; k < kNumClasses; ++k) {
      const v1::Class& x = a.classes(k);
      const v1::Class& y = b.classes(k);
      if (x.index() != y.index()) {
        // Only two classes whose scores tie within rounding may trade places.
        EXPECT_NEAR(x.score(), y.score(), kScoreTolerance)
            << images[i].name << " rank " << k << ": classes " << x.index() << " and " << y.index();
      } else {
        EXPECT_EQ(x.label(), y.label());
        EXPECT_NEAR(x.score(), y.score(), kScoreTolerance) << images[i].name << " rank " << k;
        EXPECT_NEAR(x.probability(), y.probability(), kProbabilityTolerance) << images[i].name << " rank " << k;
        max_score_diff = std::max(max_score_diff, std::abs(x.score() - y.score()));
      }
      identical =
          identical && x.index() == y.index() && x.score() == y.score() && x.probability() == y.probability();
    }
    EXPECT_EQ(Top1(a), Top1(b)) << images[i].name;
    bit_identical += identical;
  }
  std::printf(
      "%d clients: %zu results equal to the sequential run (%d bit-identical; largest score difference "
      "%.3g)\n",
      kClients, images.size(), bit_identical, static_cast<double>(max_score_diff));
}

// One request mixing PNG, JPEG and raw tensors in a shuffled order: result i belongs to input i.
TEST_F(ServingTest, MultiInputRequestKeepsInputOrder) {
  const std::vector<LabeledImage> png = LoadImages(".png", 40);
  const std::vector<LabeledImage> jpg = LoadImages(".jpg", 40);
  std::vector<std::vector<float>> offline_logits;
  ASSERT_FALSE(OfflinePredictions(&offline_logits).empty());
  StatusOr<Tensor> input = ReadNpy((TestDataDir() / "input.npy").string());
  ASSERT_TRUE(input.ok());
  const int64_t item = 32 * 32;

  struct Item {
    int kind;  // 0 png, 1 jpeg, 2 tensor
    int image;
  };
  std::vector<Item> items;
  for (int i = 0; i < 40; ++i) items.push_back({i % 3, i});
  std::shuffle(items.begin(), items.end(), std::mt19937(7));

  v1::ClassifyRequest request;
  request.set_model(kModel);
  request.set_top_k(kNumClasses);
  for (const Item& it : items) {
    v1::Input* in = request.add_inputs();
    if (it.kind == 0) in->set_image(png[it.image].bytes);
    if (it.kind == 1) in->set_image(jpg[it.image].bytes);
    if (it.kind == 2) {
      v1::RawTensor* tensor = in->mutable_tensor();
      tensor->add_shape(1);
      tensor->add_shape(32);
      tensor->add_shape(32);
      tensor->set_data(std::string(reinterpret_cast<const char*>(input->data() + it.image * item), item * 4));
    }
  }
  v1::ClassifyResponse batch;
  ASSERT_TRUE(Classify(*stub_, request, &batch).ok());
  ASSERT_EQ(batch.results_size(), static_cast<int>(items.size()));
  for (size_t i = 0; i < items.size(); ++i) {
    v1::ClassifyRequest single;
    single.set_model(kModel);
    single.set_top_k(kNumClasses);
    *single.add_inputs() = request.inputs(static_cast<int>(i));
    v1::ClassifyResponse alone;
    ASSERT_TRUE(Classify(*stub_, single, &alone).ok());
    const v1::Classification& a = batch.results(static_cast<int>(i));
    const v1::Classification& b = alone.results(0);
    ASSERT_EQ(a.classes_size(), kNumClasses);
    for (int k = 0; k < kNumClasses; ++k) {
      EXPECT_EQ(a.classes(k).index(), b.classes(k).index()) << "input " << i;
      EXPECT_NEAR(a.classes(k).score(), b.classes(k).score(), 1e-4f) << "input " << i;
    }
    if (items[i].kind == 2) {  // a raw tensor is the model input itself: the scores are the offline logits
      for (const v1::Class& c : a.classes()) {
        EXPECT_NEAR(c.score(), offline_logits[items[i].image][c.index()], 1e-4f) << "input " << i;
      }
    }
  }
}

// ClassifyStream: many requests of different sizes on one stream; responses come back in request order and
// equal the unary answers.
TEST_F(ServingTest, StreamAnswersInRequestOrder) {
  constexpr int kRequests = 150;
  const std::vector<LabeledImage> png = LoadImages(".png", 200);
  std::mt19937 rng(11);
  std::vector<v1::ClassifyRequest> requests;
  for (int r = 0; r < kRequests; ++r) {
    std::vector<const LabeledImage*> batch;
    const int n = 1 + static_cast<int>(rng() % 24);
    for (int i = 0; i < n; ++i) batch.push_back(&png[rng() % png.size()]);
    requests.push_back(ImageRequest(batch, 1 + static_cast<int>(rng() % kNumClasses)));
    requests.back().set_request_id("request-" + std::to_string(r));
  }
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  auto stream = stub_->ClassifyStream(&context);
  std::thread writer([&] {
    for (const v1::ClassifyRequest& request : requests) {
      if (!stream->Write(request)) break;
    }
    stream->WritesDone();
  });
  std::vector<v1::ClassifyResponse> responses;
  v1::ClassifyResponse response;
  while (stream->Read(&response)) responses.push_back(response);
  writer.join();
  const grpc::Status status = stream->Finish();
  ASSERT_TRUE(status.ok()) << status.error_code() << ": " << status.error_message();
  ASSERT_EQ(responses.size(), requests.size());
  for (int r = 0; r < kRequests; ++r) {
    EXPECT_EQ(responses[r].request_id(), requests[r].request_id());
    ASSERT_EQ(responses[r].results_size(), requests[r].inputs_size()) << "request " << r;
    v1::ClassifyResponse unary;
    ASSERT_TRUE(Classify(*stub_, requests[r], &unary).ok());
    for (int i = 0; i < unary.results_size(); ++i) {
      ASSERT_EQ(responses[r].results(i).classes_size(), requests[r].top_k());
      EXPECT_EQ(Top1(responses[r].results(i)), Top1(unary.results(i))) << "request " << r << " input " << i;
    }
  }
}

// A stream ends with the status of its first failing request, after the answers to the requests before it.
TEST_F(ServingTest, StreamEndsWithTheFirstFailingRequest) {
  const std::vector<LabeledImage> png = LoadImages(".png", 8);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto stream = stub_->ClassifyStream(&context);
  for (int r = 0; r < 6; ++r) {
    v1::ClassifyRequest request = ImageRequest({&png[r]});
    if (r == 3) request.set_model("no_such_model");
    ASSERT_TRUE(stream->Write(request));
  }
  stream->WritesDone();
  int received = 0;
  v1::ClassifyResponse response;
  while (stream->Read(&response)) ++received;
  const grpc::Status status = stream->Finish();
  EXPECT_EQ(received, 3);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << status.error_message();
}

TEST_F(ServingTest, ListDescribeAndHealth) {
  grpc::ClientContext list_context;
  v1::ListModelsResponse list;
  ASSERT_TRUE(stub_->ListModels(&list_context, {}, &list).ok());
  const v1::ModelSummary* lenet = nullptr;
  for (const v1::ModelSummary& m : list.models()) {
    if (m.name() == kModel) lenet = &m;
  }
  ASSERT_NE(lenet, nullptr);
  EXPECT_EQ(lenet->num_classes(), kNumClasses);
  ASSERT_GE(lenet->versions_size(), 1);
  EXPECT_EQ(lenet->versions(0).state(), "READY");

  grpc::ClientContext describe_context;
  v1::DescribeModelRequest describe;
  describe.set_model(kModel);
  v1::DescribeModelResponse description;
  ASSERT_TRUE(stub_->DescribeModel(&describe_context, describe, &description).ok());
  EXPECT_EQ(description.summary().name(), kModel);
  EXPECT_EQ(description.total_params(), 61706);

  EXPECT_EQ(HealthStatus(server_->address()), "SERVING");
  EXPECT_EQ(HealthStatus(server_->address(), "cnnserve.v1.Classifier"), "SERVING");
}

}  // namespace
}  // namespace cnnserve::integration
