// BoundedServer<Base>: cpp-httplib's Server (plain) or SSLServer (TLS) whose connections are read through
// ConnectionStream, so that a request's head (request line and header block) costs at most `max_head_bytes`
// of memory before it is refused (connection_stream.h says why the library alone does not bound it).
//
// cpp-httplib 0.11 serves an accepted socket in the private virtual Server::process_and_close_socket; this class
// overrides it with the same connection loop (at most keep_alive_max_count requests, each next one awaited for
// keep_alive_timeout, none after Server::stop) over its own stream, and hands every request to the library's
// protected process_request, which parses, routes and answers as before. TLS: the handshake on the SSLServer's
// context (certificate, key, client CA as it loaded them), within the read timeout. A connection whose request
// head was cut off is closed after the answer.
//
// Thread-safety and ownership: as cpp-httplib's Server; each accepted socket is served, and closed, by the worker
// thread the library's task queue gives it (ServeConnection owns the socket and its SSL* until it returns).
#ifndef CNNSERVE_SERVER_HTTP_BOUNDED_SERVER_H_
#define CNNSERVE_SERVER_HTTP_BOUNDED_SERVER_H_

#include <httplib.h>
#include <openssl/ssl.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <utility>

#include "engine/common/units.h"
#include "server/http/connection_stream.h"

namespace cnnserve::http {

struct ConnectionLimits {
  size_t max_requests = 1;
  int64_t keep_alive_ms = 0;
  StreamTimeouts timeouts;
  int64_t max_head_bytes = 0;
};

// Serves one request on `stream` (`ssl`: the connection's TLS session, null on plain TCP): cpp-httplib's
// process_request; false ends the connection.
using RequestServer =
    std::function<bool(httplib::Stream& stream, SSL* ssl, bool close_connection, bool& connection_closed)>;

// Serves the requests of the accepted socket `fd` (TLS on `ssl_context` unless it is null) until the client
// closes it, a request ends it, the limits do, or `listening` is closed; then closes `fd`.
bool ServeConnection(int fd, SSL_CTX* ssl_context, const ConnectionLimits& limits,
                     const std::atomic<socket_t>& listening, const RequestServer& serve);

inline SSL_CTX* SslContextOf(const httplib::Server&) { return nullptr; }
inline SSL_CTX* SslContextOf(const httplib::SSLServer& server) { return server.ssl_context(); }

template <class Base>
class BoundedServer final : public Base {
 public:
  template <class... Args>
  explicit BoundedServer(int64_t max_head_bytes, Args&&... args)
      : Base(std::forward<Args>(args)...), max_head_bytes_(max_head_bytes) {}

 private:
  bool process_and_close_socket(socket_t sock) override {
    ConnectionLimits limits;
    limits.max_requests = this->keep_alive_max_count_;
    limits.keep_alive_ms = static_cast<int64_t>(this->keep_alive_timeout_sec_) * kMillisPerSecond;
    limits.timeouts.read_ms = static_cast<int64_t>(this->read_timeout_sec_) * kMillisPerSecond +
                              static_cast<int64_t>(this->read_timeout_usec_) / kMicrosPerMilli;
    limits.timeouts.write_ms = static_cast<int64_t>(this->write_timeout_sec_) * kMillisPerSecond +
                               static_cast<int64_t>(this->write_timeout_usec_) / kMicrosPerMilli;
    limits.max_head_bytes = max_head_bytes_;
    return ServeConnection(sock, SslContextOf(*this), limits, this->svr_sock_,
                           [this](httplib::Stream& stream, SSL* ssl, bool close_connection, bool& closed) {
                             const auto setup = [ssl](httplib::Request& request) { request.ssl = ssl; };
                             return this->process_request(stream, close_connection, closed, setup);
                           });
  }

  const int64_t max_head_bytes_;
};

}  // namespace cnnserve::http

#endif  // CNNSERVE_SERVER_HTTP_BOUNDED_SERVER_H_
