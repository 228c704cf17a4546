#include "server/http/bounded_server.h"

#include <openssl/err.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <memory>

namespace cnnserve::http {
namespace {

// How often an idle keep-alive connection looks whether the server is stopping.
constexpr int64_t kStopCheckMs = 50;
// What a refused client may still send after its answer, read and dropped before the socket is closed.
constexpr int64_t kLingerBytes = int64_t{1} << 20;
constexpr int64_t kLingerMs = 1000;

struct SslFree {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};
using SslPtr = std::unique_ptr<SSL, SslFree>;

// The TLS session of the accepted socket `fd`, or null when the handshake fails. cpp-httplib sets the read and
// write timeouts on accepted sockets (SO_RCVTIMEO, SO_SNDTIMEO), which bound each step of the handshake.
SslPtr Handshake(int fd, SSL_CTX* context) {
  SslPtr ssl(SSL_new(context));
  if (ssl == nullptr || SSL_set_fd(ssl.get(), fd) != 1 || SSL_accept(ssl.get()) != 1) return nullptr;
  return ssl;
}

// Waits at most `keep_alive_ms` for the next request; false when it does not come or the server stops.
bool AwaitRequest(const ConnectionStream& stream, int64_t keep_alive_ms, const std::atomic<socket_t>& listening) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(keep_alive_ms);
  while (listening != INVALID_SOCKET) {
    const int64_t left_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left_ms <= 0) return false;
    if (stream.WaitForRequest(std::min(left_ms, kStopCheckMs))) return true;
  }
  return false;
}

// After the answer to a request whose head was cut off: the client may still be sending that head, and closing a
// socket with unread data resets the connection, which can destroy the answer before the client reads it. So the
// answer is followed by a FIN, and what arrives is read and dropped (at most kLingerBytes for kLingerMs) until the
// client closes too.
void LingerAfterRefusal(int fd) {
  shutdown(fd, SHUT_WR);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kLingerMs);
  std::array<char, 4096> dropped;
  for (int64_t total = 0; total < kLingerBytes;) {
    const int64_t left_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left_ms <= 0 || !WaitForSocket(fd, POLLIN, left_ms)) return;
    const ssize_t n = recv(fd, dropped.data(), dropped.size(), MSG_DONTWAIT);
    if (n <= 0) return;
    total += n;
  }
}

bool ServeRequests(ConnectionStream& stream, SSL* ssl, const ConnectionLimits& limits,
                   const std::atomic<socket_t>& listening, const RequestServer& serve) {
  bool ok = false;
  for (size_t left = limits.max_requests; left > 0 && AwaitRequest(stream, limits.keep_alive_ms, listening);
       --left) {
    stream.BeginRequest();
    bool closed = false;
    ok = serve(stream, ssl, left == 1, closed);
    if (!ok || closed || stream.head_too_large()) break;
  }
  return ok;
}

}  // namespace

bool ServeConnection(int fd, SSL_CTX* ssl_context, const ConnectionLimits& limits,
                     const std::atomic<socket_t>& listening, const RequestServer& serve) {
  bool ok = false;
  SslPtr ssl;
  if (ssl_context == nullptr || (ssl = Handshake(fd, ssl_context)) != nullptr) {
    ConnectionStream stream(fd, ssl.get(), limits.timeouts, limits.max_head_bytes);
    ok = ServeRequests(stream, ssl.get(), limits, listening, serve);
    if (ssl != nullptr && ok) SSL_shutdown(ssl.get());  // close_notify after a clean end only
    if (stream.head_too_large()) LingerAfterRefusal(fd);
  }
  ssl.reset();
  ERR_clear_error();  // this worker thread's OpenSSL error queue: a failed handshake or read leaves entries
  shutdown(fd, SHUT_RDWR);
  close(fd);
  return ok;
}

}  // namespace cnnserve::http
