// A real MetricsServer on 127.0.0.1:0, scraped over HTTP with a tiny socket client.
#include "server/metrics/metrics_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sys/time.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace cnnserve {
namespace {

// A TCP connection to 127.0.0.1:port whose reads give up after `read_timeout_s`; -1 on error.
int Connect(int port, int read_timeout_s = 30) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  const timeval timeout{read_timeout_s, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// GET http://127.0.0.1:port/path with HTTP/1.0; the whole response (status line, headers, body), or "" on error
// (including no answer within `read_timeout_s`).
std::string HttpGet(int port, const std::string& path, int read_timeout_s = 30) {
  const int fd = Connect(port, read_timeout_s);
  if (fd < 0) return "";
  std::string response;
  const std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  if (write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0) response.append(buf, static_cast<size_t>(n));
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

// Slowloris: clients that send a request header a line at a time and never finish it hold every worker; the
// request timeout cuts them off, so a real scrape is answered while they keep trickling.
TEST(MetricsServerTest, ClientsThatNeverFinishTheirHeadersDoNotBlockScrapes) {
  MetricsServerOptions options;
  options.address = "127.0.0.1:0";
  options.num_threads = 2;
  options.request_timeout_ms = 300;
  StatusOr<std::unique_ptr<MetricsServer>> server =
      MetricsServer::Create(options, [] { return std::vector<ServableStats>{}; });
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  const int port = (*server)->port();

  constexpr int kSlowClients = 4;  // twice the workers
  std::atomic<bool> stop{false};
  std::atomic<int> cut_off{0};
  std::vector<std::thread> slow;
  for (int i = 0; i < kSlowClients; ++i) {
    slow.emplace_back([&] {
      const int fd = Connect(port);
      if (fd < 0) return;
      const std::string start = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n";
      bool open = write(fd, start.data(), start.size()) == static_cast<ssize_t>(start.size());
      while (open && !stop.load()) {  // one more header line every 50 ms, never the blank line
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        open = send(fd, "X-Slow: 1\r\n", 11, MSG_NOSIGNAL) == 11;
      }
      if (!open) ++cut_off;
      close(fd);
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // let them take the workers
  // Without a request timeout this waits for as long as the slow clients trickle (here: until the read timeout).
  const std::string scrape = HttpGet(port, "/metrics", /*read_timeout_s=*/10);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // the slow clients are still trickling
  stop = true;
  for (std::thread& t : slow) t.join();
  EXPECT_NE(scrape.find(" 200 "), std::string::npos) << "no answer while slow clients held the workers: " << scrape;
  EXPECT_EQ(cut_off.load(), kSlowClients) << "the server should close connections whose headers never end";
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
  options.path = "/metrics";
  options.request_timeout_ms = 0;
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
