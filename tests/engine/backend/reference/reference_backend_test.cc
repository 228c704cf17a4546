// The reference backend: compiles plans per batch size, runs graphs node by node, allocates nothing in Run.
#include "engine/backend/reference/reference_backend.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/graph/graph.h"
#include "tests/engine/backend/reference/alloc_count.h"

namespace cnnserve {
namespace {

using ::testing::ElementsAre;
using ::testing::FloatNear;
using ::testing::HasSubstr;
using ::testing::Pointwise;

std::shared_ptr<const Tensor> Constant(Dims dims, std::vector<float> values) {
  StatusOr<Tensor> t = Tensor::FromVector(std::move(dims), values);
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return std::make_shared<const Tensor>(t.ok() ? std::move(t).value() : Tensor(Dims{1}));
}

std::shared_ptr<const Tensor> RandomConstant(Dims dims, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  Tensor t(std::move(dims));
  for (int64_t i = 0; i < t.size(); ++i) t[i] = dist(rng);
  return std::make_shared<const Tensor>(std::move(t));
}

Node MakeNode(std::string name, OpType type, std::vector<std::string> inputs, std::string output,
              OpAttrs attrs = {}) {
  Node n;
  n.name = std::move(name);
  n.type = type;
  n.inputs = std::move(inputs);
  n.outputs = {std::move(output)};
  n.attrs = std::move(attrs);
  return n;
}

// x [N,1,2,2] -> conv 1x1 (w = 2, b = -3) -> relu -> maxpool 2x2 -> flatten -> y [N,1].
GraphDef HandGraph() {
  GraphDef def;
  def.name = "hand";
  def.input = "x";
  def.input_dims = {-1, 1, 2, 2};
  def.output = "y";
  PoolAttrs pool;
  pool.kernel_shape = {2, 2};
  def.nodes.push_back(MakeNode("conv", OpType::kConv, {"x", "w", "b"}, "c", ConvAttrs{}));
  def.nodes.push_back(MakeNode("relu", OpType::kRelu, {"c"}, "r"));
  def.nodes.push_back(MakeNode("pool", OpType::kMaxPool, {"r"}, "p", pool));
  def.nodes.push_back(MakeNode("flat", OpType::kFlatten, {"p"}, "y", FlattenAttrs{}));
  def.constants["w"] = Constant({1, 1, 1, 1}, {2});
  def.constants["b"] = Constant({1}, {-3});
  return def;
}

// A LeNet-shaped network with random weights (every op family on the path of a classifier).
GraphDef SmallCnn() {
  GraphDef def;
  def.name = "small_cnn";
  def.input = "x";
  def.input_dims = {-1, 1, 12, 12};
  def.output = "prob";
  ConvAttrs conv;
  conv.pads = {1, 1, 1, 1};
  PoolAttrs max_pool;
  max_pool.kernel_shape = {2, 2};
  max_pool.strides = {2, 2};
  LrnAttrs lrn;
  lrn.size = 3;
  lrn.bias = 2.0f;
  PoolAttrs avg_pool;
  avg_pool.kernel_shape = {3, 3};
  avg_pool.strides = {3, 3};
  avg_pool.pads = {1, 1, 1, 1};
  avg_pool.ceil_mode = true;
  ConvAttrs grouped;
  grouped.group = 2;
  ReshapeAttrs reshape;
  reshape.shape = {0, -1};
  GemmAttrs fc;
  fc.trans_b = true;
  def.nodes.push_back(MakeNode("conv1", OpType::kConv, {"x", "w1", "b1"}, "c1", conv));
  def.nodes.push_back(MakeNode("relu1", OpType::kRelu, {"c1"}, "r1"));
  def.nodes.push_back(MakeNode("pool1", OpType::kMaxPool, {"r1"}, "p1", max_pool));
  def.nodes.push_back(MakeNode("lrn1", OpType::kLrn, {"p1"}, "n1", lrn));
  def.nodes.push_back(MakeNode("conv2", OpType::kConv, {"n1", "w2"}, "c2", grouped));
  def.nodes.push_back(
      MakeNode("bn2", OpType::kBatchNormalization, {"c2", "s2", "o2", "m2", "v2"}, "bn2", BatchNormAttrs{}));
  def.nodes.push_back(MakeNode("pool2", OpType::kAveragePool, {"bn2"}, "p2", avg_pool));
  def.nodes.push_back(MakeNode("reshape", OpType::kReshape, {"p2"}, "f", reshape));
  def.nodes.push_back(MakeNode("fc", OpType::kGemm, {"f", "fw", "fb"}, "g", fc));
  def.nodes.push_back(MakeNode("drop", OpType::kDropout, {"g"}, "d"));
  def.nodes.push_back(MakeNode("softmax", OpType::kSoftmax, {"d"}, "prob", SoftmaxAttrs{}));
  def.constants["w1"] = RandomConstant({4, 1, 3, 3}, 1);
  def.constants["b1"] = RandomConstant({4}, 2);
  def.constants["w2"] = RandomConstant({6, 2, 3, 3}, 3);
  def.constants["s2"] = RandomConstant({6}, 4);
  def.constants["o2"] = RandomConstant({6}, 5);
  def.constants["m2"] = RandomConstant({6}, 6);
  def.constants["v2"] = Constant({6}, {0.5f, 1, 1.5f, 2, 2.5f, 3});
  def.constants["fw"] = RandomConstant({10, 6 * 2 * 2}, 7);
  def.constants["fb"] = RandomConstant({10}, 8);
  return def;
}

std::shared_ptr<const Graph> Build(GraphDef def) {
  StatusOr<std::shared_ptr<const Graph>> graph = Graph::Create(std::move(def));
  EXPECT_TRUE(graph.ok()) << graph.status().ToString();
  return graph.ok() ? *graph : nullptr;
}

std::unique_ptr<Plan> Compile(const std::shared_ptr<const Graph>& graph, int64_t batch) {
  StatusOr<std::unique_ptr<Backend>> backend = CreateReferenceBackend(graph);
  EXPECT_TRUE(backend.ok()) << backend.status().ToString();
  if (!backend.ok()) return nullptr;
  StatusOr<std::unique_ptr<Plan>> plan = (*backend)->Compile(batch);
  EXPECT_TRUE(plan.ok()) << plan.status().ToString();
  return plan.ok() ? std::move(plan).value() : nullptr;
}

std::vector<float> RandomInput(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& f : v) f = dist(rng);
  return v;
}

TEST(ReferenceBackendTest, RunsHandComputedGraph) {
  auto graph = Build(HandGraph());
  ASSERT_NE(graph, nullptr);
  std::unique_ptr<Plan> plan = Compile(graph, 2);
  ASSERT_NE(plan, nullptr);
  EXPECT_EQ(plan->batch(), 2);
  EXPECT_EQ(plan->input_dims(), (Dims{2, 1, 2, 2}));
  EXPECT_EQ(plan->output_dims(), (Dims{2, 1}));
  // Sample 0: 2x - 3 = [-1, 1, 3, 5] -> relu -> max 5. Sample 1: all negative after the conv -> 0.
  const std::vector<float> src = {1, 2, 3, 4, -1, -2, -3, -4};
  std::vector<float> dst(2, -100.0f);
  ASSERT_TRUE(plan->Run(src.data(), dst.data()).ok());
  EXPECT_THAT(dst, ElementsAre(5.0f, 0.0f));
}

TEST(ReferenceBackendTest, NameAndBadBatch) {
  auto graph = Build(HandGraph());
  ASSERT_NE(graph, nullptr);
  auto backend = CreateReferenceBackend(graph);
  ASSERT_TRUE(backend.ok());
  EXPECT_EQ((*backend)->name(), "reference");
  StatusOr<std::unique_ptr<Plan>> plan = (*backend)->Compile(0);
  EXPECT_EQ(plan.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(CreateReferenceBackend(nullptr).status().code(), StatusCode::kInvalidArgument);
}

TEST(ReferenceBackendTest, BatchItemsMatchSingleRuns) {
  auto graph = Build(SmallCnn());
  ASSERT_NE(graph, nullptr);
  std::unique_ptr<Plan> one = Compile(graph, 1);
  std::unique_ptr<Plan> three = Compile(graph, 3);
  ASSERT_NE(one, nullptr);
  ASSERT_NE(three, nullptr);
  EXPECT_EQ(three->output_dims(), (Dims{3, 10}));
  const int64_t image = 12 * 12;
  const std::vector<float> src = RandomInput(3 * image, 42);
  std::vector<float> batched(3 * 10);
  ASSERT_TRUE(three->Run(src.data(), batched.data()).ok());
  for (int i = 0; i < 3; ++i) {
    SCOPED_TRACE(i);
    std::vector<float> single(10);
    ASSERT_TRUE(one->Run(src.data() + i * image, single.data()).ok());
    EXPECT_EQ(single, std::vector<float>(batched.begin() + i * 10, batched.begin() + (i + 1) * 10));
    float sum = 0;
    for (float p : single) sum += p;
    EXPECT_NEAR(sum, 1.0f, 1e-5f);  // softmax output
  }
  // Images differ, so their outputs do too (the graph is not degenerate).
  EXPECT_NE(std::vector<float>(batched.begin(), batched.begin() + 10),
            std::vector<float>(batched.begin() + 10, batched.begin() + 20));
}

TEST(ReferenceBackendTest, RunIsRepeatableAndAllocatesNothing) {
  auto graph = Build(SmallCnn());
  ASSERT_NE(graph, nullptr);
  std::unique_ptr<Plan> plan = Compile(graph, 2);
  ASSERT_NE(plan, nullptr);
  const std::vector<float> src = RandomInput(2 * 144, 7);
  std::vector<float> first(20);
  std::vector<float> second(20);
  ASSERT_TRUE(plan->Run(src.data(), first.data()).ok());
  const int64_t before = reference_test::AllocationCount();
  Status s = plan->Run(src.data(), second.data());
  const int64_t allocations = reference_test::AllocationCount() - before;
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(allocations, 0);
  // The counter works: building a long string in another translation unit allocates.
  const int64_t probe = reference_test::AllocationCount();
  const std::string text = DimsToString(Dims(50, 7));
  EXPECT_GT(reference_test::AllocationCount(), probe) << "operator new is not counted";
  EXPECT_EQ(first, second);
}

TEST(ReferenceBackendTest, PlanOutlivesBackend) {
  auto graph = Build(HandGraph());
  ASSERT_NE(graph, nullptr);
  std::unique_ptr<Plan> plan;
  {
    auto backend = CreateReferenceBackend(graph);
    ASSERT_TRUE(backend.ok());
    auto compiled = (*backend)->Compile(1);
    ASSERT_TRUE(compiled.ok());
    plan = std::move(compiled).value();
  }
  graph.reset();  // the plan keeps the graph alive
  const std::vector<float> src = {4, 3, 2, 1};
  float dst = 0;
  ASSERT_TRUE(plan->Run(src.data(), &dst).ok());
  EXPECT_EQ(dst, 5.0f);
}

TEST(ReferenceBackendTest, CompileFailsWhenTheGraphFixesTheBatch) {
  GraphDef def = HandGraph();
  def.nodes.back() = MakeNode("reshape", OpType::kReshape, {"p"}, "y", ReshapeAttrs{.shape = {1, -1}});
  auto graph = Build(std::move(def));
  ASSERT_NE(graph, nullptr);
  auto backend = CreateReferenceBackend(graph);
  ASSERT_TRUE(backend.ok());
  EXPECT_TRUE((*backend)->Compile(1).ok());
  EXPECT_EQ((*backend)->Compile(2).status().code(), StatusCode::kInvalidArgument);
}

TEST(ReferenceBackendTest, KernelErrorsNameTheNode) {
  GraphDef def = HandGraph();
  def.nodes.back() = MakeNode("drop", OpType::kDropout, {"p", "", "train"}, "y");
  def.constants["train"] = Constant({}, {1});
  auto graph = Build(std::move(def));
  ASSERT_NE(graph, nullptr);
  std::unique_ptr<Plan> plan = Compile(graph, 1);
  ASSERT_NE(plan, nullptr);
  const std::vector<float> src = {1, 2, 3, 4};
  std::vector<float> dst(4);
  Status s = plan->Run(src.data(), dst.data());
  EXPECT_EQ(s.code(), StatusCode::kUnimplemented);
  EXPECT_THAT(s.message(), HasSubstr("node \"drop\" (Dropout)"));
  EXPECT_EQ(plan->Run(nullptr, dst.data()).code(), StatusCode::kInvalidArgument);
}

TEST(ReferenceBackendTest, SameUpperConvAndMatMulAddGraph) {
  // x [N, 1, 1, 3] -> conv 1x2 SAME_UPPER (w = [1, 10]) -> flatten [N, 3] -> matmul [3, 2] -> add [2] -> y,
  // and Run allocates nothing for these kernels either.
  GraphDef def;
  def.name = "matmul_add";
  def.input = "x";
  def.input_dims = {-1, 1, 1, 3};
  def.output = "y";
  ConvAttrs conv;
  conv.auto_pad = AutoPad::kSameUpper;
  def.nodes.push_back(MakeNode("conv", OpType::kConv, {"x", "w"}, "c", conv));
  def.nodes.push_back(MakeNode("flat", OpType::kFlatten, {"c"}, "f", FlattenAttrs{}));
  def.nodes.push_back(MakeNode("mm", OpType::kMatMul, {"f", "m"}, "mm"));
  def.nodes.push_back(MakeNode("add", OpType::kAdd, {"mm", "bias"}, "y"));
  def.constants["w"] = Constant({1, 1, 1, 2}, {1, 10});
  def.constants["m"] = Constant({3, 2}, {1, 0, 0, 1, 1, 1});
  def.constants["bias"] = Constant({2}, {0.5f, -0.5f});
  auto graph = Build(std::move(def));
  ASSERT_NE(graph, nullptr);
  std::unique_ptr<Plan> plan = Compile(graph, 1);
  ASSERT_NE(plan, nullptr);
  // conv: [1 + 20, 2 + 30, 3] = [21, 32, 3]; matmul: [21 + 3, 32 + 3] = [24, 35]; add: [24.5, 34.5].
  const std::vector<float> src = {1, 2, 3};
  std::vector<float> dst(2);
  ASSERT_TRUE(plan->Run(src.data(), dst.data()).ok());
  EXPECT_THAT(dst, Pointwise(FloatNear(1e-5f), std::vector<float>{24.5f, 34.5f}));
  const int64_t before = reference_test::AllocationCount();
  ASSERT_TRUE(plan->Run(src.data(), dst.data()).ok());
  EXPECT_EQ(reference_test::AllocationCount() - before, 0);
}

}  // namespace
}  // namespace cnnserve
