// Explanations through the InferenceService (server/service/explain.h, InferRequest::layer): occlusion maps equal
// classifying the same masked tensors one by one (a model and an ensemble), a patch over a region already at
// the fill value changes nothing, layer rows equal the engine's Model::UpToLayer on the same preprocessed input;
// errors. Real repository folders (copies of the trained LeNet-5 models) and real Fashion-MNIST PNGs.
#include "server/service/explain.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <future>

#include "engine/runtime/model.h"
#include "models/onnx/onnx_importer.h"
#include "server/service/inference_service.h"
#include "tests/models/repository/test_repository.h"
#include "tests/server/servables/fashion_testdata.h"

namespace cnnserve {
namespace {

namespace fs = std::filesystem;
using ::cnnserve::testing::CopyLenet;
using ::cnnserve::testing::FashionImage;
using ::cnnserve::testing::LoadFashionImages;
using ::cnnserve::testing::TempDir;
using ::cnnserve::testing::WriteFileBytes;

constexpr int64_t kSide = 32;  // LeNet-5's input is 1 x 32 x 32
// Rows of the same input in batches of different sizes may differ in the last bits (other kernels).
constexpr float kBatchTolerance = 1e-5f;

class ExplainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    png_ = LoadFashionImages(".png");
    ASSERT_GE(png_.size(), 4u);
    CopyLenet(repo_.path(), "lenet");
    // Two members that take 1 x 28 x 28: the second LeNet-5 and the small VGG.
    for (const auto& [from, to] : {std::pair<std::string, std::string>{"lenet5_fashion_s1", "lenet_s1"},
                                   {"vgg_fashion", "vgg"}}) {
      const fs::path dst = repo_.path() / to;
      fs::copy(testing::DefaultRepository() / from, dst, fs::copy_options::recursive);
      WriteFileBytes(dst / "config.pbtxt", testing::ReplaceOnce(testing::ReadFileBytes(dst / "config.pbtxt"),
                                                                "name: \"" + from + "\"", "name: \"" + to + "\""));
    }
    fs::create_directories(repo_.path() / "ens");
    WriteFileBytes(repo_.path() / "ens" / "config.pbtxt",
                   "name: \"ens\"\nplatform: \"ensemble\"\nmax_batch_size: 64\nensemble {\n"
                   "  members { model: \"lenet_s1\" }\n  members { model: \"vgg\" }\n  strategy: SOFT_MEAN\n}\n");
    InferenceServiceOptions options;
    options.model_repository = repo_.path().string();
    options.total_threads = 1;
    options.max_explain_masks = 100;
    StatusOr<std::unique_ptr<InferenceService>> service = InferenceService::Create(options);
    ASSERT_TRUE(service.ok()) << service.status().ToString();
    service_ = *std::move(service);
  }

  Status Occlude(OcclusionRequest request, OcclusionOutcome* out) {
    auto outcome = std::make_shared<OcclusionOutcome>();
    std::promise<Status> promise;
    RunOcclusion(*service_, std::move(request), outcome, [&](Status s) { promise.set_value(std::move(s)); });
    Status status = promise.get_future().get();
    *out = *outcome;
    return status;
  }

  // Runs `items` through Infer (up to `layer` when set) and returns the outcome.
  StatusOr<std::shared_ptr<InferOutcome>> Infer(const std::string& model, std::vector<ImageItem> items,
                                                const std::string& layer = "") {
    InferRequest request;
    request.model = model;
    request.layer = layer;
    request.build_items = [items](const ServableInfo&, RunRequest* run) {
      run->items = items;
      return OkStatus();
    };
    auto outcome = std::make_shared<InferOutcome>();
    std::promise<Status> promise;
    service_->Infer(std::move(request), outcome, [&](Status s) { promise.set_value(std::move(s)); });
    Status status = promise.get_future().get();
    if (!status.ok()) return status;
    return outcome;
  }

  // The preprocessed input of `image` for `model`.
  std::vector<float> Preprocess(const std::string& model, const ImageItem& image) {
    std::shared_ptr<Servable> servable = *service_->Find(model, 0);
    std::vector<float> out(static_cast<size_t>(NumElements(servable->info().item_input_dims)));
    ItemTarget target;
    target.preprocess = &*servable->info().preprocess;
    target.input_dims = servable->info().item_input_dims;
    target.dst = out.data();
    EXPECT_TRUE(PrepareItem(image, service_->decode_limits(), target).ok());
    return out;
  }

  static ImageItem TensorItem(const std::vector<float>& values) {
    return {ImageItem::Kind::kTensor,
            std::string_view(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float))};
  }

  // Checks the map at a few positions against one-by-one classification of masks made here.
  void ExpectMatchesOneByOne(const std::string& model, const ImageItem& image, int64_t patch, int64_t stride,
                             float fill) {
    OcclusionRequest request;
    request.model = model;
    request.image = image;
    request.patch = patch;
    request.stride = stride;
    request.fill = fill;
    OcclusionOutcome out;
    const Status status = Occlude(request, &out);
    ASSERT_TRUE(status.ok()) << status.ToString();
    const OcclusionMap& map = out.map;
    const int64_t side = (*service_->Find(model, 0))->info().item_input_dims[1];
    const int64_t positions = (side - patch) / stride + 1;
    ASSERT_EQ(map.rows, positions);
    ASSERT_EQ(map.cols, positions);
    const std::vector<float> x = Preprocess(model, image);
    auto plain = Infer(model, {TensorItem(x)});
    ASSERT_TRUE(plain.ok()) << plain.status().ToString();
    EXPECT_EQ(map.top1, (*plain)->result.Ranked(0, 1)[0].index);
    EXPECT_EQ(map.target_class, map.top1);
    EXPECT_NEAR(map.probability, (*plain)->result.probabilities[map.target_class], kBatchTolerance);
    float largest_drop = 0;
    for (const auto& [r, c] : std::vector<std::pair<int64_t, int64_t>>{
             {0, 0}, {positions - 1, positions - 1}, {positions / 2, positions / 3}, {1, positions - 2}}) {
      std::vector<float> masked = x;
      for (int64_t y = r * stride; y < r * stride + patch; ++y) {
        for (int64_t q = c * stride; q < c * stride + patch; ++q) masked[y * side + q] = fill;
      }
      auto one = Infer(model, {TensorItem(masked)});
      ASSERT_TRUE(one.ok()) << one.status().ToString();
      const float p = (*one)->result.probabilities[map.target_class];
      const size_t at = static_cast<size_t>(r * positions + c);
      EXPECT_NEAR(map.drop[at], map.probability - p, kBatchTolerance) << model << " at " << r << "," << c;
      EXPECT_EQ(map.top1_at[at], (*one)->result.Ranked(0, 1)[0].index) << model << " at " << r << "," << c;
      largest_drop = std::max(largest_drop, std::fabs(map.drop[at]));
    }
    EXPECT_GT(largest_drop, 1e-4f) << "no sampled patch changed anything: the test would not see a wrong map";
  }

  std::vector<FashionImage> png_;
  TempDir repo_;
  std::unique_ptr<InferenceService> service_;
};

TEST_F(ExplainTest, OcclusionEqualsClassifyingTheMaskedTensorsOneByOne) {
  ExpectMatchesOneByOne("lenet", {ImageItem::Kind::kEncoded, png_[0].bytes}, 8, 4, 0.0f);
  ExpectMatchesOneByOne("lenet", {ImageItem::Kind::kEncoded, png_[1].bytes}, 5, 3, -0.8f);
}

TEST_F(ExplainTest, EnsembleOcclusionUsesTheCombinedProbability) {
  ExpectMatchesOneByOne("ens", {ImageItem::Kind::kEncoded, png_[2].bytes}, 8, 4, 0.0f);
}

TEST_F(ExplainTest, PatchOverARegionAtTheFillValueChangesNothing) {
  std::vector<float> x = Preprocess("lenet", {ImageItem::Kind::kEncoded, png_[3].bytes});
  for (int64_t y = 0; y < 12; ++y) {
    for (int64_t q = 0; q < 12; ++q) x[y * kSide + q] = 0.0f;  // the dataset mean after normalisation
  }
  OcclusionRequest request;
  request.model = "lenet";
  request.image = TensorItem(x);
  request.patch = 6;
  request.stride = 6;
  OcclusionOutcome out;
  ASSERT_TRUE(Occlude(request, &out).ok());
  ASSERT_EQ(out.map.rows, 5);
  for (int64_t r = 0; r < 2; ++r) {
    for (int64_t c = 0; c < 2; ++c) {
      EXPECT_NEAR(out.map.drop[r * 5 + c], 0.0f, 1e-6f) << r << "," << c;
      EXPECT_EQ(out.map.top1_at[r * 5 + c], out.map.top1);
    }
  }
  float changed = 0;
  for (float d : out.map.drop) changed = std::max(changed, std::fabs(d));
  EXPECT_GT(changed, 1e-4f) << "patches over the garment change the probability";
}

TEST_F(ExplainTest, OcclusionErrorsAreInvalidArgument) {
  const ImageItem image{ImageItem::Kind::kEncoded, png_[0].bytes};
  struct Case {
    int64_t patch, stride, target;
    const char* message;
  };
  for (const Case& c : std::vector<Case>{{33, 4, -1, "field patch: 33 must be 1 to the input height (32)"},
                                         {0, 4, -1, "field patch: 0"},
                                         {8, 0, -1, "field stride: 0 must be >= 1"},
                                         {2, 2, -1, "256 masked copies, more than the limit of 100 (--max-explain-masks)"},
                                         {8, 4, 10, "field target_class: 10 is not a class"}}) {
    OcclusionRequest request;
    request.model = "lenet";
    request.image = image;
    request.patch = c.patch;
    request.stride = c.stride;
    request.target_class = c.target;
    OcclusionOutcome out;
    Status status = Occlude(request, &out);
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status.ToString();
    EXPECT_NE(status.message().find(c.message), std::string::npos) << status.ToString();
  }
  OcclusionRequest bad_image;
  bad_image.model = "lenet";
  bad_image.image = {ImageItem::Kind::kEncoded, "not an image"};
  bad_image.patch = 8;
  bad_image.stride = 8;
  OcclusionOutcome out;
  EXPECT_EQ(Occlude(bad_image, &out).code(), StatusCode::kInvalidArgument);
}

TEST_F(ExplainTest, LayerRowsEqualTheEngineUpToThatLayer) {
  std::vector<std::vector<float>> inputs;
  std::vector<ImageItem> items;
  for (int i = 0; i < 3; ++i) {
    items.push_back({ImageItem::Kind::kEncoded, png_[i].bytes});
    inputs.push_back(Preprocess("lenet", items.back()));
  }
  StatusOr<std::shared_ptr<const Graph>> graph =
      LoadOnnxGraph((testing::DefaultRepository() / "lenet5_fashion" / "1" / "model.onnx").string());
  ASSERT_TRUE(graph.ok());
  ModelOptions reference;
  reference.backend = "reference";
  for (const auto& [layer, dims] : std::vector<std::pair<std::string, Dims>>{
           {"relu4", {84}}, {"pool2", {16, 5, 5}}, {"conv1", {6, 28, 28}}}) {
    auto outcome = Infer("lenet", items, layer);
    ASSERT_TRUE(outcome.ok()) << outcome.status().ToString();
    const ServableInfo& info = (*outcome)->servable->info();
    EXPECT_EQ(info.layer, layer);
    EXPECT_EQ(info.item_output_dims, dims);
    const RunResult& result = (*outcome)->result;
    ASSERT_EQ(result.num_classes, NumElements(dims));
    auto model = (*Model::Create(*graph, reference))->UpToLayer(layer);
    ASSERT_TRUE(model.ok());
    for (int i = 0; i < 3; ++i) {
      Tensor in(Dims{1, 1, kSide, kSide});
      std::memcpy(in.data(), inputs[i].data(), inputs[i].size() * sizeof(float));
      Tensor want = *(*model)->NewSession()->Run(in);
      double max_diff = 0, max_want = 0;
      for (int64_t k = 0; k < want.size(); ++k) {
        max_diff = std::max(max_diff, std::fabs(double{result.scores[i * want.size() + k]} - want[k]));
        max_want = std::max(max_want, std::fabs(double{want[k]}));
      }
      EXPECT_GT(max_want, 0.0);
      EXPECT_LE(max_diff, 1e-4 * max_want + 1e-5) << layer << " item " << i;
    }
  }
  // The same layer again comes from the cache; a name the passes remove or a node name resolve the same way.
  EXPECT_EQ(*service_->FindLayer("lenet", 0, "relu4"), *service_->FindLayer("lenet", 0, "relu4"));
}

TEST_F(ExplainTest, LayerErrors) {
  const std::vector<ImageItem> items{{ImageItem::Kind::kEncoded, png_[0].bytes}};
  auto unknown = Infer("lenet", items, "fc9");
  EXPECT_EQ(unknown.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.status().message().find("layer \"fc9\" is not known"), std::string::npos)
      << unknown.status().ToString();
  auto ensemble = Infer("ens", items, "relu4");
  EXPECT_EQ(ensemble.status().code(), StatusCode::kInvalidArgument) << ensemble.status().ToString();
  EXPECT_EQ(Infer("nope", items, "relu4").status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace cnnserve
