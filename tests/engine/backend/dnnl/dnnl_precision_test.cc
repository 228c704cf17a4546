// Plans below fp32 (BackendOptions::precision): which layers compute in bf16, that the graph's edges stay fp32,
// and that the outputs stay close to the fp32 reference. The accuracy of trained models at bf16 is measured
// end to end (tests/bench/cnnbench, bench/RESULTS.md "Precision").
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "engine/backend/dnnl/dnnl_backend.h"
#include "engine/backend/dnnl/dnnl_backend_internal.h"
#include "engine/runtime/model.h"
#include "tests/engine/backend/dnnl/dnnl_test_util.h"

namespace cnnserve::dnnl_test {
namespace {

using dnnl_internal::DescribePlan;
using dnnl_internal::FormatPlanInfo;
using dnnl_internal::PlanInfo;
using dnnl_internal::WeightBytesByType;

BackendOptions Bf16Options() {
  BackendOptions options;
  options.allow_winograd = true;  // eligible 3x3 convolutions must fall back to direct bf16 kernels
  options.precision = Precision::kBf16;
  return options;
}

// bf16 keeps 8 bits of mantissa: each layer rounds its inputs and weights to about 0.4%.
void ExpectCloseToReference(const std::shared_ptr<const Graph>& graph, const std::vector<int64_t>& batches) {
  auto reference = CreateReferenceBackend(graph);
  auto bf16 = CreateDnnlBackend(graph, Bf16Options());
  ASSERT_TRUE(reference.ok() && bf16.ok());
  for (int64_t batch : batches) {
    SCOPED_TRACE("batch " + std::to_string(batch));
    const Comparison c = CompareAtBatch(**reference, **bf16, batch);
    EXPECT_LE(c.max_abs_diff, 2e-2 * c.max_abs_ref + 1e-3) << "max|ref| " << c.max_abs_ref;
    // Not fp32: a plan that silently computed in fp32 would match to 1e-4.
    EXPECT_GT(c.max_abs_diff, 1e-4 * c.max_abs_ref + 1e-5);
  }
}

TEST(DnnlPrecisionTest, Bf16PlanComputesLayersInBf16AndWritesFp32Logits) {
  auto graph = SmallCnn();
  ASSERT_NE(graph, nullptr);
  for (int64_t batch : {1, 8}) {  // batch 8: FC layers with blocked weights
    SCOPED_TRACE("batch " + std::to_string(batch));
    const PlanInfo info = CompileAndDescribe(graph, Bf16Options(), batch);
    ASSERT_FALSE(info.steps.empty());
    int computed = 0;
    for (const auto& step : info.steps) {
      if (step.kind == "reorder") continue;
      ++computed;
      EXPECT_EQ(step.src_type, "bf16") << FormatPlanInfo(info);
      if (!step.weights.empty()) {
        EXPECT_EQ(step.weights_type, "bf16") << FormatPlanInfo(info);
      }
      EXPECT_EQ(step.impl.find("ref"), std::string::npos) << FormatPlanInfo(info);
    }
    EXPECT_EQ(computed, 7) << FormatPlanInfo(info);  // conv, pool, lrn, conv, pool, fc, fc
    // The last layer writes the caller's fp32 buffer itself: no conversion step after it.
    EXPECT_EQ(info.steps.back().kind, "inner_product") << FormatPlanInfo(info);
    EXPECT_EQ(info.steps.back().dst_type, "f32");
    // The input is converted once, at the start.
    EXPECT_EQ(info.steps.front().kind, "reorder");
    EXPECT_EQ(info.steps.front().src_type, "f32");
    EXPECT_EQ(info.steps.front().dst_type, "bf16");
    const auto bytes = WeightBytesByType(info);
    ASSERT_EQ(bytes.count("bf16"), 1u);
    EXPECT_EQ(bytes.count("f32"), 0u);
  }
  ExpectCloseToReference(graph, {1, 3, 8});
}

// A softmax (or ReLU) after the last layer: that layer still writes fp32, so probabilities are not rounded.
TEST(DnnlPrecisionTest, LayerBeforeAFinalSoftmaxWritesFp32) {
  GraphBuilder b({-1, 16, 8, 8}, 5);
  std::string y = b.Op(OpType::kRelu, {b.Conv(b.input(), 16, 32, MakeConv({3, 3}, {}, {1, 1, 1, 1}))});
  y = b.Op(OpType::kFlatten, {y}, FlattenAttrs{1});
  y = b.Op(OpType::kGemm, {y, b.Const({10, 2048}, 0.02f), b.Const({10})}, GemmAttrs{1.0f, 1.0f, false, true});
  y = b.Op(OpType::kSoftmax, {y}, SoftmaxAttrs{1});
  auto graph = b.Build(y);
  ASSERT_TRUE(graph.ok()) << graph.status().ToString();
  const PlanInfo info = CompileAndDescribe(*graph, Bf16Options(), 2);
  bool saw_fc = false;
  for (const auto& step : info.steps) {
    if (step.kind == "convolution") {
      EXPECT_EQ(step.src_type, "bf16");
      EXPECT_EQ(step.impl.find("wino"), std::string::npos);  // no bf16 Winograd in oneDNN 2.6
    }
    if (step.kind == "inner_product") {
      saw_fc = true;
      EXPECT_EQ(step.src_type, "bf16") << FormatPlanInfo(info);
      EXPECT_EQ(step.dst_type, "f32") << FormatPlanInfo(info);
    }
    if (step.kind == "softmax") {
      EXPECT_EQ(step.src_type, "f32") << FormatPlanInfo(info);
    }
  }
  EXPECT_TRUE(saw_fc) << FormatPlanInfo(info);
  ExpectCloseToReference(*graph, {1, 2});
}

TEST(DnnlPrecisionTest, Fp32IsTheDefaultAndUntouched) {
  auto graph = SmallCnn();
  ASSERT_NE(graph, nullptr);
  const PlanInfo info = CompileAndDescribe(graph, BackendOptions(), 1);
  for (const auto& step : info.steps) {
    EXPECT_EQ(step.src_type, "f32") << FormatPlanInfo(info);
    EXPECT_EQ(step.dst_type, "f32") << FormatPlanInfo(info);
  }
}

TEST(DnnlPrecisionTest, ModelRejectsBf16OnTheReferenceBackend) {
  auto graph = SmallCnn();
  ASSERT_NE(graph, nullptr);
  ModelOptions options;
  options.backend = "reference";
  options.precision = Precision::kBf16;
  auto model = Model::Create(graph, options);
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(model.status().message().find("bf16 needs the dnnl backend"), std::string::npos)
      << model.status().message();
  options.backend = "dnnl";
  auto dnnl_model = Model::Create(graph, options);
  ASSERT_TRUE(dnnl_model.ok()) << dnnl_model.status().ToString();
  EXPECT_EQ((*dnnl_model)->options().precision, Precision::kBf16);
}

}  // namespace
}  // namespace cnnserve::dnnl_test
