// LoadDriver: runs the rows of a cnnload run against one server with asynchronous gRPC calls.
//
// Each of the `threads` workers owns a channel (its own TCP connection), a completion queue and a response
// checker, and records into its own histogram and counters; the rows' results are merged after the workers stop,
// so nothing is shared on the hot path except a few relaxed atomic counters read by the progress line.
//   Closed loop (RunClosedLoop): a worker keeps its share of the concurrency in flight; every completion is
//     replaced at once by the next request, from the completion-queue thread.
//   Open loop (RunOpenLoop): a sender thread per worker sleeps until each arrival of its ArrivalSchedule
//     (clock_nanosleep, 1 us timer slack) and starts the call; the worker's completion thread records it.
// Every call carries a deadline: --deadline-ms, and at most the end of the row's drain (window end +
// --drain-timeout-s), so a row always ends, whatever the server does. Calls cut by that drain bound are counted as
// DRAIN_TIMEOUT (open loop; closed-loop calls finishing after the window are not measured anyway).
// cnnload connects only to the address given: no proxy (http_proxy is ignored), no service config from DNS.
//
// Thread-safety: a LoadDriver runs one row at a time; call its methods from one thread. The Workload must outlive
// the driver.
#ifndef CNNSERVE_TOOLS_CNNLOAD_LOAD_DRIVER_H_
#define CNNSERVE_TOOLS_CNNLOAD_LOAD_DRIVER_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/common/status.h"
#include "tools/cnnload/options.h"
#include "tools/cnnload/report.h"
#include "tools/cnnload/workload.h"
#include "tools/common/client_channel.h"

namespace cnnserve::cnnload {

// A channel to `address` with `security` (TLS or plaintext, the token on every call), a connection of its own (not
// shared with other channels of the process), no proxy, no DNS service config, fast reconnects, and large receive
// messages allowed.
std::shared_ptr<grpc::Channel> NewChannel(const std::string& address, const tools::ClientSecurity& security);

class LoadDriver {
 public:
  // `progress` receives the per-second progress line (nullptr: none). Connects `options.threads` channels with
  // `security` (only used here). UNAVAILABLE when the server cannot be reached within `connect_timeout_s`.
  static StatusOr<std::unique_ptr<LoadDriver>> Create(const LoadOptions& options,
                                                      const tools::ClientSecurity& security,
                                                      const Workload* workload,
                                                      std::function<void(const std::string&)> progress,
                                                      double connect_timeout_s = 10);
  ~LoadDriver();
  LoadDriver(const LoadDriver&) = delete;
  LoadDriver& operator=(const LoadDriver&) = delete;

  // One row. Blocks for its warm-up, window and drain.
  RowResult RunClosedLoop(int concurrency);
  RowResult RunOpenLoop(double rate_per_s);

 private:
  struct Row;
  class Worker;
  LoadDriver(const LoadOptions& options, const Workload* workload,
             std::function<void(const std::string&)> progress);
  RowResult Run(int concurrency, double rate_per_s);

  LoadOptions options_;
  const Workload* workload_;
  std::function<void(const std::string&)> progress_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  uint64_t row_counter_ = 0;
};

}  // namespace cnnserve::cnnload

#endif  // CNNSERVE_TOOLS_CNNLOAD_LOAD_DRIVER_H_
