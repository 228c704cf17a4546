// build/bin/cnnload against a live cnnserve (the default repository's lenet5_fashion): short sweeps whose CSV and
// JSON rows must be complete and consistent (images/s = requests/s x batch, ordered percentiles, no errors at low
// load), the open loop's achieved rate, --requests, error counting by status code, and exit codes. Throughput
// itself is not asserted (the machine is shared).
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <cmath>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/test_env.h"

namespace cnnserve::integration {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

std::vector<std::string> Split(const std::string& text, char sep) {
  std::vector<std::string> parts;
  std::stringstream in(text);
  std::string part;
  while (std::getline(in, part, sep)) parts.push_back(part);
  return parts;
}

// How far a CSV latency (microseconds, 0.1 us kept) may be from the JSON's (milliseconds, 6 significant digits:
// 1 us apart from 100 ms up, as refusals under the sanitizers reach).
double CsvToJsonToleranceUs(double json_us) { return 0.06 + json_us * 5e-6; }

class CnnloadTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = ServerProcess::Start({"--model-repository", DefaultRepository().string()}).release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(server_, nullptr) << "cnnserve did not start"; }

  // Runs cnnload against the server (or the one at `address`) with `args` (plus --server and --quiet).
  static CommandResult Cnnload(std::vector<std::string> args,
                               std::chrono::seconds timeout = std::chrono::seconds(120),
                               const std::string& address = "") {
    std::vector<std::string> argv = {(BinDir() / "cnnload").string(), "--server",
                                     address.empty() ? server_->address() : address, "--quiet"};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv, {}, timeout);
  }

  // Runs cnnload with --json and parses its output.
  static Struct RunJson(std::vector<std::string> args, const std::string& address = "") {
    args.push_back("--json");
    const CommandResult result = Cnnload(args, std::chrono::seconds(120), address);
    EXPECT_EQ(result.exit_code, 0) << result.err;
    Struct doc;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(result.out, &doc).ok()) << result.out;
    return doc;
  }

  static ServerProcess* server_;
};

ServerProcess* CnnloadTest::server_ = nullptr;

const google::protobuf::Map<std::string, Value>& Fields(const Value& v) { return v.struct_value().fields(); }

// One CSV line as column name -> number (empty when its cell count differs from the header's).
std::map<std::string, double> CsvRow(const std::string& header_line, const std::string& line) {
  const std::vector<std::string> header = Split(header_line, ',');
  const std::vector<std::string> cells = Split(line, ',');
  EXPECT_EQ(cells.size(), header.size()) << line;
  std::map<std::string, double> row;
  for (size_t c = 0; c < cells.size() && cells.size() == header.size(); ++c) row[header[c]] = std::stod(cells[c]);
  return row;
}

// The checks every measured row must pass.
void ExpectConsistentRow(const Value& row, int batch) {
  const auto& r = Fields(row);
  const double rps = r.at("requests_per_s").number_value();
  EXPECT_GT(r.at("ok_requests").number_value(), 0);
  EXPECT_GT(rps, 0);
  EXPECT_NEAR(r.at("images_per_s").number_value(), rps * batch, 1e-6 * rps * batch);
  EXPECT_EQ(r.at("batch").number_value(), batch);
  EXPECT_NEAR(rps, r.at("ok_requests").number_value() / r.at("window_s").number_value(), 1e-3 * rps);
  EXPECT_EQ(r.at("error_count").number_value(), 0);
  EXPECT_EQ(Fields(r.at("errors")).size(), 0u);
  const auto& l = Fields(r.at("latency_ms"));
  EXPECT_GT(l.at("samples").number_value(), 0);
  double previous = 0;
  for (const char* key : {"min", "p50", "p90", "p95", "p99", "p999", "max"}) {
    const double v = l.at(key).number_value();
    EXPECT_GT(v, 0) << key;
    EXPECT_GE(v, previous) << key << " is below the previous percentile";
    previous = v;
  }
  EXPECT_GE(l.at("mean").number_value(), l.at("min").number_value());
  EXPECT_LE(l.at("mean").number_value(), l.at("max").number_value());
  EXPECT_GT(r.at("client_cpu_cores").number_value(), 0);  // the client worked to send and receive
  EXPECT_GT(r.at("client_send_us").number_value(), 0);
}

TEST_F(CnnloadTest, ClosedLoopSweepWritesCompleteConsistentCsvAndJson) {
  constexpr int kBatch = 2;
  TempDir dir;
  const std::string csv_path = (dir.path() / "sweep.csv").string();
  const Struct doc = RunJson({"--model", kModel, "--synthetic", "--batch", std::to_string(kBatch), "--concurrency",
                              "1,2,4", "--warmup", "0.3", "--duration", "1", "--csv", csv_path});
  EXPECT_EQ(doc.fields().at("tool").string_value(), "cnnload");
  EXPECT_EQ(doc.fields().at("model").string_value(), kModel);
  EXPECT_EQ(doc.fields().at("mode").string_value(), "closed");
  EXPECT_EQ(doc.fields().at("input").string_value(), "synthetic 1x32x32 float32");
  const auto& rows = doc.fields().at("rows").list_value();
  ASSERT_EQ(rows.values_size(), 3);
  const int levels[] = {1, 2, 4};
  for (int i = 0; i < 3; ++i) {
    SCOPED_TRACE("concurrency " + std::to_string(levels[i]));
    EXPECT_EQ(Fields(rows.values(i)).at("concurrency").number_value(), levels[i]);
    EXPECT_NEAR(Fields(rows.values(i)).at("window_s").number_value(), 1.0, 0.05);
    ExpectConsistentRow(rows.values(i), kBatch);
    // Closed loop without errors: one latency sample per OK response.
    EXPECT_EQ(Fields(Fields(rows.values(i)).at("latency_ms")).at("samples").number_value(),
              Fields(rows.values(i)).at("ok_requests").number_value());
  }

  // The CSV holds the same rows: perf_analyzer's columns first, latencies in microseconds.
  const std::vector<std::string> lines = Split(ReadFileBytes(csv_path), '\n');
  ASSERT_EQ(lines.size(), 4u);
  const std::vector<std::string> header = Split(lines[0], ',');
  const std::vector<std::string> expected_first = {"Concurrency", "Inferences/Second", "Client Send",
                                                   "p50 latency", "p90 latency",       "p95 latency",
                                                   "p99 latency"};
  ASSERT_GE(header.size(), expected_first.size());
  for (size_t i = 0; i < expected_first.size(); ++i) EXPECT_EQ(header[i], expected_first[i]);
  for (int i = 0; i < 3; ++i) {
    const std::vector<std::string> cells = Split(lines[static_cast<size_t>(i) + 1], ',');
    ASSERT_EQ(cells.size(), header.size()) << lines[static_cast<size_t>(i) + 1];
    std::map<std::string, double> csv;
    for (size_t c = 0; c < cells.size(); ++c) csv[header[c]] = std::stod(cells[c]);
    const auto& r = Fields(rows.values(i));
    EXPECT_EQ(csv["Concurrency"], levels[i]);
    EXPECT_NEAR(csv["Inferences/Second"], csv["Requests/Second"] * kBatch, 0.01);
    EXPECT_NEAR(csv["Inferences/Second"], r.at("images_per_s").number_value(), 0.001);
    const double p50_us = Fields(r.at("latency_ms")).at("p50").number_value() * 1000;
    const double p99_us = Fields(r.at("latency_ms")).at("p99").number_value() * 1000;
    EXPECT_NEAR(csv["p50 latency"], p50_us, CsvToJsonToleranceUs(p50_us));
    EXPECT_NEAR(csv["p99 latency"], p99_us, CsvToJsonToleranceUs(p99_us));
    EXPECT_LE(csv["p50 latency"], csv["p90 latency"]);
    EXPECT_LE(csv["p90 latency"], csv["p95 latency"]);
    EXPECT_LE(csv["p95 latency"], csv["p99 latency"]);
    EXPECT_LE(csv["p99 latency"], csv["Max latency"]);
    EXPECT_EQ(csv["Batch"], kBatch);
    EXPECT_EQ(csv["Errors"], 0);
  }
}

TEST_F(CnnloadTest, OpenLoopWithImagesAchievesTheOfferedRate) {
  constexpr int kBatch = 3;
  constexpr double kRate = 100;
  const Struct doc = RunJson({"--model", kModel, "--images", TestDataDir().string(), "--batch",
                              std::to_string(kBatch), "--rate", "100", "--warmup", "0.3", "--duration", "2"});
  EXPECT_EQ(doc.fields().at("mode").string_value(), "open (constant)");
  const auto& rows = doc.fields().at("rows").list_value();
  ASSERT_EQ(rows.values_size(), 1);
  ExpectConsistentRow(rows.values(0), kBatch);
  const auto& r = Fields(rows.values(0));
  EXPECT_EQ(r.at("target_rate").number_value(), kRate);
  // Constant spacing: exactly rate x window arrivals fall inside the window (+-1), and at low load all are sent.
  EXPECT_NEAR(r.at("offered_rate").number_value(), kRate, 1);
  EXPECT_EQ(r.at("sent").number_value(), r.at("scheduled").number_value());
  EXPECT_NEAR(r.at("achieved_rate").number_value(), kRate, 1);
  EXPECT_NEAR(r.at("requests_per_s").number_value(), kRate, 0.1 * kRate);
  // The sender's lateness is reported (it is part of the latencies above).
  const auto& lag = Fields(r.at("send_lag_us"));
  EXPECT_GE(lag.at("p50").number_value(), 0);
  EXPECT_LE(lag.at("p50").number_value(), lag.at("p99").number_value());
  EXPECT_LE(lag.at("p99").number_value(), lag.at("max").number_value());
  // Every request scheduled in the window was answered and measured.
  EXPECT_EQ(Fields(r.at("latency_ms")).at("samples").number_value(), r.at("sent").number_value());
}

TEST_F(CnnloadTest, PoissonOpenLoopIsCloseToTheMeanRate) {
  const Struct doc = RunJson(
      {"--model", kModel, "--synthetic", "--rate", "300", "--poisson", "--warmup", "0.2", "--duration", "2"});
  EXPECT_EQ(doc.fields().at("mode").string_value(), "open (poisson)");
  const auto& r = Fields(doc.fields().at("rows").list_value().values(0));
  ExpectConsistentRow(doc.fields().at("rows").list_value().values(0), 1);
  // 600 arrivals expected: a Poisson count has a standard deviation of about 24.5; allow 5.
  EXPECT_NEAR(r.at("offered_rate").number_value(), 300, 5 * std::sqrt(600.0) / 2);
}

TEST_F(CnnloadTest, RequestsBoundEndsTheRowAfterExactlyThatMany) {
  const Struct doc =
      RunJson({"--model", kModel, "--synthetic", "--concurrency", "2", "--warmup", "0.2", "--requests", "300"});
  const auto& r = Fields(doc.fields().at("rows").list_value().values(0));
  ExpectConsistentRow(doc.fields().at("rows").list_value().values(0), 1);
  EXPECT_EQ(r.at("ok_requests").number_value(), 300);
  EXPECT_EQ(Fields(r.at("latency_ms")).at("samples").number_value(), 300);
  EXPECT_FALSE(r.at("ended_by_time_cap").bool_value());
}

TEST_F(CnnloadTest, ServerErrorsAreCountedByStatusCode) {
  // A negative top_k is INVALID_ARGUMENT for every request; the run still completes (exit 0).
  const Struct doc = RunJson({"--model", kModel, "--synthetic", "--top-k", "-1", "--concurrency", "2", "--warmup",
                              "0.1", "--duration", "0.5"});
  const auto& r = Fields(doc.fields().at("rows").list_value().values(0));
  EXPECT_EQ(r.at("ok_requests").number_value(), 0);
  EXPECT_EQ(r.at("requests_per_s").number_value(), 0);
  const auto& errors = Fields(r.at("errors"));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_GT(errors.at("INVALID_ARGUMENT").number_value(), 0);
  EXPECT_EQ(r.at("error_count").number_value(), errors.at("INVALID_ARGUMENT").number_value());
}

TEST_F(CnnloadTest, OverloadedOpenLoopStillEndsAndReportsWhatItSent) {
  // Far above what two shared cores serve, with few requests allowed in flight: arrivals beyond the cap are not
  // sent, the row ends on its own within the drain timeout, and the counts stay consistent.
  const auto start = std::chrono::steady_clock::now();
  const Struct doc =
      RunJson({"--model", kModel, "--images", TestDataDir().string(), "--batch", "16", "--rate", "50000",
               "--max-outstanding", "8", "--warmup", "0.2", "--duration", "1", "--drain-timeout-s", "2"});
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));
  const auto& r = Fields(doc.fields().at("rows").list_value().values(0));
  EXPECT_LE(r.at("sent").number_value(), r.at("scheduled").number_value());
  EXPECT_LT(r.at("achieved_rate").number_value(), r.at("offered_rate").number_value());
  EXPECT_NEAR(r.at("images_per_s").number_value(), r.at("requests_per_s").number_value() * 16,
              1e-6 * r.at("images_per_s").number_value() + 1e-9);
}

// Against a server whose queue takes one request (lenet5_fashion with max_queue_size 1), 32 clients: most calls
// are refused at once. The refusals get their own count and latencies; the accepted latencies hold only the
// requests the server ran.
TEST_F(CnnloadTest, RefusalsAreReportedApartFromAcceptedRequests) {
  TempDir repo;
  std::filesystem::copy(DefaultRepository() / kModel, repo.path() / kModel, std::filesystem::copy_options::recursive);
  const std::filesystem::path config = repo.path() / kModel / "config.pbtxt";
  std::string text = ReadFileBytes(config);
  const size_t at = text.find("dynamic_batching {");
  ASSERT_NE(at, std::string::npos);
  text.insert(at + std::string("dynamic_batching {").size(), "\n  max_queue_size: 1");
  WriteFileBytes(config, text);
  auto tiny = ServerProcess::Start({"--model-repository", repo.path().string()});
  ASSERT_NE(tiny, nullptr);
  TempDir dir;
  const std::string csv_path = (dir.path() / "refusals.csv").string();
  const std::vector<std::string> args = {"--model", kModel, "--images", TestDataDir().string(), "--batch", "8",
                                         "--concurrency", "32", "--warmup", "0.2", "--duration", "1"};
  std::vector<std::string> json_args = args;
  json_args.insert(json_args.end(), {"--csv", csv_path});
  const Struct doc = RunJson(json_args, tiny->address());
  const auto& rows = doc.fields().at("rows").list_value();
  ASSERT_EQ(rows.values_size(), 1);
  const auto& r = Fields(rows.values(0));
  const double ok = r.at("ok_requests").number_value();
  const double refused = r.at("refused_requests").number_value();
  EXPECT_GT(ok, 0);
  EXPECT_GT(refused, 0) << "a queue of one should refuse most of 32 clients";
  const auto& errors = Fields(r.at("errors"));
  ASSERT_EQ(errors.count("UNAVAILABLE"), 1u);
  EXPECT_EQ(errors.at("UNAVAILABLE").number_value(), refused);
  EXPECT_EQ(r.at("error_count").number_value(), refused);
  EXPECT_EQ(Fields(r.at("latency_ms")).at("samples").number_value(), ok) << "accepted: OK responses only";
  const auto& rl = Fields(r.at("refused_latency_ms"));
  EXPECT_EQ(rl.at("samples").number_value(), refused);
  double previous = 0;
  for (const char* key : {"min", "p50", "p90", "p95", "p99", "p999", "max"}) {
    EXPECT_GE(rl.at(key).number_value(), previous) << key;
    previous = rl.at(key).number_value();
  }
  EXPECT_GT(rl.at("p50").number_value(), 0);

  // The CSV has the same counts and latencies (microseconds).
  const std::vector<std::string> lines = Split(ReadFileBytes(csv_path), '\n');
  ASSERT_EQ(lines.size(), 2u);
  std::map<std::string, double> csv = CsvRow(lines[0], lines[1]);
  EXPECT_EQ(csv["Refused"], refused);
  const double p50_us = rl.at("p50").number_value() * 1000;
  const double p99_us = rl.at("p99").number_value() * 1000;
  EXPECT_NEAR(csv["Refused p50 latency"], p50_us, CsvToJsonToleranceUs(p50_us));
  EXPECT_NEAR(csv["Refused p99 latency"], p99_us, CsvToJsonToleranceUs(p99_us));

  // The table has the two columns.
  std::vector<std::string> table_args = args;
  table_args[table_args.size() - 1] = "0.5";
  const CommandResult table = Cnnload(table_args, std::chrono::seconds(120), tiny->address());
  EXPECT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("refused p50 ms"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("refused p99 ms"), std::string::npos) << table.out;
}

TEST_F(CnnloadTest, KServeModelInferRowsAreConsistentForTensorsAndImages) {
  for (const std::vector<std::string>& input :
       {std::vector<std::string>{"--synthetic"}, std::vector<std::string>{"--images", TestDataDir().string()}}) {
    SCOPED_TRACE(input[0]);
    std::vector<std::string> args = {"--protocol",    "kserve", "--model",  kModel, "--batch",    "4",
                                     "--concurrency", "1,4",    "--warmup", "0.2",  "--duration", "0.7"};
    args.insert(args.end(), input.begin(), input.end());
    const Struct doc = RunJson(args);
    EXPECT_EQ(doc.fields().at("protocol").string_value(), "kserve");
    EXPECT_EQ(doc.fields().at("method").string_value(), "/inference.GRPCInferenceService/ModelInfer");
    const auto& rows = doc.fields().at("rows").list_value();
    ASSERT_EQ(rows.values_size(), 2);
    for (const Value& row : rows.values()) ExpectConsistentRow(row, 4);
  }
  // The classification extension (--top-k) is answered too.
  const Struct doc = RunJson({"--protocol", "kserve", "--model", kModel, "--synthetic", "--top-k", "3", "--warmup",
                              "0.1", "--duration", "0.5"});
  ExpectConsistentRow(doc.fields().at("rows").list_value().values(0), 1);
}

TEST_F(CnnloadTest, UnknownModelUnreachableServerAndBadFlagsFailWithTheirExitCodes) {
  for (const char* protocol : {"native", "kserve"}) {
    CommandResult unknown =
        Cnnload({"--protocol", protocol, "--model", "no_such_model", "--synthetic", "--duration", "1"});
    EXPECT_EQ(unknown.exit_code, 1) << protocol;
    EXPECT_NE(unknown.err.find("NOT_FOUND"), std::string::npos) << protocol << ": " << unknown.err;
  }

  const auto start = std::chrono::steady_clock::now();
  CommandResult unreachable = RunCommand({(BinDir() / "cnnload").string(), "--server", "127.0.0.1:1", "--model",
                                          kModel, "--synthetic", "--connect-timeout-s", "1", "--quiet"});
  EXPECT_EQ(unreachable.exit_code, 1);
  EXPECT_NE(unreachable.err.find("cannot connect to 127.0.0.1:1"), std::string::npos) << unreachable.err;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));

  CommandResult bad = Cnnload({"--model", kModel, "--synthetic", "--concurrency", "0"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--concurrency"), std::string::npos) << bad.err;

  CommandResult missing = Cnnload({"--model", kModel, "--images", "/nonexistent/dir"});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("/nonexistent/dir"), std::string::npos) << missing.err;
}

}  // namespace
}  // namespace cnnserve::integration
