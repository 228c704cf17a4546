// Plan-level properties of the oneDNN backend: weights shared between plans, nothing created per Run, layouts
// kept blocked between layers, fusion, threading and error reporting.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "engine/backend/dnnl/dnnl_backend.h"
#include "engine/backend/dnnl/dnnl_backend_internal.h"
#include "tests/engine/backend/dnnl/alloc_counter.h"
#include "tests/engine/backend/dnnl/dnnl_test_util.h"

namespace cnnserve::dnnl_test {
namespace {

using dnnl_internal::BackendCounters;
using dnnl_internal::DescribePlan;
using dnnl_internal::FormatPlanInfo;
using dnnl_internal::GetBackendCounters;
using dnnl_internal::PlanInfo;

std::map<std::string, const void*> WeightsByNode(const PlanInfo& info) {
  std::map<std::string, const void*> out;
  for (const auto& step : info.steps) {
    if (step.weights_data != nullptr) out[step.node] = step.weights_data;
  }
  return out;
}

TEST(DnnlPlanTest, PlansOfDifferentBatchSizesShareReorderedWeights) {
  auto graph = SmallCnn();
  ASSERT_NE(graph, nullptr);
  auto backend = CreateDnnlBackend(graph, BackendOptions());
  ASSERT_TRUE(backend.ok()) << backend.status().ToString();
  auto plan1 = (*backend)->Compile(1);
  ASSERT_TRUE(plan1.ok()) << plan1.status().ToString();
  auto after_first = GetBackendCounters(**backend);
  ASSERT_TRUE(after_first.ok());
  EXPECT_EQ(after_first->weight_preparations, 4);
  EXPECT_EQ(after_first->weight_cache_hits, 0);

  auto plan8 = (*backend)->Compile(8);
  ASSERT_TRUE(plan8.ok()) << plan8.status().ToString();
  auto plan8b = (*backend)->Compile(8);
  ASSERT_TRUE(plan8b.ok()) << plan8b.status().ToString();
  auto counters = GetBackendCounters(**backend);
  ASSERT_TRUE(counters.ok());

  auto info1 = DescribePlan(**plan1);
  auto info8 = DescribePlan(**plan8);
  auto info8b = DescribePlan(**plan8b);
  ASSERT_TRUE(info1.ok() && info8.ok() && info8b.ok());
  const auto w1 = WeightsByNode(*info1), w8 = WeightsByNode(*info8), w8b = WeightsByNode(*info8b);
  ASSERT_EQ(w1.size(), 4u);
  // Two plans of one batch size share everything; batch 1 and 8 share every weight whose layout they agree on
  // (all of them for the convolutions).
  EXPECT_EQ(w8, w8b);
  int shared = 0;
  for (const auto& step1 : info1->steps) {
    if (step1.weights_data == nullptr) continue;
    for (const auto& step8 : info8->steps) {
      if (step8.node != step1.node) continue;
      if (step8.weights == step1.weights) {
        EXPECT_EQ(step8.weights_data, step1.weights_data) << step1.node;
        ++shared;
      }
      if (step1.kind == "convolution") {
        EXPECT_EQ(step8.weights, step1.weights) << step1.node;
      }
    }
  }
  EXPECT_GE(shared, 2);
  EXPECT_EQ(counters->weight_preparations, 4 + (4 - shared));
  EXPECT_EQ(counters->weight_cache_hits, shared + 4);
  EXPECT_EQ(counters->plans_compiled, 3);
  std::cout << "batch 1:\n" << FormatPlanInfo(*info1) << "batch 8:\n" << FormatPlanInfo(*info8);
}

TEST(DnnlPlanTest, RunCreatesAndAllocatesNothing) {
  auto graph = SmallCnn();
  ASSERT_NE(graph, nullptr);
  auto backend = CreateDnnlBackend(graph, BackendOptions());
  ASSERT_TRUE(backend.ok()) << backend.status().ToString();
  auto plan = (*backend)->Compile(4);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  const std::vector<float> input = RandomVector(NumElements((*plan)->input_dims()), 1);
  std::vector<float> output(static_cast<size_t>(NumElements((*plan)->output_dims())));
  ASSERT_TRUE((*plan)->Run(input.data(), output.data()).ok());  // warm-up (OpenMP pool, lazy init)
  auto before = GetBackendCounters(**backend);
  ASSERT_TRUE(before.ok());

  const int kRuns = 5;
  bool all_ok = true;
  StartCountingAllocations();
  for (int i = 0; i < kRuns; ++i) all_ok = all_ok && (*plan)->Run(input.data(), output.data()).ok();
  const int64_t allocations = StopCountingAllocations();
  EXPECT_TRUE(all_ok);

  auto after = GetBackendCounters(**backend);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->primitives_created, before->primitives_created);
  EXPECT_EQ(after->memories_created, before->memories_created);
  EXPECT_EQ(after->weight_preparations, before->weight_preparations);
  EXPECT_EQ(after->weight_cache_hits, before->weight_cache_hits);
  auto info = DescribePlan(**plan);
  ASSERT_TRUE(info.ok());
  // The backend itself allocates nothing per Run; what remains is oneDNN's own per-execute bookkeeping (its
  // argument map), a small constant per primitive.
  if (allocations < 0) GTEST_SKIP() << "allocation counting unavailable in this build";
  const int64_t per_run = allocations / kRuns;
  std::cout << "heap allocations per Run: " << per_run << " for " << info->steps.size() << " primitives\n";
  EXPECT_EQ(allocations % kRuns, 0);
  EXPECT_LE(per_run, 8 * static_cast<int64_t>(info->steps.size()));
}

TEST(DnnlPlanTest, ActivationsStayBlockedAndReluIsFused) {
  auto graph = SmallCnn();
  ASSERT_NE(graph, nullptr);
  auto backend = CreateDnnlBackend(graph, BackendOptions());
  ASSERT_TRUE(backend.ok()) << backend.status().ToString();
  for (int64_t batch : {1, 8}) {
    auto plan = (*backend)->Compile(batch);
    ASSERT_TRUE(plan.ok()) << plan.status().ToString();
    auto info = DescribePlan(**plan);
    ASSERT_TRUE(info.ok());
    std::map<std::string, int> kinds;
    for (const auto& step : info->steps) ++kinds[step.kind];
    EXPECT_EQ(kinds["eltwise"], 0) << FormatPlanInfo(*info);  // both Relus fused
    EXPECT_EQ(kinds["convolution"], 2);
    EXPECT_EQ(kinds["inner_product"], 2);
    EXPECT_EQ(kinds["pooling_v2"], 2);
    EXPECT_EQ(kinds["lrn"], 1);
    // Pool/LRN take the previous layer's layout and FC writes the output. The only reorders are the input
    // conversion, a switch of layout for the grouped conv (oneDNN 2.6 has no fast NHWC grouped conv) and the
    // first FC's source going plain at small batches so that the FC reads the graph's weight buffer as it is.
    EXPECT_LE(kinds["reorder"], 3) << FormatPlanInfo(*info);
    for (size_t i = 0; i < info->steps.size(); ++i) {
      const auto& step = info->steps[i];
      if (step.kind == "pooling_v2" || step.kind == "lrn") {
        ASSERT_GT(i, 0u);
        EXPECT_EQ(step.src, info->steps[i - 1].dst) << step.node;
        EXPECT_EQ(step.dst, step.src) << step.node;
      }
      if (step.kind == "inner_product") {
        // Below BackendOptions::fc_blocked_weights_min_batch (8) the FC reads the graph's plain weights in
        // place; from there on it uses oneDNN's blocked layout.
        const bool plain = step.weights == "abcd" || step.weights == "ab" || step.weights == "ba";
        EXPECT_EQ(plain, batch < BackendOptions().fc_blocked_weights_min_batch) << FormatPlanInfo(*info);
      }
      if (step.kind == "reorder" && i > 0) {
        ASSERT_LT(i + 1, info->steps.size());
        EXPECT_TRUE(info->steps[i + 1].kind == "convolution" || info->steps[i + 1].kind == "inner_product")
            << FormatPlanInfo(*info);
      }
    }
    EXPECT_EQ(info->steps.size(), 7u + kinds["reorder"]);
  }
}

TEST(DnnlPlanTest, ConcurrentCompileAndRunMatchSequential) {
  auto graph = SmallCnn();
  ASSERT_NE(graph, nullptr);
  BackendOptions options;
  options.num_threads = 1;
  auto backend = CreateDnnlBackend(graph, options);
  ASSERT_TRUE(backend.ok()) << backend.status().ToString();
  const std::vector<int64_t> batches = {2, 5, 2};
  std::vector<std::vector<float>> expected;
  std::vector<std::vector<float>> inputs;
  for (int64_t batch : batches) {
    auto plan = (*backend)->Compile(batch);
    ASSERT_TRUE(plan.ok());
    inputs.push_back(RandomVector(NumElements((*plan)->input_dims()), static_cast<uint32_t>(batch)));
    expected.push_back(RunPlan(**plan, inputs.back()));
  }
  auto fresh = CreateDnnlBackend(graph, options);
  ASSERT_TRUE(fresh.ok());
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (size_t t = 0; t < batches.size(); ++t) {
    threads.emplace_back([&, t] {
      auto plan = (*fresh)->Compile(batches[t]);
      if (!plan.ok()) {
        ++mismatches;
        return;
      }
      std::vector<float> output(expected[t].size());
      for (int run = 0; run < 10; ++run) {
        if (!(*plan)->Run(inputs[t].data(), output.data()).ok() || output != expected[t]) ++mismatches;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(mismatches.load(), 0);
  auto counters = GetBackendCounters(**fresh);
  ASSERT_TRUE(counters.ok());
  EXPECT_LE(counters->weight_preparations, 8);
}

TEST(DnnlPlanTest, ErrorsAreStatusesNamingTheNode) {
  {
    // Conv weights computed at run time: no oneDNN mapping in this backend.
    GraphBuilder b({-1, 2, 3, 3});
    const std::string w = b.Op(OpType::kRelu, {b.input()});
    const std::string y = b.Op(OpType::kConv, {b.input(), w}, MakeConv({3, 3}));
    auto graph = b.Build(y);
    if (graph.ok()) {
      auto backend = CreateDnnlBackend(*graph, BackendOptions());
      ASSERT_FALSE(backend.ok());
      EXPECT_EQ(backend.status().code(), StatusCode::kUnimplemented);
      EXPECT_NE(backend.status().message().find("n1_Conv"), std::string::npos) << backend.status().ToString();
    }
  }
  auto graph = SmallCnn();
  ASSERT_NE(graph, nullptr);
  auto backend = CreateDnnlBackend(graph, BackendOptions());
  ASSERT_TRUE(backend.ok());
  EXPECT_EQ((*backend)->Compile(0).status().code(), StatusCode::kInvalidArgument);
  auto plan = (*backend)->Compile(1);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ((*plan)->Run(nullptr, nullptr).code(), StatusCode::kInvalidArgument);
  BackendOptions bad;
  bad.num_threads = -1;
  EXPECT_EQ(CreateDnnlBackend(graph, bad).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(CreateDnnlBackend(nullptr, BackendOptions()).status().code(), StatusCode::kInvalidArgument);
  {
    // Dimension 0 of the input is the batch even when the graph gives it a size (Graph::InferShapes); a graph
    // that does not carry the batch to the output cannot compile at another batch size.
    GraphBuilder b({2, 4});
    const std::string y = b.Op(OpType::kRelu, {b.input()});
    auto fixed = b.Build(y);
    ASSERT_TRUE(fixed.ok());
    auto fixed_backend = CreateDnnlBackend(*fixed, BackendOptions());
    ASSERT_TRUE(fixed_backend.ok());
    auto plan3 = (*fixed_backend)->Compile(3);
    ASSERT_TRUE(plan3.ok()) << plan3.status().ToString();
    EXPECT_EQ((*plan3)->input_dims(), (Dims{3, 4}));
    GraphBuilder c({2, 4});
    ReshapeAttrs reshape;
    reshape.shape = {2, 4};
    const std::string z = c.Op(OpType::kReshape, {c.input()}, reshape);
    auto hard_coded = c.Build(z);
    ASSERT_TRUE(hard_coded.ok());
    auto hard_backend = CreateDnnlBackend(*hard_coded, BackendOptions());
    ASSERT_TRUE(hard_backend.ok());
    EXPECT_TRUE((*hard_backend)->Compile(2).ok());
    EXPECT_EQ((*hard_backend)->Compile(3).status().code(), StatusCode::kInvalidArgument);
  }
}

TEST(DnnlPlanTest, IsaName) {
  const std::string isa = DnnlIsaName();
  std::cout << "oneDNN ISA: " << isa << "\n";
  EXPECT_FALSE(isa.empty());
  EXPECT_NE(isa, "unknown");
}

// VGG-like 3x3 layers with Winograd allowed: the numbers must stay within the parity tolerance.
TEST(DnnlPlanTest, WinogradKeepsParity) {
  GraphBuilder b({-1, 16, 20, 20}, 16);
  std::string y = b.Op(OpType::kRelu, {b.Conv(b.input(), 16, 64, MakeConv({3, 3}, {}, {1, 1, 1, 1}))});
  y = b.Op(OpType::kRelu, {b.Conv(y, 64, 64, MakeConv({3, 3}, {}, {1, 1, 1, 1}))});
  y = b.Op(OpType::kMaxPool, {y}, MakePool({2, 2}, {2, 2}));
  y = b.Op(OpType::kRelu, {b.Conv(y, 64, 128, MakeConv({3, 3}, {}, {1, 1, 1, 1}))});
  auto graph = b.Build(y);
  ASSERT_TRUE(graph.ok()) << graph.status().ToString();
  BackendOptions options;
  options.allow_winograd = true;
  const Comparison worst = ExpectMatchesReference(*graph, {1, 8}, options);
  auto backend = CreateDnnlBackend(*graph, options);
  ASSERT_TRUE(backend.ok());
  auto plan = (*backend)->Compile(8);
  ASSERT_TRUE(plan.ok());
  auto info = DescribePlan(**plan);
  ASSERT_TRUE(info.ok());
  int winograd_layers = 0;
  for (const auto& step : info->steps) winograd_layers += step.impl.find("wino") != std::string::npos;
  EXPECT_EQ(winograd_layers, 3) << FormatPlanInfo(*info);  // all three 3x3 convs at batch 8
  std::cout << "winograd allowed, worst max|diff| " << worst.max_abs_diff << " (max|ref| " << worst.max_abs_ref
            << ")\n"
            << FormatPlanInfo(*info);
}

// The Winograd policy is an option of each backend, not of the process: two backends of one graph, compiled
// alternately, keep their own choice. A 2x2 output at batch 1 (4 pixels) is below the heuristic's threshold.
TEST(DnnlPlanTest, WinogradPolicyIsPerBackend) {
  GraphBuilder b({-1, 16, 2, 2}, 17);
  const std::string y = b.Conv(b.input(), 16, 16, MakeConv({3, 3}, {}, {1, 1, 1, 1}));
  auto graph = b.Build(y);
  ASSERT_TRUE(graph.ok()) << graph.status().ToString();
  const auto winograd_layers = [&](bool allow, WinogradPolicy policy) {
    BackendOptions options;
    options.allow_winograd = allow;
    options.winograd_policy = policy;
    auto backend = CreateDnnlBackend(*graph, options);
    EXPECT_TRUE(backend.ok()) << backend.status().ToString();
    if (!backend.ok()) return -1;
    auto plan = (*backend)->Compile(1);
    EXPECT_TRUE(plan.ok()) << plan.status().ToString();
    if (!plan.ok()) return -1;
    auto info = DescribePlan(**plan);
    EXPECT_TRUE(info.ok());
    if (!info.ok()) return -1;
    int layers = 0;
    for (const auto& step : info->steps) layers += step.impl.find("wino") != std::string::npos;
    return layers;
  };
  EXPECT_EQ(winograd_layers(true, WinogradPolicy::kAlways), 1);
  EXPECT_EQ(winograd_layers(true, WinogradPolicy::kHeuristic), 0);
  EXPECT_EQ(winograd_layers(true, WinogradPolicy::kAlways), 1);
  EXPECT_EQ(winograd_layers(false, WinogradPolicy::kAlways), 0);
  ExpectMatchesReference(*graph, {1}, BackendOptions{0, true, WinogradPolicy::kAlways, 8});
}

}  // namespace
}  // namespace cnnserve::dnnl_test
