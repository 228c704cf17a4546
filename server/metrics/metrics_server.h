// MetricsServer: Prometheus metrics over HTTP (prometheus-cpp's Exposer, i.e. civetweb) at
// http://HOST:PORT/metrics.
//
// It keeps no metric state of its own: on every scrape it asks a provider for a snapshot of the servables'
// statistics (ServableStats, server/servables/servable.h) and renders BuildMetricFamilies of it
// (server/metrics/metric_families.h lists the metric names). So the counts served are exactly the servables'
// counters at scrape time, and the component knows nothing of the InferenceService (main.cc supplies the
// provider).
//
// Thread-safety: the provider is called from the HTTP server's threads, possibly concurrently (one call per
// scrape); it must be thread-safe and should not block for long. The accessors may be called from any thread.
// Ownership: the provider is owned (copied); whatever it captures must outlive the MetricsServer. Destroying the
// MetricsServer stops the HTTP server and waits for scrapes in progress; the provider is not called after the
// destructor returns.
#ifndef CNNSERVE_SERVER_METRICS_METRICS_SERVER_H_
#define CNNSERVE_SERVER_METRICS_METRICS_SERVER_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/common/status.h"
#include "server/servables/servable.h"

namespace prometheus {
class Exposer;
}  // namespace prometheus

namespace cnnserve {

struct MetricsServerOptions {
  // HOST:PORT to listen on ("[::1]:PORT" for IPv6); port 0 picks a free port (see MetricsServer::port()).
  std::string address = "127.0.0.1:8002";
  // HTTP path of the metrics (starts with '/').
  std::string path = "/metrics";
  // HTTP worker threads (>= 1): each holds one connection at a time, so this many slow clients at once can
  // delay a scrape by up to request_timeout_ms.
  int num_threads = 4;
  // A connection must deliver its whole request (line and headers) within this time, and each later read or
  // write must progress within it; otherwise civetweb closes it (> 0). Bounds what a client that trickles a
  // header (slowloris) can hold a worker for.
  int request_timeout_ms = 1000;
};

// Returns the statistics of every servable to report.
using StatsProvider = std::function<std::vector<ServableStats>()>;

class MetricsServer {
 public:
  // Starts listening and serving. INVALID_ARGUMENT for bad options or a null provider, UNAVAILABLE when the
  // address cannot be bound (the message names it and says why).
  static StatusOr<std::unique_ptr<MetricsServer>> Create(const MetricsServerOptions& options,
                                                         StatsProvider provider);
  ~MetricsServer();

  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // The bound address, "HOST:PORT" with the real port (also when the options asked for port 0).
  const std::string& address() const { return address_; }
  int port() const { return port_; }
  // "http://HOST:PORT/metrics".
  std::string url() const { return "http://" + address_ + path_; }

 private:
  class Collector;
  MetricsServer() = default;

  // Declared before the exposer so that the exposer (and its threads) goes first.
  std::shared_ptr<Collector> collector_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::string address_;
  std::string path_;
  int port_ = 0;
};

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_METRICS_METRICS_SERVER_H_
