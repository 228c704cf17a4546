#include "tools/cnnload/report.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace cnnserve::cnnload {
namespace {

std::vector<std::string> Split(const std::string& text, char sep) {
  std::vector<std::string> parts;
  std::stringstream in(text);
  std::string part;
  while (std::getline(in, part, sep)) parts.push_back(part);
  return parts;
}

RowResult ClosedRow(int concurrency) {
  RowResult row;
  row.concurrency = concurrency;
  row.window_s = 2;
  row.ok_requests = 1000;
  row.images_per_request = 4;
  for (int i = 1; i <= 1000; ++i) row.latency_ns.Record(i * 1000);  // 1 .. 1000 us
  row.client_send_us = 12.5;
  row.client_cpu_cores = 0.25;
  return row;
}

RunInfo Info() {
  RunInfo info;
  info.server = "127.0.0.1:1";
  info.protocol = "native";
  info.method = "/cnnserve.v1.Classifier/Classify";
  info.model = "lenet5_fashion";
  info.input = "synthetic 1x32x32 float32";
  info.batch = 4;
  info.request_bytes = 16000;
  info.mode = "closed";
  info.warmup_s = 1;
  info.duration_s = 2;
  return info;
}

TEST(CnnloadReportTest, CsvHasPerfAnalyzersColumnsFirstAndConsistentRates) {
  RowResult errors_row = ClosedRow(8);
  errors_row.errors["UNAVAILABLE"] = 3;
  errors_row.errors["DEADLINE_EXCEEDED"] = 2;
  const std::vector<std::string> lines = Split(FormatCsv({ClosedRow(1), errors_row}), '\n');
  ASSERT_EQ(lines.size(), 3u);
  const std::vector<std::string> header = Split(lines[0], ',');
  const std::vector<std::string> first = {"Concurrency", "Inferences/Second", "Client Send", "p50 latency",
                                          "p90 latency", "p95 latency",       "p99 latency"};
  ASSERT_GE(header.size(), first.size());
  for (size_t i = 0; i < first.size(); ++i) EXPECT_EQ(header[i], first[i]);
  for (size_t r = 1; r < lines.size(); ++r) {
    const std::vector<std::string> cells = Split(lines[r], ',');
    ASSERT_EQ(cells.size(), header.size()) << lines[r];
    std::map<std::string, double> row;
    for (size_t i = 0; i < cells.size(); ++i) row[header[i]] = std::stod(cells[i]);
    EXPECT_DOUBLE_EQ(row["Inferences/Second"], 2000);  // 1000 requests x 4 images / 2 s
    EXPECT_DOUBLE_EQ(row["Requests/Second"], 500);
    EXPECT_DOUBLE_EQ(row["Batch"], 4);
    EXPECT_NEAR(row["p50 latency"], 500, 500 * LatencyHistogram::kMaxRelativeError);  // usec
    EXPECT_NEAR(row["p99 latency"], 990, 990 * LatencyHistogram::kMaxRelativeError);
    EXPECT_DOUBLE_EQ(row["Max latency"], 1000);
    EXPECT_DOUBLE_EQ(row["Client Send"], 12.5);
  }
  EXPECT_EQ(Split(lines[1], ',')[0], "1");
  EXPECT_EQ(Split(lines[2], ',')[0], "8");
  EXPECT_EQ(Split(lines[2], ',')[12], "5");  // Errors
}

TEST(CnnloadReportTest, OpenLoopCsvStartsWithTheRequestRate) {
  RowResult row;
  row.target_rate = 250;
  row.window_s = 4;
  row.ok_requests = 996;
  row.scheduled = 1000;
  row.sent = 998;
  row.latency_ns.Record(1'000'000);
  const std::vector<std::string> lines = Split(FormatCsv({row}), '\n');
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].substr(0, 13), "Request Rate,");
  const std::vector<std::string> cells = Split(lines[1], ',');
  EXPECT_EQ(cells[0], "250");
  EXPECT_DOUBLE_EQ(std::stod(cells[13]), 250);    // Offered Rate
  EXPECT_DOUBLE_EQ(std::stod(cells[14]), 249.5);  // Achieved Rate
}

TEST(CnnloadReportTest, JsonParsesAndCarriesEveryRow) {
  RowResult open;
  open.target_rate = 100;
  open.window_s = 1;
  open.ok_requests = 100;
  open.scheduled = 100;
  open.sent = 100;
  open.errors["BAD_RESPONSE"] = 1;
  const std::string json = FormatJson(Info(), {ClosedRow(2), open});
  google::protobuf::Struct doc;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, &doc).ok()) << json;
  EXPECT_EQ(doc.fields().at("tool").string_value(), "cnnload");
  EXPECT_EQ(doc.fields().at("model").string_value(), "lenet5_fashion");
  EXPECT_EQ(doc.fields().at("batch").number_value(), 4);
  const auto& rows = doc.fields().at("rows").list_value();
  ASSERT_EQ(rows.values_size(), 2);
  const auto& r0 = rows.values(0).struct_value().fields();
  EXPECT_EQ(r0.at("concurrency").number_value(), 2);
  EXPECT_DOUBLE_EQ(r0.at("requests_per_s").number_value() * 4, r0.at("images_per_s").number_value());
  const auto& latency = r0.at("latency_ms").struct_value().fields();
  for (const char* key : {"min", "mean", "p50", "p90", "p95", "p99", "p999", "max", "samples"}) {
    EXPECT_TRUE(latency.contains(key)) << key;
  }
  EXPECT_LE(latency.at("p50").number_value(), latency.at("p99").number_value());
  EXPECT_DOUBLE_EQ(latency.at("max").number_value(), 1.0);
  const auto& r1 = rows.values(1).struct_value().fields();
  EXPECT_TRUE(r1.at("concurrency").has_null_value());
  EXPECT_EQ(r1.at("target_rate").number_value(), 100);
  EXPECT_EQ(r1.at("errors").struct_value().fields().at("BAD_RESPONSE").number_value(), 1);
  EXPECT_EQ(r1.at("error_count").number_value(), 1);
  EXPECT_EQ(r1.at("achieved_rate").number_value(), 100);
}

TEST(CnnloadReportTest, RefusalsHaveTheirOwnCountAndLatenciesInEveryFormat) {
  EXPECT_TRUE(IsRefusal("UNAVAILABLE"));
  EXPECT_TRUE(IsRefusal("RESOURCE_EXHAUSTED"));
  EXPECT_FALSE(IsRefusal("DEADLINE_EXCEEDED"));
  EXPECT_FALSE(IsRefusal(""));
  RowResult row = ClosedRow(4);
  row.errors["UNAVAILABLE"] = 200;
  for (int i = 1; i <= 200; ++i) row.refused_latency_ns.Record(i * 10'000);  // 10 us .. 2 ms
  EXPECT_EQ(row.refused_count(), 200);

  const std::string json = FormatJson(Info(), {row});
  google::protobuf::Struct doc;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, &doc).ok()) << json;
  const auto& r = doc.fields().at("rows").list_value().values(0).struct_value().fields();
  EXPECT_EQ(r.at("refused_requests").number_value(), 200);
  EXPECT_EQ(r.at("ok_requests").number_value(), 1000);
  const auto& refused = r.at("refused_latency_ms").struct_value().fields();
  EXPECT_EQ(refused.at("samples").number_value(), 200);
  EXPECT_NEAR(refused.at("p50").number_value(), 1.0, 1.0 * LatencyHistogram::kMaxRelativeError);
  EXPECT_NEAR(refused.at("p99").number_value(), 1.98, 1.98 * LatencyHistogram::kMaxRelativeError);
  EXPECT_DOUBLE_EQ(refused.at("max").number_value(), 2.0);
  EXPECT_DOUBLE_EQ(r.at("latency_ms").struct_value().fields().at("max").number_value(), 1.0);

  const std::vector<std::string> lines = Split(FormatCsv({row}), '\n');
  ASSERT_EQ(lines.size(), 2u);
  const std::vector<std::string> header = Split(lines[0], ',');
  const std::vector<std::string> cells = Split(lines[1], ',');
  ASSERT_EQ(cells.size(), header.size());
  std::map<std::string, double> csv;
  for (size_t i = 0; i < cells.size(); ++i) csv[header[i]] = std::stod(cells[i]);
  EXPECT_EQ(csv["Refused"], 200);
  EXPECT_NEAR(csv["Refused p50 latency"], 1000, 1000 * LatencyHistogram::kMaxRelativeError);  // usec
  EXPECT_NEAR(csv["Refused p99 latency"], 1980, 1980 * LatencyHistogram::kMaxRelativeError);

  const std::string table = FormatTable(Info(), {row});
  EXPECT_NE(table.find("refused p50 ms"), std::string::npos) << table;
  EXPECT_NE(table.find("refused p99 ms"), std::string::npos) << table;
}

TEST(CnnloadReportTest, TableHasATitleAHeaderAndOneLinePerRow) {
  const std::vector<std::string> lines = Split(FormatTable(Info(), {ClosedRow(1), ClosedRow(2)}), '\n');
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_NE(lines[0].find("lenet5_fashion"), std::string::npos);
  EXPECT_NE(lines[1].find("concurrency"), std::string::npos);
  EXPECT_NE(lines[2].find("500.0"), std::string::npos);   // req/s
  EXPECT_NE(lines[2].find("2000.0"), std::string::npos);  // img/s
}

TEST(CnnloadReportTest, JsonQuoteEscapes) { EXPECT_EQ(JsonQuote("a\"b\\c\n\x01"), "\"a\\\"b\\\\c\\n\\u0001\""); }

TEST(CnnloadReportTest, ProgressLine) {
  EXPECT_EQ(FormatProgress("c=8", "measure", 3, 10, 1234.5, 2, 1, 8),
            "[cnnload c=8 measure 3/10 s] 1234.5 req/s, 2469.0 img/s, 1 errors, 8 in flight");
}

}  // namespace
}  // namespace cnnserve::cnnload
