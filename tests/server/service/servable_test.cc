// The Servable layer under the InferenceService: RunResult::Ranked's order, Find's errors, the built-in null
// model, raw-pixel items, exact statistics, and loading/unloading a model while another one keeps serving. Real
// repository folders (copies of the trained LeNet-5) and real Fashion-MNIST PNGs; no fakes.
#include "server/servables/servable.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <future>
#include <limits>
#include <thread>

#include "server/preprocess/preprocess.h"
#include "server/servables/model_servable.h"
#include "server/service/inference_service.h"
#include "tests/models/repository/test_repository.h"
#include "tests/server/servables/fashion_testdata.h"

namespace cnnserve {
namespace {

namespace fs = std::filesystem;
using ::cnnserve::testing::CopyLenet;
using ::cnnserve::testing::EditConfig;
using ::cnnserve::testing::FashionImage;
using ::cnnserve::testing::LoadFashionImages;
using ::cnnserve::testing::TempDir;
using ::cnnserve::testing::WriteFileBytes;

constexpr int kClasses = 10;

RunResult ResultOf(std::vector<float> scores, std::vector<float> tie = {}) {
  RunResult r;
  r.num_items = 1;
  r.num_classes = static_cast<int64_t>(scores.size());
  r.probabilities.assign(scores.size(), 0.5f);
  r.scores = std::move(scores);
  r.tie_break = std::move(tie);
  return r;
}

std::vector<int32_t> Indices(const std::vector<ScoredClass>& ranked) {
  std::vector<int32_t> out;
  for (const ScoredClass& c : ranked) out.push_back(c.index);
  return out;
}

TEST(RankedTest, ScoreThenTieBreakThenIndexWithNaNLast) {
  const float nan = std::nanf("");
  struct Case {
    std::vector<float> scores, tie;
    int k;
    std::vector<int32_t> want;
  };
  const std::vector<Case> cases = {
      {{0.1f, 0.7f, 0.2f}, {}, 3, {1, 2, 0}},
      {{0.5f, 0.5f, 0.2f}, {}, 3, {0, 1, 2}},                  // equal scores: lower index
      {{0.5f, 0.5f, 0.2f}, {0.1f, 0.9f, 0.0f}, 3, {1, 0, 2}},  // equal scores: higher tie-break
      {{0.5f, 0.5f, 0.5f}, {0.3f, 0.3f, 0.9f}, 3, {2, 0, 1}},  // tie-break tie: lower index
      {{nan, 0.1f, nan, 0.2f}, {}, 4, {3, 1, 0, 2}},           // NaN scores last, by index
      {{0.5f, 0.5f}, {nan, 0.1f}, 2, {1, 0}},                  // NaN tie-break loses
      {{0.1f, 0.7f, 0.2f}, {}, 99, {1, 2, 0}},                 // k clamped to the class count
      {{0.1f, 0.7f, 0.2f}, {}, 0, {}},
      {{0.1f, 0.7f, 0.2f}, {}, -3, {}},
  };
  for (const Case& c : cases) {
    const RunResult r = ResultOf(c.scores, c.tie);
    EXPECT_EQ(Indices(r.Ranked(0, c.k)), c.want);
  }
  const RunResult two_items = [] {
    RunResult r = ResultOf({0.1f, 0.9f});
    r.num_items = 2;
    r.scores = {0.1f, 0.9f, 0.8f, 0.2f};
    r.probabilities = {0.3f, 0.7f, 0.6f, 0.4f};
    return r;
  }();
  const std::vector<ScoredClass> second = two_items.Ranked(1, 1);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].index, 0);
  EXPECT_FLOAT_EQ(second[0].score, 0.8f);
  EXPECT_FLOAT_EQ(second[0].probability, 0.6f);
}

// Runs `request` and waits for the answer.
Status RunSync(Servable& servable, std::shared_ptr<RunRequest> request, RunResult* result) {
  std::promise<Status> promise;
  std::future<Status> future = promise.get_future();
  servable.Run(std::move(request), result, [&promise](Status status) { promise.set_value(std::move(status)); });
  if (future.wait_for(std::chrono::seconds(60)) != std::future_status::ready) return InternalError("no answer");
  return future.get();
}

std::shared_ptr<RunRequest> ImagesRequest(const std::vector<FashionImage>& images, size_t count) {
  auto request = std::make_shared<RunRequest>();
  for (size_t i = 0; i < count; ++i) request->items.push_back({ImageItem::Kind::kEncoded, images[i].bytes});
  return request;
}

class ServableTest : public ::testing::Test {
 protected:
  void SetUp() override {
    png_ = LoadFashionImages(".png");
    ASSERT_GE(png_.size(), 20u);
  }

  std::unique_ptr<InferenceService> Create(
      const fs::path& repo, ModelControlMode mode = ModelControlMode::kNone,
      int64_t max_inline_run_us = InferenceServiceOptions().max_inline_run_us) {
    InferenceServiceOptions options;
    options.model_repository = repo.string();
    options.model_control_mode = mode;
    options.max_inline_run_us = max_inline_run_us;
    options.total_threads = 1;
    options.retire_drain_timeout_us = 10'000'000;
    StatusOr<std::unique_ptr<InferenceService>> service = InferenceService::Create(options);
    EXPECT_TRUE(service.ok()) << service.status().ToString();
    return service.ok() ? *std::move(service) : nullptr;
  }

  static void WriteNullModel(const fs::path& repo, const std::string& name, const std::string& extra = "") {
    fs::create_directories(repo / name);
    WriteFileBytes(repo / name / "config.pbtxt",
                   "name: \"" + name +
                       "\"\nplatform: \"null\"\nmax_batch_size: 16\ninput { dims: [1, 32, 32] }\n"
                       "num_classes: 10\npreprocess { color: GRAY }\n" +
                       extra);
  }

  // A service over a repository holding only the default LeNet-5 as "lenet" (kept by the fixture); its servable.
  std::shared_ptr<Servable> StartLenet() {
    CopyLenet(lenet_repo_.path(), "lenet");
    lenet_service_ = Create(lenet_repo_.path());
    if (lenet_service_ == nullptr) return nullptr;
    StatusOr<std::shared_ptr<Servable>> lenet = lenet_service_->Find("lenet", 0);
    return lenet.ok() ? *lenet : nullptr;
  }

  std::vector<FashionImage> png_;
  TempDir lenet_repo_;
  std::unique_ptr<InferenceService> lenet_service_;
};

TEST_F(ServableTest, FindNamesWhatIsWrong) {
  TempDir repo;
  CopyLenet(repo.path(), "lenet");
  std::unique_ptr<InferenceService> service = Create(repo.path());
  ASSERT_NE(service, nullptr);
  EXPECT_TRUE(service->Find("lenet", 0).ok());
  EXPECT_TRUE(service->Find("lenet", 1).ok());
  EXPECT_EQ(service->Find("", 0).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(service->Find("nope", 0).status().message(), "model \"nope\" not found");
  EXPECT_EQ(service->Find("lenet", 4).status().message(), "version 4 of model \"lenet\" not found (versions: 1)");
  EXPECT_EQ(service->Find("lenet", -1).status().code(), StatusCode::kInvalidArgument);
  StatusOr<std::shared_ptr<Servable>> lenet = service->Find("lenet", 0);
  ASSERT_TRUE(lenet.ok());
  const ServableInfo& info = (*lenet)->info();
  EXPECT_EQ(info.name, "lenet");
  EXPECT_EQ(info.version, 1);
  EXPECT_EQ(info.platform, "onnx");
  EXPECT_EQ(info.item_input_dims, (Dims{1, 32, 32}));
  EXPECT_EQ(info.num_classes, kClasses);
  EXPECT_EQ(info.labels.size(), 10u);
  EXPECT_EQ(info.max_batch_size, 64);
  ASSERT_TRUE(info.preprocess.has_value());
  EXPECT_EQ(info.input_name, "input");
  EXPECT_FALSE(info.output_name.empty());
}

TEST_F(ServableTest, NullModelReturnsZerosThroughTheBatcherAndCounts) {
  TempDir repo;
  WriteNullModel(repo.path(), "null");
  std::unique_ptr<InferenceService> service = Create(repo.path());
  ASSERT_NE(service, nullptr);
  StatusOr<std::shared_ptr<Servable>> null = service->Find("null", 0);
  ASSERT_TRUE(null.ok()) << null.status().ToString();
  EXPECT_EQ((*null)->info().platform, "null");
  EXPECT_EQ((*null)->info().num_classes, kClasses);

  // 20 images in one request: split into tasks of at most 16.
  RunResult result;
  ASSERT_TRUE(RunSync(**null, ImagesRequest(png_, 20), &result).ok());
  EXPECT_EQ(result.num_items, 20);
  EXPECT_EQ(result.scores, std::vector<float>(20 * kClasses, 0.0f));
  for (float p : result.probabilities) EXPECT_FLOAT_EQ(p, 0.1f);
  // A bad image is still an error: the null model skips only the engine.
  auto bad = std::make_shared<RunRequest>();
  bad->items.push_back({ImageItem::Kind::kEncoded, "not an image"});
  RunResult bad_result;
  const Status status = RunSync(**null, bad, &bad_result);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message().rfind("items[0]: ", 0), 0u) << status.message();

  StatusOr<std::vector<ServableStats>> stats = service->Statistics("null", 0);
  ASSERT_TRUE(stats.ok());
  ASSERT_EQ(stats->size(), 1u);
  const ServableStats& s = (*stats)[0];
  EXPECT_EQ(s.success.count, 1u);
  EXPECT_EQ(s.fail.count, 1u);
  EXPECT_EQ(s.inference_count, 20u);
  EXPECT_GE(s.execution_count, 2u);  // 16 + 4 at least
  uint64_t batched = 0;
  for (const ServableStats::BatchStat& b : s.batch_stats) batched += b.compute_infer.count * b.batch_size;
  EXPECT_EQ(batched, 20u);
  EXPECT_GT(s.last_inference_ms, 0u);
}

// Run to completion: a request that finds the null model idle is run and answered on the thread that calls Run,
// before Run returns (no hand-off to the batcher's worker), and counted; with max_inline_run_us 0 every batch runs
// on the worker. (Where `done` runs cannot tell the two apart: the last of the worker and the caller's own last
// step calls it, and with a null model that is often the caller.)
TEST_F(ServableTest, AnIdleCheapModelRunsOnTheCallingThreadUnlessRunToCompletionIsOff) {
  constexpr int kRequests = 20;
  for (const int64_t bound : {int64_t{100}, int64_t{0}}) {
    TempDir repo;
    WriteNullModel(repo.path(), "null");
    std::unique_ptr<InferenceService> service = Create(repo.path(), ModelControlMode::kNone, bound);
    ASSERT_NE(service, nullptr);
    StatusOr<std::shared_ptr<Servable>> null = service->Find("null", 0);
    ASSERT_TRUE(null.ok()) << null.status().ToString();
    int before_return_here = 0;
    for (int i = 0; i < kRequests; ++i) {  // one at a time: each finds the model idle
      std::atomic<bool> returned{false};
      std::promise<bool> answered;  // whether the answer came on this thread before Run returned
      std::future<bool> future = answered.get_future();
      RunResult result;
      Status status = InternalError("no answer");
      const std::thread::id caller = std::this_thread::get_id();
      (*null)->Run(ImagesRequest(png_, 2), &result, [&](Status s) {
        status = std::move(s);
        answered.set_value(!returned.load() && std::this_thread::get_id() == caller);
      });
      returned.store(true);
      ASSERT_EQ(future.wait_for(std::chrono::seconds(60)), std::future_status::ready);
      if (future.get()) ++before_return_here;
      ASSERT_TRUE(status.ok()) << status.ToString();
      ASSERT_EQ(result.scores, std::vector<float>(2 * kClasses, 0.0f));
    }
    const ServableStats stats = (*null)->Stats();
    EXPECT_EQ(stats.execution_count, static_cast<uint64_t>(kRequests));
    EXPECT_EQ(stats.inline_execution_count, bound > 0 ? kRequests : 0) << "max_inline_run_us " << bound;
    if (bound > 0) {
      EXPECT_EQ(before_return_here, kRequests);
    }
  }
}

TEST_F(ServableTest, RawPixelsGiveTheSameInputAsTheDecodedPng) {
  std::shared_ptr<Servable> lenet = StartLenet();
  ASSERT_NE(lenet, nullptr);
  for (size_t i = 0; i < 5; ++i) {
    StatusOr<DecodedImage> decoded = DecodeImage(png_[i].bytes, DecodeLimits{});
    ASSERT_TRUE(decoded.ok());
    ASSERT_EQ(decoded->channels(), 1);
    // The PNG's gray samples (Preprocess with scale 1 and no resize returns them exactly), sent as raw pixels:
    // both must give the model the same input, so the same output rows.
    std::vector<float> plane(static_cast<size_t>(decoded->width_px() * decoded->height_px()));
    PreprocessOptions identity;
    identity.color = ColorFormat::kGray;
    identity.target_height_px = decoded->height_px();
    identity.target_width_px = decoded->width_px();
    identity.scale = 1.0f;
    ASSERT_TRUE(Preprocess(*decoded, identity, plane.data()).ok());
    std::string pixels(plane.size(), '\0');
    for (size_t p = 0; p < plane.size(); ++p) pixels[p] = static_cast<char>(static_cast<uint8_t>(plane[p]));

    auto from_png = ImagesRequest(png_, i + 1);
    from_png->items.erase(from_png->items.begin(), from_png->items.begin() + static_cast<long>(i));
    auto from_pixels = std::make_shared<RunRequest>();
    from_pixels->items.push_back({ImageItem::Kind::kPixels, pixels, static_cast<int32_t>(decoded->height_px()),
                                  static_cast<int32_t>(decoded->width_px()), 1});
    RunResult a, b;
    ASSERT_TRUE(RunSync(*lenet, from_png, &a).ok());
    ASSERT_TRUE(RunSync(*lenet, from_pixels, &b).ok());
    EXPECT_EQ(a.scores, b.scores) << i;
  }
  auto wrong = std::make_shared<RunRequest>();
  wrong->items.push_back({ImageItem::Kind::kPixels, std::string(100, '\0'), 28, 28, 1});
  RunResult r;
  const Status status = RunSync(*lenet, wrong, &r);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "items[0]: raw pixels of 28x28x1 need 784 bytes, got 100");
}

TEST(OverlapPaysTest, OnlyWhenTheEngineRunLeavesACoreOrIsOneThread) {
  EXPECT_TRUE(OverlapPays(1, 2));   // lenet5_fashion here: one engine thread, the answers take the other core
  EXPECT_TRUE(OverlapPays(1, 1));   // one thread on one core: the answers cost their own time either way
  EXPECT_TRUE(OverlapPays(2, 4));   // a core is left free
  EXPECT_FALSE(OverlapPays(2, 2));  // OpenMP threads on every core: a third thread stalls their barriers
  EXPECT_FALSE(OverlapPays(0, 2));  // 0: all cores
  EXPECT_TRUE(OverlapPays(0, 1));   // all cores is one thread
}

TEST(ContiguousTensorItemsTest, OnlyBackToBackAlignedTensorsOfTheRightSize) {
  std::vector<float> buffer(4 * 3 + 1, 1.0f);
  const char* base = reinterpret_cast<const char*>(buffer.data());
  const auto request_of = [](std::vector<ImageItem> items) {
    RunRequest r;
    r.items = std::move(items);
    return r;
  };
  const auto view = [&](size_t offset_bytes, size_t bytes) {
    return std::string_view(base + offset_bytes, bytes);
  };
  using K = ImageItem::Kind;
  const RunRequest three =
      request_of({{K::kTensor, view(0, 12)}, {K::kTensor, view(12, 12)}, {K::kTensor, view(24, 12)}});
  EXPECT_EQ(ContiguousTensorItems(three, 3), buffer.data());
  EXPECT_EQ(ContiguousTensorItems(three, 2), nullptr);  // wrong size: copied (and rejected) the usual way
  EXPECT_EQ(ContiguousTensorItems(request_of({{K::kTensor, view(0, 12)}, {K::kTensor, view(24, 12)}}), 3),
            nullptr);
  EXPECT_EQ(ContiguousTensorItems(request_of({{K::kTensor, view(12, 12)}, {K::kTensor, view(0, 12)}}), 3),
            nullptr);
  EXPECT_EQ(ContiguousTensorItems(request_of({{K::kTensor, view(1, 12)}}), 3), nullptr);  // not float-aligned
  EXPECT_EQ(ContiguousTensorItems(request_of({{K::kEncoded, view(0, 12)}}), 3), nullptr);
  EXPECT_EQ(ContiguousTensorItems(request_of({}), 3), nullptr);
  EXPECT_EQ(ContiguousTensorItems(request_of({{K::kTensor, view(0, 12)}}), 3), buffer.data());
}

// One raw tensor of N images is read in place; the same images as separate (or misaligned) buffers are copied.
// Both must give the same rows as the PNGs they were made from.
TEST_F(ServableTest, TensorsReadInPlaceOrCopiedGiveTheSameRows) {
  std::shared_ptr<Servable> lenet = StartLenet();
  ASSERT_NE(lenet, nullptr);
  const Tensor input = ::cnnserve::testing::LoadFashionInputNpy();  // the exact model input of the PNGs
  constexpr size_t kImages = 20;
  constexpr size_t kBytes = 32 * 32 * sizeof(float);
  ASSERT_GE(static_cast<size_t>(input.dims()[0]), kImages);
  const std::string whole(reinterpret_cast<const char*>(input.data()), kImages * kBytes);
  std::vector<std::string> separate;
  std::string misaligned(kImages * kBytes + 1, '\0');
  std::memcpy(misaligned.data() + 1, whole.data(), whole.size());
  auto in_place = std::make_shared<RunRequest>();
  auto copied = std::make_shared<RunRequest>();
  auto shifted = std::make_shared<RunRequest>();
  separate.reserve(kImages);
  for (size_t i = 0; i < kImages; ++i) {
    separate.push_back(whole.substr(i * kBytes, kBytes));
    in_place->items.push_back({ImageItem::Kind::kTensor, std::string_view(whole).substr(i * kBytes, kBytes)});
    copied->items.push_back({ImageItem::Kind::kTensor, separate.back()});
    shifted->items.push_back(
        {ImageItem::Kind::kTensor, std::string_view(misaligned).substr(1 + i * kBytes, kBytes)});
  }
  ASSERT_NE(ContiguousTensorItems(*in_place, 32 * 32), nullptr);
  ASSERT_EQ(ContiguousTensorItems(*copied, 32 * 32), nullptr);
  ASSERT_EQ(ContiguousTensorItems(*shifted, 32 * 32), nullptr);
  RunResult a, b, c, d;
  ASSERT_TRUE(RunSync(*lenet, in_place, &a).ok());
  ASSERT_TRUE(RunSync(*lenet, copied, &b).ok());
  ASSERT_TRUE(RunSync(*lenet, shifted, &c).ok());
  ASSERT_TRUE(RunSync(*lenet, ImagesRequest(png_, kImages), &d).ok());
  EXPECT_EQ(a.scores, b.scores);
  EXPECT_EQ(a.scores, c.scores);
  EXPECT_EQ(a.scores, d.scores);
  // A tensor of the wrong size is still rejected by name, also among contiguous ones.
  auto short_one = std::make_shared<RunRequest>(*in_place);
  short_one->items[3].data = short_one->items[3].data.substr(0, kBytes - 4);
  RunResult e;
  const Status status = RunSync(*lenet, short_one, &e);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("items[3]: a tensor of 4092 bytes"), std::string::npos) << status.message();
}

// NaN and infinities are refused before any batch runs, in place or copied, naming the item and the value.
TEST_F(ServableTest, NonFiniteTensorValuesAreInvalidArgument) {
  std::shared_ptr<Servable> lenet = StartLenet();
  ASSERT_NE(lenet, nullptr);
  constexpr size_t kFloats = 32 * 32;
  for (const float bad : {std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::infinity()}) {
    std::vector<float> values(3 * kFloats, 0.5f);
    values[kFloats + 17] = bad;  // item 1, value 17
    const std::string_view whole(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
    auto request = std::make_shared<RunRequest>();
    for (size_t i = 0; i < 3; ++i) {
      request->items.push_back({ImageItem::Kind::kTensor, whole.substr(i * kFloats * 4, kFloats * 4)});
    }
    ASSERT_NE(ContiguousTensorItems(*request, kFloats), nullptr);  // the in-place path is checked too
    RunResult result;
    const Status status = RunSync(*lenet, request, &result);
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(status.message(), std::string("items[1]: value 17 of the tensor is ") +
                                    (std::isnan(bad) ? "NaN" : "infinite") + ": tensor values must be finite");
  }
  EXPECT_EQ(lenet->Stats().execution_count, 0u);
}

TEST_F(ServableTest, StatisticsCountExactly) {
  std::shared_ptr<Servable> lenet = StartLenet();
  ASSERT_NE(lenet, nullptr);
  for (size_t n : {1u, 3u, 7u}) {
    RunResult result;
    ASSERT_TRUE(RunSync(*lenet, ImagesRequest(png_, n), &result).ok());
    EXPECT_EQ(result.num_items, static_cast<int64_t>(n));
    EXPECT_GT(result.compute_us, 0);  // an engine batch ran
  }
  StatusOr<std::vector<ServableStats>> all = lenet_service_->Statistics("", 0);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);
  const ServableStats& s = (*all)[0];
  EXPECT_EQ(s.name, "lenet");
  EXPECT_EQ(s.version, 1);
  EXPECT_EQ(s.success.count, 3u);
  EXPECT_EQ(s.fail.count, 0u);
  EXPECT_EQ(s.inference_count, 11u);
  EXPECT_EQ(s.execution_count, 3u);  // sequential requests: one batch each
  EXPECT_EQ(s.preprocess.count, 3u);
  EXPECT_EQ(s.queue.count, 3u);
  ASSERT_EQ(s.batch_stats.size(), 3u);
  EXPECT_EQ(s.batch_stats[0].batch_size, 1);
  EXPECT_EQ(s.batch_stats[1].batch_size, 3);
  EXPECT_EQ(s.batch_stats[2].batch_size, 7);
  EXPECT_EQ(s.queue_depth, 0);
  EXPECT_EQ(lenet_service_->Statistics("nope", 0).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(lenet_service_->Statistics("lenet", 2).status().code(), StatusCode::kNotFound);
}

// A request its model's queue cannot take is refused before any image is decoded: through Servable::Run and
// through InferenceService::Infer (which asks before it hands the request to a decode worker). LeNet-5 with
// max_batch_size 1 and max_queue_size 2: three images are three tasks, more than an empty queue takes.
TEST_F(ServableTest, ARequestTheQueueRefusesIsNotDecoded) {
  const fs::path dir = CopyLenet(lenet_repo_.path(), "lenet");
  EditConfig(dir, "max_batch_size: 64", "max_batch_size: 1");
  EditConfig(dir, "preferred_batch_size: [8, 32]", "preferred_batch_size: [1]");
  EditConfig(dir, "dynamic_batching {", "dynamic_batching {\n  max_queue_size: 2");
  lenet_service_ = Create(lenet_repo_.path());
  ASSERT_NE(lenet_service_, nullptr);
  StatusOr<std::shared_ptr<Servable>> lenet = lenet_service_->Find("lenet", 0);
  ASSERT_TRUE(lenet.ok()) << lenet.status().ToString();
  const auto preprocess_count = [&] {
    StatusOr<std::vector<ServableStats>> stats = lenet_service_->Statistics("lenet", 0);
    return stats.ok() && stats->size() == 1 ? (*stats)[0].preprocess.count : ~uint64_t{0};
  };

  RunResult result;
  const Status refused = RunSync(**lenet, ImagesRequest(png_, 3), &result);
  EXPECT_EQ(refused.code(), StatusCode::kUnavailable) << refused.ToString();
  EXPECT_NE(refused.message().find("queue full: max_queue_size 2"), std::string::npos) << refused.ToString();
  EXPECT_EQ(preprocess_count(), 0u) << "the refused request was decoded";

  InferRequest request;
  request.model = "lenet";
  request.build_items = [this](const ServableInfo&, RunRequest* run) {
    for (size_t i = 0; i < 3; ++i) run->items.push_back({ImageItem::Kind::kEncoded, png_[i].bytes});
    return OkStatus();
  };
  std::promise<Status> answer;
  lenet_service_->Infer(std::move(request), std::make_shared<InferOutcome>(),
                        [&answer](Status status) { answer.set_value(std::move(status)); });
  std::future<Status> future = answer.get_future();
  ASSERT_EQ(future.wait_for(std::chrono::seconds(60)), std::future_status::ready);
  EXPECT_EQ(future.get().code(), StatusCode::kUnavailable);
  EXPECT_EQ(preprocess_count(), 0u) << "the refused request was decoded";

  // What the queue takes is decoded and run.
  ASSERT_TRUE(RunSync(**lenet, ImagesRequest(png_, 2), &result).ok());
  EXPECT_EQ(preprocess_count(), 1u);
}

TEST_F(ServableTest, LoadAndUnloadDoNotDisturbOtherModels) {
  TempDir repo;
  CopyLenet(repo.path(), "steady");
  CopyLenet(repo.path(), "moving");
  std::unique_ptr<InferenceService> service = Create(repo.path(), ModelControlMode::kExplicit);
  ASSERT_NE(service, nullptr);

  // Traffic on "steady" the whole time.
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::thread traffic([&] {
    while (!stop.load()) {
      StatusOr<std::shared_ptr<Servable>> steady = service->Find("steady", 0);
      if (!steady.ok()) {
        ++failed;
        continue;
      }
      RunResult result;
      (RunSync(**steady, ImagesRequest(png_, 4), &result).ok() ? ok : failed)++;
    }
  });

  ASSERT_TRUE(service->UnloadModel("moving").ok());
  EXPECT_TRUE(service->UnloadModel("moving").ok());  // idempotent
  const Status unloaded = service->Find("moving", 0).status();
  EXPECT_EQ(unloaded.code(), StatusCode::kUnavailable);
  EXPECT_EQ(unloaded.message(), "model \"moving\" is unavailable: unloaded");
  bool listed = false;
  for (const InferenceService::VersionRow& row : service->Index()) {
    if (row.name == "moving") {
      listed = true;
      EXPECT_EQ(row.state, "UNAVAILABLE");
      EXPECT_EQ(row.reason, "unloaded");
    }
  }
  EXPECT_TRUE(listed);

  ASSERT_TRUE(service->LoadModel("moving").ok());
  StatusOr<std::shared_ptr<Servable>> moving = service->Find("moving", 0);
  ASSERT_TRUE(moving.ok());
  RunResult result;
  EXPECT_TRUE(RunSync(**moving, ImagesRequest(png_, 2), &result).ok());

  // Reloading: a new servable serves; the old one is retired once nothing holds it, and released.
  std::weak_ptr<Servable> old = *moving;
  moving = NotFoundError("released by the test");
  ASSERT_TRUE(service->LoadModel("moving").ok());
  EXPECT_TRUE(old.expired());
  EXPECT_TRUE(service->Find("moving", 0).ok());

  EXPECT_EQ(service->LoadModel("absent").code(), StatusCode::kNotFound);
  EXPECT_EQ(service->LoadModel("../x").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(service->UnloadModel("absent").code(), StatusCode::kNotFound);
  // A broken config on reload keeps the loaded version serving.
  WriteFileBytes(repo.path() / "moving" / "config.pbtxt", "max_batch_size: [");
  EXPECT_EQ(service->LoadModel("moving").code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(service->Find("moving", 0).ok());

  stop.store(true);
  traffic.join();
  EXPECT_GT(ok.load(), 0);
  EXPECT_EQ(failed.load(), 0);
}

}  // namespace
}  // namespace cnnserve
