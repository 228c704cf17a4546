#include "engine/graph/inspect.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace cnnserve
