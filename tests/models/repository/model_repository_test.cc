// ModelRepository on real files: the default repository (the trained LeNet-5) and temporary repositories with
// broken configs, corrupt or missing model.onnx files, junk version folders and wrong labels. Every broken model
// must be UNAVAILABLE with a precise reason while the good model next to it still loads.
#include "models/repository/model_repository.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "engine/runtime/calibration.h"
#include "tests/models/repository/test_repository.h"

namespace cnnserve {
namespace {

namespace fs = std::filesystem;
using ::cnnserve::testing::CopyLenet;
using ::cnnserve::testing::DefaultRepository;
using ::cnnserve::testing::EditConfig;
using ::cnnserve::testing::kLenetModel;
using ::cnnserve::testing::RandomBytes;
using ::cnnserve::testing::ReadFileBytes;
using ::cnnserve::testing::TempDir;
using ::cnnserve::testing::WriteFileBytes;

std::unique_ptr<ModelRepository> LoadOrDie(const fs::path& root) {
  StatusOr<std::unique_ptr<ModelRepository>> repository = ModelRepository::Load(root.string());
  EXPECT_TRUE(repository.ok()) << repository.status().ToString();
  return repository.ok() ? *std::move(repository) : nullptr;
}

void ExpectGoodLenet(const ModelRepository& repository, const std::string& name) {
  const ModelEntry* entry = repository.Find(name);
  ASSERT_NE(entry, nullptr) << name;
  EXPECT_TRUE(entry->config_ok) << entry->config_error;
  const VersionEntry* version = entry->DefaultVersion();
  ASSERT_NE(version, nullptr) << name << ": " << (entry->versions.empty() ? "" : entry->versions[0].reason);
  EXPECT_EQ(version->state, ModelState::kReady);
  EXPECT_NE(version->model, nullptr);
}

TEST(ModelRepositoryTest, LoadsTheDefaultRepository) {
  std::unique_ptr<ModelRepository> repository = LoadOrDie(DefaultRepository());
  ASSERT_NE(repository, nullptr);
  const ModelEntry* entry = repository->Find(kLenetModel);
  ASSERT_NE(entry, nullptr);
  EXPECT_TRUE(entry->config_ok) << entry->config_error;
  ASSERT_EQ(entry->versions.size(), 1u);
  const VersionEntry& version = entry->versions[0];
  EXPECT_EQ(version.version, 1);
  EXPECT_EQ(version.state, ModelState::kReady) << version.reason;
  EXPECT_TRUE(version.reason.empty());
  ASSERT_NE(version.model, nullptr);
  ASSERT_NE(version.graph, nullptr);
  EXPECT_EQ(version.item_input_dims, (Dims{1, 32, 32}));
  EXPECT_EQ(version.num_classes, 10);
  EXPECT_EQ(version.model->item_output_size(), 10);
  EXPECT_EQ(version.model_path, (DefaultRepository() / kLenetModel / "1" / "model.onnx").string());
  EXPECT_EQ(entry->DefaultVersion(), &version);
  EXPECT_EQ(entry->FindVersion(1), &version);
  EXPECT_EQ(entry->FindVersion(2), nullptr);
  EXPECT_EQ(entry->InputDims(), (Dims{1, 32, 32}));
  EXPECT_EQ(entry->NumClasses(), 10);

  ASSERT_EQ(entry->labels.size(), 10u);
  EXPECT_EQ(entry->labels.front(), "T-shirt/top");
  EXPECT_EQ(entry->labels.back(), "Ankle boot");

  // The config as written, with its defaults made explicit.
  const v1::ModelConfig& config = entry->config;
  EXPECT_EQ(config.name(), kLenetModel);
  EXPECT_EQ(config.platform(), "onnx");
  EXPECT_EQ(config.max_batch_size(), 64);
  EXPECT_EQ(config.preprocess().color(), v1::PreprocessConfig::GRAY);
  EXPECT_EQ(config.preprocess().resize(), v1::PreprocessConfig::EXACT);
  EXPECT_FLOAT_EQ(config.preprocess().scale(), 1.0f / 255.0f);
  ASSERT_EQ(config.preprocess().mean_size(), 1);
  EXPECT_FLOAT_EQ(config.preprocess().mean(0), 0.2860f);
  EXPECT_EQ(config.dynamic_batching().max_queue_size(), 1024);
  EXPECT_EQ(config.instance_group().count(), 1);
  EXPECT_EQ(config.instance_group().threads(), 1);
  EXPECT_EQ(config.labels(), "labels.txt");

  EXPECT_EQ(repository->Find("no_such_model"), nullptr);
}

TEST(ModelRepositoryTest, RootErrors) {
  StatusOr<std::unique_ptr<ModelRepository>> missing = ModelRepository::Load("/no/such/repository");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("/no/such/repository"), std::string::npos);

  TempDir dir;
  WriteFileBytes(dir.path() / "file", "x");
  StatusOr<std::unique_ptr<ModelRepository>> file = ModelRepository::Load((dir.path() / "file").string());
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), StatusCode::kFailedPrecondition);

  // An empty repository is fine: no models.
  std::unique_ptr<ModelRepository> empty = LoadOrDie(dir.path());
  ASSERT_NE(empty, nullptr);
  EXPECT_TRUE(empty->models().empty());
}

TEST(ModelRepositoryTest, SyntaxErrorNamesFileLineAndColumn) {
  TempDir repo;
  CopyLenet(repo.path(), "good");
  const fs::path broken = CopyLenet(repo.path(), "broken");
  WriteFileBytes(broken / "config.pbtxt", "name: \"broken\"\nmax_batch_size: [[[ oops\n");

  std::unique_ptr<ModelRepository> repository = LoadOrDie(repo.path());
  ASSERT_NE(repository, nullptr);
  ExpectGoodLenet(*repository, "good");
  const ModelEntry* entry = repository->Find("broken");
  ASSERT_NE(entry, nullptr);
  EXPECT_FALSE(entry->config_ok);
  const std::string config_path = (broken / "config.pbtxt").string();
  EXPECT_EQ(entry->config_error.rfind(config_path + ":2:17: ", 0), 0u) << entry->config_error;
  // The version folder is still reported, UNAVAILABLE with the config's reason.
  ASSERT_EQ(entry->versions.size(), 1u);
  EXPECT_EQ(entry->versions[0].version, 1);
  EXPECT_EQ(entry->versions[0].state, ModelState::kUnavailable);
  EXPECT_EQ(entry->versions[0].reason, entry->config_error);
  EXPECT_EQ(entry->versions[0].model, nullptr);
  EXPECT_EQ(entry->DefaultVersion(), nullptr);
}

TEST(ModelRepositoryTest, ParseErrorsAreCollectedWithPositions) {
  StatusOr<v1::ModelConfig> unknown_field = ParseModelConfig("name: \"m\"\n\n  colour: RGB\n", "m/config.pbtxt");
  ASSERT_FALSE(unknown_field.ok());
  EXPECT_EQ(unknown_field.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(unknown_field.status().message().rfind("m/config.pbtxt:3:", 0), 0u)
      << unknown_field.status().message();
  EXPECT_NE(unknown_field.status().message().find("colour"), std::string::npos);

  StatusOr<v1::ModelConfig> bad_enum = ParseModelConfig("preprocess { color: PURPLE }", "m/config.pbtxt");
  ASSERT_FALSE(bad_enum.ok());
  EXPECT_EQ(bad_enum.status().message().rfind("m/config.pbtxt:1:", 0), 0u) << bad_enum.status().message();
  EXPECT_NE(bad_enum.status().message().find("PURPLE"), std::string::npos);

  StatusOr<v1::ModelConfig> bad_policy =
      ParseModelConfig("dynamic_batching { policy: SOMETIMES }", "m/config.pbtxt");
  ASSERT_FALSE(bad_policy.ok());
  EXPECT_NE(bad_policy.status().message().find("Unknown enumeration value of \"SOMETIMES\" for field \"policy\""),
            std::string::npos)
      << bad_policy.status().message();
  StatusOr<v1::ModelConfig> adaptive = ParseModelConfig("dynamic_batching { policy: ADAPTIVE }", "m/config.pbtxt");
  ASSERT_TRUE(adaptive.ok()) << adaptive.status().ToString();
  EXPECT_EQ(adaptive->dynamic_batching().policy(), v1::DynamicBatching::ADAPTIVE);
  EXPECT_EQ(v1::DynamicBatching().policy(), v1::DynamicBatching::POLICY_DEFAULT);  // unset: adaptive
  StatusOr<v1::ModelConfig> fixed = ParseModelConfig("dynamic_batching { policy: FIXED_DELAY }", "m/config.pbtxt");
  ASSERT_TRUE(fixed.ok()) << fixed.status().ToString();
  EXPECT_EQ(fixed->dynamic_batching().policy(), v1::DynamicBatching::FIXED_DELAY);
  StatusOr<v1::ModelConfig> bf16 = ParseModelConfig("precision: BF16", "m/config.pbtxt");
  ASSERT_TRUE(bf16.ok()) << bf16.status().ToString();
  EXPECT_EQ(bf16->precision(), v1::BF16);
  EXPECT_EQ(v1::ModelConfig().precision(), v1::FP32);  // the default
  StatusOr<v1::ModelConfig> int8 = ParseModelConfig("precision: INT4", "m/config.pbtxt");
  ASSERT_FALSE(int8.ok());
  EXPECT_NE(int8.status().message().find("Unknown enumeration value of \"INT4\" for field \"precision\""),
            std::string::npos)
      << int8.status().message();

  StatusOr<v1::ModelConfig> good = ParseModelConfig(
      "name: \"m\"  # comment\nmax_batch_size: 8\ninput { dims: [3, 224, 224] }\n"
      "dynamic_batching { preferred_batch_size: [2, 4] }\n",
      "m/config.pbtxt");
  ASSERT_TRUE(good.ok()) << good.status().ToString();
  EXPECT_EQ(good->max_batch_size(), 8);
  EXPECT_EQ(good->input().dims_size(), 3);
  EXPECT_EQ(good->dynamic_batching().preferred_batch_size_size(), 2);
}

// One bad edit of a good config per row: the model is UNAVAILABLE with exactly this message (after the path of
// config.pbtxt) and the good model in the same repository still loads.
struct BadConfigCase {
  std::string name;
  std::string from;
  std::string to;
  std::string expected;  // the reason after "<model dir>/config.pbtxt: "; "<model>" is the model dir
};

TEST(ModelRepositoryTest, BadFieldValuesAreReportedWithFileAndField) {
  const std::vector<BadConfigCase> cases = {
      {"negative_batch", "max_batch_size: 64", "max_batch_size: -1", "field max_batch_size: -1 must be >= 0"},
      {"huge_batch", "max_batch_size: 64", "max_batch_size: 100000",
       "field max_batch_size: 100000 must be <= 4096"},
      {"wrong_name", "name: \"wrong_name\"", "name: \"other\"",
       "field name: \"other\" must equal the model's folder name \"wrong_name\""},
      {"bad_platform", "platform: \"onnx\"", "platform: \"tensorflow\"",
       "field platform: \"tensorflow\" is not one of \"onnx\", \"ensemble\", \"null\""},
      {"classes_not_null", "max_batch_size: 64", "max_batch_size: 64 num_classes: 10",
       "field num_classes: only allowed with platform: \"null\""},
      {"null_without_classes", "platform: \"onnx\"", "platform: \"null\"", "field num_classes: 0 must be >= 1"},
      {"two_dims", "dims: [1, 32, 32]", "dims: [32, 32]",
       "field input.dims: [32, 32] must have 3 values (C, H, W) or none"},
      {"zero_dim", "dims: [1, 32, 32]", "dims: [1, 0, 32]", "field input.dims[1]: 0 must be >= 1"},
      {"big_preferred", "preferred_batch_size: [8, 32]", "preferred_batch_size: [8, 128]",
       "field dynamic_batching.preferred_batch_size[1]: 128 must be in [1, 64] (max_batch_size is 64)"},
      {"negative_delay", "max_queue_delay_us: 500", "max_queue_delay_us: -5",
       "field dynamic_batching.max_queue_delay_us: -5 must be >= 0"},
      {"zero_std", "std: [0.3530]", "std: [0]", "field preprocess.std[0]: 0 must be a finite number > 0"},
      {"four_means", "mean: [0.2860]", "mean: [0.1, 0.2, 0.3, 0.4]",
       "field preprocess.mean: 4 values; expected 0, 1 or one per channel (1 or 3)"},
      {"negative_scale", "scale: 0.0039215688593685627", "scale: -1",
       "field preprocess.scale: -1 must be a finite number > 0 (0 means 1/255)"},
      {"shorter_side_exact", "resize: EXACT", "resize: EXACT\n  resize_shorter_side: 40",
       "field preprocess.resize_shorter_side: 40 is only used with resize: SHORTER_SIDE_CROP"},
      {"instances", "count: 1", "count: -2", "field instance_group.count: -2 must be >= 0"},
      {"threads", "threads: 1", "threads: 5000", "field instance_group.threads: 5000 must be <= 1024"},
      {"labels_escape", "labels: \"labels.txt\"", "labels: \"../other/labels.txt\"",
       "field labels: \"../other/labels.txt\" must name a file inside the model folder"},
      {"labels_missing", "labels: \"labels.txt\"", "labels: \"classes.txt\"",
       "field labels: <model>/classes.txt does not exist"},
      {"ensemble_section", "labels: \"labels.txt\"", "labels: \"labels.txt\"\nensemble { quorum: 1 }",
       "field ensemble: only allowed with platform: \"ensemble\""},
      {"precision_null", "platform: \"onnx\"", "platform: \"null\"\nnum_classes: 10\nprecision: BF16",
       "field precision: only for platform \"onnx\""},
      {"precision_number", "max_batch_size: 64", "max_batch_size: 64\nprecision: 7",
       "field precision: 7 is not one of FP32, BF16, INT8"},
  };
  TempDir repo;
  CopyLenet(repo.path(), "good");
  for (const BadConfigCase& c : cases) {
    const fs::path dir = CopyLenet(repo.path(), c.name);
    EditConfig(dir, c.from, c.to);
  }
  std::unique_ptr<ModelRepository> repository = LoadOrDie(repo.path());
  ASSERT_NE(repository, nullptr);
  ExpectGoodLenet(*repository, "good");
  for (const BadConfigCase& c : cases) {
    SCOPED_TRACE(c.name);
    const ModelEntry* entry = repository->Find(c.name);
    ASSERT_NE(entry, nullptr);
    const std::string model_dir = (repo.path() / c.name).string();
    std::string expected = c.expected;
    if (const size_t at = expected.find("<model>"); at != std::string::npos) expected.replace(at, 7, model_dir);
    EXPECT_FALSE(entry->config_ok);
    EXPECT_EQ(entry->config_error, model_dir + "/config.pbtxt: " + expected);
    ASSERT_FALSE(entry->versions.empty());
    for (const VersionEntry& v : entry->versions) {
      EXPECT_EQ(v.state, ModelState::kUnavailable);
      EXPECT_EQ(v.reason, entry->config_error);
    }
  }
}

// precision: BF16 reaches the engine: the model computes in bf16, close to the same model at FP32.
TEST(ModelRepositoryTest, PrecisionBf16LoadsTheModelInBf16) {
  TempDir repo;
  CopyLenet(repo.path(), "fp32");
  EditConfig(CopyLenet(repo.path(), "bf16"), "max_batch_size: 64", "max_batch_size: 64\nprecision: BF16");
  std::unique_ptr<ModelRepository> repository = LoadOrDie(repo.path());
  ASSERT_NE(repository, nullptr);
  const ModelEntry* fp32 = repository->Find("fp32");
  const ModelEntry* bf16 = repository->Find("bf16");
  ASSERT_TRUE(fp32 != nullptr && bf16 != nullptr);
  ASSERT_EQ(bf16->versions.size(), 1u);
  ASSERT_EQ(bf16->versions[0].state, ModelState::kReady) << bf16->versions[0].reason;
  const Model& bf16_model = *bf16->versions[0].model;
  const Model& fp32_model = *fp32->versions[0].model;
  EXPECT_EQ(bf16_model.options().precision, Precision::kBf16);
  EXPECT_EQ(fp32_model.options().precision, Precision::kFp32);
  Tensor input(Dims{4, 1, 32, 32});
  for (int64_t i = 0; i < input.size(); ++i) input[i] = static_cast<float>((i * 7919) % 255) / 64.0f - 2.0f;
  StatusOr<Tensor> want = fp32_model.NewSession()->Run(input);
  StatusOr<Tensor> got = bf16_model.NewSession()->Run(input);
  ASSERT_TRUE(want.ok() && got.ok());
  float max_diff = 0, max_ref = 0;
  for (int64_t i = 0; i < want->size(); ++i) {
    max_diff = std::max(max_diff, std::fabs((*got)[i] - (*want)[i]));
    max_ref = std::max(max_ref, std::fabs((*want)[i]));
  }
  EXPECT_LE(max_diff, 0.02f * max_ref + 1e-3f);
  EXPECT_GT(max_diff, 1e-4f * max_ref + 1e-5f);  // it did not compute in fp32
}

// precision: INT8 needs the version's calibration.txt (a missing one says which file and how to make it); with
// it the model computes in int8, close to the same model at FP32.
TEST(ModelRepositoryTest, PrecisionInt8LoadsWithTheVersionsCalibrationFile) {
  TempDir repo;
  CopyLenet(repo.path(), "fp32");
  const std::string int8_dir = CopyLenet(repo.path(), "int8").string();
  EditConfig(int8_dir, "max_batch_size: 64", "max_batch_size: 64\nprecision: INT8");
  std::unique_ptr<ModelRepository> first = LoadOrDie(repo.path());
  ASSERT_NE(first, nullptr);
  const ModelEntry* uncalibrated = first->Find("int8");
  ASSERT_NE(uncalibrated, nullptr);
  ASSERT_EQ(uncalibrated->versions.size(), 1u);
  EXPECT_EQ(uncalibrated->versions[0].state, ModelState::kUnavailable);
  EXPECT_NE(uncalibrated->versions[0].reason.find("1/calibration.txt: missing (precision INT8 needs"),
            std::string::npos)
      << uncalibrated->versions[0].reason;

  Tensor input(Dims{4, 1, 32, 32});
  for (int64_t i = 0; i < input.size(); ++i) input[i] = static_cast<float>((i * 7919) % 255) / 64.0f - 2.0f;
  StatusOr<Calibration> calibration = Calibrate(uncalibrated->versions[0].graph, input, CalibrateOptions());
  ASSERT_TRUE(calibration.ok()) << calibration.status().ToString();
  ASSERT_TRUE(WriteCalibrationFile(int8_dir + "/1/" + kCalibrationFileName, *calibration).ok());
  std::unique_ptr<ModelRepository> repository = LoadOrDie(repo.path());
  ASSERT_NE(repository, nullptr);
  const ModelEntry* int8 = repository->Find("int8");
  ASSERT_EQ(int8->versions[0].state, ModelState::kReady) << int8->versions[0].reason;
  const Model& int8_model = *int8->versions[0].model;
  EXPECT_EQ(int8_model.options().precision, Precision::kInt8);
  EXPECT_EQ(int8_model.options().ranges->size(), calibration->ranges.size());
  StatusOr<Tensor> want = repository->Find("fp32")->versions[0].model->NewSession()->Run(input);
  StatusOr<Tensor> got = int8_model.NewSession()->Run(input);
  ASSERT_TRUE(want.ok() && got.ok());
  float max_diff = 0, max_ref = 0;
  for (int64_t i = 0; i < want->size(); ++i) {
    max_diff = std::max(max_diff, std::fabs((*got)[i] - (*want)[i]));
    max_ref = std::max(max_ref, std::fabs((*want)[i]));
  }
  EXPECT_LE(max_diff, 0.06f * max_ref);
  EXPECT_GT(max_diff, 2e-3f * max_ref);  // it did not compute in fp32

  // A calibration file that does not parse: the reason names the file and the line.
  {
    std::ofstream out(int8_dir + "/1/" + kCalibrationFileName, std::ios::trunc);
    out << "version 1\nmethod minmax\nimages 1 x\nrange 3 1 input\n";
  }
  std::unique_ptr<ModelRepository> broken = LoadOrDie(repo.path());
  ASSERT_NE(broken, nullptr);
  const std::string& reason = broken->Find("int8")->versions[0].reason;
  EXPECT_NE(reason.find("calibration.txt\": calibration line 4: min is larger than max"), std::string::npos)
      << reason;
}

// Checks that need the ONNX file: the model's config parses, its version is UNAVAILABLE.
TEST(ModelRepositoryTest, ConfigThatDoesNotMatchTheModelMarksTheVersionUnavailable) {
  const std::vector<BadConfigCase> cases = {
      {"wrong_dims", "dims: [1, 32, 32]", "dims: [1, 28, 28]",
       "field input.dims: [1, 28, 28] does not match the input [1, 32, 32] of <version>"},
      {"rgb_for_gray", "color: GRAY", "color: RGB",
       "field preprocess.color: RGB needs 3 input channels but <version> has 1"},
      {"three_means", "mean: [0.2860]", "mean: [0.1, 0.2, 0.3]",
       "field preprocess.mean: 3 values; expected 0, 1 or 1 (the input channels of <version>)"},
      {"short_side", "resize: EXACT", "resize: SHORTER_SIDE_CROP\n  resize_shorter_side: 30",
       "field preprocess.resize_shorter_side: 30 must be >= 32 (the input's larger side) to crop 32x32"},
  };
  TempDir repo;
  CopyLenet(repo.path(), "good");
  for (const BadConfigCase& c : cases) EditConfig(CopyLenet(repo.path(), c.name), c.from, c.to);
  std::unique_ptr<ModelRepository> repository = LoadOrDie(repo.path());
  ASSERT_NE(repository, nullptr);
  ExpectGoodLenet(*repository, "good");
  for (const BadConfigCase& c : cases) {
    SCOPED_TRACE(c.name);
    const ModelEntry* entry = repository->Find(c.name);
    ASSERT_NE(entry, nullptr);
    EXPECT_TRUE(entry->config_ok) << entry->config_error;
    ASSERT_EQ(entry->versions.size(), 1u);
    const VersionEntry& version = entry->versions[0];
    std::string expected = c.expected;
    if (const size_t at = expected.find("<version>"); at != std::string::npos) {
      expected.replace(at, 9, version.model_path);
    }
    EXPECT_EQ(version.state, ModelState::kUnavailable);
    EXPECT_EQ(version.reason, (repo.path() / c.name / "config.pbtxt").string() + ": " + expected);
    EXPECT_EQ(version.model, nullptr);
    EXPECT_NE(version.graph, nullptr);  // imported: it can still be described
    EXPECT_EQ(entry->DefaultVersion(), nullptr);
  }
}

TEST(ModelRepositoryTest, CorruptAndMissingModelFiles) {
  TempDir repo;
  CopyLenet(repo.path(), "good");
  const fs::path truncated = CopyLenet(repo.path(), "truncated");
  const std::string onnx = ReadFileBytes(truncated / "1" / "model.onnx");
  WriteFileBytes(truncated / "1" / "model.onnx", onnx.substr(0, onnx.size() / 2));
  const fs::path random = CopyLenet(repo.path(), "random");
  WriteFileBytes(random / "1" / "model.onnx", RandomBytes(5000, 7));
  const fs::path missing = CopyLenet(repo.path(), "missing");
  fs::remove(missing / "1" / "model.onnx");

  std::unique_ptr<ModelRepository> repository = LoadOrDie(repo.path());
  ASSERT_NE(repository, nullptr);
  ExpectGoodLenet(*repository, "good");
  for (const char* name : {"truncated", "random", "missing"}) {
    SCOPED_TRACE(name);
    const ModelEntry* entry = repository->Find(name);
    ASSERT_NE(entry, nullptr);
    EXPECT_TRUE(entry->config_ok);
    ASSERT_EQ(entry->versions.size(), 1u);
    const VersionEntry& version = entry->versions[0];
    EXPECT_EQ(version.state, ModelState::kUnavailable);
    EXPECT_EQ(version.reason.rfind(version.model_path, 0), 0u) << version.reason;  // names the file first
    EXPECT_EQ(version.model, nullptr);
  }
  EXPECT_NE(repository->Find("random")->versions[0].reason.find("is not a valid ONNX model"), std::string::npos);
  EXPECT_EQ(repository->Find("missing")->versions[0].reason,
            (missing / "1" / "model.onnx").string() + ": missing (every version folder needs a model.onnx)");
}

TEST(ModelRepositoryTest, JunkVersionFolderLeavesTheOtherVersionsServing) {
  TempDir repo;
  const fs::path dir = CopyLenet(repo.path(), "multi");
  fs::copy(dir / "1", dir / "3", fs::copy_options::recursive);
  WriteFileBytes(dir / "2" / "notes.txt", "not a model");                               // junk: no model.onnx
  WriteFileBytes(dir / "4" / "model.onnx", RandomBytes(20000, 11));                     // junk model.onnx
  WriteFileBytes(dir / "old" / "model.onnx", ReadFileBytes(dir / "1" / "model.onnx"));  // not a version
  fs::create_directories(dir / "0");                  // not a version (must be positive)
  WriteFileBytes(dir / "5", "a file, not a folder");  // not a version

  std::unique_ptr<ModelRepository> repository = LoadOrDie(repo.path());
  ASSERT_NE(repository, nullptr);
  const ModelEntry* entry = repository->Find("multi");
  ASSERT_NE(entry, nullptr);
  ASSERT_EQ(entry->versions.size(), 4u);
  std::vector<int64_t> numbers;
  for (const VersionEntry& v : entry->versions) numbers.push_back(v.version);
  EXPECT_EQ(numbers, (std::vector<int64_t>{1, 2, 3, 4}));
  EXPECT_EQ(entry->FindVersion(1)->state, ModelState::kReady);
  EXPECT_EQ(entry->FindVersion(2)->state, ModelState::kUnavailable);
  EXPECT_EQ(entry->FindVersion(2)->reason,
            (dir / "2" / "model.onnx").string() + ": missing (every version folder needs a model.onnx)");
  EXPECT_EQ(entry->FindVersion(3)->state, ModelState::kReady);
  EXPECT_EQ(entry->FindVersion(4)->state, ModelState::kUnavailable);
  EXPECT_EQ(
      entry->FindVersion(4)->reason.rfind((dir / "4" / "model.onnx").string() + " is not a valid ONNX model", 0),
      0u)
      << entry->FindVersion(4)->reason;
  // The newest READY version is the default.
  ASSERT_NE(entry->DefaultVersion(), nullptr);
  EXPECT_EQ(entry->DefaultVersion()->version, 3);
}

TEST(ModelRepositoryTest, LabelsMustMatchTheClasses) {
  TempDir repo;
  CopyLenet(repo.path(), "good");
  const fs::path nine = CopyLenet(repo.path(), "nine_labels");
  std::string labels = ReadFileBytes(nine / "labels.txt");
  labels = labels.substr(0, labels.rfind("Ankle boot"));
  WriteFileBytes(nine / "labels.txt", labels);
  const fs::path empty = CopyLenet(repo.path(), "empty_labels");
  WriteFileBytes(empty / "labels.txt", "\n\n");
  const fs::path crlf = CopyLenet(repo.path(), "crlf_labels");
  std::string windows;
  for (int i = 0; i < 10; ++i) windows += "class " + std::to_string(i) + "\r\n";
  WriteFileBytes(crlf / "labels.txt", windows + "\r\n\n");
  const fs::path none = CopyLenet(repo.path(), "no_labels");
  EditConfig(none, "labels: \"labels.txt\"", "");
  fs::remove(none / "labels.txt");

  std::unique_ptr<ModelRepository> repository = LoadOrDie(repo.path());
  ASSERT_NE(repository, nullptr);
  ExpectGoodLenet(*repository, "good");

  const ModelEntry* nine_entry = repository->Find("nine_labels");
  ASSERT_NE(nine_entry, nullptr);
  ASSERT_EQ(nine_entry->versions.size(), 1u);
  EXPECT_EQ(nine_entry->versions[0].state, ModelState::kUnavailable);
  EXPECT_EQ(nine_entry->versions[0].reason, (nine / "labels.txt").string() + ": 9 labels but " +
                                                nine_entry->versions[0].model_path + " has 10 classes");

  const ModelEntry* empty_entry = repository->Find("empty_labels");
  ASSERT_NE(empty_entry, nullptr);
  EXPECT_FALSE(empty_entry->config_ok);
  EXPECT_EQ(empty_entry->config_error, (empty / "labels.txt").string() + ": no labels (the file is empty)");

  const ModelEntry* crlf_entry = repository->Find("crlf_labels");
  ExpectGoodLenet(*repository, "crlf_labels");
  ASSERT_EQ(crlf_entry->labels.size(), 10u);
  EXPECT_EQ(crlf_entry->labels[3], "class 3");

  ExpectGoodLenet(*repository, "no_labels");
  EXPECT_TRUE(repository->Find("no_labels")->labels.empty());
  EXPECT_EQ(repository->Find("no_labels")->config.labels(), "");
}

TEST(ModelRepositoryTest, MissingConfigAndNoVersions) {
  TempDir repo;
  const fs::path no_config = CopyLenet(repo.path(), "no_config");
  fs::remove(no_config / "config.pbtxt");
  const fs::path no_versions = CopyLenet(repo.path(), "no_versions");
  fs::remove_all(no_versions / "1");
  fs::create_directories(repo.path() / ".hidden");           // skipped
  WriteFileBytes(repo.path() / "README.md", "not a model");  // skipped

  std::unique_ptr<ModelRepository> repository = LoadOrDie(repo.path());
  ASSERT_NE(repository, nullptr);
  ASSERT_EQ(repository->models().size(), 2u);
  const ModelEntry* a = repository->Find("no_config");
  ASSERT_NE(a, nullptr);
  EXPECT_FALSE(a->config_ok);
  EXPECT_EQ(a->config_error,
            (no_config / "config.pbtxt").string() + ": missing (every model folder needs a config.pbtxt)");
  ASSERT_EQ(a->versions.size(), 1u);
  EXPECT_EQ(a->versions[0].version, 1);
  EXPECT_EQ(a->versions[0].state, ModelState::kUnavailable);

  const ModelEntry* b = repository->Find("no_versions");
  ASSERT_NE(b, nullptr);
  EXPECT_TRUE(b->config_ok);
  ASSERT_EQ(b->versions.size(), 1u);
  EXPECT_EQ(b->versions[0].version, 0);
  EXPECT_EQ(b->versions[0].state, ModelState::kUnavailable);
  EXPECT_NE(b->versions[0].reason.find("no version folders"), std::string::npos) << b->versions[0].reason;
}

TEST(ModelRepositoryTest, VersionPolicy) {
  TempDir repo;
  const fs::path latest = CopyLenet(repo.path(), "latest");
  const fs::path specific = CopyLenet(repo.path(), "specific");
  for (const fs::path& dir : {latest, specific}) {
    fs::copy(dir / "1", dir / "2", fs::copy_options::recursive);
    fs::copy(dir / "1", dir / "10", fs::copy_options::recursive);
  }
  EditConfig(latest, "labels: \"labels.txt\"", "labels: \"labels.txt\"\nversion_policy { latest: 2 }");
  EditConfig(specific, "labels: \"labels.txt\"", "labels: \"labels.txt\"\nversion_policy { specific: [7, 2] }");

  std::unique_ptr<ModelRepository> repository = LoadOrDie(repo.path());
  ASSERT_NE(repository, nullptr);
  const ModelEntry* l = repository->Find("latest");
  ASSERT_NE(l, nullptr);
  ASSERT_EQ(l->versions.size(), 2u);
  EXPECT_EQ(l->versions[0].version, 2);
  EXPECT_EQ(l->versions[1].version, 10);  // numeric order, not string order
  EXPECT_EQ(l->DefaultVersion()->version, 10);

  const ModelEntry* s = repository->Find("specific");
  ASSERT_NE(s, nullptr);
  ASSERT_EQ(s->versions.size(), 2u);
  EXPECT_EQ(s->versions[0].version, 2);
  EXPECT_EQ(s->versions[0].state, ModelState::kReady);
  EXPECT_EQ(s->versions[1].version, 7);
  EXPECT_EQ(s->versions[1].state, ModelState::kUnavailable);
  EXPECT_EQ(s->versions[1].reason,
            (specific / "7").string() + ": no such version folder (version_policy.specific asks for version 7)");
  EXPECT_EQ(s->DefaultVersion()->version, 2);
}

TEST(ModelRepositoryTest, SelectVersionsTable) {
  struct Case {
    int latest;
    std::vector<int64_t> specific;
    std::vector<int64_t> found;
    std::vector<int64_t> expected;
  };
  const std::vector<Case> cases = {
      {0, {}, {1, 2, 3}, {1, 2, 3}}, {1, {}, {1, 2, 3}, {3}}, {2, {}, {1, 5, 9}, {5, 9}},
      {5, {}, {1, 2}, {1, 2}},       {0, {}, {}, {}},         {0, {3, 1, 3}, {1, 2}, {1, 3}},
      {1, {2}, {1, 2, 3}, {2}},
  };
  for (const Case& c : cases) {
    v1::VersionPolicy policy;
    policy.set_latest(c.latest);
    for (int64_t v : c.specific) policy.add_specific(v);
    EXPECT_EQ(SelectVersions(policy, c.found), c.expected) << policy.ShortDebugString();
  }
}

TEST(ModelRepositoryTest, InstanceThreadsTable) {
  EXPECT_EQ(InstanceThreads(3, 2, 8), 3);  // explicit
  EXPECT_EQ(InstanceThreads(0, 2, 8), 4);  // a share of the cores
  EXPECT_EQ(InstanceThreads(0, 3, 8), 2);
  EXPECT_EQ(InstanceThreads(0, 4, 2), 1);  // at least one
  EXPECT_EQ(InstanceThreads(0, 0, 2), 2);  // count 0 means 1
  EXPECT_GE(InstanceThreads(0, 1, 0), 1);  // 0: all hardware threads
}

TEST(ModelRepositoryTest, ValidateAcceptsAMinimalConfig) {
  v1::ModelConfig config;
  EXPECT_TRUE(ValidateModelConfig(config, "m/config.pbtxt", "m").ok());
  config.set_name("m");
  config.set_max_batch_size(0);
  EXPECT_TRUE(ValidateModelConfig(config, "m/config.pbtxt", "m").ok());
  // max_batch_size 0 means batch 1: preferred sizes may only be 1.
  config.mutable_dynamic_batching()->add_preferred_batch_size(2);
  EXPECT_EQ(ValidateModelConfig(config, "m/config.pbtxt", "m").message(),
            "m/config.pbtxt: field dynamic_batching.preferred_batch_size[0]: 2 must be in [1, 1] (max_batch_size "
            "is 0)");
  v1::ModelConfig ensemble;
  ensemble.set_platform("ensemble");
  EXPECT_EQ(ValidateModelConfig(ensemble, "e/config.pbtxt", "e").message(),
            "e/config.pbtxt: field ensemble.members: an ensemble needs at least one member");
}

}  // namespace
}  // namespace cnnserve
