// EnsembleServable with fake member servables (test doubles of the Servable interface that answer fixed rows,
// fail, or hold their answer until the test releases it) and a FakeClock for member timeouts: decode once,
// preprocess once per distinct config (bit-identical to PreprocessImage), quorum, timeouts, member rows,
// agreement, concurrency, shutdown. The lead's integration tests run real models.
#include "server/ensemble/ensemble_servable.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <cstring>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "server/batching/fake_clock.h"
#include "server/preprocess/image_input.h"
#include "server/preprocess/preprocess.h"
#include "tests/server/preprocess/test_images.h"

namespace cnnserve {
namespace {

using Config = v1::EnsembleConfig;
constexpr int64_t kClasses = 3;

// A member servable. Behaviour per Run: answer at once with `rows` (row i % rows.size() for item i), fail with a
// status, or hold: keep the call until Release() answers it. Records every call.
class FakeMember final : public Servable {
 public:
  enum class Mode { kAnswer, kFail, kHold };
  struct Call {
    std::shared_ptr<const RunRequest> request;
    RunResult* result = nullptr;
    std::function<void(Status)> done;
    std::vector<std::vector<float>> inputs;  // each item's floats, copied at Run
    std::vector<const char*> item_data;      // where each item's bytes were
  };

  FakeMember(std::string name, std::vector<std::vector<float>> rows, std::optional<PreprocessOptions> preprocess,
             Dims dims = {1, 4, 4})
      : rows_(std::move(rows)) {
    info_.name = std::move(name);
    info_.version = 1;
    info_.platform = "onnx";
    info_.num_classes = rows_.empty() ? kClasses : static_cast<int64_t>(rows_.front().size());
    info_.item_input_dims = std::move(dims);
    info_.preprocess = std::move(preprocess);
    info_.max_batch_size = 8;
    info_.labels = {"a-" + info_.name, "b", "c"};
  }

  void set_mode(Mode mode, Status failure = OkStatus()) {
    std::lock_guard<std::mutex> lock(mu_);
    mode_ = mode;
    failure_ = std::move(failure);
  }
  void set_timings(int64_t queue_us, int64_t compute_us) {
    queue_us_ = queue_us;
    compute_us_ = compute_us;
  }
  ServableInfo& mutable_info() { return info_; }

  const ServableInfo& info() const override { return info_; }
  void Run(std::shared_ptr<const RunRequest> request, RunResult* result,
           std::function<void(Status)> done) override {
    Call call;
    call.request = request;
    call.result = result;
    int64_t size = 1;
    for (int64_t d : info_.item_input_dims) size *= d;
    Status invalid;
    for (size_t i = 0; i < request->items.size(); ++i) {
      const ImageItem& item = request->items[i];
      call.item_data.push_back(item.data.data());
      if (!invalid.ok()) continue;  // the first bad item is reported
      if (item.kind != ImageItem::Kind::kTensor) {
        invalid =
            InvalidArgumentError(request->ItemName(static_cast<int64_t>(i)) + ": the fake takes tensors only");
        continue;
      }
      if (item.data.size() != static_cast<size_t>(size) * sizeof(float)) {
        invalid = InvalidArgumentError(request->ItemName(static_cast<int64_t>(i)) + ": a tensor of " +
                                       std::to_string(item.data.size()) + " bytes; model " + info_.name +
                                       " takes " + std::to_string(size * 4));
        continue;
      }
      std::vector<float> floats(static_cast<size_t>(size));
      std::memcpy(floats.data(), item.data.data(), item.data.size());
      call.inputs.push_back(std::move(floats));
    }
    Mode mode;
    Status failure;
    {
      std::lock_guard<std::mutex> lock(mu_);
      mode = mode_;
      failure = failure_;
      ++runs_;
    }
    if (!invalid.ok()) {
      RecordCall(std::move(call));
      return done(invalid);
    }
    if (mode == Mode::kFail) {
      RecordCall(std::move(call));
      return done(failure);
    }
    if (mode == Mode::kHold) {
      call.done = std::move(done);
      RecordCall(std::move(call));
      return;
    }
    Fill(*request, result);
    RecordCall(std::move(call));
    done(OkStatus());
  }
  ServableStats Stats() const override { return {}; }
  Status Shutdown(int64_t) override { return OkStatus(); }
  Status CheckAdmission(int64_t items, int64_t deadline_us) override {
    std::lock_guard<std::mutex> lock(mu_);
    admission_checks_.push_back({items, deadline_us});
    return admission_;
  }
  void set_admission(Status status) {
    std::lock_guard<std::mutex> lock(mu_);
    admission_ = std::move(status);
  }
  // What ExpectedWorkMicros answers per item asked about (the queue's estimate of a real model).
  void set_work_per_item_us(int64_t micros) { work_per_item_us_ = micros; }
  int64_t ExpectedWorkMicros(int64_t items) const override { return items * work_per_item_us_.load(); }
  // Counts the items announced as coming while the handle lives.
  std::shared_ptr<void> ExpectIncoming(int64_t items) override {
    incoming_ += items;
    return std::shared_ptr<void>(nullptr, [this, items](void*) { incoming_ -= items; });
  }
  int64_t incoming() const { return incoming_.load(); }
  std::vector<std::pair<int64_t, int64_t>> admission_checks() const {
    std::lock_guard<std::mutex> lock(mu_);
    return admission_checks_;
  }

  int runs() const {
    std::lock_guard<std::mutex> lock(mu_);
    return runs_;
  }
  std::vector<Call> calls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }
  // Answers the held call `index` with `status` (rows filled when OK).
  void Release(size_t index, Status status = OkStatus()) {
    Call call;
    {
      std::lock_guard<std::mutex> lock(mu_);
      call = calls_.at(index);
      calls_.at(index).done = nullptr;
    }
    ASSERT_TRUE(call.done != nullptr);
    if (status.ok()) Fill(*call.request, call.result);
    call.done(status);
  }

 private:
  void RecordCall(Call call) {
    std::lock_guard<std::mutex> lock(mu_);
    calls_.push_back(std::move(call));
  }
  void Fill(const RunRequest& request, RunResult* result) const {
    result->model = info_.name;
    result->version = info_.version;
    result->num_classes = info_.num_classes;
    result->num_items = static_cast<int64_t>(request.items.size());
    result->probabilities.clear();
    for (size_t i = 0; i < request.items.size(); ++i) {
      const std::vector<float>& row = rows_[i % rows_.size()];
      result->probabilities.insert(result->probabilities.end(), row.begin(), row.end());
    }
    result->scores = result->probabilities;
    result->queue_us = queue_us_;
    result->compute_us = compute_us_;
  }

  ServableInfo info_;
  std::vector<std::vector<float>> rows_;
  int64_t queue_us_ = 0;
  int64_t compute_us_ = 0;
  mutable std::mutex mu_;
  Mode mode_ = Mode::kAnswer;
  Status failure_;
  int runs_ = 0;
  Status admission_;                                      // guarded by mu_
  std::vector<std::pair<int64_t, int64_t>> admission_checks_;  // guarded by mu_
  std::atomic<int64_t> work_per_item_us_{0};
  std::atomic<int64_t> incoming_{0};
  std::vector<Call> calls_;
};

PreprocessOptions Gray(int64_t side) {
  PreprocessOptions options;
  options.color = ColorFormat::kGray;
  options.target_height_px = side;
  options.target_width_px = side;
  return options;
}
PreprocessOptions Rgb(int64_t side, std::vector<float> mean = {}) {
  PreprocessOptions options;
  options.color = ColorFormat::kRgb;
  options.target_height_px = side;
  options.target_width_px = side;
  options.mean = std::move(mean);
  return options;
}

// Members by name; the resolver the ensemble gets. Members can be swapped or removed between Runs.
class Members {
 public:
  std::shared_ptr<FakeMember> Add(const std::string& name, std::vector<std::vector<float>> rows,
                                  std::optional<PreprocessOptions> preprocess = Gray(4)) {
    Dims dims = {1, 4, 4};
    if (preprocess.has_value()) dims = PreprocessedDims(*preprocess);
    auto member = std::make_shared<FakeMember>(name, std::move(rows), std::move(preprocess), dims);
    Put(name, member);
    return member;
  }
  void Put(const std::string& name, std::shared_ptr<Servable> servable) {
    std::lock_guard<std::mutex> lock(mu_);
    servables_[name] = std::move(servable);
  }
  void Remove(const std::string& name) {
    std::lock_guard<std::mutex> lock(mu_);
    servables_.erase(name);
  }
  int resolutions() const { return resolutions_.load(); }
  ServableResolver Resolver() {
    return [this](const std::string& model, int64_t version) -> StatusOr<std::shared_ptr<Servable>> {
      ++resolutions_;
      std::lock_guard<std::mutex> lock(mu_);
      const auto it = servables_.find(model);
      if (it == servables_.end()) return NotFoundError("model \"" + model + "\" is not loaded");
      if (version != 0 && version != it->second->info().version) {
        return NotFoundError("model \"" + model + "\" has no version " + std::to_string(version));
      }
      return it->second;
    };
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Servable>> servables_;
  std::atomic<int> resolutions_{0};
};

v1::ModelConfig EnsembleConfig(const std::vector<std::string>& members, Config::Strategy strategy,
                               int32_t quorum = 0, int64_t member_timeout_ms = 0,
                               const std::vector<float>& weights = {}) {
  v1::ModelConfig config;
  config.set_name("ens");
  config.set_platform("ensemble");
  Config* ensemble = config.mutable_ensemble();
  for (size_t i = 0; i < members.size(); ++i) {
    Config::Member* member = ensemble->add_members();
    member->set_model(members[i]);
    if (i < weights.size()) member->set_weight(weights[i]);
  }
  ensemble->set_strategy(strategy);
  ensemble->set_quorum(quorum);
  ensemble->set_member_timeout_ms(member_timeout_ms);
  return config;
}

// A Run's outcome, waitable.
struct Outcome {
  RunResult result;
  std::promise<Status> promise;
  std::future<Status> future = promise.get_future();
  std::atomic<int> calls{0};

  std::function<void(Status)> Done() {
    return [this](Status status) {
      if (calls.fetch_add(1) == 0) promise.set_value(std::move(status));
    };
  }
  bool Ready() { return future.wait_for(std::chrono::seconds(0)) == std::future_status::ready; }
  Status Wait() {
    if (future.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
      return InternalError("the Run never answered");
    }
    return future.get();
  }
};

std::shared_ptr<RunRequest> TensorRequest(int64_t items, int64_t floats_per_item, std::vector<float>& storage) {
  storage.assign(static_cast<size_t>(items * floats_per_item), 0.0f);
  for (size_t i = 0; i < storage.size(); ++i) storage[i] = static_cast<float>(i) * 0.25f;
  auto request = std::make_shared<RunRequest>();
  for (int64_t i = 0; i < items; ++i) {
    ImageItem item;
    item.kind = ImageItem::Kind::kTensor;
    item.data = std::string_view(reinterpret_cast<const char*>(storage.data() + i * floats_per_item),
                                 static_cast<size_t>(floats_per_item) * sizeof(float));
    request->items.push_back(item);
  }
  return request;
}

class EnsembleServableTest : public ::testing::Test {
 protected:
  std::unique_ptr<EnsembleServable> Make(const v1::ModelConfig& config, std::vector<std::string> labels = {}) {
    EnsembleServableOptions options;
    options.clock = &clock_;
    StatusOr<std::unique_ptr<EnsembleServable>> servable =
        EnsembleServable::Create(config, std::move(labels), members_.Resolver(), options);
    EXPECT_TRUE(servable.ok()) << servable.status().ToString();
    return servable.ok() ? *std::move(servable) : nullptr;
  }
  Status CreateError(const v1::ModelConfig& config) {
    EnsembleServableOptions options;
    options.clock = &clock_;
    StatusOr<std::unique_ptr<EnsembleServable>> servable =
        EnsembleServable::Create(config, {}, members_.Resolver(), options);
    return servable.ok() ? OkStatus() : servable.status();
  }
  // Runs `request` and waits for its answer (members that answer at once).
  Status RunAndWait(EnsembleServable& servable, std::shared_ptr<const RunRequest> request, Outcome& outcome) {
    servable.Run(std::move(request), &outcome.result, outcome.Done());
    return outcome.Wait();
  }

  FakeClock clock_{1'000'000};
  Members members_;
  std::vector<float> tensor_storage_;
};

// --- Create.

TEST_F(EnsembleServableTest, CreateRejectsBadConfigsNamingTheField) {
  members_.Add("m0", {{0.5f, 0.25f, 0.25f}});
  members_.Add("m1", {{0.25f, 0.5f, 0.25f}});
  members_.Add("two", {{0.5f, 0.5f}});
  auto nested = std::make_shared<FakeMember>("inner", std::vector<std::vector<float>>{{1, 0, 0}}, Gray(4));
  nested->mutable_info().platform = "ensemble";
  members_.Put("inner", nested);

  struct Case {
    std::string name;
    v1::ModelConfig config;
    StatusCode code;
    std::string message;
  };
  std::vector<Case> cases;
  auto with = [](v1::ModelConfig config, const std::function<void(v1::ModelConfig&)>& edit) {
    edit(config);
    return config;
  };
  const v1::ModelConfig good = EnsembleConfig({"m0", "m1"}, Config::SOFT_MEAN);
  cases.push_back({"NoMembers", EnsembleConfig({}, Config::SOFT_MEAN), StatusCode::kInvalidArgument,
                   "ensemble \"ens\": ensemble.members is empty"});
  cases.push_back({"WrongPlatform", with(good, [](v1::ModelConfig& c) { c.set_platform("onnx"); }),
                   StatusCode::kInvalidArgument, "platform \"onnx\" is not \"ensemble\""});
  cases.push_back({"QuorumAboveMembers", EnsembleConfig({"m0", "m1"}, Config::SOFT_MEAN, 3),
                   StatusCode::kInvalidArgument, "ensemble.quorum 3 must be in [0, 2]"});
  cases.push_back({"NegativeQuorum", EnsembleConfig({"m0", "m1"}, Config::SOFT_MEAN, -1),
                   StatusCode::kInvalidArgument, "ensemble.quorum -1 must be in [0, 2]"});
  cases.push_back({"NegativeTimeout", EnsembleConfig({"m0"}, Config::SOFT_MEAN, 0, -5),
                   StatusCode::kInvalidArgument, "ensemble.member_timeout_ms -5 must be in [0, 86400000]"});
  cases.push_back({"NegativeWeight", EnsembleConfig({"m0", "m1"}, Config::WEIGHTED_SOFT, 0, 0, {1.0f, -2.0f}),
                   StatusCode::kInvalidArgument, "ensemble.members[1].weight -2 must be finite and >= 0"});
  cases.push_back({"NaNWeight", EnsembleConfig({"m0"}, Config::WEIGHTED_SOFT, 0, 0, {std::nanf("")}),
                   StatusCode::kInvalidArgument, "ensemble.members[0].weight nan must be finite"});
  cases.push_back({"UnknownStrategy", EnsembleConfig({"m0"}, static_cast<Config::Strategy>(42)),
                   StatusCode::kInvalidArgument, "ensemble.strategy 42 is not one of"});
  cases.push_back({"EmptyModelName", EnsembleConfig({"m0", ""}, Config::SOFT_MEAN), StatusCode::kInvalidArgument,
                   "ensemble.members[1].model is empty"});
  cases.push_back({"Itself", EnsembleConfig({"m0", "ens"}, Config::SOFT_MEAN), StatusCode::kInvalidArgument,
                   "ensemble.members[1].model \"ens\" is the ensemble itself"});
  cases.push_back(
      {"NegativeVersion",
       with(good, [](v1::ModelConfig& c) { c.mutable_ensemble()->mutable_members(0)->set_version(-1); }),
       StatusCode::kInvalidArgument, "ensemble.members[0].version -1 must be >= 0"});
  cases.push_back(
      {"Nested", EnsembleConfig({"m0", "inner"}, Config::SOFT_MEAN), StatusCode::kInvalidArgument,
       "ensemble.members[1].model \"inner\" is an ensemble; ensembles cannot be members of ensembles"});
  cases.push_back({"ClassCountsDiffer", EnsembleConfig({"m0", "two"}, Config::SOFT_MEAN),
                   StatusCode::kInvalidArgument,
                   "ensemble.members[1].model \"two\" has 2 classes but ensemble.members[0] \"m0\" has 3"});
  cases.push_back({"UnknownMember", EnsembleConfig({"m0", "nope"}, Config::SOFT_MEAN), StatusCode::kNotFound,
                   "ensemble \"ens\": ensemble.members[1] \"nope\": model \"nope\" is not loaded"});
  cases.push_back(
      {"UnknownMemberVersion",
       with(good, [](v1::ModelConfig& c) { c.mutable_ensemble()->mutable_members(1)->set_version(7); }),
       StatusCode::kNotFound, "ensemble.members[1] \"m1\": model \"m1\" has no version 7"});
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const Status status = CreateError(c.config);
    EXPECT_EQ(status.code(), c.code) << status.ToString();
    EXPECT_NE(status.message().find(c.message), std::string::npos) << status.ToString();
  }
}

TEST_F(EnsembleServableTest, InfoComesFromConfigAndMembers) {
  std::shared_ptr<FakeMember> m0 = members_.Add("m0", {{0.5f, 0.25f, 0.25f}}, Gray(4));
  std::shared_ptr<FakeMember> m1 = members_.Add("m1", {{0.5f, 0.25f, 0.25f}}, Rgb(6));
  m0->mutable_info().max_batch_size = 8;
  m1->mutable_info().max_batch_size = 4;
  v1::ModelConfig config = EnsembleConfig({"m0", "m1"}, Config::STRATEGY_UNSPECIFIED);
  std::unique_ptr<EnsembleServable> servable = Make(config);
  ASSERT_NE(servable, nullptr);
  const ServableInfo& info = servable->info();
  EXPECT_EQ(info.name, "ens");
  EXPECT_EQ(info.version, 1);
  EXPECT_EQ(info.platform, "ensemble");
  EXPECT_EQ(info.num_classes, 3);
  EXPECT_EQ(info.labels, m0->info().labels);  // none given: the first member's
  EXPECT_EQ(info.max_batch_size, 4);
  EXPECT_EQ(info.item_input_dims, (Dims{1, 4, 4}));
  ASSERT_TRUE(info.preprocess.has_value());
  EXPECT_TRUE(*info.preprocess == Gray(4));
  EXPECT_EQ(servable->strategy(), Config::SOFT_MEAN);  // unspecified means SOFT_MEAN
  EXPECT_EQ(servable->quorum(), 0);

  config.set_max_batch_size(2);
  servable = Make(config, {"x", "y", "z"});
  ASSERT_NE(servable, nullptr);
  EXPECT_EQ(servable->info().max_batch_size, 2);
  EXPECT_EQ(servable->info().labels, (std::vector<std::string>{"x", "y", "z"}));
  EXPECT_EQ(servable->Stats().platform, "ensemble");
}

// --- Inputs: decode once, preprocess once per distinct config, tensors copied once.

TEST_F(EnsembleServableTest, DecodesOnceAndPreprocessesOncePerDistinctConfig) {
  // m0 and m1 share a preprocessing (gray 4x4); m2 differs (RGB 6x6 with a mean); m3 equals m2.
  std::shared_ptr<FakeMember> m0 = members_.Add("m0", {{0.5f, 0.25f, 0.25f}}, Gray(4));
  std::shared_ptr<FakeMember> m1 = members_.Add("m1", {{0.5f, 0.25f, 0.25f}}, Gray(4));
  std::shared_ptr<FakeMember> m2 = members_.Add("m2", {{0.5f, 0.25f, 0.25f}}, Rgb(6, {0.5f}));
  std::shared_ptr<FakeMember> m3 = members_.Add("m3", {{0.5f, 0.25f, 0.25f}}, Rgb(6, {0.5f}));
  std::unique_ptr<EnsembleServable> servable = Make(EnsembleConfig({"m0", "m1", "m2", "m3"}, Config::SOFT_MEAN));
  ASSERT_NE(servable, nullptr);

  // Item 0: a PNG; item 1: raw RGB pixels; item 2: a JPEG.
  const cv::Mat pattern = testing::PatternBgr(11, 7);
  const std::string png = testing::EncodePng(pattern);
  const std::string jpeg = testing::EncodeJpeg(testing::PatternBgr(9, 13));
  std::string pixels(static_cast<size_t>(5 * 3 * 3), '\0');
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<char>(i * 17);
  auto request = std::make_shared<RunRequest>();
  request->items = {ImageItem{ImageItem::Kind::kEncoded, png},
                    ImageItem{ImageItem::Kind::kPixels, pixels, 5, 3, 3},
                    ImageItem{ImageItem::Kind::kEncoded, jpeg}};
  Outcome outcome;
  ASSERT_TRUE(RunAndWait(*servable, request, outcome).ok());

  // What each member must receive: exactly PreprocessImage of the decoded image with its own options.
  const DecodeLimits limits;
  std::vector<DecodedImage> decoded = {*DecodeImage(png, limits), *ImageFromPixels(pixels, 5, 3, 3, limits),
                                       *DecodeImage(jpeg, limits)};
  for (const std::shared_ptr<FakeMember>& member : {m0, m1, m2, m3}) {
    SCOPED_TRACE(member->info().name);
    ASSERT_EQ(member->runs(), 1);
    const FakeMember::Call call = member->calls().at(0);
    ASSERT_EQ(call.inputs.size(), 3u);
    for (size_t i = 0; i < 3; ++i) {
      std::vector<float> expected(call.inputs[i].size());
      ASSERT_TRUE(PreprocessImage(decoded[i], *member->info().preprocess, expected.data()).ok());
      EXPECT_EQ(std::memcmp(call.inputs[i].data(), expected.data(), expected.size() * sizeof(float)), 0)
          << "item " << i;
    }
  }
  // One buffer per distinct preprocessing: members with equal options read the same bytes, the others not.
  const auto data = [](const std::shared_ptr<FakeMember>& m) { return m->calls().at(0).item_data; };
  EXPECT_EQ(data(m0), data(m1));
  EXPECT_EQ(data(m2), data(m3));
  EXPECT_NE(data(m0)[0], data(m2)[0]);
  EXPECT_GT(outcome.result.preprocess_us, -1);
}

TEST_F(EnsembleServableTest, TensorsAreCopiedOnceAndSentToEveryMember) {
  std::shared_ptr<FakeMember> m0 = members_.Add("m0", {{0.5f, 0.25f, 0.25f}}, Gray(4));
  std::shared_ptr<FakeMember> m1 = members_.Add("m1", {{0.5f, 0.25f, 0.25f}}, Rgb(6));
  std::shared_ptr<FakeMember> m2 = members_.Add("m2", {{0.5f, 0.25f, 0.25f}}, Gray(4));
  std::unique_ptr<EnsembleServable> servable = Make(EnsembleConfig({"m0", "m1", "m2"}, Config::SOFT_MEAN, 2));
  ASSERT_NE(servable, nullptr);
  auto request = TensorRequest(2, 16, tensor_storage_);  // 1x4x4: m1 (3x6x6) rejects it
  Outcome outcome;
  ASSERT_TRUE(RunAndWait(*servable, request, outcome).ok());
  for (const std::shared_ptr<FakeMember>& member : {m0, m2}) {
    const FakeMember::Call call = member->calls().at(0);
    ASSERT_EQ(call.inputs.size(), 2u);
    for (size_t i = 0; i < 2; ++i) {
      EXPECT_EQ(std::memcmp(call.inputs[i].data(), tensor_storage_.data() + i * 16, 16 * sizeof(float)), 0);
      EXPECT_NE(call.item_data[i], request->items[i].data.data());  // a copy that outlives the caller's bytes
    }
  }
  EXPECT_EQ(m0->calls().at(0).item_data, m2->calls().at(0).item_data);  // one copy for all members
  EXPECT_EQ(outcome.result.members_answered, 2);
  EXPECT_EQ(outcome.result.members[1].status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(outcome.result.members[1].status.message().find("items[0]: a tensor of 64 bytes"), std::string::npos);
}

TEST_F(EnsembleServableTest, UndecodableImageFailsOnceWithoutRunningMembers) {
  std::shared_ptr<FakeMember> m0 = members_.Add("m0", {{0.5f, 0.25f, 0.25f}});
  std::shared_ptr<FakeMember> m1 = members_.Add("m1", {{0.5f, 0.25f, 0.25f}});
  std::unique_ptr<EnsembleServable> servable = Make(EnsembleConfig({"m0", "m1"}, Config::SOFT_MEAN));
  ASSERT_NE(servable, nullptr);
  const std::string png = testing::EncodePng(testing::PatternBgr(4, 4));
  auto request = std::make_shared<RunRequest>();
  request->items = {ImageItem{ImageItem::Kind::kEncoded, png},
                    ImageItem{ImageItem::Kind::kEncoded, "definitely not an image"}};
  request->item_name = [](int64_t i) { return "inputs[" + std::to_string(i) + "].image"; };
  Outcome outcome;
  const Status status = RunAndWait(*servable, request, outcome);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message().rfind("inputs[1].image: ", 0), 0u) << status.ToString();
  EXPECT_EQ(outcome.calls.load(), 1);
  EXPECT_EQ(m0->runs(), 0);
  EXPECT_EQ(m1->runs(), 0);
  EXPECT_EQ(servable->Stats().fail.count, 1u);
}

TEST_F(EnsembleServableTest, NonFiniteTensorFailsOnceWithoutRunningMembers) {
  std::shared_ptr<FakeMember> m0 = members_.Add("m0", {{0.5f, 0.25f, 0.25f}}, Gray(4));
  std::shared_ptr<FakeMember> m1 = members_.Add("m1", {{0.5f, 0.25f, 0.25f}}, Gray(4));
  std::unique_ptr<EnsembleServable> servable = Make(EnsembleConfig({"m0", "m1"}, Config::SOFT_MEAN));
  ASSERT_NE(servable, nullptr);
  auto request = TensorRequest(2, 16, tensor_storage_);
  tensor_storage_[16 + 5] = std::numeric_limits<float>::infinity();  // item 1, value 5
  Outcome outcome;
  const Status status = RunAndWait(*servable, request, outcome);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message().rfind("items[1]: value 5 of the tensor is infinite", 0), 0u) << status.ToString();
  EXPECT_EQ(m0->runs(), 0);
  EXPECT_EQ(m1->runs(), 0);
}

// Overload: members that cannot take the request now are asked before anything is decoded; when the quorum is out
// of reach the request is refused at once with UNAVAILABLE naming them, and no member runs.
TEST_F(EnsembleServableTest, RefusedAtOnceWhenTooFewMembersCanAdmit) {
  std::shared_ptr<FakeMember> m0 = members_.Add("m0", {{0.5f, 0.25f, 0.25f}});
  std::shared_ptr<FakeMember> m1 = members_.Add("m1", {{0.5f, 0.25f, 0.25f}});
  std::shared_ptr<FakeMember> m2 = members_.Add("m2", {{0.5f, 0.25f, 0.25f}});
  std::unique_ptr<EnsembleServable> servable = Make(EnsembleConfig({"m0", "m1", "m2"}, Config::SOFT_MEAN, 2));
  ASSERT_NE(servable, nullptr);
  m1->set_admission(UnavailableError("queue full: max_queue_size 4 tasks"));
  m2->set_admission(UnavailableError("overloaded: the 40 images ahead would take about 90 ms"));
  const std::string png = testing::EncodePng(testing::PatternBgr(4, 4));
  auto request = std::make_shared<RunRequest>();
  request->items = {ImageItem{ImageItem::Kind::kEncoded, png}, ImageItem{ImageItem::Kind::kEncoded, "not decoded"}};
  request->deadline_us = clock_.NowMicros() + 50'000;
  Outcome outcome;
  const Status status = RunAndWait(*servable, request, outcome);
  EXPECT_EQ(status.code(), StatusCode::kUnavailable);
  EXPECT_EQ(status.message().rfind("ensemble \"ens\": 1 of 3 members could take the request now (quorum 2); \"m1\"", 0), 0u)
      << status.ToString();
  EXPECT_NE(status.message().find("queue full"), std::string::npos) << status.ToString();
  EXPECT_NE(status.message().find("overloaded"), std::string::npos) << status.ToString();
  EXPECT_EQ(m0->runs() + m1->runs() + m2->runs(), 0);
  // Each member was asked for both items with the request's deadline.
  EXPECT_EQ(m0->admission_checks(), (std::vector<std::pair<int64_t, int64_t>>{{2, request->deadline_us}}));
  // The ensemble's own admission check (what the service asks before it queues a decode) says the same.
  const Status checked = servable->CheckAdmission(2, request->deadline_us);
  EXPECT_EQ(checked.code(), StatusCode::kUnavailable);
  EXPECT_EQ(checked.message(), status.message());

  // With one member refusing, the quorum of 2 is still reachable: the other two run, the third is reported.
  m2->set_admission(OkStatus());
  EXPECT_TRUE(servable->CheckAdmission(2, request->deadline_us).ok());
  request->items[1] = request->items[0];
  Outcome second;
  ASSERT_TRUE(RunAndWait(*servable, request, second).ok());
  EXPECT_EQ(m0->runs(), 1);
  EXPECT_EQ(m1->runs(), 0);
  EXPECT_EQ(m2->runs(), 1);
  EXPECT_EQ(second.result.members_answered, 2);
  EXPECT_EQ(second.result.members[1].status.code(), StatusCode::kUnavailable);
}

// Members take turns on the same compute lanes, so each member's queue alone underestimates the wait: admission
// adds up the members' expected work and refuses at once when the sum misses the deadline, though every member
// alone would admit the request.
TEST_F(EnsembleServableTest, RefusedAtOnceWhenTheMembersWorkTogetherMissesTheDeadline) {
  std::shared_ptr<FakeMember> m0 = members_.Add("m0", {{0.5f, 0.25f, 0.25f}});
  std::shared_ptr<FakeMember> m1 = members_.Add("m1", {{0.5f, 0.25f, 0.25f}});
  std::unique_ptr<EnsembleServable> servable = Make(EnsembleConfig({"m0", "m1"}, Config::SOFT_MEAN, 0));
  ASSERT_NE(servable, nullptr);
  m0->set_work_per_item_us(15'000);
  m1->set_work_per_item_us(15'000);
  // 2 items: 30 ms per member, 60 ms together; a deadline 50 ms away is met by each alone, not by both.
  const int64_t deadline_us = clock_.NowMicros() + 50'000;
  EXPECT_EQ(servable->ExpectedWorkMicros(2), 60'000);
  const Status refused = servable->CheckAdmission(2, deadline_us);
  EXPECT_EQ(refused.code(), StatusCode::kUnavailable);
  EXPECT_EQ(refused.message(),
            "ensemble \"ens\" is overloaded: its members' queues, which share the compute lanes, hold about 60 ms of "
            "work with this request, past the deadline in 50 ms; retry later or with a longer deadline");
  auto request = TensorRequest(2, 16, tensor_storage_);
  request->deadline_us = deadline_us;
  Outcome outcome;
  EXPECT_EQ(RunAndWait(*servable, request, outcome).code(), StatusCode::kUnavailable);
  EXPECT_EQ(m0->runs() + m1->runs(), 0);
  // With 70 ms left both fit; with no deadline nothing is refused for its wait.
  EXPECT_TRUE(servable->CheckAdmission(2, clock_.NowMicros() + 70'000).ok());
  EXPECT_TRUE(servable->CheckAdmission(2, 0).ok());
  request->deadline_us = clock_.NowMicros() + 70'000;
  Outcome admitted;
  EXPECT_TRUE(RunAndWait(*servable, request, admitted).ok());
  EXPECT_EQ(m0->runs() + m1->runs(), 2);
}

// A request admitted and still being decoded is announced to every member, for as long as its handle lives.
TEST_F(EnsembleServableTest, IncomingItemsAreAnnouncedToEveryMember) {
  std::shared_ptr<FakeMember> m0 = members_.Add("m0", {{0.5f, 0.25f, 0.25f}});
  std::shared_ptr<FakeMember> m1 = members_.Add("m1", {{0.5f, 0.25f, 0.25f}});
  std::unique_ptr<EnsembleServable> servable = Make(EnsembleConfig({"m0", "m1"}, Config::SOFT_MEAN, 0));
  ASSERT_NE(servable, nullptr);
  std::shared_ptr<void> first = servable->ExpectIncoming(4);
  std::shared_ptr<void> second = servable->ExpectIncoming(3);
  EXPECT_EQ(m0->incoming(), 7);
  EXPECT_EQ(m1->incoming(), 7);
  first.reset();
  EXPECT_EQ(m0->incoming(), 3);
  EXPECT_EQ(m1->incoming(), 3);
  second.reset();
  EXPECT_EQ(m0->incoming() + m1->incoming(), 0);
}

TEST_F(EnsembleServableTest, MemberWithoutImagePreprocessingDoesNotAnswerImages) {
  members_.Add("m0", {{0.5f, 0.25f, 0.25f}}, Gray(4));
  std::shared_ptr<FakeMember> tensors_only = members_.Add("t", {{0.5f, 0.25f, 0.25f}}, std::nullopt);
  std::unique_ptr<EnsembleServable> servable = Make(EnsembleConfig({"m0", "t"}, Config::SOFT_MEAN, 1));
  ASSERT_NE(servable, nullptr);
  std::string pixels(16, '\x40');
  auto request = std::make_shared<RunRequest>();
  request->items = {ImageItem{ImageItem::Kind::kPixels, pixels, 4, 4, 1}};
  Outcome outcome;
  ASSERT_TRUE(RunAndWait(*servable, request, outcome).ok());
  EXPECT_EQ(tensors_only->runs(), 0);
  EXPECT_EQ(outcome.result.members_answered, 1);
  EXPECT_EQ(outcome.result.members[1].status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(outcome.result.members[1].status.message().find("items[0]: model \"t\" has no image preprocessing"),
            std::string::npos);
}

// --- Results.

TEST_F(EnsembleServableTest, CombinesMemberRowsPerItemWithAgreementAndMemberRows) {
  // Item 0: tops 0, 0, 1 -> ensemble 0 (agreement 2/3). Item 1 (second rows): tops 2, 2, 2 -> agreement 1.
  members_.Add("m0", {{0.5f, 0.25f, 0.25f}, {0.125f, 0.125f, 0.75f}});
  members_.Add("m1", {{0.625f, 0.25f, 0.125f}, {0.25f, 0.25f, 0.5f}});
  members_.Add("m2", {{0.25f, 0.5f, 0.25f}, {0.0f, 0.25f, 0.75f}});
  std::unique_ptr<EnsembleServable> servable = Make(EnsembleConfig({"m0", "m1", "m2"}, Config::SOFT_MEAN));
  ASSERT_NE(servable, nullptr);
  auto request = TensorRequest(2, 16, tensor_storage_);
  request->want_member_results = true;
  Outcome outcome;
  ASSERT_TRUE(RunAndWait(*servable, request, outcome).ok());
  const RunResult& r = outcome.result;
  EXPECT_EQ(r.model, "ens");
  EXPECT_EQ(r.version, 1);
  EXPECT_EQ(r.num_items, 2);
  EXPECT_EQ(r.num_classes, 3);
  EXPECT_EQ(r.members_answered, 3);
  EXPECT_EQ(r.members_total, 3);
  const std::vector<float> expected_scores = {1.375f / 3, 1.0f / 3, 0.625f / 3, 0.375f / 3, 0.625f / 3, 2.0f / 3};
  ASSERT_EQ(r.scores.size(), expected_scores.size());
  for (size_t i = 0; i < expected_scores.size(); ++i) EXPECT_NEAR(r.scores[i], expected_scores[i], 1e-6);
  EXPECT_EQ(r.tie_break, (std::vector<float>{1.375f, 1.0f, 0.625f, 0.375f, 0.625f, 2.0f}));
  ASSERT_EQ(r.agreement.size(), 2u);
  EXPECT_NEAR(r.agreement[0], 2.0 / 3, 1e-6);
  EXPECT_FLOAT_EQ(r.agreement[1], 1.0f);
  // RunResult::Ranked orders the ensemble rows.
  const std::vector<ScoredClass> ranked = r.Ranked(1, 10);
  ASSERT_EQ(ranked.size(), 3u);
  EXPECT_EQ(ranked[0].index, 2);
  EXPECT_EQ(ranked[1].index, 1);
  EXPECT_EQ(ranked[2].index, 0);
  // Member rows in config order.
  ASSERT_EQ(r.members.size(), 3u);
  EXPECT_EQ(r.members[0].model, "m0");
  EXPECT_EQ(r.members[0].version, 1);
  EXPECT_TRUE(r.members[0].status.ok());
  EXPECT_EQ(r.members[0].probabilities, (std::vector<float>{0.5f, 0.25f, 0.25f, 0.125f, 0.125f, 0.75f}));
  EXPECT_EQ(r.members[2].probabilities, (std::vector<float>{0.25f, 0.5f, 0.25f, 0.0f, 0.25f, 0.75f}));

  // Without want_member_results: statuses, no rows.
  request->want_member_results = false;
  Outcome again;
  ASSERT_TRUE(RunAndWait(*servable, request, again).ok());
  ASSERT_EQ(again.result.members.size(), 3u);
  for (const MemberResult& m : again.result.members) EXPECT_TRUE(m.probabilities.empty());
}

TEST_F(EnsembleServableTest, RankedBreaksVoteTiesBySummedProbabilityThenIndex) {
  // HARD_MAJORITY: one vote for class 0, one for class 1; summed probability favours class 1.
  members_.Add("m0", {{0.5f, 0.375f, 0.125f}});
  members_.Add("m1", {{0.125f, 0.75f, 0.125f}});
  std::unique_ptr<EnsembleServable> servable = Make(EnsembleConfig({"m0", "m1"}, Config::HARD_MAJORITY));
  ASSERT_NE(servable, nullptr);
  Outcome outcome;
  ASSERT_TRUE(RunAndWait(*servable, TensorRequest(1, 16, tensor_storage_), outcome).ok());
  const std::vector<ScoredClass> ranked = outcome.result.Ranked(0, 3);
  ASSERT_EQ(ranked.size(), 3u);
  EXPECT_EQ(ranked[0].index, 1);
  EXPECT_EQ(ranked[1].index, 0);
  EXPECT_EQ(ranked[2].index, 2);
  EXPECT_FLOAT_EQ(ranked[0].score, 1.0f);
  EXPECT_FLOAT_EQ(ranked[0].probability, 0.5f);
  EXPECT_FLOAT_EQ(outcome.result.agreement[0], 0.5f);
}

TEST_F(EnsembleServableTest, WeightsReachTheVote) {
  members_.Add("m0", {{0.75f, 0.25f, 0.0f}});
  members_.Add("m1", {{0.25f, 0.75f, 0.0f}});
  std::unique_ptr<EnsembleServable> servable =
      Make(EnsembleConfig({"m0", "m1"}, Config::WEIGHTED_SOFT, 0, 0, {3.0f, 0.0f}));  // 0 means 1
  ASSERT_NE(servable, nullptr);
  Outcome outcome;
  ASSERT_TRUE(RunAndWait(*servable, TensorRequest(1, 16, tensor_storage_), outcome).ok());
  EXPECT_NEAR(outcome.result.probabilities[0], 0.625, 1e-6);
  EXPECT_NEAR(outcome.result.probabilities[1], 0.375, 1e-6);
  EXPECT_FLOAT_EQ(outcome.result.members[0].weight, 3.0f);
  EXPECT_FLOAT_EQ(outcome.result.members[1].weight, 1.0f);
}

TEST_F(EnsembleServableTest, TimingsAreTheLongestQueueAndSummedCompute) {
  members_.Add("m0", {{0.5f, 0.25f, 0.25f}})->set_timings(100, 1000);
  members_.Add("m1", {{0.5f, 0.25f, 0.25f}})->set_timings(300, 2000);
  std::unique_ptr<EnsembleServable> servable = Make(EnsembleConfig({"m0", "m1"}, Config::SOFT_MEAN));
  ASSERT_NE(servable, nullptr);
  Outcome outcome;
  ASSERT_TRUE(RunAndWait(*servable, TensorRequest(1, 16, tensor_storage_), outcome).ok());
  EXPECT_EQ(outcome.result.queue_us, 300);
  EXPECT_EQ(outcome.result.compute_us, 3000);
}

// --- Quorum and failures.

TEST_F(EnsembleServableTest, QuorumMetWithAFailedMemberSaysSo) {
  members_.Add("m0", {{0.5f, 0.25f, 0.25f}});
  members_.Add("m1", {{0.5f, 0.25f, 0.25f}})
      ->set_mode(FakeMember::Mode::kFail, UnavailableError("queue full (max_queue_size 4)"));
  members_.Add("m2", {{0.25f, 0.5f, 0.25f}});
  std::unique_ptr<EnsembleServable> servable = Make(EnsembleConfig({"m0", "m1", "m2"}, Config::SOFT_MEAN, 2));
  ASSERT_NE(servable, nullptr);
  Outcome outcome;
  ASSERT_TRUE(RunAndWait(*servable, TensorRequest(1, 16, tensor_storage_), outcome).ok());
  const RunResult& r = outcome.result;
  EXPECT_EQ(r.members_answered, 2);
  EXPECT_EQ(r.members_total, 3);
  EXPECT_EQ(r.members[1].status, UnavailableError("queue full (max_queue_size 4)"));
  // Built from m0 and m2 only: mean [0.375, 0.375, 0.25], agreement 1 of 2.
  EXPECT_NEAR(r.probabilities[0], 0.375, 1e-6);
  EXPECT_NEAR(r.probabilities[2], 0.25, 1e-6);
  EXPECT_FLOAT_EQ(r.agreement[0], 0.5f);
}

TEST_F(EnsembleServableTest, QuorumNotMetNamesEveryFailedMember) {
  members_.Add("m0", {{0.5f, 0.25f, 0.25f}});
  members_.Add("m1", {{0.5f, 0.25f, 0.25f}})->set_mode(FakeMember::Mode::kFail, UnavailableError("queue full"));
  members_.Add("m2", {{0.5f, 0.25f, 0.25f}})->set_mode(FakeMember::Mode::kFail, InternalError("engine failure"));
  std::unique_ptr<EnsembleServable> servable = Make(EnsembleConfig({"m0", "m1", "m2"}, Config::BORDA, 2));
  ASSERT_NE(servable, nullptr);
  Outcome outcome;
  const Status status = RunAndWait(*servable, TensorRequest(1, 16, tensor_storage_), outcome);
  EXPECT_EQ(status, UnavailableError("ensemble \"ens\": 1 of 3 members answered (quorum 2); \"m1\" version 1: "
                                     "UNAVAILABLE: queue full; \"m2\" version 1: INTERNAL: engine failure"));
  EXPECT_EQ(outcome.result.members_answered, 1);
  EXPECT_TRUE(outcome.result.scores.empty());
  const ServableStats stats = servable->Stats();
  EXPECT_EQ(stats.fail.count, 1u);
  EXPECT_EQ(stats.success.count, 0u);
}

TEST_F(EnsembleServableTest, QuorumZeroNeedsEveryMember) {
  members_.Add("m0", {{0.5f, 0.25f, 0.25f}});
  members_.Add("m1", {{0.5f, 0.25f, 0.25f}})->set_mode(FakeMember::Mode::kFail, UnavailableError("busy"));
  std::unique_ptr<EnsembleServable> servable = Make(EnsembleConfig({"m0", "m1"}, Config::SOFT_MEAN, 0));
  ASSERT_NE(servable, nullptr);
  Outcome outcome;
  const Status status = RunAndWait(*servable, TensorRequest(1, 16, tensor_storage_), outcome);
  EXPECT_EQ(status.code(), StatusCode::kUnavailable);
  EXPECT_NE(status.message().find("1 of 2 members answered (quorum 2)"), std::string::npos) << status.ToString();
}

TEST_F(EnsembleServableTest, InvalidRequestThatNoMemberCanTakeIsInvalidArgument) {
  members_.Add("m0", {{0.5f, 0.25f, 0.25f}}, Gray(4));
  members_.Add("m1", {{0.5f, 0.25f, 0.25f}}, Gray(4));
  std::unique_ptr<EnsembleServable> servable = Make(EnsembleConfig({"m0", "m1"}, Config::SOFT_MEAN, 1));
  ASSERT_NE(servable, nullptr);
  Outcome outcome;
  const Status status = RunAndWait(*servable, TensorRequest(1, 5, tensor_storage_), outcome);  // 5 floats
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status.ToString();
  EXPECT_NE(status.message().find("0 of 2 members answered (quorum 1); \"m0\" version 1: INVALID_ARGUMENT: "
                                  "items[0]: a tensor of 20 bytes"),
            std::string::npos)
      << status.ToString();
}

TEST_F(EnsembleServableTest, InvalidMemberPlusUnavailableMemberIsInvalidArgumentWhenQuorumIsUnreachable) {
  members_.Add("m0", {{0.5f, 0.25f, 0.25f}}, Rgb(6));  // rejects the 1x4x4 tensor
  members_.Add("m1", {{0.5f, 0.25f, 0.25f}})->set_mode(FakeMember::Mode::kFail, UnavailableError("busy"));
  members_.Add("m2", {{0.5f, 0.25f, 0.25f}});
  // quorum 3: the invalid member alone makes it unreachable.
  std::unique_ptr<EnsembleServable> all = Make(EnsembleConfig({"m0", "m1", "m2"}, Config::SOFT_MEAN, 3));
  ASSERT_NE(all, nullptr);
  Outcome first;
  EXPECT_EQ(RunAndWait(*all, TensorRequest(1, 16, tensor_storage_), first).code(), StatusCode::kInvalidArgument);
  // quorum 2: a retry could succeed once m1 has room again.
  std::unique_ptr<EnsembleServable> two = Make(EnsembleConfig({"m0", "m1", "m2"}, Config::SOFT_MEAN, 2));
  ASSERT_NE(two, nullptr);
  Outcome second;
  EXPECT_EQ(RunAndWait(*two, TensorRequest(1, 16, tensor_storage_), second).code(), StatusCode::kUnavailable);
}

TEST_F(EnsembleServableTest, MemberWithUnusableRowsDoesNotCount) {
  members_.Add("m0", {{0.5f, 0.25f, 0.25f}});
  members_.Add("nan", {{0.5f, 0.25f, 0.25f}, {std::nanf(""), 0.5f, 0.5f}});
  std::unique_ptr<EnsembleServable> servable = Make(EnsembleConfig({"m0", "nan"}, Config::GEOMETRIC_MEAN, 1));
  ASSERT_NE(servable, nullptr);
  Outcome outcome;
  ASSERT_TRUE(RunAndWait(*servable, TensorRequest(2, 16, tensor_storage_), outcome).ok());
  EXPECT_EQ(outcome.result.members_answered, 1);
  EXPECT_EQ(outcome.result.members[1].status.code(), StatusCode::kInternal);
  EXPECT_NE(outcome.result.members[1].status.message().find("items[1]: it returned unusable probabilities"),
            std::string::npos);
  EXPECT_NEAR(outcome.result.probabilities[0], 0.5, 1e-6);
}

TEST_F(EnsembleServableTest, MembersAreResolvedAtEveryRun) {
  members_.Add("m0", {{0.5f, 0.25f, 0.25f}});
  members_.Add("m1", {{0.5f, 0.25f, 0.25f}});
  std::unique_ptr<EnsembleServable> servable = Make(EnsembleConfig({"m0", "m1"}, Config::HARD_MAJORITY, 1));
  ASSERT_NE(servable, nullptr);
  // A reloaded m1 that prefers class 2, then m1 unloaded.
  std::shared_ptr<FakeMember> reloaded = members_.Add("m1", {{0.0f, 0.25f, 0.75f}});
  Outcome outcome;
  ASSERT_TRUE(RunAndWait(*servable, TensorRequest(1, 16, tensor_storage_), outcome).ok());
  EXPECT_EQ(reloaded->runs(), 1);
  EXPECT_FLOAT_EQ(outcome.result.scores[2], 1.0f);
  members_.Remove("m1");
  Outcome unloaded;
  ASSERT_TRUE(RunAndWait(*servable, TensorRequest(1, 16, tensor_storage_), unloaded).ok());
  EXPECT_EQ(unloaded.result.members_answered, 1);
  EXPECT_EQ(unloaded.result.members[1].status.code(), StatusCode::kNotFound);
  // A member now with another class count does not answer.
  members_.Add("m1", {{0.5f, 0.5f}});
  Outcome changed;
  ASSERT_TRUE(RunAndWait(*servable, TensorRequest(1, 16, tensor_storage_), changed).ok());
  EXPECT_EQ(changed.result.members[1].status.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(changed.result.members[1].status.message().find("it has 2 classes now; the ensemble has 3"),
            std::string::npos);
}

// --- Concurrency, timeouts, deadlines, cancellation.

TEST_F(EnsembleServableTest, MembersRunConcurrently) {
  std::vector<std::shared_ptr<FakeMember>> held;
  for (const char* name : {"m0", "m1", "m2"}) {
    held.push_back(members_.Add(name, {{0.5f, 0.25f, 0.25f}}));
    held.back()->set_mode(FakeMember::Mode::kHold);
  }
  std::unique_ptr<EnsembleServable> servable = Make(EnsembleConfig({"m0", "m1", "m2"}, Config::SOFT_MEAN));
  ASSERT_NE(servable, nullptr);
  Outcome outcome;
  servable->Run(TensorRequest(1, 16, tensor_storage_), &outcome.result, outcome.Done());
  // Every member has its request before any has answered.
  for (const auto& member : held) EXPECT_EQ(member->runs(), 1);
  EXPECT_FALSE(outcome.Ready());
  EXPECT_EQ(servable->Stats().queue_depth, 1);
  held[2]->Release(0);
  held[0]->Release(0);
  EXPECT_FALSE(outcome.Ready());
  held[1]->Release(0);
  ASSERT_TRUE(outcome.Wait().ok());
  EXPECT_EQ(outcome.result.members_answered, 3);
  EXPECT_EQ(outcome.calls.load(), 1);
  EXPECT_EQ(servable->Stats().queue_depth, 0);
}

TEST_F(EnsembleServableTest, MemberTimeoutAnswersWithoutTheSlowMember) {
  members_.Add("m0", {{0.5f, 0.25f, 0.25f}});
  members_.Add("m1", {{0.25f, 0.5f, 0.25f}});
  std::shared_ptr<FakeMember> slow = members_.Add("slow", {{0.0f, 0.0f, 1.0f}});
  slow->set_mode(FakeMember::Mode::kHold);
  std::unique_ptr<EnsembleServable> servable =
      Make(EnsembleConfig({"m0", "m1", "slow"}, Config::SOFT_MEAN, 2, /*member_timeout_ms=*/50));
  ASSERT_NE(servable, nullptr);
  const int64_t start_us = clock_.NowMicros();
  Outcome outcome;
  servable->Run(TensorRequest(1, 16, tensor_storage_), &outcome.result, outcome.Done());
  EXPECT_FALSE(outcome.Ready());
  // The slow member was told the deadline, and the timer waits for it.
  const FakeMember::Call call = slow->calls().at(0);
  EXPECT_EQ(call.request->deadline_us, start_us + 50'000);
  EXPECT_FALSE(call.request->cancelled());
  ASSERT_TRUE(clock_.BlockUntilWaitingFor(start_us + 50'000));
  clock_.AdvanceMicros(49'999);
  EXPECT_FALSE(outcome.Ready());
  clock_.AdvanceMicros(1);
  ASSERT_TRUE(outcome.Wait().ok());
  const RunResult& r = outcome.result;
  EXPECT_EQ(r.members_answered, 2);
  EXPECT_EQ(r.members_total, 3);
  EXPECT_EQ(r.members[2].status, DeadlineExceededError("did not answer within member_timeout_ms 50"));
  EXPECT_NEAR(r.probabilities[0], 0.375, 1e-6);  // from m0 and m1 only
  // The member is told to drop what it still has queued; its late answer is ignored.
  EXPECT_TRUE(call.request->cancelled());
  slow->Release(0);
  EXPECT_EQ(outcome.calls.load(), 1);
  EXPECT_EQ(servable->Stats().success.count, 1u);
}

TEST_F(EnsembleServableTest, RequestDeadlineWithoutQuorumIsDeadlineExceeded) {
  std::vector<std::shared_ptr<FakeMember>> held;
  for (const char* name : {"m0", "m1"}) {
    held.push_back(members_.Add(name, {{0.5f, 0.25f, 0.25f}}));
    held.back()->set_mode(FakeMember::Mode::kHold);
  }
  std::unique_ptr<EnsembleServable> servable =
      Make(EnsembleConfig({"m0", "m1"}, Config::SOFT_MEAN, 1, /*member_timeout_ms=*/1000));
  ASSERT_NE(servable, nullptr);
  auto request = TensorRequest(1, 16, tensor_storage_);
  request->deadline_us = clock_.NowMicros() + 30'000;  // before the member timeout
  Outcome outcome;
  servable->Run(request, &outcome.result, outcome.Done());
  EXPECT_EQ(held[0]->calls().at(0).request->deadline_us, request->deadline_us);
  ASSERT_TRUE(clock_.BlockUntilWaitingFor(request->deadline_us));
  clock_.AdvanceMicros(30'000);
  const Status status = outcome.Wait();
  EXPECT_EQ(status.code(), StatusCode::kDeadlineExceeded);
  EXPECT_NE(status.message().find("0 of 2 members answered (quorum 1); \"m0\" version 1: DEADLINE_EXCEEDED: did "
                                  "not answer before the request's deadline"),
            std::string::npos)
      << status.ToString();
  held[0]->Release(0);
  held[1]->Release(0, DeadlineExceededError("late"));
  EXPECT_EQ(outcome.calls.load(), 1);
}

TEST_F(EnsembleServableTest, PassedDeadlineAndCancelledRequestsFailBeforeFanOut) {
  std::shared_ptr<FakeMember> m0 = members_.Add("m0", {{0.5f, 0.25f, 0.25f}});
  std::unique_ptr<EnsembleServable> servable = Make(EnsembleConfig({"m0"}, Config::SOFT_MEAN));
  ASSERT_NE(servable, nullptr);
  auto late = TensorRequest(1, 16, tensor_storage_);
  late->deadline_us = clock_.NowMicros();
  Outcome first;
  EXPECT_EQ(RunAndWait(*servable, late, first).code(), StatusCode::kDeadlineExceeded);
  auto cancelled = TensorRequest(1, 16, tensor_storage_);
  cancelled->cancelled = [] { return true; };
  Outcome second;
  EXPECT_EQ(RunAndWait(*servable, cancelled, second).code(), StatusCode::kCancelled);
  Outcome empty;
  EXPECT_EQ(RunAndWait(*servable, std::make_shared<RunRequest>(), empty).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(m0->runs(), 0);
  EXPECT_EQ(servable->Stats().fail.count, 3u);
}

TEST_F(EnsembleServableTest, CancellationReachesMembersAndNamesTheRun) {
  std::shared_ptr<FakeMember> m0 = members_.Add("m0", {{0.5f, 0.25f, 0.25f}});
  m0->set_mode(FakeMember::Mode::kHold);
  std::unique_ptr<EnsembleServable> servable = Make(EnsembleConfig({"m0"}, Config::SOFT_MEAN));
  ASSERT_NE(servable, nullptr);
  auto flag = std::make_shared<std::atomic<bool>>(false);
  auto request = TensorRequest(1, 16, tensor_storage_);
  request->cancelled = [flag] { return flag->load(); };
  request->item_name = [](int64_t i) { return "inputs[" + std::to_string(i) + "]"; };
  Outcome outcome;
  servable->Run(request, &outcome.result, outcome.Done());
  const FakeMember::Call call = m0->calls().at(0);
  EXPECT_FALSE(call.request->cancelled());
  EXPECT_EQ(call.request->ItemName(0), "inputs[0]");  // members name items as the client does
  flag->store(true);
  EXPECT_TRUE(call.request->cancelled());
  m0->Release(0, CancelledError("the request was cancelled"));
  EXPECT_EQ(outcome.Wait().code(), StatusCode::kCancelled);
  // After the ensemble answered, members no longer reach the client's functions.
  EXPECT_TRUE(call.request->cancelled());
  EXPECT_EQ(call.request->ItemName(0), "items[0]");
}

// --- Statistics, shutdown, destruction.

TEST_F(EnsembleServableTest, StatsCountRunsItemsAndAgreement) {
  members_.Add("m0", {{0.5f, 0.25f, 0.25f}});
  members_.Add("m1", {{0.5f, 0.25f, 0.25f}});
  members_.Add("m2", {{0.25f, 0.5f, 0.25f}});
  std::unique_ptr<EnsembleServable> servable = Make(EnsembleConfig({"m0", "m1", "m2"}, Config::HARD_MAJORITY));
  ASSERT_NE(servable, nullptr);
  Outcome outcome;
  ASSERT_TRUE(RunAndWait(*servable, TensorRequest(4, 16, tensor_storage_), outcome).ok());
  const ServableStats stats = servable->Stats();
  EXPECT_EQ(stats.name, "ens");
  EXPECT_EQ(stats.success.count, 1u);
  EXPECT_EQ(stats.fail.count, 0u);
  EXPECT_EQ(stats.execution_count, 1u);
  EXPECT_EQ(stats.inference_count, 4u);
  EXPECT_EQ(stats.preprocess.count, 1u);
  EXPECT_EQ(stats.queue.count, 1u);
  EXPECT_GT(stats.last_inference_ms, 0u);
  // Agreement 2/3 for each of the 4 images: bucket (0.6, 0.8].
  EXPECT_EQ(stats.agreement_count, 4u);
  EXPECT_NEAR(stats.agreement_sum, 4 * 2.0 / 3, 1e-5);
  EXPECT_EQ(stats.agreement_buckets[3], 4u);
  EXPECT_EQ(stats.agreement_buckets[0] + stats.agreement_buckets[1] + stats.agreement_buckets[2] +
                stats.agreement_buckets[4] + stats.agreement_buckets[5],
            0u);
}

TEST_F(EnsembleServableTest, ShutdownStopsAdmittingAndAnswersWhatIsLeftAtTheDeadline) {
  members_.Add("m0", {{0.5f, 0.25f, 0.25f}});
  std::shared_ptr<FakeMember> held = members_.Add("m1", {{0.5f, 0.25f, 0.25f}});
  held->set_mode(FakeMember::Mode::kHold);
  std::unique_ptr<EnsembleServable> servable = Make(EnsembleConfig({"m0", "m1"}, Config::SOFT_MEAN, 1));
  ASSERT_NE(servable, nullptr);
  Outcome pending;
  servable->Run(TensorRequest(1, 16, tensor_storage_), &pending.result, pending.Done());
  EXPECT_FALSE(pending.Ready());
  const Status status = servable->Shutdown(clock_.NowMicros());  // no time to drain
  EXPECT_EQ(status.code(), StatusCode::kDeadlineExceeded) << status.ToString();
  ASSERT_TRUE(pending.Wait().ok());  // quorum 1: answered by m0
  EXPECT_EQ(pending.result.members[1].status.code(), StatusCode::kUnavailable);
  Outcome after;
  const Status rejected = RunAndWait(*servable, TensorRequest(1, 16, tensor_storage_), after);
  EXPECT_EQ(rejected, UnavailableError("ensemble \"ens\" is shutting down"));
  EXPECT_TRUE(servable->Shutdown(clock_.NowMicros()).ok());  // idempotent, nothing left
  held->Release(0);                                          // late: ignored
  EXPECT_EQ(pending.calls.load(), 1);
}

TEST_F(EnsembleServableTest, ShutdownWaitsForRunsThatFinishInTime) {
  std::shared_ptr<FakeMember> held = members_.Add("m0", {{0.5f, 0.25f, 0.25f}});
  held->set_mode(FakeMember::Mode::kHold);
  std::unique_ptr<EnsembleServable> servable = Make(EnsembleConfig({"m0"}, Config::SOFT_MEAN));
  ASSERT_NE(servable, nullptr);
  Outcome pending;
  servable->Run(TensorRequest(1, 16, tensor_storage_), &pending.result, pending.Done());
  std::future<Status> shutdown =
      std::async(std::launch::async, [&] { return servable->Shutdown(clock_.NowMicros() + 1'000'000); });
  ASSERT_TRUE(clock_.BlockUntilWaitingFor(clock_.NowMicros() + 1'000'000));
  held->Release(0);
  EXPECT_TRUE(shutdown.get().ok());
  EXPECT_TRUE(pending.Wait().ok());
}

TEST_F(EnsembleServableTest, DestroyingAnswersRunsInFlight) {
  std::shared_ptr<FakeMember> held = members_.Add("m0", {{0.5f, 0.25f, 0.25f}});
  held->set_mode(FakeMember::Mode::kHold);
  std::unique_ptr<EnsembleServable> servable = Make(EnsembleConfig({"m0"}, Config::SOFT_MEAN, 0, 100));
  ASSERT_NE(servable, nullptr);
  Outcome pending;
  servable->Run(TensorRequest(1, 16, tensor_storage_), &pending.result, pending.Done());
  servable.reset();
  const Status status = pending.Wait();
  EXPECT_EQ(status.code(), StatusCode::kUnavailable);
  EXPECT_NE(status.message().find("was unloaded before this member answered"), std::string::npos);
  held->Release(0);  // the ensemble is gone; the late answer touches only the Run's own state
  EXPECT_EQ(pending.calls.load(), 1);
}

TEST_F(EnsembleServableTest, DoneMayDestroyTheEnsemble) {
  members_.Add("m0", {{0.5f, 0.25f, 0.25f}});
  std::shared_ptr<FakeMember> held = members_.Add("m1", {{0.5f, 0.25f, 0.25f}});
  held->set_mode(FakeMember::Mode::kHold);
  std::unique_ptr<EnsembleServable> servable =
      Make(EnsembleConfig({"m0", "m1"}, Config::SOFT_MEAN, 1, /*member_timeout_ms=*/10));
  ASSERT_NE(servable, nullptr);
  RunResult result;
  std::promise<Status> promise;
  const int64_t deadline_us = clock_.NowMicros() + 10'000;
  // `done` runs on the timer thread and destroys the ensemble that owns it.
  servable->Run(TensorRequest(1, 16, tensor_storage_), &result, [&](Status status) {
    servable.reset();
    promise.set_value(status);
  });
  ASSERT_TRUE(clock_.BlockUntilWaitingFor(deadline_us));
  clock_.AdvanceMicros(10'000);
  std::future<Status> future = promise.get_future();
  ASSERT_EQ(future.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_TRUE(future.get().ok());
  held->Release(0);
}

}  // namespace
}  // namespace cnnserve
