// Explain and Embed (cnnserve.v1.Classifier) against a real cnnserve process on loopback serving the trained
// LeNet-5: an occlusion map's value at sampled positions equals Classify of the same masked tensor, feature maps
// and embeddings have the layer's shape and agree with each other, and the errors are INVALID_ARGUMENT.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "engine/tensor/npy.h"
#include "inference/grpc_service.grpc.pb.h"
#include "tests/integration/test_env.h"

namespace cnnserve::integration {
namespace {

constexpr int64_t kSide = 32;
constexpr int64_t kItemFloats = kSide * kSide;
constexpr float kBatchTolerance = 1e-5f;  // rows of other batch sizes may differ in the last bits

class ExplainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::copy(DefaultRepository() / kModel, repo_.path() / kModel,
                          std::filesystem::copy_options::recursive);
    server_ = ServerProcess::Start({"--model-repository", repo_.path().string(), "--max-explain-masks", "100"});
    ASSERT_NE(server_, nullptr);
    stub_ = server_->NewStub();
    images_ = LoadImages(".png", 3);
    ASSERT_EQ(images_.size(), 3u);
    StatusOr<Tensor> input = ReadNpy((TestDataDir() / "input.npy").string());
    ASSERT_TRUE(input.ok()) << input.status().ToString();
    first_.assign(input->data(), input->data() + kItemFloats);  // the model input of the first image
  }

  static void SetTensor(const std::vector<float>& values, v1::Input* input) {
    for (int64_t d : {int64_t{1}, kSide, kSide}) input->mutable_tensor()->add_shape(d);
    input->mutable_tensor()->set_data(
        std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float)));
  }

  grpc::Status Explain(const v1::ExplainRequest& request, v1::ExplainResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    return stub_->Explain(&context, request, response);
  }
  grpc::Status Embed(const v1::EmbedRequest& request, v1::EmbedResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    return stub_->Embed(&context, request, response);
  }

  TempDir repo_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<v1::Classifier::Stub> stub_;
  std::vector<LabeledImage> images_;
  std::vector<float> first_;
};

TEST_F(ExplainTest, OcclusionEqualsClassifyOfTheMaskedTensor) {
  v1::ExplainRequest request;
  request.set_model(kModel);
  SetTensor(first_, request.mutable_input());
  request.set_patch(8);
  request.set_stride(4);
  request.set_layer("pool2");
  v1::ExplainResponse response;
  grpc::Status status = Explain(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  const v1::OcclusionMap& map = response.occlusion();
  ASSERT_EQ(map.rows(), 7);
  ASSERT_EQ(map.cols(), 7);
  ASSERT_EQ(map.drop_size(), 49);
  ASSERT_EQ(map.top1_at_size(), 49);
  EXPECT_EQ(map.masks(), 49);
  EXPECT_EQ(map.target_class(), map.top1());
  EXPECT_EQ(map.target_class(), images_[0].label);
  EXPECT_FALSE(map.target_label().empty());
  float largest = 0;
  for (const auto& [r, c] : std::vector<std::pair<int, int>>{{0, 0}, {3, 3}, {6, 2}, {2, 5}}) {
    std::vector<float> masked = first_;
    for (int y = r * 4; y < r * 4 + 8; ++y) {
      for (int x = c * 4; x < c * 4 + 8; ++x) masked[y * kSide + x] = 0.0f;
    }
    v1::ClassifyRequest classify;
    classify.set_model(kModel);
    classify.set_top_k(10);
    SetTensor(masked, classify.add_inputs());
    v1::ClassifyResponse answer;
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->Classify(&context, classify, &answer).ok());
    float p = -1;
    for (const v1::Class& cls : answer.results(0).classes()) {
      if (cls.index() == map.target_class()) p = cls.probability();
    }
    EXPECT_NEAR(map.drop(r * 7 + c), map.probability() - p, kBatchTolerance) << r << "," << c;
    EXPECT_EQ(map.top1_at(r * 7 + c), answer.results(0).classes(0).index()) << r << "," << c;
    largest = std::max(largest, std::fabs(map.drop(r * 7 + c)));
  }
  EXPECT_GT(largest, 1e-4f);
  // The feature maps of the same request.
  const v1::LayerTensor& features = response.features();
  EXPECT_EQ(features.layer(), "pool2");
  EXPECT_EQ(std::vector<int64_t>(features.shape().begin(), features.shape().end()), (std::vector<int64_t>{16, 5, 5}));
  EXPECT_EQ(features.count(), 1);
  EXPECT_EQ(features.values_size(), 16 * 5 * 5);
}

TEST_F(ExplainTest, EmbeddingsEqualTheFeatureMapsOfEachImage) {
  v1::EmbedRequest embed;
  embed.set_model(kModel);
  embed.set_layer("relu4");
  for (const LabeledImage& image : images_) embed.add_inputs()->set_image(image.bytes);
  v1::EmbedResponse embeddings;
  grpc::Status status = Embed(embed, &embeddings);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(embeddings.embeddings().count(), 3);
  ASSERT_EQ(embeddings.embeddings().shape_size(), 1);
  EXPECT_EQ(embeddings.embeddings().shape(0), 84);
  ASSERT_EQ(embeddings.embeddings().values_size(), 3 * 84);
  for (int i = 0; i < 3; ++i) {
    v1::ExplainRequest request;
    request.set_model(kModel);
    request.mutable_input()->set_image(images_[i].bytes);
    request.set_layer("fc2");  // the node before relu4: relu4's values are its positive part
    v1::ExplainResponse response;
    ASSERT_TRUE(Explain(request, &response).ok());
    ASSERT_EQ(response.features().values_size(), 84);
    int negatives = 0;
    for (int k = 0; k < 84; ++k) {
      const float pre = response.features().values(k);
      negatives += pre < 0;
      EXPECT_NEAR(embeddings.embeddings().values(i * 84 + k), std::max(pre, 0.0f), kBatchTolerance);
    }
    EXPECT_GT(negatives, 0) << "fc2 is before the ReLU";
  }
}

TEST_F(ExplainTest, ErrorsAreInvalidArgument) {
  const auto explain_error = [&](int patch, int stride, const std::string& layer) {
    v1::ExplainRequest request;
    request.set_model(kModel);
    request.mutable_input()->set_image(images_[0].bytes);
    request.set_patch(patch);
    request.set_stride(stride);
    request.set_layer(layer);
    v1::ExplainResponse response;
    return Explain(request, &response);
  };
  for (const auto& [patch, stride, layer, message] : std::vector<std::tuple<int, int, std::string, std::string>>{
           {33, 4, "", "field patch: 33"},
           {8, 0, "", "field stride: 0"},
           {1, 1, "", "more than the limit of 100 (--max-explain-masks)"},
           {0, 0, "", "fields patch and layer"},
           {0, 0, "fc9", "layer \"fc9\" is not known"}}) {
    const grpc::Status status = explain_error(patch, stride, layer);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    EXPECT_NE(status.error_message().find(message), std::string::npos) << status.error_message();
  }
  v1::EmbedRequest embed;
  embed.set_model(kModel);
  embed.add_inputs()->set_image(images_[0].bytes);
  v1::EmbedResponse response;
  EXPECT_EQ(Embed(embed, &response).error_code(), grpc::StatusCode::INVALID_ARGUMENT);  // no layer
  embed.set_model("nope");
  embed.set_layer("relu4");
  EXPECT_EQ(Embed(embed, &response).error_code(), grpc::StatusCode::NOT_FOUND);
}

// KServe ModelInfer with a requested output named after an internal layer: the layer's activations, shaped.
TEST_F(ExplainTest, KServeOutputNamedAfterALayer) {
  auto kserve = inference::GRPCInferenceService::NewStub(server_->NewChannel());
  inference::ModelInferRequest request;
  request.set_model_name(kModel);
  auto* input = request.add_inputs();
  input->set_name("input");
  input->set_datatype("BYTES");
  input->add_shape(2);
  input->mutable_contents()->add_bytes_contents(images_[0].bytes);
  input->mutable_contents()->add_bytes_contents(images_[1].bytes);
  request.add_outputs()->set_name("pool2");
  inference::ModelInferResponse response;
  grpc::ClientContext context;
  grpc::Status status = kserve->ModelInfer(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.outputs_size(), 1);
  EXPECT_EQ(response.outputs(0).name(), "pool2");
  EXPECT_EQ(std::vector<int64_t>(response.outputs(0).shape().begin(), response.outputs(0).shape().end()),
            (std::vector<int64_t>{2, 16, 5, 5}));
  ASSERT_EQ(response.raw_output_contents_size(), 1);
  ASSERT_EQ(response.raw_output_contents(0).size(), 2 * 16 * 5 * 5 * sizeof(float));
  // The same values as Explain's feature maps of the second image.
  v1::ExplainRequest explain;
  explain.set_model(kModel);
  explain.mutable_input()->set_image(images_[1].bytes);
  explain.set_layer("pool2");
  v1::ExplainResponse features;
  ASSERT_TRUE(Explain(explain, &features).ok());
  std::vector<float> got(16 * 5 * 5);
  std::memcpy(got.data(), response.raw_output_contents(0).data() + got.size() * sizeof(float),
              got.size() * sizeof(float));
  for (size_t k = 0; k < got.size(); ++k) {
    EXPECT_NEAR(got[k], features.features().values(static_cast<int>(k)), kBatchTolerance) << k;
  }
  request.mutable_outputs(0)->set_name("fc9");
  grpc::ClientContext unknown_context;
  status = kserve->ModelInfer(&unknown_context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("unknown output 'fc9' requested"), std::string::npos) << status.error_message();
  EXPECT_NE(status.error_message().find("layer \"fc9\" is not known"), std::string::npos) << status.error_message();
}

// cnnctl explain / features / embed against the same server: exit codes, JSON and the PNG pictures.
TEST_F(ExplainTest, CnnctlCommands) {
  const std::string cnnctl = (BinDir() / "cnnctl").string();
  TempDir out;
  const std::string image = (TestDataDir() / images_[0].name).string();
  const std::string map = (out.path() / "map.png").string(), grid = (out.path() / "grid.png").string();
  const std::vector<std::string> base = {cnnctl, "--server", server_->address()};
  const auto run = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = base;
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv);
  };
  CommandResult explained =
      run({"explain", "--model", kModel, image, "--patch", "8", "--stride", "4", "--out", map, "--json"});
  ASSERT_EQ(explained.exit_code, 0) << explained.err;
  EXPECT_NE(explained.out.find("\"drop\""), std::string::npos) << explained.out;
  EXPECT_NE(explained.out.find("\"rows\": 7"), std::string::npos) << explained.out;
  // 28 x 28 PNG overlaid and enlarged 10 times.
  const std::string png = ReadFileBytes(map);
  ASSERT_GT(png.size(), 24u);
  EXPECT_EQ(png.substr(1, 3), "PNG");
  EXPECT_EQ(png.substr(16, 8), std::string("\0\0\x01\x18\0\0\x01\x18", 8)) << "280 x 280";
  CommandResult text = run({"explain", "--model", kModel, image, "--patch", "8", "--stride", "4"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("7 x 7 positions (patch 8, stride 4)"), std::string::npos) << text.out;

  CommandResult features = run({"features", "--model", kModel, "--layer", "relu1", image, "--out", grid});
  ASSERT_EQ(features.exit_code, 0) << features.err;
  EXPECT_NE(features.out.find("layer relu1: 6x28x28"), std::string::npos) << features.out;
  EXPECT_EQ(ReadFileBytes(grid).substr(1, 3), "PNG");
  EXPECT_EQ(run({"features", "--model", kModel, "--layer", "relu4", image, "--out", grid}).exit_code, 2)
      << "an FC layer has no grid";

  CommandResult embedded = run({"embed", "--model", kModel, "--layer", "relu4", image,
                                (TestDataDir() / images_[1].name).string(), "--json"});
  ASSERT_EQ(embedded.exit_code, 0) << embedded.err;
  EXPECT_NE(embedded.out.find("\"shape\": [84]"), std::string::npos) << embedded.out;
  EXPECT_NE(embedded.out.find(images_[1].name), std::string::npos);

  EXPECT_EQ(run({"explain", "--model", kModel, image, "--stride", "4"}).exit_code, 2);  // no --patch
  CommandResult unknown = run({"embed", "--model", kModel, "--layer", "fc9", image});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.err.find("INVALID_ARGUMENT"), std::string::npos) << unknown.err;
}

}  // namespace
}  // namespace cnnserve::integration
