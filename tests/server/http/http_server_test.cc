// HttpServer on 127.0.0.1 (an ephemeral port) with small routes of its own: routing, tokens, limits, timeouts and
// the shared error format, through cpp-httplib's client and raw sockets. The real routes: tests/integration.
#include "server/http/http_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <fstream>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "server/auth/token_file.h"
#include "server/http/client_connection.h"
#include "server/http/static_files.h"
#include "server/servables/servable.h"  // SteadyNowMicros

namespace cnnserve::http {
namespace {

constexpr int kStalledReadTimeoutMs = 200;
// Bound on how long a test waits for the server to close a connection (far above kStalledReadTimeoutMs).
constexpr int kSocketWaitSeconds = 20;

// What the /watch route saw of its client's connection (ClientConnection).
struct Watched {
  std::mutex mu;
  std::condition_variable cv;
  bool started = false;
  bool found = false;
  bool gone_at_start = true;
  bool gone = false;
  bool done = false;
  std::function<bool()> check;  // kept past the handler's return
};
Watched& WatchState() {
  static Watched watched;
  return watched;
}

// Waits (at most kSocketWaitSeconds) until its client is gone.
void WatchClient(const httplib::Request& request) {
  Watched& w = WatchState();
  const ClientConnection client(request);
  std::function<bool()> check = client.Check();
  {
    std::lock_guard<std::mutex> lock(w.mu);
    w.started = true;
    w.found = client.found();
    w.gone_at_start = check();
    w.check = check;
  }
  w.cv.notify_all();
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(kSocketWaitSeconds);
  bool gone = false;
  while (!(gone = check()) && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::lock_guard<std::mutex> lock(w.mu);
  w.gone = gone;
  w.done = true;
  w.cv.notify_all();
}

std::vector<Route> TestRoutes() {
  std::vector<Route> routes;
  routes.push_back(
      {"GET", std::regex("/open"), "",
       [](const httplib::Request&, const std::vector<std::string>&, Reply* r) { r->body = R"({"open":true})"; }});
  routes.push_back({"GET", std::regex("/models/([^/]+)"), "/cnnserve.v1.Classifier/DescribeModel",
                    [](const httplib::Request&, const std::vector<std::string>& c, Reply* r) {
                      r->body = nlohmann::json({{"model", c[0]}}).dump();
                    }});
  routes.push_back({"POST", std::regex("/models/([^/]+)/infer"), "/inference.GRPCInferenceService/ModelInfer",
                    [](const httplib::Request& q, const std::vector<std::string>&, Reply* r) {
                      r->body = nlohmann::json({{"bytes", q.body.size()}}).dump();
                    }});
  routes.push_back(
      {"POST", std::regex("/fail"), "", [](const httplib::Request&, const std::vector<std::string>&, Reply* r) {
         SetError(NotFoundError("no \"x\"\n"), r);
       }});
  routes.push_back({"GET", std::regex("/watch"), "",
                    [](const httplib::Request& q, const std::vector<std::string>&, Reply*) { WatchClient(q); }});
  return routes;
}

std::unique_ptr<HttpServer> StartServer(std::shared_ptr<const auth::Authorizer> authorizer = nullptr) {
  HttpServerOptions options;
  options.address = "127.0.0.1:0";
  options.worker_threads = 4;
  options.max_request_bytes = 1024;
  options.read_timeout_ms = kStalledReadTimeoutMs;
  StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::Create(options, TestRoutes(), std::move(authorizer));
  EXPECT_TRUE(server.ok()) << server.status().ToString();
  return server.ok() ? std::move(*server) : nullptr;
}

std::string ErrorMessage(const httplib::Result& result) {
  return nlohmann::json::parse(result->body)["error"].get<std::string>();
}

// A connected TCP socket to the server, with a receive timeout.
int Connect(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  timeval timeout{kSocketWaitSeconds, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  return fd;
}

// Everything received until the server closes (or the receive timeout, which fails the caller's checks).
std::string ReadUntilClosed(int fd, bool* closed) {
  std::string data;
  char buffer[4096];
  while (true) {
    const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) {
      *closed = n == 0;
      return data;
    }
    data.append(buffer, static_cast<size_t>(n));
  }
}

TEST(HttpServer, RoutesCapturesAndErrors) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  httplib::Client client("127.0.0.1", server->port());
  auto open = client.Get("/open");
  ASSERT_TRUE(open);
  EXPECT_EQ(open->status, 200);
  EXPECT_EQ(open->get_header_value("Content-Type"), "application/json");
  EXPECT_EQ(client.Get("/models/lenet")->body, R"({"model":"lenet"})");
  auto missing = client.Get("/nothing/here");
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(ErrorMessage(missing), "no route for GET /nothing/here");
  auto wrong_method = client.Delete("/open");
  EXPECT_EQ(wrong_method->status, 405);
  EXPECT_EQ(wrong_method->get_header_value("Allow"), "GET");
  auto failed = client.Post("/fail", "", "application/json");
  EXPECT_EQ(failed->status, 404);
  EXPECT_EQ(failed->body, R"({"error":"no \"x\"\n"})");
}

TEST(HttpServer, KeepAliveServesManyRequestsOnOneConnection) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  httplib::Client client("127.0.0.1", server->port());
  client.set_keep_alive(true);
  int sockets_opened = 0;
  client.set_socket_options([&sockets_opened](int) { ++sockets_opened; });
  for (int i = 0; i < 10; ++i) ASSERT_EQ(client.Get("/open")->status, 200);
  EXPECT_EQ(sockets_opened, 1);
}

TEST(HttpServer, TokensAndScopes) {
  StatusOr<std::vector<auth::TokenEntry>> entries =
      auth::ParseTokenFile("reader metadata\ninferer infer\n", "tokens.txt");
  ASSERT_TRUE(entries.ok()) << entries.status().ToString();
  auto server = StartServer(auth::Authorizer::FromEntries(std::move(*entries)));
  ASSERT_NE(server, nullptr);
  httplib::Client client("127.0.0.1", server->port());
  EXPECT_EQ(client.Get("/open")->status, 200);  // no operation: open
  auto anonymous = client.Get("/models/m");
  EXPECT_EQ(anonymous->status, 401);
  EXPECT_EQ(anonymous->get_header_value("WWW-Authenticate"), "Bearer realm=\"cnnserve\"");
  auto unknown = client.Get("/models/m", {{"Authorization", "Bearer nobody"}});
  EXPECT_EQ(unknown->status, 401);
  EXPECT_EQ(unknown->body.find("nobody"), std::string::npos);  // the token is never repeated
  EXPECT_EQ(client.Get("/models/m", {{"Authorization", "Bearer reader"}})->status, 200);
  auto denied = client.Post("/models/m/infer", {{"Authorization", "Bearer reader"}}, "x", "text/plain");
  EXPECT_EQ(denied->status, 403);
  EXPECT_NE(denied->get_header_value("WWW-Authenticate").find("insufficient_scope"), std::string::npos);
  EXPECT_EQ(client.Post("/models/m/infer", {{"Authorization", "Bearer inferer"}}, "x", "text/plain")->status, 200);
}

TEST(HttpServer, BodyOverTheLimitIsRefusedBeforeItIsRead) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  httplib::Client client("127.0.0.1", server->port());
  EXPECT_EQ(client.Post("/models/m/infer", std::string(1024, 'x'), "text/plain")->body, R"({"bytes":1024})");
  // Only the headers are sent: the answer comes without the body.
  const int fd = Connect(server->port());
  const std::string head = "POST /models/m/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000\r\n\r\n";
  ASSERT_EQ(send(fd, head.data(), head.size(), 0), static_cast<ssize_t>(head.size()));
  bool closed = false;
  const std::string answer = ReadUntilClosed(fd, &closed);
  close(fd);
  EXPECT_TRUE(closed);
  EXPECT_EQ(answer.rfind("HTTP/1.1 413", 0), 0u) << answer;
  EXPECT_NE(answer.find("exceeds the limit of 1024 bytes"), std::string::npos) << answer;
}

TEST(HttpServer, StalledAndHalfClosedClientsAreClosed) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  for (const bool half_close : {false, true}) {
    const int fd = Connect(server->port());
    const std::string partial = "POST /models/m/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc";
    ASSERT_EQ(send(fd, partial.data(), partial.size(), 0), static_cast<ssize_t>(partial.size()));
    if (half_close) shutdown(fd, SHUT_WR);
    bool closed = false;
    const std::string answer = ReadUntilClosed(fd, &closed);
    close(fd);
    EXPECT_TRUE(closed) << "half_close " << half_close;
    EXPECT_EQ(answer.find("200 OK"), std::string::npos) << answer;
  }
  // Every worker is free again.
  httplib::Client client("127.0.0.1", server->port());
  EXPECT_EQ(client.Get("/open")->status, 200);
}

TEST(HttpServer, TooManyOrTooLargeHeaderFieldsGet431) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  const auto send_headers = [&](int count, size_t value_bytes) {
    const int fd = Connect(server->port());
    std::string head = "GET /open HTTP/1.1\r\nHost: x\r\nConnection: close\r\n";
    for (int i = 0; i < count; ++i)
      head += "X-" + std::to_string(i) + ": " + std::string(value_bytes, 'v') + "\r\n";
    head += "\r\n";
    EXPECT_EQ(send(fd, head.data(), head.size(), 0), static_cast<ssize_t>(head.size()));
    bool closed = false;
    std::string answer = ReadUntilClosed(fd, &closed);
    close(fd);
    EXPECT_TRUE(closed);
    return answer;
  };
  EXPECT_EQ(send_headers(90, 10).rfind("HTTP/1.1 200", 0), 0u);  // 92 fields with Host and Connection
  const std::string many = send_headers(5000, 1);
  EXPECT_EQ(many.rfind("HTTP/1.1 431", 0), 0u) << many.substr(0, 200);
  EXPECT_NE(many.find("the request has 5002 header fields"), std::string::npos) << many;
  EXPECT_NE(many.find("at most 100 fields of 65536 bytes"), std::string::npos) << many;
  // 20 lines under the 8 KiB line limit, 160 KB together: cut off where the head crosses its budget
  // (9 KiB + 64 KiB + 4 bytes per allowed field), answered, and the socket closed with a FIN, not a reset.
  const std::string large = send_headers(20, 8000);
  EXPECT_EQ(large.rfind("HTTP/1.1 431", 0), 0u) << large.substr(0, 200);
  EXPECT_NE(large.find("the request line and header fields take more than 75154 bytes"), std::string::npos)
      << large;
  EXPECT_LT(large.size(), 2048u) << "the answer is bounded";
  // The server goes on serving.
  httplib::Client client("127.0.0.1", server->port());
  EXPECT_EQ(client.Get("/open")->status, 200);
}

// VmRSS of this process (the server runs in it), in KiB.
int64_t ResidentKiB() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}

// Sends `data` whole; false when the connection fails first.
bool SendAll(int fd, const std::string& data) {
  for (size_t done = 0; done < data.size();) {
    const ssize_t n = send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

TEST(HttpServer, AHeadThatNeverEndsIsCutOffWith431AndHoldsNoMemory) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  const int64_t rss_before_kib = ResidentKiB();
  const int fd = Connect(server->port());
  timeval timeout{kSocketWaitSeconds, 0};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  // 64 MB of 1 KB header lines, unless the server stops reading first. Without the head budget cpp-httplib read
  // them all into the request (2,000,000 shorter lines took 214 MB) before the 431.
  constexpr size_t kOfferedBytes = size_t{64} << 20;
  std::string block;
  while (block.size() < (size_t{64} << 10)) block += "X-Fill: " + std::string(1000, 'v') + "\r\n";
  size_t sent = 0;
  std::thread sender([&] {
    if (!SendAll(fd, "GET /open HTTP/1.1\r\nHost: x\r\n")) return;
    while (sent < kOfferedBytes && SendAll(fd, block)) sent += block.size();
  });
  bool closed = false;
  const std::string answer = ReadUntilClosed(fd, &closed);
  sender.join();
  close(fd);
  EXPECT_EQ(answer.rfind("HTTP/1.1 431", 0), 0u) << answer.substr(0, 200);
  EXPECT_NE(answer.find("take more than 75154 bytes"), std::string::npos) << answer;
  EXPECT_LT(sent, kOfferedBytes / 2) << "the server read on past the budget";
  EXPECT_LT(ResidentKiB() - rss_before_kib, 16 * 1024) << "KiB held after the refusal";
  httplib::Client client("127.0.0.1", server->port());
  EXPECT_EQ(client.Get("/open")->status, 200);
}

TEST(HttpServer, ShutdownDoesNotWaitForIdleKeepAliveConnections) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  httplib::Client client("127.0.0.1", server->port());
  client.set_keep_alive(true);
  ASSERT_EQ(client.Get("/open")->status, 200);  // the connection stays open, idle (keep-alive timeout 5 s)
  const auto start = std::chrono::steady_clock::now();
  server->Shutdown();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

TEST(HttpServer, AClientThatDisconnectsIsSeenGone) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  Watched& w = WatchState();
  const int fd = Connect(server->port());
  const std::string request = "GET /watch HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(send(fd, request.data(), request.size(), 0), static_cast<ssize_t>(request.size()));
  {
    std::unique_lock<std::mutex> lock(w.mu);
    ASSERT_TRUE(w.cv.wait_for(lock, std::chrono::seconds(kSocketWaitSeconds), [&] { return w.started; }));
    EXPECT_TRUE(w.found) << "the request's socket was not found";
    EXPECT_FALSE(w.gone_at_start) << "a connected client was seen gone";
  }
  close(fd);
  std::unique_lock<std::mutex> lock(w.mu);
  ASSERT_TRUE(w.cv.wait_for(lock, std::chrono::seconds(2 * kSocketWaitSeconds), [&] { return w.done; }));
  EXPECT_TRUE(w.gone) << "the client closed its connection; the check did not see it";
  EXPECT_TRUE(w.check()) << "after the handler returned the check must say gone without polling";
}

TEST(HttpRoute, DeadlineAfterATimeoutInMicroseconds) {
  const int64_t before = SteadyNowMicros();
  const StatusOr<int64_t> deadline = DeadlineAfter(2'000'000, "parameters.timeout");
  ASSERT_TRUE(deadline.ok());
  EXPECT_GE(*deadline, before + 2'000'000);
  EXPECT_LE(*deadline, SteadyNowMicros() + 2'000'000);
  for (const int64_t bad : {int64_t{0}, int64_t{-5}, kMaxTimeoutUs + 1}) {
    const Status status = DeadlineAfter(bad, "parameters.timeout").status();
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(status.message().rfind("parameters.timeout " + std::to_string(bad) + " must be", 0), 0u)
        << status.message();
  }
}

TEST(HttpServer, BadOptionsAndAddresses) {
  HttpServerOptions options;
  options.address = "127.0.0.1:0";
  options.worker_threads = 0;
  EXPECT_EQ(HttpServer::Create(options, {}, nullptr).status().code(), StatusCode::kInvalidArgument);
  options.worker_threads = 1;
  options.tls_cert_file = "/nonexistent/cert.pem";
  EXPECT_EQ(HttpServer::Create(options, {}, nullptr).status().code(), StatusCode::kInvalidArgument);  // no key
  options.tls_key_file = "/nonexistent/key.pem";
  EXPECT_EQ(HttpServer::Create(options, {}, nullptr).status().code(), StatusCode::kFailedPrecondition);
  options.tls_cert_file.clear();
  options.tls_key_file.clear();
  options.address = "127.0.0.1";  // no port (SplitHostPort's cases: tests/engine/common/listen_address_test.cc)
  EXPECT_EQ(HttpServer::Create(options, {}, nullptr).status().code(), StatusCode::kInvalidArgument);
}

TEST(HttpServer, ASecondServerCannotBindAPortInUse) {
  std::unique_ptr<HttpServer> first = StartServer();
  ASSERT_NE(first, nullptr);
  HttpServerOptions options;
  options.address = first->address();
  const StatusOr<std::unique_ptr<HttpServer>> second = HttpServer::Create(options, TestRoutes(), nullptr);
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(second.status().message().find("in use"), std::string::npos) << second.status().ToString();
  // The first server still answers.
  httplib::Client client("127.0.0.1", first->port());
  const httplib::Result result = client.Get("/open");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200);
}

TEST(HttpRoute, StatusCodesAndErrorBodies) {
  EXPECT_EQ(HttpStatusOf(StatusCode::kInvalidArgument), 400);
  EXPECT_EQ(HttpStatusOf(StatusCode::kFailedPrecondition), 400);
  EXPECT_EQ(HttpStatusOf(StatusCode::kUnauthenticated), 401);
  EXPECT_EQ(HttpStatusOf(StatusCode::kPermissionDenied), 403);
  EXPECT_EQ(HttpStatusOf(StatusCode::kNotFound), 404);
  EXPECT_EQ(HttpStatusOf(StatusCode::kResourceExhausted), 413);
  EXPECT_EQ(HttpStatusOf(StatusCode::kUnavailable), 503);
  EXPECT_EQ(HttpStatusOf(StatusCode::kDeadlineExceeded), 504);
  EXPECT_EQ(HttpStatusOf(StatusCode::kInternal), 500);
  const std::string long_message(5000, 'a');
  const nlohmann::json body = nlohmann::json::parse(ErrorBody(long_message));
  EXPECT_EQ(body["error"].get<std::string>(), std::string(kMaxErrorMessageBytes, 'a') + "...");
  EXPECT_EQ(ErrorBody("bad \xff byte \"q\""), "{\"error\":\"bad \xef\xbf\xbd byte \\\"q\\\"\"}");
}

TEST(StaticFiles, EmbeddedFilesAndContentTypes) {
  ASSERT_TRUE(FindEmbeddedFile("index.html").has_value());
  EXPECT_NE(FindEmbeddedFile("index.html")->data.find("<html"), std::string_view::npos);
  EXPECT_FALSE(FindEmbeddedFile("../CMakeLists.txt").has_value());
  EXPECT_EQ(ContentTypeFor("index.html"), "text/html; charset=utf-8");
  EXPECT_EQ(ContentTypeFor("app.js"), "text/javascript; charset=utf-8");
  EXPECT_EQ(ContentTypeFor("favicon.svg"), "image/svg+xml");
  EXPECT_EQ(ContentTypeFor("x.bin"), "application/octet-stream");
}

}  // namespace
}  // namespace cnnserve::http
