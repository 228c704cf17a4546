// What one row of a cnnload run measured (RowResult) and how it is printed: a table, CSV (perf_analyzer's column
// names first) and JSON.
//
// Definitions (the same in every format):
//   window        the measured interval of the row: after --warmup, --duration long (or until --requests
//                 responses).
//   requests/s    OK responses received inside the window / window length; images/s = requests/s x batch.
//   latency       closed loop: from handing the call to gRPC to its completion, for responses received inside the
//                 window. Open loop: from the request's *intended* send time (its place in the arrival schedule)
//                 to its completion, for every request scheduled inside the window, including those answered
//                 after it (the row waits for them): a client that falls behind cannot hide the delay.
//   refused       responses the server refused without running them: UNAVAILABLE (queue full, overloaded,
//                 shutting down, --max-in-flight) and RESOURCE_EXHAUSTED. Their latencies go to a histogram of
//                 their own (refused_latency_ns, same definition as latency), so the fast "no" of load shedding
//                 neither flatters nor hides the latency of the requests the server accepted; `latency` holds
//                 every other response (OK and the other errors). They still count in `errors`.
//   errors        non-OK responses of the same requests as the latencies, by gRPC status code name; responses
//                 that do not match the request (wrong number of results) count as BAD_RESPONSE.
//   offered rate  open loop: arrivals scheduled inside the window / window length; achieved rate: those actually
//                 sent / window length (lower when --max-outstanding was reached).
//   client send   mean time to hand one call to gRPC (prepare + start + finish registration), microseconds.
//   send lag      open loop: how late calls left after their intended times (p50/p99/max, microseconds); it is
//                 part of their latency, and a large one means the client cannot keep the schedule.
//   client CPU    CPU time of the whole cnnload process during the window / window length, in cores.
// Thread-safety: plain data and pure functions.
#ifndef CNNSERVE_TOOLS_CNNLOAD_REPORT_H_
#define CNNSERVE_TOOLS_CNNLOAD_REPORT_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "tools/cnnload/histogram.h"
#include "tools/common/tool_text.h"

namespace cnnserve::cnnload {

struct RowResult {
  // Exactly one of the two is set: the closed-loop concurrency, or the open-loop target rate (requests/s).
  int concurrency = 0;
  double target_rate = 0;

  double window_s = 0;
  int64_t ok_requests = 0;  // OK responses received inside the window
  int64_t images_per_request = 1;
  LatencyHistogram latency_ns;            // see the header comment: every response but refusals
  LatencyHistogram refused_latency_ns;    // refusals (IsRefusal), see the header comment
  std::map<std::string, int64_t> errors;  // status code name -> count
  double client_send_us = 0;              // mean
  double client_cpu_cores = 0;            // process CPU seconds / window seconds
  int64_t scheduled = 0;                  // open loop: arrivals inside the window
  int64_t sent = 0;                       // open loop: of those, sent
  LatencyHistogram send_lag_ns;           // open loop, see the header comment
  int64_t cancelled_after_drain = 0;      // requests cancelled by cnnload after --drain-timeout-s
  bool ended_by_time_cap = false;         // --requests mode: --max-row-s ended the row first

  int64_t error_count() const;
  int64_t refused_count() const { return refused_latency_ns.count(); }
  double requests_per_s() const { return window_s > 0 ? static_cast<double>(ok_requests) / window_s : 0; }
  double images_per_s() const { return requests_per_s() * static_cast<double>(images_per_request); }
  double offered_rate() const { return window_s > 0 ? static_cast<double>(scheduled) / window_s : 0; }
  double achieved_rate() const { return window_s > 0 ? static_cast<double>(sent) / window_s : 0; }
  bool open_loop() const { return concurrency == 0; }
};

// What was run (the JSON header and the table's title).
struct RunInfo {
  std::string server;
  std::string security = "plaintext";  // DescribeClientSecurity: "plaintext", "TLS", "mTLS" (+ " + token")
  std::string protocol;                // "native" or "kserve"
  std::string method;                  // full gRPC method name
  std::string model;
  int64_t version = 0;
  std::string input;  // "synthetic 1x32x32 float32" or "12 PNG files"
  int batch = 1;
  int64_t request_bytes = 0;  // mean serialized request size
  std::string mode;           // "closed" or "open (constant)" / "open (poisson)"
  double warmup_s = 0;
  double duration_s = 0;
  int64_t requests = 0;
  int64_t deadline_ms = 0;
  int threads = 1;
};

// Whether an outcome (a status code name, as in RowResult::errors) is a refusal: UNAVAILABLE or
// RESOURCE_EXHAUSTED.
bool IsRefusal(const std::string& outcome);

// Fixed-width table, one line per row.
std::string FormatTable(const RunInfo& info, const std::vector<RowResult>& rows);
// CSV with a header line. Columns: Concurrency (closed loop) or Request Rate (open loop), Inferences/Second,
// Client Send, p50/p90/p95/p99 latency, Avg latency, p99.9 latency, Max latency (latencies in usec, as
// perf_analyzer), then Requests/Second, Batch, Errors, Offered Rate, Achieved Rate, Client CPU, Refused,
// Refused p50 latency, Refused p99 latency (usec).
std::string FormatCsv(const std::vector<RowResult>& rows);
// One JSON document {"tool": "cnnload", ...info..., "rows": [...]} (latencies in milliseconds).
std::string FormatJson(const RunInfo& info, const std::vector<RowResult>& rows);
// The per-second progress line: "[cnnload c=8 measure 3/10 s] 1234 req/s 1234 img/s, 0 errors, 8 in flight".
std::string FormatProgress(const std::string& level, const std::string& phase, double phase_elapsed_s,
                           double phase_length_s, double requests_per_s, int images_per_request, int64_t errors,
                           int64_t in_flight);

using ::cnnserve::tools::JsonQuote;

}  // namespace cnnserve::cnnload

#endif  // CNNSERVE_TOOLS_CNNLOAD_REPORT_H_
