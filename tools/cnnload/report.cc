#include "tools/cnnload/report.h"

#include <cinttypes>
#include <cmath>
#include <cstdarg>
#include <cstdio>

#include "engine/common/units.h"

namespace cnnserve::cnnload {
namespace {

struct Quantile {
  const char* json_key;
  const char* csv_name;
  double q;
};
// The order of the CSV columns after Client Send (perf_analyzer's first).
constexpr Quantile kPerfAnalyzerQuantiles[] = {{"p50", "p50 latency", 0.50},
                                               {"p90", "p90 latency", 0.90},
                                               {"p95", "p95 latency", 0.95},
                                               {"p99", "p99 latency", 0.99}};
constexpr Quantile kExtraQuantile = {"p999", "p99.9 latency", 0.999};

std::string Printf(const char* format, ...) __attribute__((format(printf, 1, 2)));
std::string Printf(const char* format, ...) {
  char buf[512];
  va_list args;
  va_start(args, format);
  const int n = std::vsnprintf(buf, sizeof(buf), format, args);
  va_end(args);
  if (n < 0) return "";
  if (static_cast<size_t>(n) < sizeof(buf)) return std::string(buf, static_cast<size_t>(n));
  std::string out(static_cast<size_t>(n) + 1, '\0');
  va_start(args, format);
  std::vsnprintf(out.data(), out.size(), format, args);
  va_end(args);
  out.resize(static_cast<size_t>(n));
  return out;
}

// JSON has no NaN/Infinity.
std::string JsonNumber(double v, const char* format = "%.6g") {
  if (!std::isfinite(v)) return "null";
  return Printf(format, v);
}

double Us(const LatencyHistogram& h, double q) {
  return static_cast<double>(h.ValueAtQuantile(q)) / kNanosPerMicro;
}
double Ms(const LatencyHistogram& h, double q) {
  return static_cast<double>(h.ValueAtQuantile(q)) / kNanosPerMilli;
}

std::string ErrorsText(const RowResult& row) {
  if (row.errors.empty()) return "0";
  std::string text;
  for (const auto& [code, n] : row.errors) text += (text.empty() ? "" : " ") + code + ":" + std::to_string(n);
  return text;
}

// {"min", "mean", p50, p90, p95, p99, p999, "max", "samples"} in milliseconds.
std::string LatencyJson(const LatencyHistogram& h) {
  std::string out = "{\"min\": " + JsonNumber(static_cast<double>(h.min()) / kNanosPerMilli);
  out += ", \"mean\": " + JsonNumber(h.mean() / kNanosPerMilli);
  for (const Quantile& q : kPerfAnalyzerQuantiles) out += Printf(", \"%s\": ", q.json_key) + JsonNumber(Ms(h, q.q));
  out += Printf(", \"%s\": ", kExtraQuantile.json_key) + JsonNumber(Ms(h, kExtraQuantile.q));
  out += ", \"max\": " + JsonNumber(static_cast<double>(h.max()) / kNanosPerMilli);
  return out + Printf(", \"samples\": %" PRId64 "}", h.count());
}

std::string LevelText(const RowResult& row) {
  return row.open_loop() ? Printf("%.6g/s", row.target_rate) : std::to_string(row.concurrency);
}

}  // namespace

bool IsRefusal(const std::string& outcome) {
  return outcome == "UNAVAILABLE" || outcome == "RESOURCE_EXHAUSTED";
}

int64_t RowResult::error_count() const {
  int64_t n = 0;
  for (const auto& [code, count] : errors) n += count;
  return n;
}

std::string FormatTable(const RunInfo& info, const std::vector<RowResult>& rows) {
  std::string out = Printf("cnnload: %s at %s (%s), %s, %s, batch %d (%" PRId64 " bytes/request), %s loop, ",
                           info.model.c_str(), info.server.c_str(), info.security.c_str(), info.method.c_str(),
                           info.input.c_str(), info.batch, info.request_bytes, info.mode.c_str());
  out += info.requests > 0
             ? Printf("%.3g s warm-up + %" PRId64 " requests per row\n", info.warmup_s, info.requests)
             : Printf("%.3g s warm-up + %.3g s per row\n", info.warmup_s, info.duration_s);
  const bool open = !rows.empty() && rows.front().open_loop();
  out += Printf("%11s %10s %10s %9s %9s %9s %9s %9s %9s %8s %8s %8s %15s %15s  %s\n", open ? "rate" : "concurrency",
                "req/s", "img/s", "p50 ms", "p90 ms", "p95 ms", "p99 ms", "p99.9 ms", "max ms", "send us", "cpu",
                "refused", "refused p50 ms", "refused p99 ms", open ? "achieved/offered, errors" : "errors");
  for (const RowResult& row : rows) {
    const LatencyHistogram& h = row.latency_ns;
    out += Printf("%11s %10.1f %10.1f %9.3f %9.3f %9.3f %9.3f %9.3f %9.3f %8.1f %8.2f  ", LevelText(row).c_str(),
                  row.requests_per_s(), row.images_per_s(), Ms(h, 0.5), Ms(h, 0.9), Ms(h, 0.95), Ms(h, 0.99),
                  Ms(h, 0.999), static_cast<double>(h.max()) / kNanosPerMilli, row.client_send_us,
                  row.client_cpu_cores);
    const LatencyHistogram& r = row.refused_latency_ns;
    out += Printf("%8" PRId64 " %15.3f %15.3f  ", row.refused_count(), Ms(r, 0.5), Ms(r, 0.99));
    if (row.open_loop()) out += Printf("%.1f/%.1f, ", row.achieved_rate(), row.offered_rate());
    out += ErrorsText(row);
    if (row.cancelled_after_drain > 0)
      out += Printf(" (%" PRId64 " cancelled after drain)", row.cancelled_after_drain);
    if (row.ended_by_time_cap) out += " (ended by --max-row-s)";
    out += "\n";
  }
  return out;
}

std::string FormatCsv(const std::vector<RowResult>& rows) {
  const bool open = !rows.empty() && rows.front().open_loop();
  std::string out = open ? "Request Rate" : "Concurrency";
  out += ",Inferences/Second,Client Send";
  for (const Quantile& q : kPerfAnalyzerQuantiles) out += std::string(",") + q.csv_name;
  out += std::string(",Avg latency,") + kExtraQuantile.csv_name +
         ",Max latency,Requests/Second,Batch,Errors,Offered Rate,Achieved Rate,Client CPU,Refused,"
         "Refused p50 latency,Refused p99 latency\n";
  for (const RowResult& row : rows) {
    const LatencyHistogram& h = row.latency_ns;
    out += open ? Printf("%.6g", row.target_rate) : std::to_string(row.concurrency);
    out += Printf(",%.3f,%.1f", row.images_per_s(), row.client_send_us);
    for (const Quantile& q : kPerfAnalyzerQuantiles) out += Printf(",%.1f", Us(h, q.q));
    out += Printf(",%.1f,%.1f,%.1f,%.3f,%" PRId64 ",%" PRId64 ",%.3f,%.3f,%.3f", h.mean() / kNanosPerMicro,
                  Us(h, kExtraQuantile.q), static_cast<double>(h.max()) / kNanosPerMicro, row.requests_per_s(),
                  row.images_per_request, row.error_count(), row.open_loop() ? row.offered_rate() : 0.0,
                  row.open_loop() ? row.achieved_rate() : 0.0, row.client_cpu_cores);
    out += Printf(",%" PRId64 ",%.1f,%.1f\n", row.refused_count(), Us(row.refused_latency_ns, 0.5),
                  Us(row.refused_latency_ns, 0.99));
  }
  return out;
}

std::string FormatJson(const RunInfo& info, const std::vector<RowResult>& rows) {
  std::string out = "{\n";
  out += "  \"tool\": \"cnnload\",\n";
  out += "  \"server\": " + JsonQuote(info.server) + ",\n";
  out += "  \"security\": " + JsonQuote(info.security) + ",\n";
  out += "  \"protocol\": " + JsonQuote(info.protocol) + ",\n";
  out += "  \"method\": " + JsonQuote(info.method) + ",\n";
  out += "  \"model\": " + JsonQuote(info.model) + ",\n";
  out += Printf("  \"version\": %" PRId64 ",\n", info.version);
  out += "  \"input\": " + JsonQuote(info.input) + ",\n";
  out += Printf("  \"batch\": %d,\n  \"request_bytes\": %" PRId64 ",\n", info.batch, info.request_bytes);
  out += "  \"mode\": " + JsonQuote(info.mode) + ",\n";
  out += "  \"warmup_s\": " + JsonNumber(info.warmup_s) + ",\n";
  out += "  \"duration_s\": " + JsonNumber(info.requests > 0 ? 0.0 : info.duration_s) + ",\n";
  out += Printf("  \"requests\": %" PRId64 ",\n  \"deadline_ms\": %" PRId64 ",\n  \"threads\": %d,\n",
                info.requests, info.deadline_ms, info.threads);
  out += Printf("  \"latency_relative_error\": %.6g,\n", LatencyHistogram::kMaxRelativeError);
  out += "  \"rows\": [";
  for (size_t i = 0; i < rows.size(); ++i) {
    const RowResult& row = rows[i];
    const LatencyHistogram& h = row.latency_ns;
    out += i == 0 ? "\n" : ",\n";
    out += "    {";
    out += row.open_loop() ? "\"concurrency\": null, \"target_rate\": " + JsonNumber(row.target_rate)
                           : Printf("\"concurrency\": %d, \"target_rate\": null", row.concurrency);
    out += ", \"window_s\": " + JsonNumber(row.window_s);
    out += Printf(", \"ok_requests\": %" PRId64 ", \"batch\": %" PRId64, row.ok_requests, row.images_per_request);
    out += ", \"requests_per_s\": " + JsonNumber(row.requests_per_s(), "%.6f");
    out += ", \"images_per_s\": " + JsonNumber(row.images_per_s(), "%.6f");
    out += ", \"latency_ms\": " + LatencyJson(h);
    out += Printf(", \"refused_requests\": %" PRId64, row.refused_count());
    out += ", \"refused_latency_ms\": " + LatencyJson(row.refused_latency_ns);
    out += ", \"errors\": {";
    bool first = true;
    for (const auto& [code, n] : row.errors) {
      out += (first ? "" : ", ") + JsonQuote(code) + Printf(": %" PRId64, n);
      first = false;
    }
    out += Printf("}, \"error_count\": %" PRId64, row.error_count());
    if (row.open_loop()) {
      out += Printf(", \"scheduled\": %" PRId64 ", \"sent\": %" PRId64, row.scheduled, row.sent);
      out += ", \"offered_rate\": " + JsonNumber(row.offered_rate()) +
             ", \"achieved_rate\": " + JsonNumber(row.achieved_rate());
      const LatencyHistogram& lag = row.send_lag_ns;
      out += ", \"send_lag_us\": {\"p50\": " + JsonNumber(Us(lag, 0.5)) +
             ", \"p99\": " + JsonNumber(Us(lag, 0.99)) +
             ", \"max\": " + JsonNumber(static_cast<double>(lag.max()) / kNanosPerMicro) + "}";
    }
    out += ", \"client_send_us\": " + JsonNumber(row.client_send_us);
    out += ", \"client_cpu_cores\": " + JsonNumber(row.client_cpu_cores);
    out += Printf(", \"cancelled_after_drain\": %" PRId64 ", \"ended_by_time_cap\": %s}",
                  row.cancelled_after_drain, row.ended_by_time_cap ? "true" : "false");
  }
  out += rows.empty() ? "]\n}\n" : "\n  ]\n}\n";
  return out;
}

std::string FormatProgress(const std::string& level, const std::string& phase, double phase_elapsed_s,
                           double phase_length_s, double requests_per_s, int images_per_request, int64_t errors,
                           int64_t in_flight) {
  std::string out = Printf("[cnnload %s %s %.0f", level.c_str(), phase.c_str(), phase_elapsed_s);
  if (phase_length_s > 0) out += Printf("/%.0f", phase_length_s);
  out += Printf(" s] %.1f req/s, %.1f img/s, %" PRId64 " errors, %" PRId64 " in flight", requests_per_s,
                requests_per_s * images_per_request, errors, in_flight);
  return out;
}

}  // namespace cnnserve::cnnload
