// Timings of the oneDNN backend on AlexNet/VGG-sized layers: direct vs Winograd convolutions, and the layouts
// each layer gets. Slow, so skipped unless CNNSERVE_DNNL_BENCH=1 (e.g. CNNSERVE_DNNL_BENCH=1 ./dnnl_bench_test).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "engine/backend/dnnl/dnnl_backend.h"
#include "engine/backend/dnnl/dnnl_backend_internal.h"
#include "tests/engine/backend/dnnl/dnnl_test_util.h"

namespace cnnserve::dnnl_test {
namespace {

using dnnl_internal::DescribePlan;
using dnnl_internal::FormatPlanInfo;

// Resident set size of this process now and at its peak, in MB (Linux).
std::pair<double, double> RssMb() {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return {0, 0};
  char line[256];
  double rss = 0, peak = 0;
  while (std::fgets(line, sizeof(line), f) != nullptr) {
    long kb = 0;
    if (std::sscanf(line, "VmRSS: %ld kB", &kb) == 1) rss = kb / 1024.0;
    if (std::sscanf(line, "VmHWM: %ld kB", &kb) == 1) peak = kb / 1024.0;
  }
  std::fclose(f);
  return {rss, peak};
}

bool BenchEnabled() {
  const char* env = std::getenv("CNNSERVE_DNNL_BENCH");
  return env != nullptr && std::string(env) == "1";
}

struct Timing {
  double best_ms = 0;
  double mean_ms = 0;
};

Timing TimeRuns(Plan& plan, const std::vector<float>& input, std::vector<float>& output, int runs) {
  EXPECT_TRUE(plan.Run(input.data(), output.data()).ok());  // warm-up
  Timing t;
  t.best_ms = 1e300;
  double total = 0;
  for (int i = 0; i < runs; ++i) {
    const auto start = std::chrono::steady_clock::now();
    EXPECT_TRUE(plan.Run(input.data(), output.data()).ok());
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    t.best_ms = std::min(t.best_ms, ms);
    total += ms;
  }
  t.mean_ms = total / runs;
  return t;
}

struct ConvSpec {
  int64_t in_c, out_c;
  bool pool_after;
};

// VGG-16's 13 convolutions (3x3, pad 1, ReLU) with its 5 max pools; `with_fc` adds the 3 FC layers.
std::shared_ptr<const Graph> Vgg16(int64_t image, bool with_fc) {
  const std::vector<ConvSpec> convs = {{3, 64, false},    {64, 64, true},    {64, 128, false},  {128, 128, true},
                                       {128, 256, false}, {256, 256, false}, {256, 256, true},  {256, 512, false},
                                       {512, 512, false}, {512, 512, true},  {512, 512, false}, {512, 512, false},
                                       {512, 512, true}};
  GraphBuilder b({-1, 3, image, image}, 16);
  std::string y = b.input();
  for (const ConvSpec& c : convs) {
    y = b.Op(OpType::kRelu, {b.Conv(y, c.in_c, c.out_c, MakeConv({3, 3}, {}, {1, 1, 1, 1}))});
    if (c.pool_after) y = b.Op(OpType::kMaxPool, {y}, MakePool({2, 2}, {2, 2}));
  }
  if (with_fc) {
    const int64_t spatial = image / 32;
    y = b.Op(OpType::kFlatten, {y}, FlattenAttrs{1});
    y = b.Op(OpType::kRelu,
             {b.Op(OpType::kGemm, {y, b.Const({4096, 512 * spatial * spatial}, 0.01f), b.Const({4096})},
                   GemmAttrs{1.0f, 1.0f, false, true})});
    y = b.Op(OpType::kDropout, {y});
    y = b.Op(OpType::kRelu, {b.Op(OpType::kGemm, {y, b.Const({4096, 4096}, 0.01f), b.Const({4096})},
                                  GemmAttrs{1.0f, 1.0f, false, true})});
    y = b.Op(OpType::kDropout, {y});
    y = b.Op(OpType::kGemm, {y, b.Const({1000, 4096}, 0.01f), b.Const({1000})},
             GemmAttrs{1.0f, 1.0f, false, true});
    SoftmaxAttrs softmax;
    softmax.axis = 1;
    y = b.Op(OpType::kSoftmax, {y}, softmax);
  }
  auto graph = b.Build(y);
  EXPECT_TRUE(graph.ok()) << graph.status().ToString();
  return graph.ok() ? *graph : nullptr;
}

double Vgg16ConvFlops(int64_t image, int64_t batch) {
  const std::vector<ConvSpec> convs = {{3, 64, false},    {64, 64, true},    {64, 128, false},  {128, 128, true},
                                       {128, 256, false}, {256, 256, false}, {256, 256, true},  {256, 512, false},
                                       {512, 512, false}, {512, 512, true},  {512, 512, false}, {512, 512, false},
                                       {512, 512, true}};
  double flops = 0;
  int64_t size = image;
  for (const ConvSpec& c : convs) {
    flops += 2.0 * batch * c.in_c * c.out_c * 9 * size * size;
    if (c.pool_after) size /= 2;
  }
  return flops;
}

// The original AlexNet (2012, two-group convs) at 227x227.
std::shared_ptr<const Graph> AlexNet() {
  GraphBuilder b({-1, 3, 227, 227}, 2012);
  LrnAttrs lrn{5, 1e-4f, 0.75f, 2.0f};
  const PoolAttrs pool = MakePool({3, 3}, {2, 2});
  std::string y = b.Op(OpType::kRelu, {b.Conv(b.input(), 3, 96, MakeConv({11, 11}, {4, 4}))});
  y = b.Op(OpType::kLrn, {b.Op(OpType::kMaxPool, {y}, pool)}, lrn);
  y = b.Op(OpType::kRelu, {b.Conv(y, 96, 256, MakeConv({5, 5}, {}, {2, 2, 2, 2}, {}, 2))});
  y = b.Op(OpType::kLrn, {b.Op(OpType::kMaxPool, {y}, pool)}, lrn);
  y = b.Op(OpType::kRelu, {b.Conv(y, 256, 384, MakeConv({3, 3}, {}, {1, 1, 1, 1}))});
  y = b.Op(OpType::kRelu, {b.Conv(y, 384, 384, MakeConv({3, 3}, {}, {1, 1, 1, 1}, {}, 2))});
  y = b.Op(OpType::kRelu, {b.Conv(y, 384, 256, MakeConv({3, 3}, {}, {1, 1, 1, 1}, {}, 2))});
  y = b.Op(OpType::kMaxPool, {y}, pool);
  y = b.Op(OpType::kFlatten, {y}, FlattenAttrs{1});
  y = b.Op(OpType::kRelu, {b.Op(OpType::kGemm, {y, b.Const({4096, 9216}, 0.01f), b.Const({4096})},
                                GemmAttrs{1.0f, 1.0f, false, true})});
  y = b.Op(OpType::kDropout, {y});
  y = b.Op(OpType::kRelu, {b.Op(OpType::kGemm, {y, b.Const({4096, 4096}, 0.01f), b.Const({4096})},
                                GemmAttrs{1.0f, 1.0f, false, true})});
  y = b.Op(OpType::kGemm, {y, b.Const({1000, 4096}, 0.01f), b.Const({1000})}, GemmAttrs{1.0f, 1.0f, false, true});
  SoftmaxAttrs softmax;
  softmax.axis = 1;
  y = b.Op(OpType::kSoftmax, {y}, softmax);
  auto graph = b.Build(y);
  EXPECT_TRUE(graph.ok()) << graph.status().ToString();
  return graph.ok() ? *graph : nullptr;
}

// Runs `graph` at `batch` with direct convolutions and with Winograd allowed under each policy; prints time,
// GFLOP/s and how far the Winograd outputs are from the direct ones.
void CompareDirectAndWinograd(const std::string& label, const std::shared_ptr<const Graph>& graph, int64_t batch,
                              double flops, int runs, bool print_plan) {
  const char* names[4] = {"direct", "onednn-auto", "always", "heuristic"};
  const WinogradPolicy policies[4] = {WinogradPolicy::kHeuristic, WinogradPolicy::kLibraryAuto,
                                      WinogradPolicy::kAlways, WinogradPolicy::kHeuristic};
  std::vector<float> outputs[4];
  for (int mode = 0; mode < 4; ++mode) {
    BackendOptions options;
    options.allow_winograd = mode > 0;
    options.winograd_policy = policies[mode];
    auto backend = CreateDnnlBackend(graph, options);
    ASSERT_TRUE(backend.ok()) << backend.status().ToString();
    auto plan = (*backend)->Compile(batch);
    ASSERT_TRUE(plan.ok()) << plan.status().ToString();
    const std::vector<float> input = RandomVector(NumElements((*plan)->input_dims()), 99);
    outputs[mode].resize(static_cast<size_t>(NumElements((*plan)->output_dims())));
    const Timing t = TimeRuns(**plan, input, outputs[mode], runs);
    auto info = DescribePlan(**plan);
    ASSERT_TRUE(info.ok());
    int wino_layers = 0;
    for (const auto& step : info->steps) wino_layers += step.impl.find("wino") != std::string::npos;
    std::printf("%-40s batch %2lld %-11s best %9.2f ms  mean %9.2f ms  %7.1f GFLOP/s  (%d winograd layers)\n",
                label.c_str(), static_cast<long long>(batch), names[mode], t.best_ms, t.mean_ms,
                flops / (t.best_ms * 1e6), wino_layers);
    if (print_plan) std::printf("%s", FormatPlanInfo(*info).c_str());
  }
  for (int mode = 1; mode < 4; ++mode) {
    const Comparison c = Compare(outputs[mode].data(), outputs[0].data(), static_cast<int64_t>(outputs[0].size()));
    std::printf("%-40s %s vs direct: max|diff| %.3g, max|direct| %.3g, ratio %.3g (parity bound 1e-4)\n",
                label.c_str(), names[mode], c.max_abs_diff, c.max_abs_ref, c.max_abs_diff / c.max_abs_ref);
  }
}

TEST(DnnlBench, VggConvLayer256At56) {
  if (!BenchEnabled()) GTEST_SKIP() << "set CNNSERVE_DNNL_BENCH=1";
  std::printf("oneDNN ISA %s\n", DnnlIsaName().c_str());
  for (int64_t batch : {1, 8}) {
    GraphBuilder b({-1, 256, 56, 56}, 5);
    const std::string y = b.Op(OpType::kRelu, {b.Conv(b.input(), 256, 256, MakeConv({3, 3}, {}, {1, 1, 1, 1}))});
    auto graph = b.Build(y);
    ASSERT_TRUE(graph.ok());
    CompareDirectAndWinograd("conv3x3 256->256 56x56 +relu", *graph, batch, 2.0 * batch * 256 * 256 * 9 * 56 * 56,
                             batch == 1 ? 20 : 5, batch == 8);
  }
}

TEST(DnnlBench, Vgg16ConvStack) {
  if (!BenchEnabled()) GTEST_SKIP() << "set CNNSERVE_DNNL_BENCH=1";
  auto graph = Vgg16(224, /*with_fc=*/false);
  ASSERT_NE(graph, nullptr);
  for (int64_t batch : {1, 8}) {
    CompareDirectAndWinograd("VGG-16 13 convs + pools, 224x224", graph, batch, Vgg16ConvFlops(224, batch),
                             batch == 1 ? 5 : 2, false);
  }
}

TEST(DnnlBench, FullNetworksLayoutsAndTimes) {
  if (!BenchEnabled()) GTEST_SKIP() << "set CNNSERVE_DNNL_BENCH=1";
  struct Net {
    std::string name;
    std::shared_ptr<const Graph> graph;
  };
  for (const Net& net : {Net{"AlexNet", AlexNet()}, Net{"VGG-16", Vgg16(224, true)}}) {
    ASSERT_NE(net.graph, nullptr);
    const double weight_mb = net.graph->num_constant_elements() * 4.0 / (1 << 20);
    const double rss_graph = RssMb().first;
    for (bool winograd : {false, true}) {
      BackendOptions options;
      options.allow_winograd = winograd;
      auto backend = CreateDnnlBackend(net.graph, options);
      ASSERT_TRUE(backend.ok()) << backend.status().ToString();
      for (int64_t batch : {1, 8}) {
        const auto start = std::chrono::steady_clock::now();
        auto plan = (*backend)->Compile(batch);
        ASSERT_TRUE(plan.ok()) << plan.status().ToString();
        const double compile_ms =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
        const std::vector<float> input = RandomVector(NumElements((*plan)->input_dims()), 7);
        std::vector<float> output(static_cast<size_t>(NumElements((*plan)->output_dims())));
        const Timing t = TimeRuns(**plan, input, output, batch == 1 ? 5 : 2);
        auto info = DescribePlan(**plan);
        ASSERT_TRUE(info.ok());
        std::printf("%s%s batch %lld: compile %.0f ms, run best %.1f ms (%.1f ms/image), mean %.1f ms\n",
                    net.name.c_str(), winograd ? " (winograd allowed)" : "", static_cast<long long>(batch),
                    compile_ms, t.best_ms, t.best_ms / batch, t.mean_ms);
        std::printf("%s", FormatPlanInfo(*info).c_str());
        const auto [rss, peak] = RssMb();
        auto counters = dnnl_internal::GetBackendCounters(**backend);
        ASSERT_TRUE(counters.ok());
        std::printf(
            "%s: weights %.0f MB, backend weight copies %.1f MB, plan arena %.1f MB; process RSS %.0f MB "
            "(before the backend %.0f MB), peak %.0f MB\n",
            net.name.c_str(), weight_mb, counters->weight_bytes_copied / 1048576.0,
            (info->activation_bytes + info->scratchpad_bytes) / 1048576.0, rss, rss_graph, peak);
      }
    }
  }
}

}  // namespace
}  // namespace cnnserve::dnnl_test
