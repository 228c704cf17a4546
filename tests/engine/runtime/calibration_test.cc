// The calibration file (parse, format, read, write) and Calibrate's measurement of activation ranges.
#include "engine/runtime/calibration.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "engine/runtime/model.h"
#include "tests/engine/backend/dnnl/dnnl_test_util.h"

namespace cnnserve {
namespace {

constexpr char kValid[] =
    "# a comment\n"
    "version 1\n"
    "method percentile 99.9\n"
    "images 64 training images 0-63\n"
    "\n"
    "range -1.5 2.25 input\n"
    "range 0 7 relu 1 (a name with spaces)\n"
    "fp32 input\n";

TEST(CalibrationFileTest, ParsesEveryRecord) {
  StatusOr<Calibration> c = ParseCalibration(kValid);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->method, CalibrationMethod::kPercentile);
  EXPECT_DOUBLE_EQ(c->percentile, 99.9);
  EXPECT_EQ(c->images, 64);
  EXPECT_EQ(c->source, "training images 0-63");
  ASSERT_EQ(c->ranges.size(), 2u);
  EXPECT_FLOAT_EQ(c->ranges.at("input").min, -1.5f);
  EXPECT_FLOAT_EQ(c->ranges.at("input").max, 2.25f);
  EXPECT_FLOAT_EQ(c->ranges.at("relu 1 (a name with spaces)").max, 7.0f);
  EXPECT_EQ(c->fp32_tensors, std::set<std::string>{"input"});
  // An int8 plan gets the ranges without the fp32 tensors.
  const std::shared_ptr<const TensorRanges> int8 = Int8Ranges(*c);
  EXPECT_EQ(int8->size(), 1u);
  EXPECT_EQ(int8->count("input"), 0u);
}

TEST(CalibrationFileTest, FormatThenParseGivesTheSameCalibration) {
  Calibration c;
  c.method = CalibrationMethod::kMinMax;
  c.images = 3;
  c.source = "x.npy\nwith a newline";
  c.ranges = {{"a", TensorRange{-0.123456789f, 3.0e-7f}}, {"b c", TensorRange{0, 1e30f}}};
  c.fp32_tensors = {"b c"};
  StatusOr<Calibration> back = ParseCalibration(FormatCalibration(c));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->method, c.method);
  EXPECT_EQ(back->images, 3);
  EXPECT_EQ(back->source, "x.npy with a newline");
  EXPECT_EQ(back->fp32_tensors, c.fp32_tensors);
  ASSERT_EQ(back->ranges.size(), 2u);
  for (const auto& [name, range] : c.ranges) {
    EXPECT_EQ(back->ranges.at(name).min, range.min) << name;  // %.9g round-trips a float exactly
    EXPECT_EQ(back->ranges.at(name).max, range.max) << name;
  }
}

TEST(CalibrationFileTest, RejectsWhatIsNotTheFormat) {
  const std::string head = "version 1\nmethod minmax\nimages 1 x\n";
  const struct {
    std::string text;
    std::string error;
  } cases[] = {
      {head + "range 2 1 t\n", "line 4: min is larger than max"},
      {head + "range 0 nan t\n", "line 4: expected: range <min> <max> <tensor name>"},
      {head + "range 0 1e39 t\n", "does not fit a float"},
      {head + "range 0 1\n", "line 4: expected: range"},
      {head + "range 0 1 t\nrange 0 2 t\n", "line 5: tensor \"t\" has two ranges"},
      {head + "scale 3 t\n", "line 4: unknown record \"scale\""},
      {head, "no range lines"},
      {"method minmax\nimages 1 x\nrange 0 1 t\n", "version, method and images lines are all required"},
      {"version 2\n", "line 1: version \"2\" (expected 1)"},
      {"version 1\nmethod entropy\n", "line 2: method \"entropy\" is not minmax or percentile"},
      {"version 1\nmethod percentile 40\n", "line 2: expected: method percentile <p in (50, 100]>"},
      {"version 1\nmethod minmax\nimages 0 x\n", "line 3: expected: images <count>"},
      {head + "fp32\n", "line 4: expected: fp32 <tensor name>"},
  };
  for (const auto& c : cases) {
    StatusOr<Calibration> got = ParseCalibration(c.text);
    ASSERT_FALSE(got.ok()) << c.text;
    EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(got.status().message().find(c.error), std::string::npos) << got.status().message();
  }
}

TEST(CalibrationFileTest, ReadAndWriteFiles) {
  const std::string dir = ::testing::TempDir();
  const std::string path = dir + "/calibration_test.txt";
  StatusOr<Calibration> c = ParseCalibration(kValid);
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(WriteCalibrationFile(path, *c).ok());
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  StatusOr<Calibration> back = ReadCalibrationFile(path);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->ranges.size(), 2u);

  StatusOr<Calibration> missing = ReadCalibrationFile(dir + "/no_such_calibration.txt");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  {
    std::ofstream out(path, std::ios::trunc);
    out << "version 1\nbogus\n";
  }
  StatusOr<Calibration> bad = ReadCalibrationFile(path);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("calibration_test.txt"), std::string::npos) << bad.status().message();
  EXPECT_NE(bad.status().message().find("line 2"), std::string::npos) << bad.status().message();
  {
    std::ofstream out(path, std::ios::trunc);
    out << std::string(kMaxCalibrationFileBytes + 1, '#');
  }
  StatusOr<Calibration> big = ReadCalibrationFile(path);
  ASSERT_FALSE(big.ok());
  EXPECT_NE(big.status().message().find("larger than"), std::string::npos);
  std::remove(path.c_str());
}

class CalibrateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    graph_ = dnnl_test::SmallCnn();
    ASSERT_NE(graph_, nullptr);
    const std::vector<float> values = dnnl_test::RandomVector(images_.size(), 5);
    std::copy(values.begin(), values.end(), images_.data());
  }
  std::shared_ptr<const Graph> graph_;
  Tensor images_{Dims{8, 3, 32, 32}};
};

TEST_F(CalibrateTest, MeasuresTheInputAndEveryNodeOutput) {
  CalibrateOptions options;
  options.batch = 3;  // 8 images in runs of 3, 3 and 2
  options.source = "random";
  StatusOr<Calibration> c = Calibrate(graph_, images_, options);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->images, 8);
  EXPECT_EQ(c->source, "random");
  EXPECT_EQ(c->ranges.size(), graph_->nodes().size() + 1);
  const float* x = images_.data();
  EXPECT_EQ(c->ranges.at(graph_->input_name()).min, *std::min_element(x, x + images_.size()));
  EXPECT_EQ(c->ranges.at(graph_->input_name()).max, *std::max_element(x, x + images_.size()));
  for (const Node& node : graph_->nodes()) {
    const TensorRange& range = c->ranges.at(node.outputs[0]);
    EXPECT_LE(range.min, range.max) << node.name;
    if (node.type == OpType::kRelu || node.type == OpType::kMaxPool) {
      EXPECT_GE(range.min, 0.0f) << node.name;
    }
  }
  // The output's range is what the whole model computes on the same images.
  auto model = Model::Create(graph_, ModelOptions());
  ASSERT_TRUE(model.ok());
  StatusOr<Tensor> out = (*model)->NewSession()->Run(images_);
  ASSERT_TRUE(out.ok());
  const float* y = out->data();
  EXPECT_FLOAT_EQ(c->ranges.at(graph_->output_name()).max, *std::max_element(y, y + out->size()));
  EXPECT_FLOAT_EQ(c->ranges.at(graph_->output_name()).min, *std::min_element(y, y + out->size()));
}

TEST_F(CalibrateTest, PercentileClipsTheTails) {
  images_.data()[17] = 50.0f;  // one outlier
  CalibrateOptions minmax;
  CalibrateOptions percentile;
  percentile.method = CalibrationMethod::kPercentile;
  percentile.percentile = 99.0;
  StatusOr<Calibration> a = Calibrate(graph_, images_, minmax);
  StatusOr<Calibration> b = Calibrate(graph_, images_, percentile);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->ranges.at(graph_->input_name()).max, 50.0f);
  EXPECT_LT(b->ranges.at(graph_->input_name()).max, 1.0f);
  EXPECT_GT(b->ranges.at(graph_->input_name()).max, 0.9f);
  EXPECT_LT(b->ranges.at(graph_->input_name()).min, -0.9f);
  EXPECT_EQ(b->method, CalibrationMethod::kPercentile);
}

TEST_F(CalibrateTest, MaxOutputErrorKeepsTheWorstLayersInFp32) {
  // SmallCnn's four layers read: the input (conv1), the LRN's output (conv2), the Flatten's output (fc1) and
  // fc1's ReLU (fc2).
  std::set<std::string> layer_inputs;
  for (const Node& node : graph_->nodes()) {
    if (node.type == OpType::kConv || node.type == OpType::kGemm) layer_inputs.insert(node.inputs[0]);
  }
  ASSERT_EQ(layer_inputs.size(), 4u);
  CalibrateOptions loose;
  loose.max_output_error = 0.5;  // int8 is within 50% of the largest output: nothing goes back
  StatusOr<Calibration> all_int8 = Calibrate(graph_, images_, loose);
  ASSERT_TRUE(all_int8.ok()) << all_int8.status().ToString();
  EXPECT_TRUE(all_int8->fp32_tensors.empty());
  CalibrateOptions exact;
  exact.max_output_error = 1e-7;  // only fp32 is this close: every layer goes back
  StatusOr<Calibration> all_fp32 = Calibrate(graph_, images_, exact);
  ASSERT_TRUE(all_fp32.ok()) << all_fp32.status().ToString();
  EXPECT_EQ(all_fp32->fp32_tensors, layer_inputs);
  EXPECT_EQ(all_fp32->ranges.size(), all_int8->ranges.size());  // the ranges are all still measured
}

TEST_F(CalibrateTest, RejectsBadImagesAndOptions) {
  Tensor wrong(Dims{2, 3, 16, 16});
  EXPECT_EQ(Calibrate(graph_, wrong, {}).status().code(), StatusCode::kInvalidArgument);
  images_.data()[3] = std::nanf("");
  StatusOr<Calibration> nan = Calibrate(graph_, images_, {});
  ASSERT_FALSE(nan.ok());
  EXPECT_NE(nan.status().message().find("NaN"), std::string::npos);
  images_.data()[3] = 0.0f;
  CalibrateOptions bad;
  bad.method = CalibrationMethod::kPercentile;
  bad.percentile = 30;
  EXPECT_EQ(Calibrate(graph_, images_, bad).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Calibrate(nullptr, images_, {}).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace cnnserve
