// cnnload: the load generator of cnnserve (tools/README.md). It uses only the generated protobuf/gRPC code
// (proto/), gRPC, and engine/common's Status.
//
//   cnnload --model M (--synthetic | --images DIR|FILE) [--batch N] (--concurrency 1,2,4 | --rate R [--poisson])
//           [--warmup S] (--duration S | --requests N) [--csv FILE] [--json] ...    (cnnload --help)
//
// Exit codes: 0 every row ran (request errors are counted in the rows, not fatal), 1 the server could not be used
// (unreachable, unknown model, refused credentials, ...), 2 bad command line or unreadable input (TLS files too).

#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "engine/common/units.h"
#include "tools/cnnload/load_driver.h"
#include "tools/cnnload/options.h"
#include "tools/cnnload/report.h"
#include "tools/cnnload/workload.h"
#include "tools/common/client_channel.h"
#include "tools/common/grpc_runtime.h"

namespace cnnserve::cnnload {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitServer = 1;
constexpr int kExitUsage = 2;
// Above this share of its worker threads, the client may be what limits the throughput.
constexpr double kBusyClientFraction = 0.8;
// An open-loop p99 send lag above this gets a warning.
constexpr int64_t kLateSendWarningNs = kNanosPerMilli;

void PrintStderr(const std::string& line) {
  std::fprintf(stderr, "%s\n", line.c_str());
  std::fflush(stderr);
}

RunInfo MakeRunInfo(const LoadOptions& options, const Workload& workload) {
  RunInfo info;
  info.server = options.server;
  info.security = tools::DescribeClientSecurity(options.security);
  info.protocol = options.protocol == Protocol::kKServe ? "kserve" : "native";
  info.method = workload.method();
  info.model = options.model;
  info.version = options.version;
  info.input = workload.input_description();
  info.batch = options.batch;
  info.request_bytes = workload.mean_request_bytes();
  info.mode = options.rates.empty()
                  ? "closed"
                  : (options.arrivals == Arrivals::kPoisson ? "open (poisson)" : "open (constant)");
  info.warmup_s = options.warmup_s;
  info.duration_s = options.duration_s;
  info.requests = options.requests;
  info.deadline_ms = options.deadline_ms;
  info.threads = options.threads;
  return info;
}

int Run(int argc, char** argv) {
  const ParsedCommandLine parsed = ParseCommandLine(std::vector<std::string>(argv + 1, argv + argc));
  if (!parsed.run) {
    std::fputs(parsed.text.c_str(), parsed.exit_code == kExitOk ? stdout : stderr);
    return parsed.exit_code;
  }
  const LoadOptions& options = parsed.options;

  std::vector<std::string> images;
  if (!options.synthetic) {
    StatusOr<std::vector<std::string>> read = ReadImages(options.image_paths);
    if (!read.ok()) {
      std::fprintf(stderr, "cnnload: %s\n", read.status().ToString().c_str());
      return kExitUsage;
    }
    images = *std::move(read);
  }
  // Fail early on an unwritable CSV file rather than after the run.
  std::unique_ptr<std::ofstream> csv;
  if (!options.csv_path.empty()) {
    csv = std::make_unique<std::ofstream>(options.csv_path, std::ios::trunc);
    if (!*csv) {
      std::fprintf(stderr, "cnnload: cannot write '%s'\n", options.csv_path.c_str());
      return kExitUsage;
    }
  }

  StatusOr<std::unique_ptr<tools::ClientSecurity>> security = tools::ClientSecurity::Create(options.security);
  if (!security.ok()) {
    std::fprintf(stderr, "cnnload: %s\n", security.status().ToString().c_str());
    return kExitUsage;
  }
  StatusOr<std::unique_ptr<Workload>> workload =
      CreateWorkload(options, NewChannel(options.server, **security), images, options.connect_timeout_s);
  if (!workload.ok()) {
    std::fprintf(stderr, "cnnload: %s\n", workload.status().ToString().c_str());
    return kExitServer;
  }
  images.clear();
  images.shrink_to_fit();
  StatusOr<std::unique_ptr<LoadDriver>> driver = LoadDriver::Create(
      options, **security, workload->get(),
      options.progress ? PrintStderr : std::function<void(const std::string&)>(), options.connect_timeout_s);
  if (!driver.ok()) {
    std::fprintf(stderr, "cnnload: %s\n", driver.status().ToString().c_str());
    return kExitServer;
  }
  const RunInfo info = MakeRunInfo(options, **workload);
  if (options.progress) {
    std::fprintf(stderr, "cnnload: %s, %s, batch %d, %" PRId64 " bytes/request, %zu distinct request(s)\n",
                 info.method.c_str(), info.input.c_str(), info.batch, info.request_bytes,
                 (*workload)->pool_size());
  }

  std::vector<RowResult> rows;
  const size_t levels = options.rates.empty() ? options.concurrency.size() : options.rates.size();
  for (size_t i = 0; i < levels; ++i) {
    RowResult row = options.rates.empty() ? (*driver)->RunClosedLoop(options.concurrency[i])
                                          : (*driver)->RunOpenLoop(options.rates[i]);
    if (options.progress) {
      std::fputs(FormatTable(info, {row}).substr(FormatTable(info, {}).size()).c_str(), stderr);
    }
    if (row.client_cpu_cores > kBusyClientFraction * options.threads) {
      std::fprintf(
          stderr,
          "cnnload: warning: the client was busy %.2f cores with %d worker thread(s): this row may measure "
          "cnnload rather than the server (try --threads %d)\n",
          row.client_cpu_cores, options.threads, options.threads * 2);
    }
    if (row.open_loop() && row.send_lag_ns.ValueAtQuantile(0.99) > kLateSendWarningNs) {
      std::fprintf(stderr,
                   "cnnload: warning: at %.6g requests/s, 1%% of the calls left more than %.1f ms after their "
                   "scheduled time (the delay is part of their latency): the client did not keep the schedule "
                   "(a busy machine, or more than its --threads can send)\n",
                   row.target_rate, static_cast<double>(row.send_lag_ns.ValueAtQuantile(0.99)) / kNanosPerMilli);
    }
    rows.push_back(std::move(row));
  }

  if (csv) {
    *csv << FormatCsv(rows);
    csv->close();
    if (!*csv) {
      std::fprintf(stderr, "cnnload: error writing '%s'\n", options.csv_path.c_str());
      return kExitUsage;
    }
  }
  const std::string out = options.json ? FormatJson(info, rows) : FormatTable(info, rows);
  std::fwrite(out.data(), 1, out.size(), stdout);
  return kExitOk;
}

}  // namespace
}  // namespace cnnserve::cnnload

int main(int argc, char** argv) {
  cnnserve::SkipMutexDeadlockChecks();
  return cnnserve::cnnload::Run(argc, argv);
}
