// A real MetricsServer on 127.0.0.1:0, scraped over HTTP with a tiny socket client.
#include "server/metrics/metrics_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

namespace cnnserve {
namespace {

// GET http://127.0.0.1:port/path with HTTP/1.0; the whole response (status line, headers, body), or "" on error.
std::string HttpGet(int port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0) {
    const std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
      char buf[4096];
      ssize_t n;
      while ((n = read(fd, buf, sizeof(buf))) > 0) response.append(buf, static_cast<size_t>(n));
    }
  }
  close(fd);
  return response;
}

std::string Body(const std::string& response) {
  const size_t at = response.find("\r\n\r\n");
  return at == std::string::npos ? "" : response.substr(at + 4);
}

TEST(MetricsServerTest, ServesTheProvidersStatisticsOnEveryScrape) {
  std::atomic<int> scrapes{0};
  auto provider = [&scrapes] {
    const int n = ++scrapes;
    ServableStats stats;
    stats.name = "m";
    stats.version = 2;
    stats.success.count = static_cast<uint64_t>(10 * n);
    stats.inference_count = 3;
    return std::vector<ServableStats>{stats};
  };
  MetricsServerOptions options;
  options.address = "127.0.0.1:0";
  StatusOr<std::unique_ptr<MetricsServer>> server = MetricsServer::Create(options, provider);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  const int port = (*server)->port();
  ASSERT_GT(port, 0);
  EXPECT_EQ((*server)->address(), "127.0.0.1:" + std::to_string(port));
  EXPECT_EQ((*server)->url(), "http://127.0.0.1:" + std::to_string(port) + "/metrics");

  const std::string first = HttpGet(port, "/metrics");
  ASSERT_EQ(first.rfind("HTTP/1.", 0), 0u) << first;
  EXPECT_NE(first.find(" 200 "), std::string::npos) << first;
  EXPECT_NE(Body(first).find("cnnserve_request_success_total{model=\"m\",version=\"2\"} 10\n"), std::string::npos)
      << first;
  EXPECT_NE(Body(first).find("cnnserve_inference_count_total{model=\"m\",version=\"2\"} 3\n"), std::string::npos);
  // A fresh snapshot per scrape.
  const std::string second = Body(HttpGet(port, "/metrics"));
  EXPECT_NE(second.find("cnnserve_request_success_total{model=\"m\",version=\"2\"} 20\n"), std::string::npos)
      << second;
  EXPECT_EQ(scrapes.load(), 2);
  // Other paths are not the metrics.
  EXPECT_EQ(HttpGet(port, "/other").find("cnnserve_"), std::string::npos);

  server->reset();  // stops listening
  EXPECT_EQ(HttpGet(port, "/metrics"), "");
}

TEST(MetricsServerTest, BadOptions) {
  auto provider = [] { return std::vector<ServableStats>{}; };
  MetricsServerOptions options;
  options.address = "no-port";
  EXPECT_EQ(MetricsServer::Create(options, provider).status().code(), StatusCode::kInvalidArgument);
  options.address = "127.0.0.1:0";
  EXPECT_EQ(MetricsServer::Create(options, nullptr).status().code(), StatusCode::kInvalidArgument);
  options.path = "metrics";
  EXPECT_EQ(MetricsServer::Create(options, provider).status().code(), StatusCode::kInvalidArgument);
}

TEST(MetricsServerTest, PortInUseIsUnavailable) {
  auto provider = [] { return std::vector<ServableStats>{}; };
  MetricsServerOptions options;
  options.address = "127.0.0.1:0";
  StatusOr<std::unique_ptr<MetricsServer>> first = MetricsServer::Create(options, provider);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  options.address = (*first)->address();
  StatusOr<std::unique_ptr<MetricsServer>> second = MetricsServer::Create(options, provider);
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(second.status().message().find((*first)->address()), std::string::npos) << second.status().ToString();
}

}  // namespace
}  // namespace cnnserve
