// INT8 plans (Precision::kInt8): which tensors are stored in u8/s8 (calibrated ranges, consumers that take
// int8), the per-layer fallback to fp32, and that the outputs stay close to the fp32 reference. The accuracy of
// trained models at int8 is measured end to end (integration_precision_accuracy, bench/RESULTS.md "Precision").
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/backend/dnnl/dnnl_backend.h"
#include "engine/backend/dnnl/dnnl_backend_internal.h"
#include "engine/runtime/calibration.h"
#include "engine/runtime/model.h"
#include "tests/engine/backend/dnnl/dnnl_test_util.h"

namespace cnnserve::dnnl_test {
namespace {

using dnnl_internal::DescribePlan;
using dnnl_internal::FormatPlanInfo;
using dnnl_internal::PlanInfo;
using dnnl_internal::StepInfo;
using dnnl_internal::WeightBytesByType;

constexpr int64_t kCalibrationImages = 16;

// SmallCnn's ranges over random inputs drawn like the test inputs (uniform in [-1, 1]).
std::shared_ptr<const TensorRanges> CalibratedRanges(const std::shared_ptr<const Graph>& graph) {
  Tensor images({kCalibrationImages, 3, 32, 32});
  const std::vector<float> values = RandomVector(images.size(), 99);
  std::copy(values.begin(), values.end(), images.data());
  StatusOr<Calibration> calibration = Calibrate(graph, images, CalibrateOptions());
  EXPECT_TRUE(calibration.ok()) << calibration.status().ToString();
  if (!calibration.ok()) return nullptr;
  return std::make_shared<const TensorRanges>(calibration->ranges);
}

BackendOptions Int8Options(std::shared_ptr<const TensorRanges> ranges) {
  BackendOptions options;
  options.precision = Precision::kInt8;
  options.ranges = std::move(ranges);
  return options;
}

// The step computing `node` (a fused name starts with it).
const StepInfo* StepOf(const PlanInfo& info, const std::string& node) {
  for (const StepInfo& step : info.steps) {
    if (step.kind != "reorder" && step.node.rfind(node, 0) == 0) return &step;
  }
  return nullptr;
}

class DnnlInt8Test : public ::testing::Test {
 protected:
  void SetUp() override {
    graph_ = SmallCnn();
    ASSERT_NE(graph_, nullptr);
    ranges_ = CalibratedRanges(graph_);
    ASSERT_NE(ranges_, nullptr);
  }
  // The graph's node names in order: conv, relu, pool, lrn, conv, relu, pool, flatten, gemm, relu, gemm.
  std::string NodeName(size_t i) const { return graph_->nodes().at(i).name; }

  std::shared_ptr<const Graph> graph_;
  std::shared_ptr<const TensorRanges> ranges_;
};

TEST_F(DnnlInt8Test, LayersComputeInInt8WhereTheirNeighboursTakeIt) {
  for (int64_t batch : {1, 8}) {
    SCOPED_TRACE("batch " + std::to_string(batch));
    const PlanInfo info = CompileAndDescribe(graph_, Int8Options(ranges_), batch);
    const std::string plan = FormatPlanInfo(info);
    // conv1: s8 input (the image has negative values); it writes fp32 because pool1 feeds LRN (no int8 LRN).
    const StepInfo* conv1 = StepOf(info, NodeName(0));
    ASSERT_NE(conv1, nullptr) << plan;
    EXPECT_EQ(conv1->src_type, "s8") << plan;
    EXPECT_EQ(conv1->weights_type, "s8") << plan;
    EXPECT_EQ(conv1->dst_type, "f32") << plan;
    EXPECT_EQ(StepOf(info, NodeName(3))->src_type, "f32") << plan;  // LRN
    // conv2 (two groups): u8 input (the LRN output is never negative); its ReLU output is u8 for pool2.
    const StepInfo* conv2 = StepOf(info, NodeName(4));
    ASSERT_NE(conv2, nullptr) << plan;
    EXPECT_EQ(conv2->src_type, "u8") << plan;
    EXPECT_EQ(conv2->dst_type, "u8") << plan;
    EXPECT_EQ(StepOf(info, NodeName(6))->src_type, "u8") << plan;  // pool2 stays in int8
    const StepInfo* fc1 = StepOf(info, NodeName(8));
    ASSERT_NE(fc1, nullptr) << plan;
    EXPECT_EQ(fc1->src_type, "u8") << plan;
    EXPECT_EQ(fc1->dst_type, "u8") << plan;
    // The last layer writes the fp32 logits itself.
    const StepInfo* fc2 = StepOf(info, NodeName(10));
    ASSERT_NE(fc2, nullptr) << plan;
    EXPECT_EQ(fc2->src_type, "u8") << plan;
    EXPECT_EQ(fc2->dst_type, "f32") << plan;
    // Int8 FC layers run as matmuls (weights packed once, not per call as the int8 inner product's gemm does).
    EXPECT_EQ(fc1->kind, "matmul") << plan;
    EXPECT_EQ(fc2->kind, "matmul") << plan;
    EXPECT_EQ(info.steps.back().node, fc2->node) << plan;
    for (const StepInfo& step : info.steps) EXPECT_EQ(step.impl.find("ref"), std::string::npos) << plan;
    // Every layer with weights holds them in s8.
    const std::map<std::string, size_t> bytes = WeightBytesByType(info);
    EXPECT_EQ(bytes.count("f32"), 0u) << plan;
    EXPECT_GT(bytes.at("s8"), 0u) << plan;
  }
}

TEST_F(DnnlInt8Test, OutputsStayCloseToTheFp32Reference) {
  auto reference = CreateReferenceBackend(graph_);
  auto int8 = CreateDnnlBackend(graph_, Int8Options(ranges_));
  ASSERT_TRUE(reference.ok() && int8.ok());
  for (int64_t batch : {1, 3, 8}) {
    SCOPED_TRACE("batch " + std::to_string(batch));
    const Comparison c = CompareAtBatch(**reference, **int8, batch);
    // Four layers quantized to 8 bits: a few percent of the largest logit (measured here: about 2%).
    EXPECT_LE(c.max_abs_diff, 6e-2 * c.max_abs_ref) << "max|ref| " << c.max_abs_ref;
    // Not fp32 nor bf16: a plan that silently skipped quantization would match to better than 1%.
    EXPECT_GT(c.max_abs_diff, 2e-3 * c.max_abs_ref);
  }
}

TEST_F(DnnlInt8Test, ATensorWithoutARangeKeepsItsLayerInFp32) {
  // Without fc1's input range, fc1 computes in fp32 (and pool2 no longer writes int8 for it); the rest stays int8.
  TensorRanges ranges = *ranges_;
  const Node& flatten = graph_->nodes().at(7);
  ASSERT_EQ(flatten.type, OpType::kFlatten);
  ASSERT_EQ(ranges.erase(flatten.outputs[0]), 1u);
  ASSERT_EQ(ranges.erase(flatten.inputs[0]), 1u);
  const PlanInfo info = CompileAndDescribe(graph_, Int8Options(std::make_shared<const TensorRanges>(ranges)), 1);
  const std::string plan = FormatPlanInfo(info);
  ASSERT_NE(StepOf(info, NodeName(8)), nullptr) << plan;
  EXPECT_EQ(StepOf(info, NodeName(8))->src_type, "f32") << plan;
  EXPECT_EQ(StepOf(info, NodeName(8))->weights_type, "f32") << plan;
  EXPECT_EQ(StepOf(info, NodeName(4))->src_type, "u8") << plan;  // conv2 still int8
  EXPECT_EQ(StepOf(info, NodeName(4))->dst_type, "f32") << plan;
}

TEST_F(DnnlInt8Test, PlansOfOneModelShareTheQuantizedWeights) {
  auto backend = CreateDnnlBackend(graph_, Int8Options(ranges_));
  ASSERT_TRUE(backend.ok());
  auto b1 = (*backend)->Compile(1);
  auto b4 = (*backend)->Compile(4);
  ASSERT_TRUE(b1.ok() && b4.ok());
  auto info1 = DescribePlan(**b1);
  auto info4 = DescribePlan(**b4);
  ASSERT_TRUE(info1.ok() && info4.ok());
  for (size_t node : {0u, 4u, 8u, 10u}) {  // convolutions and FC layers
    const StepInfo* a = StepOf(*info1, NodeName(node));
    const StepInfo* b = StepOf(*info4, NodeName(node));
    ASSERT_TRUE(a != nullptr && b != nullptr);
    // The batch-4 plan takes the layout the first plan prepared when its kernel accepts it (the matmuls do).
    if (node >= 8) {
      EXPECT_EQ(a->weights, b->weights) << NodeName(node);
    }
    if (a->weights == b->weights) {
      EXPECT_EQ(a->weights_data, b->weights_data) << NodeName(node);
    }
  }
}

TEST(DnnlInt8ModelTest, Int8NeedsRangesAndTheDnnlBackend) {
  auto graph = SmallCnn();
  ASSERT_NE(graph, nullptr);
  ModelOptions options;
  options.precision = Precision::kInt8;
  StatusOr<std::shared_ptr<const Model>> no_ranges = Model::Create(graph, options);
  ASSERT_FALSE(no_ranges.ok());
  EXPECT_EQ(no_ranges.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(no_ranges.status().message().find("calibration"), std::string::npos);
  options.ranges = std::make_shared<const TensorRanges>(TensorRanges{{"x", TensorRange{0, 1}}});
  options.backend = "reference";
  StatusOr<std::shared_ptr<const Model>> reference = Model::Create(graph, options);
  ASSERT_FALSE(reference.ok());
  EXPECT_NE(reference.status().message().find("precision int8 needs the dnnl backend"), std::string::npos);
}

}  // namespace
}  // namespace cnnserve::dnnl_test
