#include "engine/graph/passes.h"

#include <cmath>

#include <gtest/gtest.h>

#include "engine/backend/reference/reference_backend.h"
#include "tests/engine/graph/test_graphs.h"

namespace cnnserve {
namespace {

using testing::MakeNode;
using testing::RandomConstant;

// Runs `graph` on the reference backend at batch 2 with a fixed input.
std::vector<float> RunReference(std::shared_ptr<const Graph> graph) {
  auto backend = CreateReferenceBackend(graph);
  EXPECT_TRUE(backend.ok());
  auto plan = (*backend)->Compile(2);
  EXPECT_TRUE(plan.ok()) << plan.status().ToString();
  std::shared_ptr<const Tensor> input = RandomConstant((*plan)->input_dims(), 77);
  std::vector<float> out(static_cast<size_t>(NumElements((*plan)->output_dims())));
  Status s = (*plan)->Run(input->data(), out.data());
  EXPECT_TRUE(s.ok()) << s.ToString();
  return out;
}

void ExpectClose(const std::vector<float>& a, const std::vector<float>& b) {
  ASSERT_EQ(a.size(), b.size());
  float max_ref = 0;
  for (float v : b) max_ref = std::max(max_ref, std::fabs(v));
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-5f * max_ref + 1e-6f) << "at " << i;
}

TEST(PassesTest, FoldsBatchNormIntoConvAndRemovesDropout) {
  GraphDef def = testing::TinyCnn();
  // conv -> bn -> dropout -> relu
  def.nodes[0].outputs[0] = "c0";
  def.nodes.push_back(MakeNode("bn", OpType::kBatchNormalization, {"c0", "s", "sh", "m", "v"}, "c1",
                               BatchNormAttrs{1e-3f}));
  def.nodes.push_back(MakeNode("drop", OpType::kDropout, {"c1"}, "c"));
  def.constants["s"] = RandomConstant({4}, 11, 0.5f, 2.0f);
  def.constants["sh"] = RandomConstant({4}, 12);
  def.constants["m"] = RandomConstant({4}, 13);
  def.constants["v"] = RandomConstant({4}, 14, 0.1f, 3.0f);
  auto graph = Graph::Create(std::move(def));
  ASSERT_TRUE(graph.ok()) << graph.status().ToString();
  auto optimized = OptimizeForInference(**graph);
  ASSERT_TRUE(optimized.ok()) << optimized.status().ToString();
  for (const Node& n : (*optimized)->nodes()) {
    EXPECT_NE(n.type, OpType::kBatchNormalization);
    EXPECT_NE(n.type, OpType::kDropout);
  }
  EXPECT_EQ((*optimized)->nodes().size(), 5u);
  ExpectClose(RunReference(*optimized), RunReference(*graph));
  // The weights the rewrite did not touch are shared, not copied.
  EXPECT_EQ((*optimized)->constant("fw"), (*graph)->constant("fw"));
}

TEST(PassesTest, BatchNormWhoseConvOutputIsAlsoReadElsewhereIsKept) {
  GraphDef def = testing::TinyCnn();
  def.nodes[0].outputs[0] = "c0";
  def.nodes.push_back(MakeNode("bn", OpType::kBatchNormalization, {"c0", "s", "sh", "m", "v"}, "c1"));
  def.nodes.push_back(MakeNode("add", OpType::kAdd, {"c0", "c1"}, "c"));
  for (const char* n : {"s", "sh", "m"}) def.constants[n] = RandomConstant({4}, 5);
  def.constants["v"] = RandomConstant({4}, 6, 0.5f, 1.0f);
  auto graph = Graph::Create(std::move(def));
  ASSERT_TRUE(graph.ok()) << graph.status().ToString();
  auto optimized = OptimizeForInference(**graph);
  ASSERT_TRUE(optimized.ok());
  int bn = 0;
  for (const Node& n : (*optimized)->nodes()) bn += n.type == OpType::kBatchNormalization;
  EXPECT_EQ(bn, 1);
  ExpectClose(RunReference(*optimized), RunReference(*graph));
}

TEST(PassesTest, FusesMatMulAndBiasAddIntoGemm) {
  GraphDef def;
  def.name = "mlp";
  def.input = "x";
  def.input_dims = {-1, 6};
  def.output = "y";
  def.nodes.push_back(MakeNode("mm", OpType::kMatMul, {"x", "w"}, "h"));
  def.nodes.push_back(MakeNode("bias", OpType::kAdd, {"h", "b"}, "y"));
  def.constants["w"] = RandomConstant({6, 5}, 1);
  def.constants["b"] = RandomConstant({5}, 2);
  auto graph = Graph::Create(std::move(def));
  ASSERT_TRUE(graph.ok()) << graph.status().ToString();
  auto optimized = OptimizeForInference(**graph);
  ASSERT_TRUE(optimized.ok()) << optimized.status().ToString();
  ASSERT_EQ((*optimized)->nodes().size(), 1u);
  EXPECT_EQ((*optimized)->nodes()[0].type, OpType::kGemm);
  ExpectClose(RunReference(*optimized), RunReference(*graph));
}

TEST(PassesTest, IdentityFeedingTheOutputDirectlyFromTheInputIsKept) {
  GraphDef def;
  def.input = "x";
  def.input_dims = {-1, 3};
  def.output = "y";
  def.nodes.push_back(MakeNode("id", OpType::kIdentity, {"x"}, "y"));
  auto graph = Graph::Create(std::move(def));
  ASSERT_TRUE(graph.ok());
  auto optimized = OptimizeForInference(**graph);
  ASSERT_TRUE(optimized.ok()) << optimized.status().ToString();
  EXPECT_EQ((*optimized)->nodes().size(), 1u);
}

}  // namespace
}  // namespace cnnserve
