// Helpers for the oneDNN backend tests: parity checks against the reference backend (graphs are built with
// dnnl_graph_builder.h).
#ifndef CNNSERVE_TESTS_ENGINE_BACKEND_DNNL_DNNL_TEST_UTIL_H_
#define CNNSERVE_TESTS_ENGINE_BACKEND_DNNL_DNNL_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/backend/dnnl/dnnl_backend.h"
#include "engine/backend/dnnl/dnnl_backend_internal.h"
#include "engine/backend/reference/reference_backend.h"
#include "engine/graph/graph.h"
#include "tests/engine/backend/dnnl/dnnl_graph_builder.h"

namespace cnnserve::dnnl_test {

// conv(relu) -> pool -> lrn -> conv g2 (relu) -> pool -> flatten -> fc(relu) -> fc: 2 convs + 2 FCs with weights.
inline std::shared_ptr<const Graph> SmallCnn() {
  GraphBuilder b({-1, 3, 32, 32}, 3);
  std::string y = b.Op(OpType::kRelu, {b.Conv(b.input(), 3, 32, MakeConv({5, 5}, {2, 2}, {2, 2, 2, 2}))});
  y = b.Op(OpType::kMaxPool, {y}, MakePool({3, 3}, {2, 2}));  // 7x7
  y = b.Op(OpType::kLrn, {y}, LrnAttrs{5, 1e-4f, 0.75f, 2.0f});
  y = b.Op(OpType::kRelu, {b.Conv(y, 32, 64, MakeConv({3, 3}, {}, {1, 1, 1, 1}, {}, 2))});
  y = b.Op(OpType::kMaxPool, {y}, MakePool({3, 3}, {2, 2}));  // 3x3
  y = b.Op(OpType::kFlatten, {y}, FlattenAttrs{1});
  y = b.Op(OpType::kRelu, {b.Op(OpType::kGemm, {y, b.Const({100, 576}, 0.05f), b.Const({100})},
                                GemmAttrs{1.0f, 1.0f, false, true})});
  y = b.Op(OpType::kGemm, {y, b.Const({100, 10}, 0.1f), b.Const({10})}, GemmAttrs{});
  auto graph = b.Build(y);
  EXPECT_TRUE(graph.ok()) << graph.status().ToString();
  return graph.ok() ? *graph : nullptr;
}

// Runs `plan` on `input` and returns its output.
inline std::vector<float> RunPlan(Plan& plan, const std::vector<float>& input) {
  std::vector<float> output(static_cast<size_t>(NumElements(plan.output_dims())), std::nanf(""));
  const Status status = plan.Run(input.data(), output.data());
  EXPECT_TRUE(status.ok()) << status.ToString();
  return output;
}

// Compiles `graph` at `batch` with `options` and describes the plan (empty, with a test failure, on an error).
inline dnnl_internal::PlanInfo CompileAndDescribe(const std::shared_ptr<const Graph>& graph,
                                                  const BackendOptions& options, int64_t batch) {
  auto backend = CreateDnnlBackend(graph, options);
  EXPECT_TRUE(backend.ok()) << backend.status().ToString();
  if (!backend.ok()) return {};
  auto plan = (*backend)->Compile(batch);
  EXPECT_TRUE(plan.ok()) << plan.status().ToString();
  if (!plan.ok()) return {};
  auto info = dnnl_internal::DescribePlan(**plan);
  EXPECT_TRUE(info.ok());
  return info.ok() ? *info : dnnl_internal::PlanInfo{};
}

// Compiles `reference` and `other` at `batch`, runs both on the same random input and compares other's output
// with the reference's.
inline Comparison CompareAtBatch(Backend& reference, Backend& other, int64_t batch, uint32_t seed = 7) {
  auto ref_plan = reference.Compile(batch);
  auto other_plan = other.Compile(batch);
  EXPECT_TRUE(ref_plan.ok() && other_plan.ok());
  if (!ref_plan.ok() || !other_plan.ok()) return Comparison{1e30, 0};
  const std::vector<float> input = RandomVector(NumElements((*ref_plan)->input_dims()), seed);
  const std::vector<float> want = RunPlan(**ref_plan, input);
  const std::vector<float> got = RunPlan(**other_plan, input);
  return Compare(got.data(), want.data(), static_cast<int64_t>(want.size()));
}

// Compiles `graph` with the reference and the oneDNN backends at each batch size, runs both on the same random
// input and expects max|diff| <= 1e-4 * max|ref| + 1e-5. Returns the worst comparison.
inline Comparison ExpectMatchesReference(const std::shared_ptr<const Graph>& graph,
                                         const std::vector<int64_t>& batches,
                                         const BackendOptions& options = BackendOptions()) {
  Comparison worst;
  auto reference = CreateReferenceBackend(graph);
  EXPECT_TRUE(reference.ok()) << reference.status().ToString();
  auto dnnl = CreateDnnlBackend(graph, options);
  EXPECT_TRUE(dnnl.ok()) << dnnl.status().ToString();
  if (!reference.ok() || !dnnl.ok()) return worst;
  for (int64_t batch : batches) {
    SCOPED_TRACE("batch " + std::to_string(batch));
    auto ref_plan = (*reference)->Compile(batch);
    EXPECT_TRUE(ref_plan.ok()) << ref_plan.status().ToString();
    auto dnnl_plan = (*dnnl)->Compile(batch);
    EXPECT_TRUE(dnnl_plan.ok()) << dnnl_plan.status().ToString();
    if (!ref_plan.ok() || !dnnl_plan.ok()) continue;
    EXPECT_EQ((*dnnl_plan)->input_dims(), (*ref_plan)->input_dims());
    EXPECT_EQ((*dnnl_plan)->output_dims(), (*ref_plan)->output_dims());
    const std::vector<float> input =
        RandomVector(NumElements((*ref_plan)->input_dims()), static_cast<uint32_t>(1000 + batch));
    const std::vector<float> want = RunPlan(**ref_plan, input);
    // Twice: the second run checks that nothing depends on state left by the first.
    for (int run = 0; run < 2; ++run) {
      const std::vector<float> got = RunPlan(**dnnl_plan, input);
      const Comparison c = Compare(got.data(), want.data(), static_cast<int64_t>(want.size()));
      EXPECT_TRUE(c.within_tolerance())
          << "max|diff| " << c.max_abs_diff << " max|ref| " << c.max_abs_ref << " run " << run;
      if (c.max_abs_diff > worst.max_abs_diff) worst = c;
    }
  }
  return worst;
}

}  // namespace cnnserve::dnnl_test

#endif  // CNNSERVE_TESTS_ENGINE_BACKEND_DNNL_DNNL_TEST_UTIL_H_
