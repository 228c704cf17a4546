#include "engine/graph/graph.h"

#include <algorithm>
#include <functional>

#include <gtest/gtest.h>

#include "tests/engine/graph/test_graphs.h"

namespace cnnserve {
namespace {

using testing::MakeNode;
using testing::TinyCnn;

TEST(GraphTest, InfersShapesAndSortsNodes) {
  GraphDef def = TinyCnn();
  std::reverse(def.nodes.begin(), def.nodes.end());  // any order is accepted
  auto graph = Graph::Create(std::move(def));
  ASSERT_TRUE(graph.ok()) << graph.status().ToString();
  const Graph& g = **graph;
  EXPECT_TRUE(g.dynamic_batch());
  EXPECT_EQ(g.input_dims(), (Dims{1, 3, 8, 8}));
  ASSERT_EQ(g.nodes().size(), 5u);
  EXPECT_EQ(g.nodes().front().name, "conv");
  EXPECT_EQ(g.nodes().back().name, "fc");
  EXPECT_EQ(g.dims("c"), (Dims{1, 4, 8, 8}));
  EXPECT_EQ(g.dims("p"), (Dims{1, 4, 4, 4}));
  EXPECT_EQ(g.dims("f"), (Dims{1, 64}));
  EXPECT_EQ(g.output_dims(), (Dims{1, 10}));
  EXPECT_EQ(g.num_constant_elements(), 4 * 27 + 4 + 640 + 10);
  EXPECT_EQ(g.producer("r")->name, "relu");
  EXPECT_EQ(g.producer("x"), nullptr);
  EXPECT_EQ(g.consumers("c"), 1);
  EXPECT_EQ(g.consumers("y"), 1);
}

TEST(GraphTest, InferShapesForOtherBatchSizes) {
  auto graph = Graph::Create(TinyCnn());
  ASSERT_TRUE(graph.ok());
  auto dims = (*graph)->InferShapes(8);
  ASSERT_TRUE(dims.ok()) << dims.status().ToString();
  EXPECT_EQ(dims->at("p"), (Dims{8, 4, 4, 4}));
  EXPECT_EQ(dims->at("y"), (Dims{8, 10}));
  EXPECT_FALSE((*graph)->InferShapes(0).ok());
  EXPECT_FALSE((*graph)->InferShapes(-3).ok());
}

TEST(GraphTest, ReshapeThatFixesTheBatchFailsAtOtherBatchSizes) {
  GraphDef def = TinyCnn();
  ReshapeAttrs reshape;
  reshape.shape = {1, 64};
  def.nodes[3] = MakeNode("flat", OpType::kReshape, {"p"}, "f", reshape);
  auto graph = Graph::Create(std::move(def));
  ASSERT_TRUE(graph.ok()) << graph.status().ToString();
  auto dims = (*graph)->InferShapes(4);
  ASSERT_FALSE(dims.ok());
  EXPECT_NE(dims.status().message().find("batch size 4"), std::string::npos) << dims.status().ToString();
}

TEST(GraphTest, PrunesNodesTheOutputDoesNotNeed) {
  GraphDef def = TinyCnn();
  def.nodes.push_back(MakeNode("dead", OpType::kRelu, {"c"}, "unused"));
  auto graph = Graph::Create(std::move(def));
  ASSERT_TRUE(graph.ok());
  EXPECT_EQ((*graph)->nodes().size(), 5u);
}

struct BadGraphCase {
  std::string label;
  std::function<void(GraphDef&)> mutate;
  StatusCode code;
  std::string message_part;
};

TEST(GraphTest, RejectsBadGraphsWithPreciseErrors) {
  const std::vector<BadGraphCase> cases = {
      {"undefined input", [](GraphDef& d) { d.nodes[1].inputs[0] = "nope"; }, StatusCode::kInvalidArgument,
       "input \"nope\" is not defined"},
      {"duplicate output", [](GraphDef& d) { d.nodes[1].outputs[0] = "c"; }, StatusCode::kInvalidArgument,
       "defined more than once"},
      {"duplicate node name", [](GraphDef& d) { d.nodes[1].name = "conv"; }, StatusCode::kInvalidArgument,
       "two nodes are named \"conv\""},
      {"cycle",
       [](GraphDef& d) {
         d.nodes[0].inputs[0] = "r";  // conv reads relu's output, relu reads conv's
       },
       StatusCode::kInvalidArgument, "cycle"},
      {"missing output", [](GraphDef& d) { d.output = "zzz"; }, StatusCode::kInvalidArgument,
       "graph output \"zzz\" is not produced"},
      {"no input", [](GraphDef& d) { d.input.clear(); }, StatusCode::kInvalidArgument, "no input"},
      {"too many inputs", [](GraphDef& d) { d.nodes[1].inputs.push_back("c"); }, StatusCode::kInvalidArgument,
       "node \"relu\" (Relu): has 2 inputs"},
      {"bad weight shape",
       [](GraphDef& d) { d.constants["w"] = testing::RandomConstant({4, 5, 3, 3}, 9); },
       StatusCode::kInvalidArgument, "node \"conv\" (Conv)"},
      {"zero input dim", [](GraphDef& d) { d.input_dims = {-1, 3, 0, 8}; }, StatusCode::kInvalidArgument,
       "dimension 2"},
  };
  for (const BadGraphCase& c : cases) {
    GraphDef def = TinyCnn();
    c.mutate(def);
    auto graph = Graph::Create(std::move(def));
    ASSERT_FALSE(graph.ok()) << c.label;
    EXPECT_EQ(graph.status().code(), c.code) << c.label << ": " << graph.status().ToString();
    EXPECT_NE(graph.status().message().find(c.message_part), std::string::npos)
        << c.label << ": " << graph.status().ToString();
  }
}

}  // namespace
}  // namespace cnnserve
