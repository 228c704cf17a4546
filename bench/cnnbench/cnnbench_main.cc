// cnnbench: the offline engine tool.
//   cnnbench inspect MODEL.onnx [--json] [--precision fp32|bf16|int8 [--calibration FILE]]
//   cnnbench run MODEL.onnx [--batch 1,8,32] [--threads N] [--seconds S] [--repeats R] [--warmup-runs W]
//                           [--backend dnnl|reference] [--no-winograd] [--fc-blocked-min-batch B]
//                           [--precision fp32|bf16|int8 [--calibration FILE]] [--json]
//   cnnbench verify MODEL.onnx --input X.npy --expect Y.npy [--rtol R] [--atol A] [--backend dnnl|reference]
//                           [--precision fp32|bf16|int8 [--calibration FILE]]
//   cnnbench calibrate MODEL.onnx --input X.npy --out FILE [--method minmax|percentile] [--percentile P]
//   cnnbench calibrate --model-repository R --model M --images DIR [--count N] [--version V] [--method ...]
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "bench/cnnbench/calibrate_repository.h"
#include "engine/backend/dnnl/dnnl_backend.h"
#include "engine/backend/dnnl/dnnl_backend_internal.h"
#include "engine/common/flags.h"
#include "engine/common/strings.h"
#include "engine/common/units.h"
#include "engine/graph/inspect.h"
#include "engine/graph/passes.h"
#include "engine/runtime/calibration.h"
#include "engine/runtime/model.h"
#include "engine/tensor/npy.h"
#include "models/onnx/onnx_importer.h"

namespace cnnserve {
namespace {

constexpr char kSynopsis[] =
    "usage:\n"
    "  cnnbench inspect MODEL.onnx [--json] [--precision fp32|bf16|int8 [--calibration FILE]]\n"
    "  cnnbench run MODEL.onnx [--batch 1,8,32] [--threads N] [--seconds S] [--repeats R] [--warmup-runs 3]\n"
    "                          [--backend dnnl|reference] [--no-winograd] [--fc-blocked-min-batch B]\n"
    "                          [--precision fp32|bf16|int8 [--calibration FILE]] [--json]\n"
    "  cnnbench verify MODEL.onnx --input X.npy --expect Y.npy [--rtol 1e-4] [--atol 1e-5]\n"
    "                          [--backend dnnl|reference] [--threads N] [--no-winograd]\n"
    "                          [--precision fp32|bf16|int8 [--calibration FILE]]\n"
    "  cnnbench calibrate MODEL.onnx --input X.npy --out FILE [--method minmax|percentile] [--percentile 99.99]\n"
    "                          [--threads N]\n"
    "  cnnbench calibrate --model-repository R --model M --images DIR [--count 512] [--version V]\n"
    "                          [--method minmax|percentile] [--percentile 99.99] [--threads N]\n"
    "Winograd convolutions are allowed by default (--winograd is accepted and changes nothing).\n"
    "inspect --precision also compiles a batch-1 plan and lists each layer's kernel, data types and the weight\n"
    "bytes per data type. verify below fp32 passes when the top-1 class of every row is the expected one and\n"
    "the outputs are within the tolerance (set it for the precision). int8 needs --calibration: the file\n"
    "`calibrate` writes from a preprocessed batch (X.npy, float32 [N, C, H, W] like the model's input), or,\n"
    "with --model-repository, from image files preprocessed by the model's config.pbtxt, into\n"
    "R/M/VERSION/calibration.txt (read by the server for precision: INT8).\n";

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;  // run: an error; verify: the outputs differ
constexpr int kExitUsage = 2;   // bad command line (verify: also any error)
constexpr int kMaxThreads = 1024;
constexpr int64_t kMaxBatch = 4096;
constexpr int64_t kMaxRepeats = 1000;
constexpr int64_t kMaxFcBlockedMinBatch = int64_t{1} << 30;
constexpr double kMaxSeconds = kSecondsPerDay;
constexpr double kMaxTolerance = 1e6;
constexpr double kMinWarmupMillis = 500;  // warm-up lasts at least this long
constexpr size_t kTopK = 5;
constexpr int64_t kMaxCalibrationImages = 100000;

using Clock = std::chrono::steady_clock;

// bf16 and int8 plans convert the weights: they read them in place from the mapped file, which keeps the fp32
// weights from being resident all at once (OnnxImportOptions::map_weights).
OnnxImportOptions ImportFor(const ModelOptions& model) {
  OnnxImportOptions options;
  options.map_weights = model.precision != Precision::kFp32;
  return options;
}

double MsSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

double PeakRssMb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / kKiBPerMiB;  // ru_maxrss is in KiB on Linux
}

// The command line: the command and the model (positional), and every command's flags.
struct Args {
  std::vector<std::string> positional;
  std::set<std::string, std::less<>> given;  // the flags given
  ModelOptions model;                        // --backend, --threads, --no-winograd, --fc-blocked-min-batch
  std::vector<int64_t> batches = {1, 8, 32};
  double seconds = 3;
  int64_t repeats = 5;
  int64_t warmup_runs = 3;
  std::string input;
  std::string expect;
  double rtol = 1e-4;
  double atol = 1e-5;
  bool json = false;
  std::string calibration;  // --calibration
  std::string out;          // calibrate: --out
  CalibrateOptions calibrate;
  RepositoryCalibrationRequest repository;  // calibrate --model-repository

  bool Has(std::string_view flag) const { return given.count(flag) != 0; }
};

// The flags of all commands (Main checks which a command takes).
void AddFlags(FlagSet& flags, Args* args) {
  ModelOptions& model = args->model;
  flags.String("--backend", &model.backend, "NAME", "dnnl (default) or reference");
  flags.Integer<int>("--threads", &model.num_threads, 0, kMaxThreads, "N", "threads of one run (default 0: all)");
  flags.Switch(
      "--winograd", [] {}, "allow Winograd convolutions (the default)");
  flags.Switch(
      "--no-winograd", [&model] { model.allow_winograd = false; }, "direct convolutions only");
  flags.Integer<int64_t>("--fc-blocked-min-batch", &model.fc_blocked_weights_min_batch, 1, kMaxFcBlockedMinBatch,
                         "B", "smallest batch whose FC layers get blocked weights (default 8)");
  flags.Value("--batch", "1,8,32", "run: the batch sizes, one row each", [args](std::string_view text) {
    StatusOr<std::vector<int64_t>> batches = ParseIntegerList<int64_t>(text, 1, kMaxBatch);
    if (!batches.ok()) return batches.status();
    args->batches = std::move(*batches);
    return OkStatus();
  });
  flags.Double("--seconds", &args->seconds, 0, kMaxSeconds, "S", "run: measured seconds per batch (default 3)");
  flags.Integer<int64_t>("--repeats", &args->repeats, 1, kMaxRepeats, "R",
                         "run: throughput is the median of R slices of the runs (default 5)");
  flags.Integer<int64_t>("--warmup-runs", &args->warmup_runs, 1, kMaxRepeats, "W",
                         "run: unmeasured runs first (default 3, and at least 0.5 s)");
  flags.String("--input", &args->input, "X.npy", "verify: the input tensor");
  flags.String("--expect", &args->expect, "Y.npy", "verify: the expected output");
  flags.Double("--rtol", &args->rtol, 0, kMaxTolerance, "R", "verify: relative tolerance (default 1e-4)");
  flags.Double("--atol", &args->atol, 0, kMaxTolerance, "A", "verify: absolute tolerance (default 1e-5)");
  flags.Value("--precision", "fp32|bf16|int8", "the data type of the compiled layers (default fp32)",
              [args](std::string_view text) -> Status {
                const std::map<std::string_view, Precision> names = {
                    {"fp32", Precision::kFp32}, {"bf16", Precision::kBf16}, {"int8", Precision::kInt8}};
                auto it = names.find(text);
                if (it == names.end()) {
                  return InvalidArgumentError("--precision must be fp32, bf16 or int8, got " + Quoted(text));
                }
                args->model.precision = it->second;
                return OkStatus();
              });
  flags.String("--calibration", &args->calibration, "FILE", "int8: the activation ranges (from calibrate)");
  flags.String("--out", &args->out, "FILE", "calibrate: the calibration file to write");
  flags.Value("--method", "minmax|percentile", "calibrate: how ranges are taken (default minmax)",
              [args](std::string_view text) -> Status {
                if (text == "minmax") {
                  args->calibrate.method = CalibrationMethod::kMinMax;
                } else if (text == "percentile") {
                  args->calibrate.method = CalibrationMethod::kPercentile;
                } else {
                  return InvalidArgumentError("--method must be minmax or percentile, got " + Quoted(text));
                }
                return OkStatus();
              });
  flags.String("--model-repository", &args->repository.root, "R", "calibrate: the model repository");
  flags.String("--model", &args->repository.model, "M", "calibrate: the repository model");
  flags.String("--images", &args->repository.images_dir, "DIR", "calibrate: PNG/JPEG files (first N by name)");
  flags.Integer<int64_t>("--count", &args->repository.count, 1, kMaxCalibrationImages, "N",
                         "calibrate: images used (default 512)");
  flags.Integer<int64_t>("--version", &args->repository.version, 1, int64_t{1} << 40, "V",
                         "calibrate: the version folder (default the newest)");
  flags.Double("--max-error", &args->calibrate.max_output_error, 0, 1e6, "E",
               "calibrate: keep layers in fp32 until the int8 outputs on the calibration images are within E x "
               "the largest |fp32 output| (default 0: all layers int8)");
  flags.Double("--percentile", &args->calibrate.percentile, 50.000001, 100, "P",
               "calibrate --method percentile: the percentile kept (default 99.99)");
  flags.Switch("--json", &args->json, "inspect, run: print JSON");
  flags.Positionals(&args->positional);
}

std::string ModelName(const std::string& path) { return std::filesystem::path(path).stem().string(); }

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const double pos = p / 100.0 * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}

double Median(std::vector<double> v) { return Percentile(std::move(v), 50.0); }

// inspect --precision: the batch-1 plan's layers with their kernels and data types, and the weight bytes per
// data type.
Status PrintPlan(const std::shared_ptr<const Graph>& graph, const ModelOptions& options) {
  CNN_ASSIGN_OR_RETURN(std::shared_ptr<const Graph> optimized, OptimizeForInference(*graph));
  BackendOptions backend_options;
  backend_options.num_threads = options.num_threads;
  backend_options.allow_winograd = options.allow_winograd;
  backend_options.precision = options.precision;
  backend_options.ranges = options.ranges;
  CNN_ASSIGN_OR_RETURN(std::unique_ptr<Backend> backend, CreateDnnlBackend(optimized, backend_options));
  CNN_ASSIGN_OR_RETURN(std::unique_ptr<Plan> plan, backend->Compile(1));
  CNN_ASSIGN_OR_RETURN(const dnnl_internal::PlanInfo info, dnnl_internal::DescribePlan(*plan));
  std::printf("plan at batch 1, precision %s (oneDNN ISA %s):\n%s", PrecisionName(options.precision),
              DnnlIsaName().c_str(), dnnl_internal::FormatPlanInfo(info).c_str());
  return OkStatus();
}

int Inspect(const Args& args) {
  auto graph = LoadOnnxGraph(args.positional[1], ImportFor(args.model));
  if (!graph.ok()) {
    std::fprintf(stderr, "cnnbench: %s\n", graph.status().ToString().c_str());
    return kExitFailed;
  }
  GraphStats stats = ComputeGraphStats(**graph);
  if (stats.name.empty()) stats.name = ModelName(args.positional[1]);
  if (args.json) {
    std::printf("%s\n", FormatStatsJson(stats).c_str());
  } else {
    std::printf("%s", FormatStatsTable(stats).c_str());
  }
  if (!args.Has("--precision")) return kExitOk;
  const Status status = PrintPlan(*graph, args.model);
  if (!status.ok()) {
    std::fprintf(stderr, "cnnbench: %s\n", status.ToString().c_str());
    return kExitFailed;
  }
  return kExitOk;
}

Status Run(const Args& args) {
  const std::string path = args.positional[1];
  const ModelOptions& options = args.model;
  const std::vector<int64_t>& batches = args.batches;
  const int64_t repeats = args.repeats;
  if (args.seconds <= 0) return InvalidArgumentError("--seconds must be positive");
  const bool json = args.json;

  const auto t_load = Clock::now();
  CNN_ASSIGN_OR_RETURN(std::shared_ptr<const Graph> graph, LoadOnnxGraph(path, ImportFor(options)));
  CNN_ASSIGN_OR_RETURN(std::shared_ptr<const Model> model, Model::Create(graph, options));
  const double load_ms = MsSince(t_load);
  std::unique_ptr<Session> session = model->NewSession();
  std::mt19937 rng(42);
  std::normal_distribution<float> normal(0.0f, 1.0f);

  if (!json) {
    std::printf("%s: backend %s, precision %s, threads %d, load %.1f ms\n", ModelName(path).c_str(),
                options.backend.c_str(), PrecisionName(options.precision), options.num_threads, load_ms);
    std::printf("%6s %12s %10s %10s %10s %11s %10s\n", "batch", "images/s", "p50 ms", "p90 ms", "p99 ms",
                "compile ms", "runs");
  }
  for (int64_t batch : batches) {
    const auto t_compile = Clock::now();
    CNN_RETURN_IF_ERROR(session->Prepare(batch));
    const double compile_ms = MsSince(t_compile);
    std::vector<float> src(static_cast<size_t>(batch * model->item_input_size()));
    for (float& v : src) v = normal(rng);
    std::vector<float> dst(static_cast<size_t>(batch * model->item_output_size()));

    // Warm-up: at least --warmup-runs runs and 0.5 s (caches, page faults, OpenMP thread start).
    const auto t_warm = Clock::now();
    for (int64_t i = 0; i < args.warmup_runs || MsSince(t_warm) < kMinWarmupMillis; ++i) {
      CNN_RETURN_IF_ERROR(session->Run(src.data(), batch, dst.data()));
    }
    std::vector<double> latencies;
    const auto t_measure = Clock::now();
    while (MsSince(t_measure) < args.seconds * kMillisPerSecond ||
           static_cast<int64_t>(latencies.size()) < repeats) {
      const auto t = Clock::now();
      CNN_RETURN_IF_ERROR(session->Run(src.data(), batch, dst.data()));
      latencies.push_back(MsSince(t));
    }
    // Throughput: median over `repeats` consecutive slices of the runs.
    std::vector<double> rates;
    const size_t per_slice = latencies.size() / static_cast<size_t>(repeats);
    for (int64_t r = 0; r < repeats; ++r) {
      double ms = 0;
      for (size_t i = r * per_slice; i < (r + 1) * per_slice; ++i) ms += latencies[i];
      rates.push_back(static_cast<double>(per_slice * batch) / (ms / kMillisPerSecond));
    }
    const double ips = Median(rates);
    const double p50 = Percentile(latencies, 50), p90 = Percentile(latencies, 90), p99 = Percentile(latencies, 99);
    if (json) {
      std::printf(
          "{\"runtime\":\"cnnserve\",\"backend\":\"%s\",\"precision\":\"%s\",\"model\":\"%s\",\"batch\":%lld,"
          "\"threads\":%d,"
          "\"images_per_s\":%.3f,\"p50_ms\":%.4f,\"p90_ms\":%.4f,\"p99_ms\":%.4f,\"load_ms\":%.1f,"
          "\"compile_ms\":%.1f,\"peak_rss_mb\":%.1f,\"repeats\":%lld,\"runs\":%zu}\n",
          options.backend.c_str(), PrecisionName(options.precision), ModelName(path).c_str(),
          static_cast<long long>(batch), options.num_threads, ips, p50, p90, p99, load_ms, compile_ms, PeakRssMb(),
          static_cast<long long>(repeats), latencies.size());
    } else {
      std::printf("%6lld %12.1f %10.3f %10.3f %10.3f %11.1f %10zu\n", static_cast<long long>(batch), ips, p50, p90,
                  p99, compile_ms, latencies.size());
    }
    std::fflush(stdout);
  }
  if (!json) std::printf("peak RSS %.1f MB\n", PeakRssMb());
  return OkStatus();
}

// Top-k indices of one row, best first, ties to the lower index.
std::vector<int64_t> TopK(const float* row, int64_t n, int64_t k) {
  std::vector<int64_t> idx(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) idx[i] = i;
  k = std::min(k, n);
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                    [&](int64_t a, int64_t b) { return row[a] > row[b] || (row[a] == row[b] && a < b); });
  idx.resize(static_cast<size_t>(k));
  return idx;
}

// Returns 0 when the outputs match, 1 when they do not, 2 on error.
int Verify(const Args& args) {
  auto fail = [](const Status& s) {
    std::fprintf(stderr, "cnnbench: %s\n", s.ToString().c_str());
    return kExitUsage;
  };
  if (!args.Has("--input") || !args.Has("--expect"))
    return fail(InvalidArgumentError("verify needs --input and --expect"));
  auto input = ReadNpy(args.input);
  if (!input.ok()) return fail(input.status());
  auto expect = ReadNpy(args.expect);
  if (!expect.ok()) return fail(expect.status());
  auto graph = LoadOnnxGraph(args.positional[1], ImportFor(args.model));
  if (!graph.ok()) return fail(graph.status());
  auto model = Model::Create(*graph, args.model);
  if (!model.ok()) return fail(model.status());
  auto session = (*model)->NewSession();
  auto got = session->Run(*input);
  if (!got.ok()) return fail(got.status());
  if (got->dims() != expect->dims()) {
    return fail(InvalidArgumentError("output shape [" + DimsToString(got->dims()) + "] differs from expected [" +
                                     DimsToString(expect->dims()) + "]"));
  }
  double max_diff = 0, max_ref = 0;
  for (int64_t i = 0; i < expect->size(); ++i) {
    max_diff = std::max(max_diff, static_cast<double>(std::fabs((*got)[i] - (*expect)[i])));
    max_ref = std::max(max_ref, static_cast<double>(std::fabs((*expect)[i])));
  }
  const double tol = args.rtol * max_ref + args.atol;
  int64_t rows = expect->dims()[0];
  int64_t cols = expect->size() / rows;
  int64_t top5_same = 0, top1_same = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const std::vector<int64_t> got_top = TopK(got->data() + r * cols, cols, kTopK);
    const std::vector<int64_t> want_top = TopK(expect->data() + r * cols, cols, kTopK);
    top5_same += got_top == want_top;
    top1_same += got_top[0] == want_top[0];
  }
  // Below fp32 close classes may swap places within the top 5; the top-1 class must not change.
  const int64_t same = args.model.precision == Precision::kFp32 ? top5_same : top1_same;
  const bool pass = max_diff <= tol && same == rows;
  std::printf(
      "%s: precision=%s max_abs_diff=%.3g max_abs_ref=%.3g tolerance=%.3g top1_identical=%lld/%lld "
      "top5_identical=%lld/%lld %s\n",
      ModelName(args.positional[1]).c_str(), PrecisionName(args.model.precision), max_diff, max_ref, tol,
      static_cast<long long>(top1_same), static_cast<long long>(rows), static_cast<long long>(top5_same),
      static_cast<long long>(rows), pass ? "PASS" : "FAIL");
  return pass ? kExitOk : kExitFailed;
}

// The flags each command takes.
const std::map<std::string, std::vector<std::string>, std::less<>>& CommandFlags() {
  static const auto* const kFlags = new std::map<std::string, std::vector<std::string>, std::less<>>{
      {"inspect", {"--json", "--precision", "--calibration"}},
      {"run",
       {"--batch", "--threads", "--seconds", "--repeats", "--warmup-runs", "--backend", "--winograd",
        "--no-winograd", "--fc-blocked-min-batch", "--precision", "--calibration", "--json"}},
      {"verify",
       {"--input", "--expect", "--rtol", "--atol", "--backend", "--threads", "--winograd", "--no-winograd",
        "--fc-blocked-min-batch", "--precision", "--calibration"}},
      {"calibrate",
       {"--input", "--out", "--method", "--percentile", "--max-error", "--threads", "--model-repository",
        "--model", "--images", "--count", "--version"}},
  };
  return *kFlags;
}

// --precision int8 needs --calibration (read into the model options); --calibration needs int8.
Status LoadCalibration(Args* args) {
  const bool int8 = args->model.precision == Precision::kInt8;
  if (int8 != args->Has("--calibration")) {
    return InvalidArgumentError(int8 ? "--precision int8 needs --calibration FILE (cnnbench calibrate writes one)"
                                     : "--calibration is only for --precision int8");
  }
  if (!int8) return OkStatus();
  CNN_ASSIGN_OR_RETURN(Calibration calibration, ReadCalibrationFile(args->calibration));
  args->model.ranges = Int8Ranges(calibration);
  return OkStatus();
}

// calibrate --model-repository: image files preprocessed by the model's config, ranges into its version folder.
Status CalibrateRepository(const Args& args, const CalibrateOptions& options) {
  for (const char* flag : {"--model", "--images"}) {
    if (!args.Has(flag)) return InvalidArgumentError(std::string("calibrate --model-repository needs ") + flag);
  }
  if (args.Has("--input") || args.Has("--out")) {
    return InvalidArgumentError("calibrate --model-repository takes --images, not --input/--out");
  }
  const auto t0 = Clock::now();
  CNN_ASSIGN_OR_RETURN(const RepositoryCalibrationResult result,
                       CalibrateRepositoryModel(args.repository, options));
  std::printf("%s: %zu tensor ranges over %lld images, %zu kept in fp32, in %.1f s -> %s\n",
              args.repository.model.c_str(), result.calibration.ranges.size(),
              static_cast<long long>(result.calibration.images), result.calibration.fp32_tensors.size(),
              MsSince(t0) / kMillisPerSecond, result.path.c_str());
  return OkStatus();
}

// calibrate: ranges of every tensor over the --input batch, written to --out (or the repository form).
Status CalibrateCommand(const Args& args) {
  if (args.Has("--percentile") && args.calibrate.method != CalibrationMethod::kPercentile) {
    return InvalidArgumentError("--percentile is only for --method percentile");
  }
  CalibrateOptions options = args.calibrate;
  options.num_threads = args.model.num_threads;
  if (args.Has("--model-repository")) return CalibrateRepository(args, options);
  for (const char* flag : {"--model", "--images", "--count", "--version"}) {
    if (args.Has(flag)) return InvalidArgumentError(std::string(flag) + " is only for --model-repository");
  }
  if (!args.Has("--input") || !args.Has("--out")) return InvalidArgumentError("calibrate needs --input and --out");
  CNN_ASSIGN_OR_RETURN(Tensor input, ReadNpy(args.input));
  CNN_ASSIGN_OR_RETURN(std::shared_ptr<const Graph> graph, LoadOnnxGraph(args.positional[1]));
  options.source = std::filesystem::path(args.input).filename().string();
  const auto t0 = Clock::now();
  CNN_ASSIGN_OR_RETURN(const Calibration calibration, Calibrate(graph, input, options));
  CNN_RETURN_IF_ERROR(WriteCalibrationFile(args.out, calibration));
  std::printf("%s: %zu tensor ranges over %lld images (%s), %zu kept in fp32, in %.1f s -> %s\n",
              ModelName(args.positional[1]).c_str(), calibration.ranges.size(),
              static_cast<long long>(calibration.images),
              options.method == CalibrationMethod::kMinMax ? "minmax" : "percentile",
              calibration.fp32_tensors.size(), MsSince(t0) / kMillisPerSecond, args.out.c_str());
  return OkStatus();
}

// Parses argv into `args`; nullopt to go on, else the exit code (usage or the error printed).
std::optional<int> ParseCommandLine(int argc, char** argv, Args* args) {
  FlagSet flags(kSynopsis);
  AddFlags(flags, args);
  const Status status = flags.Parse(argc, argv);
  if (flags.help_requested()) {
    std::fputs(flags.Usage().c_str(), stdout);
    return kExitOk;
  }
  auto usage_error = [&](const std::string& message) {
    std::fprintf(stderr, "cnnbench: %s\n%s", message.c_str(), flags.Usage().c_str());
    return kExitUsage;
  };
  if (!status.ok()) return usage_error(status.message());
  const bool repository_form = flags.given().count("--model-repository") != 0;
  if (args->positional.size() != (repository_form ? 1u : 2u)) {
    return usage_error(repository_form ? "calibrate --model-repository takes no MODEL.onnx"
                                       : "expected COMMAND MODEL.onnx");
  }
  const std::string& command = args->positional[0];
  const auto allowed = CommandFlags().find(command);
  if (allowed == CommandFlags().end()) return usage_error("unknown command " + Quoted(command));
  for (const std::string& flag : flags.given()) {
    if (std::find(allowed->second.begin(), allowed->second.end(), flag) == allowed->second.end()) {
      return usage_error(command + " does not take " + flag);
    }
  }
  args->given = flags.given();
  if (const Status loaded = LoadCalibration(args); !loaded.ok()) return usage_error(loaded.message());
  return std::nullopt;
}

int Main(int argc, char** argv) {
  Args args;
  if (const std::optional<int> exit_code = ParseCommandLine(argc, argv, &args)) return *exit_code;
  const std::string& command = args.positional[0];
  if (command == "inspect") return Inspect(args);
  if (command == "verify") return Verify(args);
  if (command == "calibrate") {
    if (const Status status = CalibrateCommand(args); !status.ok()) {
      std::fprintf(stderr, "cnnbench: %s\n", status.ToString().c_str());
      return kExitFailed;
    }
    return kExitOk;
  }
  if (const Status status = Run(args); !status.ok()) {
    std::fprintf(stderr, "cnnbench: %s\n", status.ToString().c_str());
    return kExitFailed;
  }
  return kExitOk;
}

}  // namespace
}  // namespace cnnserve

int main(int argc, char** argv) { return cnnserve::Main(argc, argv); }
