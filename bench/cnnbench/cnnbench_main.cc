// cnnbench: the offline engine tool.
//   cnnbench inspect MODEL.onnx [--json]
//   cnnbench run MODEL.onnx [--batch 1,8,32] [--threads N] [--seconds S] [--repeats R] [--warmup-runs W]
//                           [--backend dnnl|reference] [--no-winograd] [--fc-blocked-min-batch B] [--json]
//   cnnbench verify MODEL.onnx --input X.npy --expect Y.npy [--rtol R] [--atol A] [--backend dnnl|reference]
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "engine/graph/inspect.h"
#include "engine/runtime/model.h"
#include "engine/tensor/npy.h"
#include "models/onnx/onnx_importer.h"

namespace cnnserve {
namespace {

constexpr char kUsage[] =
    "usage:\n"
    "  cnnbench inspect MODEL.onnx [--json]\n"
    "  cnnbench run MODEL.onnx [--batch 1,8,32] [--threads N] [--seconds S] [--repeats R] [--warmup-runs 3]\n"
    "                          [--backend dnnl|reference] [--no-winograd] [--fc-blocked-min-batch B] [--json]\n"
    "  cnnbench verify MODEL.onnx --input X.npy --expect Y.npy [--rtol 1e-4] [--atol 1e-5]\n"
    "                          [--backend dnnl|reference] [--threads N] [--no-winograd]\n"
    "Winograd convolutions are allowed by default (--winograd is accepted and changes nothing).\n";

using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

double PeakRssMb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

// Parsed command line: positional arguments and --flag [value] pairs.
struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::string> flags;

  bool Has(const std::string& f) const { return flags.count(f) != 0; }
  std::string Get(const std::string& f, const std::string& def) const {
    auto it = flags.find(f);
    return it == flags.end() ? def : it->second;
  }
};

const std::vector<std::string> kBoolFlags = {"--json", "--winograd", "--no-winograd", "--help"};

StatusOr<Args> ParseArgs(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) == 0) {
      if (std::find(kBoolFlags.begin(), kBoolFlags.end(), a) != kBoolFlags.end()) {
        args.flags[a] = "1";
      } else if (i + 1 < argc) {
        args.flags[a] = argv[++i];
      } else {
        return InvalidArgumentError("flag " + a + " needs a value");
      }
    } else {
      args.positional.push_back(a);
    }
  }
  return args;
}

StatusOr<double> ParseDouble(const std::string& flag, const std::string& text) {
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !std::isfinite(v)) {
    return InvalidArgumentError(flag + ": '" + text + "' is not a number");
  }
  return v;
}

StatusOr<int64_t> ParseInt(const std::string& flag, const std::string& text, int64_t min, int64_t max) {
  char* end = nullptr;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || v < min || v > max) {
    return InvalidArgumentError(flag + ": '" + text + "' is not an integer in [" + std::to_string(min) + ", " +
                                std::to_string(max) + "]");
  }
  return static_cast<int64_t>(v);
}

StatusOr<std::vector<int64_t>> ParseIntList(const std::string& flag, const std::string& text) {
  std::vector<int64_t> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    CNN_ASSIGN_OR_RETURN(int64_t v, ParseInt(flag, item, 1, 4096));
    out.push_back(v);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

StatusOr<ModelOptions> ModelOptionsFrom(const Args& args) {
  ModelOptions options;
  options.backend = args.Get("--backend", "dnnl");
  CNN_ASSIGN_OR_RETURN(int64_t threads, ParseInt("--threads", args.Get("--threads", "0"), 0, 1024));
  options.num_threads = static_cast<int>(threads);
  options.allow_winograd = !args.Has("--no-winograd");
  CNN_ASSIGN_OR_RETURN(options.fc_blocked_weights_min_batch,
                       ParseInt("--fc-blocked-min-batch", args.Get("--fc-blocked-min-batch", "8"), 1, 1 << 30));
  return options;
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

int Inspect(const Args& args) {
  auto graph = LoadOnnxGraph(args.positional[1]);
  if (!graph.ok()) {
    std::fprintf(stderr, "cnnbench: %s\n", graph.status().ToString().c_str());
    return 1;
  }
  GraphStats stats = ComputeGraphStats(**graph);
  if (stats.name.empty()) stats.name = ModelName(args.positional[1]);
  if (args.Has("--json")) {
    std::printf("%s\n", FormatStatsJson(stats).c_str());
  } else {
    std::printf("%s", FormatStatsTable(stats).c_str());
  }
  return 0;
}

Status Run(const Args& args) {
  const std::string path = args.positional[1];
  CNN_ASSIGN_OR_RETURN(ModelOptions options, ModelOptionsFrom(args));
  CNN_ASSIGN_OR_RETURN(std::vector<int64_t> batches, ParseIntList("--batch", args.Get("--batch", "1,8,32")));
  CNN_ASSIGN_OR_RETURN(double seconds, ParseDouble("--seconds", args.Get("--seconds", "3")));
  CNN_ASSIGN_OR_RETURN(int64_t repeats, ParseInt("--repeats", args.Get("--repeats", "5"), 1, 1000));
  CNN_ASSIGN_OR_RETURN(int64_t warmup_runs, ParseInt("--warmup-runs", args.Get("--warmup-runs", "3"), 1, 1000));
  if (seconds <= 0) return InvalidArgumentError("--seconds must be positive");
  const bool json = args.Has("--json");

  const auto t_load = Clock::now();
  CNN_ASSIGN_OR_RETURN(std::shared_ptr<const Graph> graph, LoadOnnxGraph(path));
  CNN_ASSIGN_OR_RETURN(std::shared_ptr<const Model> model, Model::Create(graph, options));
  const double load_ms = MsSince(t_load);
  std::unique_ptr<Session> session = model->NewSession();
  std::mt19937 rng(42);
  std::normal_distribution<float> normal(0.0f, 1.0f);

  if (!json) {
    std::printf("%s: backend %s, threads %d, load %.1f ms\n", ModelName(path).c_str(), options.backend.c_str(),
                options.num_threads, load_ms);
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
    for (int64_t i = 0; i < warmup_runs || MsSince(t_warm) < 500.0; ++i) {
      CNN_RETURN_IF_ERROR(session->Run(src.data(), batch, dst.data()));
    }
    std::vector<double> latencies;
    const auto t_measure = Clock::now();
    while (MsSince(t_measure) < seconds * 1000.0 || static_cast<int64_t>(latencies.size()) < repeats) {
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
      rates.push_back(static_cast<double>(per_slice * batch) / (ms / 1000.0));
    }
    const double ips = Median(rates);
    const double p50 = Percentile(latencies, 50), p90 = Percentile(latencies, 90), p99 = Percentile(latencies, 99);
    if (json) {
      std::printf(
          "{\"runtime\":\"cnnserve\",\"backend\":\"%s\",\"model\":\"%s\",\"batch\":%lld,\"threads\":%d,"
          "\"images_per_s\":%.3f,\"p50_ms\":%.4f,\"p90_ms\":%.4f,\"p99_ms\":%.4f,\"load_ms\":%.1f,"
          "\"compile_ms\":%.1f,\"peak_rss_mb\":%.1f,\"repeats\":%lld,\"runs\":%zu}\n",
          options.backend.c_str(), ModelName(path).c_str(), static_cast<long long>(batch), options.num_threads,
          ips, p50, p90, p99, load_ms, compile_ms, PeakRssMb(), static_cast<long long>(repeats), latencies.size());
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
    return 2;
  };
  if (!args.Has("--input") || !args.Has("--expect"))
    return fail(InvalidArgumentError("verify needs --input and --expect"));
  auto options = ModelOptionsFrom(args);
  if (!options.ok()) return fail(options.status());
  auto rtol = ParseDouble("--rtol", args.Get("--rtol", "1e-4"));
  auto atol = ParseDouble("--atol", args.Get("--atol", "1e-5"));
  if (!rtol.ok()) return fail(rtol.status());
  if (!atol.ok()) return fail(atol.status());
  auto input = ReadNpy(args.Get("--input", ""));
  if (!input.ok()) return fail(input.status());
  auto expect = ReadNpy(args.Get("--expect", ""));
  if (!expect.ok()) return fail(expect.status());
  auto graph = LoadOnnxGraph(args.positional[1]);
  if (!graph.ok()) return fail(graph.status());
  auto model = Model::Create(*graph, *options);
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
  const double tol = *rtol * max_ref + *atol;
  int64_t rows = expect->dims()[0];
  int64_t cols = expect->size() / rows;
  int64_t top5_same = 0;
  for (int64_t r = 0; r < rows; ++r) {
    top5_same += TopK(got->data() + r * cols, cols, 5) == TopK(expect->data() + r * cols, cols, 5);
  }
  const bool pass = max_diff <= tol && top5_same == rows;
  std::printf("%s: max_abs_diff=%.3g max_abs_ref=%.3g tolerance=%.3g top5_identical=%lld/%lld %s\n",
              ModelName(args.positional[1]).c_str(), max_diff, max_ref, tol, static_cast<long long>(top5_same),
              static_cast<long long>(rows), pass ? "PASS" : "FAIL");
  return pass ? 0 : 1;
}

int Main(int argc, char** argv) {
  auto args = ParseArgs(argc, argv);
  if (!args.ok()) {
    std::fprintf(stderr, "cnnbench: %s\n%s", args.status().message().c_str(), kUsage);
    return 2;
  }
  if (args->Has("--help") || args->positional.size() != 2) {
    std::fprintf(args->Has("--help") ? stdout : stderr, "%s", kUsage);
    return args->Has("--help") ? 0 : 2;
  }
  const std::string& command = args->positional[0];
  const std::map<std::string, std::vector<std::string>> allowed = {
      {"inspect", {"--json"}},
      {"run",
       {"--batch", "--threads", "--seconds", "--repeats", "--warmup-runs", "--backend", "--winograd",
        "--no-winograd", "--fc-blocked-min-batch", "--json"}},
      {"verify",
       {"--input", "--expect", "--rtol", "--atol", "--backend", "--threads", "--winograd", "--no-winograd",
        "--fc-blocked-min-batch"}},
  };
  if (auto it = allowed.find(command); it != allowed.end()) {
    for (const auto& [flag, value] : args->flags) {
      if (std::find(it->second.begin(), it->second.end(), flag) == it->second.end()) {
        std::fprintf(stderr, "cnnbench: unknown flag %s for '%s'\n%s", flag.c_str(), command.c_str(), kUsage);
        return 2;
      }
    }
  }
  if (command == "inspect") return Inspect(*args);
  if (command == "verify") return Verify(*args);
  if (command == "run") {
    Status s = Run(*args);
    if (!s.ok()) {
      std::fprintf(stderr, "cnnbench: %s\n", s.ToString().c_str());
      return 1;
    }
    return 0;
  }
  std::fprintf(stderr, "cnnbench: unknown command '%s'\n%s", command.c_str(), kUsage);
  return 2;
}

}  // namespace
}  // namespace cnnserve

int main(int argc, char** argv) { return cnnserve::Main(argc, argv); }
