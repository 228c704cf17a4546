// engine_micro: Google Benchmark timings of the oneDNN backend on AlexNet- and VGG-sized graphs built in code
// (seeded random weights, no model files): direct convolutions against each Winograd policy, and whole networks
// with their compile time, weight copies, arena and resident memory. Not a test (ctest does not run it); see
// bench/README.md. `--print_plans` also prints each plan's table of primitives, layouts and kernels to stderr.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "engine/backend/dnnl/dnnl_backend.h"
#include "engine/backend/dnnl/dnnl_backend_internal.h"
#include "tests/engine/backend/dnnl/dnnl_graph_builder.h"

namespace cnnserve::engine_micro {
namespace {

using dnnl_test::Comparison;
using dnnl_test::Compare;
using dnnl_test::GraphBuilder;
using dnnl_test::MakeConv;
using dnnl_test::MakePool;
using dnnl_test::RandomVector;

constexpr double kBytesPerMb = 1024.0 * 1024.0;
constexpr double kFlopsPerGflop = 1e9;
constexpr uint32_t kInputSeed = 99;

bool g_print_plans = false;

// The convolution algorithms compared: direct only, then Winograd allowed under each policy.
enum Mode : int64_t { kDirect, kLibraryAuto, kAlways, kHeuristic };
constexpr const char* kModeNames[] = {"direct", "library-auto", "always", "heuristic"};

BackendOptions OptionsFor(int64_t mode) {
  BackendOptions options;
  options.allow_winograd = mode != kDirect;
  if (mode == kLibraryAuto) options.winograd_policy = WinogradPolicy::kLibraryAuto;
  if (mode == kAlways) options.winograd_policy = WinogradPolicy::kAlways;
  return options;
}

// Resident set size of this process now and at its peak, in MB (Linux; zeros elsewhere).
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

struct ConvSpec {
  int64_t in_c, out_c;
  bool pool_after;
};

// VGG-16's 13 convolutions (3x3, pad 1) with its 5 max pools.
const std::vector<ConvSpec>& Vgg16Convs() {
  static const std::vector<ConvSpec> convs = {
      {3, 64, false},    {64, 64, true},    {64, 128, false}, {128, 128, true}, {128, 256, false},
      {256, 256, false}, {256, 256, true},  {256, 512, false}, {512, 512, false}, {512, 512, true},
      {512, 512, false}, {512, 512, false}, {512, 512, true}};
  return convs;
}

StatusOr<std::shared_ptr<const Graph>> ConvLayer256At56() {
  GraphBuilder b({-1, 256, 56, 56}, 5);
  return b.Build(b.Op(OpType::kRelu, {b.Conv(b.input(), 256, 256, MakeConv({3, 3}, {}, {1, 1, 1, 1}))}));
}

// Appends a Gemm (+ Relu unless `last`) of `in` -> `out` features with random weights.
std::string Fc(GraphBuilder& b, const std::string& x, int64_t in, int64_t out, bool relu) {
  const std::string y = b.Op(OpType::kGemm, {x, b.Const({out, in}, 0.01f), b.Const({out})},
                             GemmAttrs{1.0f, 1.0f, false, true});
  return relu ? b.Op(OpType::kRelu, {y}) : y;
}

StatusOr<std::shared_ptr<const Graph>> SoftmaxOutput(GraphBuilder& b, const std::string& y) {
  SoftmaxAttrs softmax;
  softmax.axis = 1;
  return b.Build(b.Op(OpType::kSoftmax, {y}, softmax));
}

// VGG-16 at 224x224 (ReLU after every convolution); `with_fc` adds the 3 FC layers and the softmax.
StatusOr<std::shared_ptr<const Graph>> Vgg16(bool with_fc) {
  constexpr int64_t kImage = 224;
  GraphBuilder b({-1, 3, kImage, kImage}, 16);
  std::string y = b.input();
  for (const ConvSpec& c : Vgg16Convs()) {
    y = b.Op(OpType::kRelu, {b.Conv(y, c.in_c, c.out_c, MakeConv({3, 3}, {}, {1, 1, 1, 1}))});
    if (c.pool_after) y = b.Op(OpType::kMaxPool, {y}, MakePool({2, 2}, {2, 2}));
  }
  if (!with_fc) return b.Build(y);
  constexpr int64_t kSpatial = kImage / 32;
  y = b.Op(OpType::kFlatten, {y}, FlattenAttrs{1});
  y = b.Op(OpType::kDropout, {Fc(b, y, 512 * kSpatial * kSpatial, 4096, true)});
  y = b.Op(OpType::kDropout, {Fc(b, y, 4096, 4096, true)});
  return SoftmaxOutput(b, Fc(b, y, 4096, 1000, false));
}

double Vgg16ConvFlopsPerImage() {
  double flops = 0;
  int64_t size = 224;
  for (const ConvSpec& c : Vgg16Convs()) {
    flops += 2.0 * c.in_c * c.out_c * 9 * size * size;
    if (c.pool_after) size /= 2;
  }
  return flops;
}

// The original AlexNet (2012, two-group convolutions) at 227x227.
StatusOr<std::shared_ptr<const Graph>> AlexNet() {
  GraphBuilder b({-1, 3, 227, 227}, 2012);
  const LrnAttrs lrn{5, 1e-4f, 0.75f, 2.0f};
  const PoolAttrs pool = MakePool({3, 3}, {2, 2});
  std::string y = b.Op(OpType::kRelu, {b.Conv(b.input(), 3, 96, MakeConv({11, 11}, {4, 4}))});
  y = b.Op(OpType::kLrn, {b.Op(OpType::kMaxPool, {y}, pool)}, lrn);
  y = b.Op(OpType::kRelu, {b.Conv(y, 96, 256, MakeConv({5, 5}, {}, {2, 2, 2, 2}, {}, 2))});
  y = b.Op(OpType::kLrn, {b.Op(OpType::kMaxPool, {y}, pool)}, lrn);
  y = b.Op(OpType::kRelu, {b.Conv(y, 256, 384, MakeConv({3, 3}, {}, {1, 1, 1, 1}))});
  y = b.Op(OpType::kRelu, {b.Conv(y, 384, 384, MakeConv({3, 3}, {}, {1, 1, 1, 1}, {}, 2))});
  y = b.Op(OpType::kRelu, {b.Conv(y, 384, 256, MakeConv({3, 3}, {}, {1, 1, 1, 1}, {}, 2))});
  y = b.Op(OpType::kFlatten, {b.Op(OpType::kMaxPool, {y}, pool)}, FlattenAttrs{1});
  y = Fc(b, y, 9216, 4096, true);
  y = b.Op(OpType::kDropout, {y});
  return SoftmaxOutput(b, Fc(b, Fc(b, y, 4096, 4096, true), 4096, 1000, false));
}

using GraphFactory = StatusOr<std::shared_ptr<const Graph>> (*)();

// Builds each graph once per process (VGG-16's random weights take seconds to draw).
StatusOr<std::shared_ptr<const Graph>> CachedGraph(const std::string& name, GraphFactory factory) {
  static std::map<std::string, std::shared_ptr<const Graph>> cache;
  auto it = cache.find(name);
  if (it != cache.end()) return it->second;
  CNN_ASSIGN_OR_RETURN(std::shared_ptr<const Graph> graph, factory());
  cache.emplace(name, graph);
  return graph;
}

struct Compiled {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Plan> plan;
  double compile_ms = 0;
  std::vector<float> input;
  std::vector<float> output;
};

StatusOr<Compiled> CompileAndWarmUp(const std::shared_ptr<const Graph>& graph, const BackendOptions& options,
                                    int64_t batch) {
  Compiled c;
  CNN_ASSIGN_OR_RETURN(c.backend, CreateDnnlBackend(graph, options));
  const auto start = std::chrono::steady_clock::now();
  CNN_ASSIGN_OR_RETURN(c.plan, c.backend->Compile(batch));
  c.compile_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  c.input = RandomVector(NumElements(c.plan->input_dims()), kInputSeed);
  c.output.resize(static_cast<size_t>(NumElements(c.plan->output_dims())));
  CNN_RETURN_IF_ERROR(c.plan->Run(c.input.data(), c.output.data()));
  return c;
}

// Times Plan::Run; false (with the error reported to `state`) when a run fails.
bool TimeRuns(benchmark::State& state, Compiled& c) {
  for (auto _ : state) {
    const Status status = c.plan->Run(c.input.data(), c.output.data());
    if (!status.ok()) {
      state.SkipWithError(status.ToString().c_str());
      return false;
    }
  }
  return true;
}

// Describes the plan in counters (and on stderr with --print_plans); returns its number of Winograd layers.
int DescribeAndCount(const std::string& label, const Plan& plan) {
  auto info = dnnl_internal::DescribePlan(plan);
  if (!info.ok()) return -1;
  int winograd_layers = 0;
  for (const auto& step : info->steps) winograd_layers += step.impl.find("wino") != std::string::npos;
  // Google Benchmark may call a benchmark function more than once (to size its iterations): print each plan once.
  static std::set<std::string> printed;
  if (g_print_plans && printed.insert(label).second) {
    std::fprintf(stderr, "%s\n%s", label.c_str(), dnnl_internal::FormatPlanInfo(*info).c_str());
  }
  return winograd_layers;
}

// The output of the direct-convolution plan of `name` at `batch`, computed once, to compare Winograd with.
const std::vector<float>* DirectOutput(const std::string& name, const std::shared_ptr<const Graph>& graph,
                                       int64_t batch) {
  static std::map<std::pair<std::string, int64_t>, std::vector<float>> cache;
  const auto key = std::make_pair(name, batch);
  auto it = cache.find(key);
  if (it != cache.end()) return &it->second;
  auto direct = CompileAndWarmUp(graph, OptionsFor(kDirect), batch);
  if (!direct.ok()) return nullptr;
  return &cache.emplace(key, std::move(direct->output)).first->second;
}

// Args: batch, Mode. Counters: GFLOP/s of the convolutions, Winograd layers, and for the Winograd modes
// max|output - direct output| / max|direct output| (the parity tests allow 1e-4).
void BM_Convolutions(benchmark::State& state, const std::string& name, GraphFactory factory,
                     double flops_per_image) {
  const int64_t batch = state.range(0);
  const int64_t mode = state.range(1);
  state.SetLabel(kModeNames[mode]);
  auto graph = CachedGraph(name, factory);
  if (!graph.ok()) return state.SkipWithError(graph.status().ToString().c_str());
  auto compiled = CompileAndWarmUp(*graph, OptionsFor(mode), batch);
  if (!compiled.ok()) return state.SkipWithError(compiled.status().ToString().c_str());
  if (!TimeRuns(state, *compiled)) return;
  state.counters["GFLOP/s"] = benchmark::Counter(flops_per_image * static_cast<double>(batch) / kFlopsPerGflop,
                                                 benchmark::Counter::kIsIterationInvariantRate);
  state.counters["winograd_layers"] =
      DescribeAndCount(name + " batch " + std::to_string(batch) + " " + kModeNames[mode], *compiled->plan);
  if (mode == kDirect) return;
  const std::vector<float>* direct = DirectOutput(name, *graph, batch);
  if (direct == nullptr) return state.SkipWithError("the direct plan failed");
  const Comparison c =
      Compare(compiled->output.data(), direct->data(), static_cast<int64_t>(compiled->output.size()));
  state.counters["rel_diff_vs_direct"] = c.max_abs_diff / c.max_abs_ref;
}

// Args: batch, Winograd allowed (0/1, heuristic policy). Counters: images/s, compile time, the backend's copies
// of weights, the plan's arena (activations + scratchpad) and the process's resident memory.
void BM_Network(benchmark::State& state, const std::string& name, GraphFactory factory) {
  const int64_t batch = state.range(0);
  const bool winograd = state.range(1) != 0;
  auto graph = CachedGraph(name, factory);
  if (!graph.ok()) return state.SkipWithError(graph.status().ToString().c_str());
  BackendOptions options;
  options.allow_winograd = winograd;
  auto compiled = CompileAndWarmUp(*graph, options, batch);
  if (!compiled.ok()) return state.SkipWithError(compiled.status().ToString().c_str());
  if (!TimeRuns(state, *compiled)) return;
  state.SetLabel(winograd ? "winograd allowed" : "direct");
  state.counters["images/s"] =
      benchmark::Counter(static_cast<double>(batch), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["compile_ms"] = compiled->compile_ms;
  state.counters["winograd_layers"] =
      DescribeAndCount(name + " batch " + std::to_string(batch) + (winograd ? " winograd" : ""), *compiled->plan);
  auto counters = dnnl_internal::GetBackendCounters(*compiled->backend);
  auto info = dnnl_internal::DescribePlan(*compiled->plan);
  if (counters.ok()) state.counters["weight_copies_MB"] = counters->weight_bytes_copied / kBytesPerMb;
  if (info.ok()) state.counters["arena_MB"] = (info->activation_bytes + info->scratchpad_bytes) / kBytesPerMb;
  state.counters["weights_MB"] = (*graph)->num_constant_elements() * sizeof(float) / kBytesPerMb;
  const auto [rss, peak] = RssMb();
  state.counters["rss_MB"] = rss;
  state.counters["peak_rss_MB"] = peak;
}

StatusOr<std::shared_ptr<const Graph>> Vgg16ConvStack() { return Vgg16(/*with_fc=*/false); }
StatusOr<std::shared_ptr<const Graph>> Vgg16Full() { return Vgg16(/*with_fc=*/true); }

const std::vector<int64_t> kBatches = {1, 8};
const std::vector<int64_t> kModes = {kDirect, kLibraryAuto, kAlways, kHeuristic};

BENCHMARK_CAPTURE(BM_Convolutions, conv3x3_256x256_56x56, std::string("conv3x3_256"), ConvLayer256At56,
                  2.0 * 256 * 256 * 9 * 56 * 56)
    ->ArgsProduct({kBatches, kModes})
    ->ArgNames({"batch", "mode"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_Convolutions, vgg16_convs, std::string("vgg16_convs"), Vgg16ConvStack,
                  Vgg16ConvFlopsPerImage())
    ->ArgsProduct({kBatches, kModes})
    ->ArgNames({"batch", "mode"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_Network, alexnet, std::string("alexnet"), AlexNet)
    ->ArgsProduct({kBatches, {0, 1}})
    ->ArgNames({"batch", "winograd"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_Network, vgg16, std::string("vgg16"), Vgg16Full)
    ->ArgsProduct({kBatches, {0, 1}})
    ->ArgNames({"batch", "winograd"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace cnnserve::engine_micro

int main(int argc, char** argv) {
  // Our one flag first; Google Benchmark parses (and rejects unknown) --benchmark_* flags.
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--print_plans") == 0) {
      cnnserve::engine_micro::g_print_plans = true;
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("onednn_isa", cnnserve::DnnlIsaName());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
