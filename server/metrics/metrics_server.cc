#include "server/metrics/metrics_server.h"

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/metric_family.h>

#include <exception>
#include <utility>

#include "engine/common/strings.h"
#include "server/metrics/metric_families.h"

namespace cnnserve {
namespace {

// "host:0" + 4711 -> "host:4711"; also for "[::1]:0".
std::string WithPort(const std::string& address, int port) {
  const size_t colon = address.rfind(':');
  return address.substr(0, colon) + ":" + std::to_string(port);
}

}  // namespace

// What the exposer calls on every scrape.
class MetricsServer::Collector final : public prometheus::Collectable {
 public:
  explicit Collector(StatsProvider provider) : provider_(std::move(provider)) {}

  std::vector<prometheus::MetricFamily> Collect() const override { return BuildMetricFamilies(provider_()); }

 private:
  const StatsProvider provider_;
};

StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Create(const MetricsServerOptions& options,
                                                               StatsProvider provider) {
  if (!provider) return InvalidArgumentError("MetricsServer: the statistics provider is null");
  const size_t colon = options.address.rfind(':');
  if (options.address.empty() || colon == std::string::npos || colon == 0 || colon + 1 == options.address.size()) {
    return InvalidArgumentError("MetricsServer: address " + Quoted(options.address) + " is not HOST:PORT");
  }
  if (options.path.empty() || options.path.front() != '/') {
    return InvalidArgumentError("MetricsServer: path " + Quoted(options.path) + " does not start with '/'");
  }
  if (options.num_threads < 1) {
    return InvalidArgumentError("MetricsServer: num_threads " + std::to_string(options.num_threads) +
                                " is not >= 1");
  }
  if (options.request_timeout_ms < 1) {
    return InvalidArgumentError("MetricsServer: request_timeout_ms " + std::to_string(options.request_timeout_ms) +
                                " is not >= 1");
  }

  std::unique_ptr<MetricsServer> server(new MetricsServer());
  server->collector_ = std::make_shared<Collector>(std::move(provider));
  server->path_ = options.path;
  try {
    // civetweb binds in the constructor and throws (CivetException, a std::runtime_error) when it cannot.
    server->exposer_ = std::make_unique<prometheus::Exposer>(std::vector<std::string>{
        "listening_ports", options.address, "num_threads", std::to_string(options.num_threads),
        "request_timeout_ms", std::to_string(options.request_timeout_ms), "enable_keep_alive", "no"});
  } catch (const std::exception& e) {
    return UnavailableError("MetricsServer: cannot listen on " + Quoted(options.address) + ": " + e.what());
  }
  const std::vector<int> ports = server->exposer_->GetListeningPorts();
  if (ports.empty() || ports.front() <= 0) {
    return UnavailableError("MetricsServer: listening on " + Quoted(options.address) + " reported no port");
  }
  server->port_ = ports.front();
  server->address_ = WithPort(options.address, server->port_);
  server->exposer_->RegisterCollectable(server->collector_, options.path);
  return server;
}

MetricsServer::~MetricsServer() {
  // Stops civetweb (joining its threads) before the collector goes.
  exposer_.reset();
}

}  // namespace cnnserve
