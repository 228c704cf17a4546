// Explanations through the InferenceService (server/service/explain.h, InferRequest::layer): occlusion maps equal
// classifying the same masked tensors one by one (a model and an ensemble whose members share their input), and
// the same masked raw pixels one by one for ensembles whose members differ in size or normalisation; a patch over
// a region already at the fill value changes nothing; layer rows equal the engine's Model::UpToLayer on the same
// preprocessed input; errors. Real repository folders (copies of the trained models) and real Fashion-MNIST PNGs.
#include "server/service/explain.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <functional>
#include <future>
#include <thread>

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
    // Members that take 1 x 28 x 28: the second LeNet-5 and vgg_fashion_s2 (x / 255), the small VGG (mean/std).
    for (const auto& [from, to] : {std::pair<std::string, std::string>{"lenet5_fashion_s1", "lenet_s1"},
                                   {"vgg_fashion_s2", "vgg_s2"},
                                   {"vgg_fashion", "vgg"}}) {
      const fs::path dst = repo_.path() / to;
      fs::copy(testing::DefaultRepository() / from, dst, fs::copy_options::recursive);
      WriteFileBytes(dst / "config.pbtxt", testing::ReplaceOnce(testing::ReadFileBytes(dst / "config.pbtxt"),
                                                                "name: \"" + from + "\"", "name: \"" + to + "\""));
    }
    // LeNet-5 with batches of at most 4: its maps go in chunks of 8 copies.
    const fs::path small = repo_.path() / "lenet_b4";
    fs::copy(testing::DefaultRepository() / "lenet5_fashion", small, fs::copy_options::recursive);
    std::string config = testing::ReadFileBytes(small / "config.pbtxt");
    config = testing::ReplaceOnce(config, "name: \"lenet5_fashion\"", "name: \"lenet_b4\"");
    config = testing::ReplaceOnce(config, "max_batch_size: 64", "max_batch_size: 4");
    config = testing::ReplaceOnce(config, "preferred_batch_size: [8, 32]", "preferred_batch_size: [4]");
    WriteFileBytes(small / "config.pbtxt", config);
    // Members with the same input and preprocessing; with other normalisations; with other sizes (32 and 28),
    // in batches of at most 4 (chunks of 8 copies).
    WriteEnsemble("ens", "lenet_s1", "vgg_s2", 64);
    WriteEnsemble("ens_norms", "lenet_s1", "vgg", 64);
    WriteEnsemble("ens_sizes", "lenet", "vgg", 4);
    InferenceServiceOptions options;
    options.model_repository = repo_.path().string();
    options.total_threads = 1;
    options.max_explain_masks = 100;
    StatusOr<std::unique_ptr<InferenceService>> service = InferenceService::Create(options);
    ASSERT_TRUE(service.ok()) << service.status().ToString();
    service_ = *std::move(service);
  }

  void WriteEnsemble(const std::string& name, const std::string& first, const std::string& second,
                     int max_batch_size) {
    fs::create_directories(repo_.path() / name);
    WriteFileBytes(repo_.path() / name / "config.pbtxt",
                   "name: \"" + name + "\"\nplatform: \"ensemble\"\nmax_batch_size: " +
                       std::to_string(max_batch_size) + "\nensemble {\n"
                   "  members { model: \"" + first + "\" }\n  members { model: \"" + second +
                       "\" }\n  strategy: SOFT_MEAN\n}\n");
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

  // The occlusion map of `image` (the test fails when the map does).
  OcclusionMap MapOf(const std::string& model, const ImageItem& image, int64_t patch, int64_t stride, float fill) {
    OcclusionRequest request;
    request.model = model;
    request.image = image;
    request.patch = patch;
    request.stride = stride;
    request.fill = fill;
    OcclusionOutcome out;
    const Status status = Occlude(request, &out);
    EXPECT_TRUE(status.ok()) << status.ToString();
    return out.map;
  }

  // The input with the patch at (r, c), or unmasked for r < 0, in `storage`.
  using MaskedInput = std::function<ImageItem(int64_t r, int64_t c, std::vector<char>* storage)>;

  // Checks `map` (positions x positions) at a few positions against one-by-one classification of `input`.
  void ExpectSamplesMatch(const std::string& model, const OcclusionMap& map, int64_t positions,
                          const MaskedInput& input) {
    ASSERT_EQ(map.rows, positions);
    ASSERT_EQ(map.cols, positions);
    std::vector<char> storage;
    auto plain = Infer(model, {input(-1, -1, &storage)});
    ASSERT_TRUE(plain.ok()) << plain.status().ToString();
    EXPECT_EQ(map.top1, (*plain)->result.Ranked(0, 1)[0].index);
    EXPECT_EQ(map.target_class, map.top1);
    EXPECT_NEAR(map.probability, (*plain)->result.probabilities[map.target_class], kBatchTolerance);
    float largest_drop = 0;
    for (const auto& [r, c] : std::vector<std::pair<int64_t, int64_t>>{
             {0, 0}, {positions - 1, positions - 1}, {positions / 2, positions / 3}, {1, positions - 2}}) {
      auto one = Infer(model, {input(r, c, &storage)});
      ASSERT_TRUE(one.ok()) << one.status().ToString();
      const float p = (*one)->result.probabilities[map.target_class];
      const size_t at = static_cast<size_t>(r * positions + c);
      EXPECT_NEAR(map.drop[at], map.probability - p, kBatchTolerance) << model << " at " << r << "," << c;
      EXPECT_EQ(map.top1_at[at], (*one)->result.Ranked(0, 1)[0].index) << model << " at " << r << "," << c;
      largest_drop = std::max(largest_drop, std::fabs(map.drop[at]));
    }
    EXPECT_GT(largest_drop, 1e-4f) << "no sampled patch changed anything: the test would not see a wrong map";
  }

  // A map in the model's input space, checked against the preprocessed image masked here with `fill`.
  void ExpectMatchesOneByOne(const std::string& model, const ImageItem& image, int64_t patch, int64_t stride,
                             float fill) {
    const OcclusionMap map = MapOf(model, image, patch, stride, fill);
    EXPECT_FALSE(map.pixel_space);
    const int64_t side = (*service_->Find(model, 0))->info().item_input_dims[1];
    const std::vector<float> x = Preprocess(model, image);
    ExpectSamplesMatch(model, map, (side - patch) / stride + 1, [&](int64_t r, int64_t c, std::vector<char>* out) {
      std::vector<float> masked = x;
      for (int64_t y = r * stride; r >= 0 && y < r * stride + patch; ++y) {
        for (int64_t q = c * stride; q < c * stride + patch; ++q) masked[y * side + q] = fill;
      }
      out->assign(reinterpret_cast<const char*>(masked.data()),
                  reinterpret_cast<const char*>(masked.data() + masked.size()));
      return ImageItem{ImageItem::Kind::kTensor, std::string_view(out->data(), out->size())};
    });
  }

  // An ensemble whose members take different inputs: the map is over the image's pixels; checked against raw-pixel
  // images masked here with the fill's 8-bit sample.
  void ExpectPixelMapMatchesOneByOne(const std::string& model, const ImageItem& image, int64_t patch,
                                     int64_t stride, float fill, uint8_t fill_sample) {
    const OcclusionMap map = MapOf(model, image, patch, stride, fill);
    StatusOr<PixelImage> pixels = ItemPixels(image, service_->decode_limits());
    ASSERT_TRUE(pixels.ok()) << pixels.status().ToString();
    ASSERT_EQ(pixels->channels, 1);
    EXPECT_TRUE(map.pixel_space);
    EXPECT_EQ(map.shape, (Dims{1, pixels->height, pixels->width}));
    const int64_t w = pixels->width;
    ExpectSamplesMatch(model, map, (w - patch) / stride + 1, [&](int64_t r, int64_t c, std::vector<char>* out) {
      out->assign(pixels->hwc.begin(), pixels->hwc.end());
      for (int64_t y = r * stride; r >= 0 && y < r * stride + patch; ++y) {
        for (int64_t q = c * stride; q < c * stride + patch; ++q) (*out)[y * w + q] = static_cast<char>(fill_sample);
      }
      ImageItem item{ImageItem::Kind::kPixels, std::string_view(out->data(), out->size())};
      item.height = static_cast<int32_t>(pixels->height);
      item.width = static_cast<int32_t>(w);
      item.channels = 1;
      return item;
    });
  }

  std::vector<FashionImage> png_;
  TempDir repo_;
  std::unique_ptr<InferenceService> service_;
};

TEST_F(ExplainTest, OcclusionEqualsClassifyingTheMaskedTensorsOneByOne) {
  ExpectMatchesOneByOne("lenet", {ImageItem::Kind::kEncoded, png_[0].bytes}, 8, 4, 0.0f);
  ExpectMatchesOneByOne("lenet", {ImageItem::Kind::kEncoded, png_[1].bytes}, 5, 3, -0.8f);
  // 9 x 9 positions in chunks of 8 copies: the sampled positions fall in the first, the middle and the last chunk.
  ExpectMatchesOneByOne("lenet_b4", {ImageItem::Kind::kEncoded, png_[1].bytes}, 8, 3, 0.0f);
}

TEST_F(ExplainTest, EnsembleOcclusionUsesTheCombinedProbability) {
  ASSERT_TRUE((*service_->Find("ens", 0))->info().members_share_input);
  ExpectMatchesOneByOne("ens", {ImageItem::Kind::kEncoded, png_[2].bytes}, 8, 4, 0.0f);
}

TEST_F(ExplainTest, EnsembleOfDifferentInputsIsOccludedOnTheImagePixels) {
  // The first member's preprocessing decides the fill sample: lenet_s1 is x / 255 (0.25 -> 64), lenet
  // is (x / 255 - 0.2860) / 0.3530 (0 -> 73: the dataset mean).
  EXPECT_FALSE((*service_->Find("ens_norms", 0))->info().members_share_input);
  EXPECT_FALSE((*service_->Find("ens_sizes", 0))->info().members_share_input);
  ExpectPixelMapMatchesOneByOne("ens_norms", {ImageItem::Kind::kEncoded, png_[2].bytes}, 8, 4, 0.25f, 64);
  ExpectPixelMapMatchesOneByOne("ens_sizes", {ImageItem::Kind::kEncoded, png_[1].bytes}, 7, 3, 0.0f, 73);

  OcclusionRequest tensor;  // a tensor has no pixels
  tensor.model = "ens_sizes";
  const std::vector<float> x(28 * 28, 0.0f);
  tensor.image = TensorItem(x);
  tensor.patch = 8;
  tensor.stride = 8;
  OcclusionOutcome out;
  const Status status = Occlude(tensor, &out);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status.ToString();
  EXPECT_NE(status.message().find("made on the image's pixels: a tensor has no pixels"), std::string::npos)
      << status.ToString();
}

TEST(PixelFillTest, IsTheSampleThatTheFillBecomesAfterNormalisation) {
  PreprocessOptions gray;
  gray.color = ColorFormat::kGray;
  gray.scale = 1.0f / 255.0f;
  gray.mean = {0.2860f};
  gray.stddev = {0.3530f};
  EXPECT_EQ(PixelFill(gray, 0.0f, 1), std::vector<uint8_t>{73});  // 0.2860 * 255 = 72.9
  EXPECT_EQ(PixelFill(gray, -0.8f, 1), std::vector<uint8_t>{1});  // (-0.8 * 0.353 + 0.286) * 255 = 0.9
  EXPECT_EQ(PixelFill(gray, 100.0f, 1), std::vector<uint8_t>{255});
  EXPECT_EQ(PixelFill(gray, -100.0f, 3), (std::vector<uint8_t>{0, 0, 0}));
  PreprocessOptions bgr;
  bgr.color = ColorFormat::kBgr;
  bgr.scale = 1.0f;
  bgr.mean = {10.0f, 20.0f, 30.0f};  // B, G, R
  EXPECT_EQ(PixelFill(bgr, 0.0f, 3), (std::vector<uint8_t>{30, 20, 10}));  // R, G, B
  EXPECT_EQ(PixelFill(bgr, 0.0f, 1), std::vector<uint8_t>{20});            // gray: the channels' mean
}

TEST(PixelFillTest, PatchesSetTheSquareInEveryChannelAndNothingElse) {
  PixelImage image;
  image.height = 3;
  image.width = 4;
  image.channels = 3;
  for (int i = 0; i < 36; ++i) image.hwc.push_back(static_cast<uint8_t>(i + 100));
  const std::vector<uint8_t> fill{1, 2, 3};
  std::vector<float> floats(36);
  for (int i = 0; i < 36; ++i) floats[static_cast<size_t>(i)] = static_cast<float>(i);
  for (int64_t top = 0; top < 2; ++top) {
    for (int64_t left = 0; left < 3; ++left) {
      std::vector<uint8_t> copy = image.hwc;
      FillPixelPatch(image, top, left, 2, fill, copy.data());
      std::vector<float> chw = floats;  // the same geometry as 3 planes of 3 x 4
      FillPatch({3, 3, 4}, top, left, 2, -1.0f, chw.data());
      for (int64_t y = 0; y < 3; ++y) {
        for (int64_t x = 0; x < 4; ++x) {
          const bool in = y >= top && y < top + 2 && x >= left && x < left + 2;
          for (int64_t ch = 0; ch < 3; ++ch) {
            const size_t i = static_cast<size_t>((y * 4 + x) * 3 + ch);
            EXPECT_EQ(copy[i], in ? fill[static_cast<size_t>(ch)] : image.hwc[i]) << top << left << y << x << ch;
            const size_t j = static_cast<size_t>((ch * 3 + y) * 4 + x);
            EXPECT_EQ(chw[j], in ? -1.0f : floats[j]) << top << left << y << x << ch;
          }
        }
      }
    }
  }
}

TEST_F(ExplainTest, AMapCancelledBetweenChunksAnswersOnceWithCancelled) {
  // 81 copies in chunks of 8 (11 requests). Every chunk asks the cancellation check at least once (how often more
  // depends on whether it runs to completion or waits in the queue), so a check that says yes from call 6 on lets
  // the first chunk through and stops the map by its 6th chunk. Occlude's promise would throw on a second answer.
  constexpr int kChunks = 11;
  OcclusionRequest request;
  request.model = "lenet_b4";
  request.image = {ImageItem::Kind::kEncoded, png_[1].bytes};
  request.patch = 8;
  request.stride = 3;
  auto calls = std::make_shared<std::atomic<int>>(0);
  request.cancelled = [calls] { return ++*calls < 0; };
  OcclusionOutcome out;
  ASSERT_TRUE(Occlude(request, &out).ok());
  ASSERT_GE(calls->load(), kChunks) << "fewer checks than requests";
  const int half = kChunks / 2;
  for (int run = 0; run < 3; ++run) {
    request.cancelled = [half, calls = std::make_shared<std::atomic<int>>(0)] { return ++*calls > half; };
    const Status status = Occlude(request, &out);
    EXPECT_EQ(status.code(), StatusCode::kCancelled) << status.ToString();
  }
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

TEST_F(ExplainTest, RequestsForALayerBeingBuiltShareThatBuild) {
  // Four requests for two new layers at once (threads released together): one servable per layer, and every
  // request for it gets that one.
  std::vector<std::shared_ptr<Servable>> got(4);
  std::vector<std::thread> threads;
  std::promise<void> go;
  std::shared_future<void> start = go.get_future().share();
  for (size_t i = 0; i < got.size(); ++i) {
    threads.emplace_back([&, i] {
      start.wait();
      StatusOr<std::shared_ptr<Servable>> s = service_->FindLayer(i % 2 == 0 ? "lenet" : "lenet_b4", 0, "relu3");
      if (s.ok()) got[i] = *s;
    });
  }
  go.set_value();
  for (std::thread& t : threads) t.join();
  for (const std::shared_ptr<Servable>& s : got) ASSERT_NE(s, nullptr);
  EXPECT_EQ(got[0], got[2]);
  EXPECT_EQ(got[1], got[3]);
  EXPECT_NE(got[0], got[1]);
  EXPECT_EQ(got[0]->info().layer, got[1]->info().layer);
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
