// cnnload's command line: what to send, to whom, how hard and for how long (LoadOptions), and its parser.
//
// Thread-safety: plain data and a pure function.
#ifndef CNNSERVE_TOOLS_CNNLOAD_OPTIONS_H_
#define CNNSERVE_TOOLS_CNNLOAD_OPTIONS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "engine/common/status.h"
#include "tools/cnnload/pacing.h"
#include "tools/common/client_channel.h"

namespace cnnserve::cnnload {

enum class Protocol { kNative, kKServe };

struct LoadOptions {
  std::string server = "127.0.0.1:8001";
  tools::ClientSecurityOptions security;  // TLS files and token (tools/common/client_channel.h)
  Protocol protocol = Protocol::kNative;
  std::string model;
  int64_t version = 0;  // 0: the server's default version
  int top_k = 0;        // native Classify top_k (0: the server's default)

  // Inputs: encoded images read from these files/directories, or synthetic float32 tensors of the model's input
  // shape (asked from the server).
  std::vector<std::string> image_paths;
  bool synthetic = false;
  int batch = 1;      // images per request
  uint64_t seed = 0;  // synthetic tensor values and Poisson arrivals

  // Closed loop: one row per concurrency level. Open loop: one row per rate (requests/s).
  std::vector<int> concurrency;
  std::vector<double> rates;
  Arrivals arrivals = Arrivals::kConstant;

  double warmup_s = 2;
  double duration_s = 10;       // measured window per row
  int64_t requests = 0;         // > 0: the window ends after this many completed requests instead (capped by
                                // max_row_s)
  double max_row_s = 300;       // hard bound on one row's window in --requests mode
  int64_t deadline_ms = 0;      // per-request gRPC deadline (0: none; rows still end, see drain_timeout_s)
  double drain_timeout_s = 30;  // after the window: how long outstanding requests may take before being cancelled

  double connect_timeout_s = 10;   // how long to wait for the server at start-up
  int threads = 1;                 // client worker threads, each with its own connection
  int64_t max_outstanding = 4096;  // open loop: requests in flight at most (more are counted as not sent)

  std::string csv_path;  // also write the rows as CSV here
  bool json = false;     // print JSON on stdout instead of the table
  bool progress = true;  // a progress line per second on stderr
};

// What the parser decided: run with `options`, or print `text` (usage, or the error) and exit with `exit_code`.
struct ParsedCommandLine {
  LoadOptions options;
  bool run = false;
  int exit_code = 0;
  std::string text;
};

// Parses argv (flags "--name value" or "--name=value"; engine/common/flags.h). Errors (exit code 2) name the flag and the value (never
// the token's). Reads $CNNSERVE_TOKEN when --token is not given.
ParsedCommandLine ParseCommandLine(const std::vector<std::string>& args);

// The usage text (generated from the flags).
std::string Usage();

}  // namespace cnnserve::cnnload

#endif  // CNNSERVE_TOOLS_CNNLOAD_OPTIONS_H_
