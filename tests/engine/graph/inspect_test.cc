#include "engine/graph/inspect.h"

#include <gtest/gtest.h>

#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "tests/engine/graph/test_graphs.h"

namespace cnnserve {
namespace {

using testing::MakeNode;
using testing::RandomConstant;

TEST(InspectTest, ThreeStackedThreeByThreeConvolutionsSeeSevenBySeven) {
  GraphDef def;
  def.name = "stack";
  def.input = "x";
  def.input_dims = {-1, 2, 16, 16};
  def.output = "c3";
  std::string prev = "x";
  for (int i = 1; i <= 3; ++i) {
    const std::string out = "c" + std::to_string(i);
    def.nodes.push_back(MakeNode("conv" + std::to_string(i), OpType::kConv, {prev, "w" + std::to_string(i)}, out,
                                 testing::Conv3x3()));
    def.constants["w" + std::to_string(i)] = RandomConstant({2, 2, 3, 3}, i);
    prev = out;
  }
  auto graph = Graph::Create(std::move(def));
  ASSERT_TRUE(graph.ok()) << graph.status().ToString();
  GraphStats stats = ComputeGraphStats(**graph);
  ASSERT_EQ(stats.layers.size(), 3u);
  EXPECT_EQ(stats.layers[0].receptive_h, 3);
  EXPECT_EQ(stats.layers[1].receptive_h, 5);
  EXPECT_EQ(stats.layers[2].receptive_h, 7);
  EXPECT_EQ(stats.layers[2].receptive_w, 7);
  EXPECT_EQ(stats.layers[2].params, 2 * 2 * 9);
  EXPECT_EQ(stats.layers[2].macs, 2 * 16 * 16 * 2 * 9);
  EXPECT_EQ(stats.total_params, 3 * 36);
  EXPECT_EQ(stats.weight_bytes, 3 * 36 * 4);
}

TEST(InspectTest, StridesAndPoolsGrowTheFieldAndFcIsGlobal) {
  auto graph = Graph::Create(testing::TinyCnn());
  ASSERT_TRUE(graph.ok());
  GraphStats stats = ComputeGraphStats(**graph);
  ASSERT_EQ(stats.layers.size(), 5u);
  EXPECT_EQ(ShapeLabel(stats.layers[0].output_dims), "8x8x4");
  EXPECT_EQ(stats.layers[2].receptive_h, 4);  // 3x3 conv then 2x2/2 pool
  EXPECT_TRUE(stats.layers[4].global_receptive_field);
  EXPECT_EQ(stats.layers[4].macs, 640);
  std::string table = FormatStatsTable(stats);
  EXPECT_NE(table.find("8x8x4"), std::string::npos) << table;
  EXPECT_NE(table.find("total: 5 layers, 762 parameters"), std::string::npos) << table;
  std::string json = FormatStatsJson(stats);
  EXPECT_NE(json.find("\"total_params\":762"), std::string::npos) << json;
}

// LeNet-5 as in models/zoo/architectures.py: 1x32x32 -> conv1 6@5x5 -> relu -> pool 2/2 -> conv2 16@5x5 -> relu ->
// pool 2/2 -> flatten -> fc1 120 -> relu -> fc2 84 -> relu -> fc3 10.
GraphDef LeNet5() {
  GraphDef def;
  def.name = "lenet5";
  def.input = "input";
  def.input_dims = {-1, 1, 32, 32};
  def.output = "logits";
  ConvAttrs conv;
  conv.kernel_shape = {5, 5};
  PoolAttrs pool;
  pool.kernel_shape = {2, 2};
  pool.strides = {2, 2};
  GemmAttrs gemm;
  gemm.trans_b = true;
  def.nodes = {MakeNode("conv1", OpType::kConv, {"input", "conv1.w", "conv1.b"}, "conv1_out", conv),
               MakeNode("relu1", OpType::kRelu, {"conv1_out"}, "relu1_out"),
               MakeNode("pool1", OpType::kMaxPool, {"relu1_out"}, "pool1_out", pool),
               MakeNode("conv2", OpType::kConv, {"pool1_out", "conv2.w", "conv2.b"}, "conv2_out", conv),
               MakeNode("relu2", OpType::kRelu, {"conv2_out"}, "relu2_out"),
               MakeNode("pool2", OpType::kMaxPool, {"relu2_out"}, "pool2_out", pool),
               MakeNode("flatten", OpType::kFlatten, {"pool2_out"}, "flat", FlattenAttrs{}),
               MakeNode("fc1", OpType::kGemm, {"flat", "fc1.w", "fc1.b"}, "fc1_out", gemm),
               MakeNode("relu3", OpType::kRelu, {"fc1_out"}, "relu3_out"),
               MakeNode("fc2", OpType::kGemm, {"relu3_out", "fc2.w", "fc2.b"}, "fc2_out", gemm),
               MakeNode("relu4", OpType::kRelu, {"fc2_out"}, "relu4_out"),
               MakeNode("fc3", OpType::kGemm, {"relu4_out", "fc3.w", "fc3.b"}, "logits", gemm)};
  const std::vector<std::pair<std::string, Dims>> weights = {
      {"conv1.w", {6, 1, 5, 5}}, {"conv1.b", {6}},  {"conv2.w", {16, 6, 5, 5}}, {"conv2.b", {16}},
      {"fc1.w", {120, 400}},     {"fc1.b", {120}},  {"fc2.w", {84, 120}},       {"fc2.b", {84}},
      {"fc3.w", {10, 84}},       {"fc3.b", {10}}};
  uint32_t seed = 1;
  for (const auto& [name, dims] : weights) def.constants[name] = RandomConstant(dims, seed++);
  return def;
}

TEST(InspectTest, LeNet5ActivationsCountTheInputAndEachNewTensorOnce) {
  auto graph = Graph::Create(LeNet5());
  ASSERT_TRUE(graph.ok()) << graph.status().ToString();
  GraphStats stats = ComputeGraphStats(**graph);
  // name, output tensor, activation values per image (ReLU in place and Flatten a view: 0).
  const std::vector<std::tuple<std::string, std::string, int64_t>> expected = {
      {"conv1", "conv1_out", 6 * 28 * 28}, {"relu1", "relu1_out", 0},     {"pool1", "pool1_out", 6 * 14 * 14},
      {"conv2", "conv2_out", 16 * 10 * 10}, {"relu2", "relu2_out", 0},    {"pool2", "pool2_out", 16 * 5 * 5},
      {"flatten", "flat", 0},               {"fc1", "fc1_out", 120},      {"relu3", "relu3_out", 0},
      {"fc2", "fc2_out", 84},               {"relu4", "relu4_out", 0},    {"fc3", "logits", 10}};
  ASSERT_EQ(stats.layers.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(stats.layers[i].name, std::get<0>(expected[i]));
    EXPECT_EQ(stats.layers[i].output_name, std::get<1>(expected[i]));
    EXPECT_EQ(stats.layers[i].activation_values, std::get<2>(expected[i])) << stats.layers[i].name;
  }
  EXPECT_EQ(stats.input_values, 1024);
  // 1,024 + 4,704 + 1,176 + 1,600 + 400 + 120 + 84 + 10
  EXPECT_EQ(stats.total_activation_values, 9118);
  EXPECT_EQ(stats.total_activation_bytes, 9118 * 4);
  EXPECT_EQ(stats.total_params, 61706);  // PyTorch's count for LeNet-5
  const std::string table = FormatStatsTable(stats);
  EXPECT_NE(table.find("activations: 9,118 values, 36.5 kB per image"), std::string::npos) << table;
  EXPECT_NE(table.find("relu1    Relu"), std::string::npos) << table;
  EXPECT_NE(table.find("(in place)"), std::string::npos) << table;
  EXPECT_NE(table.find("(view)"), std::string::npos) << table;
  const std::string json = FormatStatsJson(stats);
  EXPECT_NE(json.find("\"name\":\"pool2\",\"output_name\":\"pool2_out\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"total_activation_values\":9118,\"total_activation_bytes\":36472"), std::string::npos)
      << json;
}

TEST(InspectTest, AConstantSharedByTwoLayersCountsForEach) {
  // torch's exporter stores equal initializers (e.g. zero biases) once; PyTorch counts each module's own.
  GraphDef def = testing::TinyCnn();
  def.nodes.push_back(MakeNode("fc2", OpType::kAdd, {"y", "fb"}, "y2"));
  def.output = "y2";
  auto graph = Graph::Create(std::move(def));
  ASSERT_TRUE(graph.ok()) << graph.status().ToString();
  GraphStats stats = ComputeGraphStats(**graph);
  EXPECT_EQ(stats.total_params, 762 + 10);
  EXPECT_EQ(stats.weight_bytes, 762 * 4);  // stored once
}

}  // namespace
}  // namespace cnnserve
