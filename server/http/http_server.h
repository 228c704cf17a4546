// HttpServer: cnnserve's HTTP/1.1 front end (cpp-httplib 0.11, Debian's libcpp-httplib; why that library:
// bench/RESULTS.md "HTTP library"). It serves the KServe v2 REST routes (kserve_routes.h), the native JSON routes
// and the playground (native_routes.h) over the same InferenceService, Authorizer and limits as the gRPC front
// ends.
//
// Connections: HTTP/1.1 keep-alive (at most keep_alive_max_requests per connection, closed after
// keep_alive_timeout_ms idle). A fixed pool of worker_threads serves connections, one at a time each; further
// accepted connections wait for a worker. A read (request line, headers or body) that makes no progress for
// read_timeout_ms, or a write for write_timeout_ms, closes the connection, which bounds what a stalled or
// half-closed client holds. A body above max_request_bytes is refused with 413 before it is read; a request line
// or header line above 8 KiB with 414/400; more than max_header_count header fields, or more than
// max_header_bytes of them (names and values), with 431 (and "Connection: close") before any route runs or the
// body is read. cpp-httplib 0.11 has no limit of its own on the number of header lines and reads the whole
// header block before that check, so connections are read through ConnectionStream (bounded_server.h): a head
// (request line and header block) above 9 KiB + max_header_bytes + 4 bytes per allowed field is cut off where it
// crosses that, answered 431 and the connection closed (before it, 2,000,000 header lines, 28 MB sent in 14 s,
// took the server's RSS from 103 MB to 317 MB).
//
// Inference routes: a "timeout" in microseconds (the KServe request's parameters.timeout, the native route's
// query parameter; what Triton's HTTP clients send) becomes the request's deadline, and a client that closes its
// connection cancels its request (client_connection.h).
//
// Routing: a path no route matches gets 404, a known path with another method 405 (with Allow). A route that
// needs a scope checks "Authorization: Bearer TOKEN" through the Authorizer first: 401 (with WWW-Authenticate:
// Bearer) for a missing or unknown token, 403 for a token without the scope. Health routes are open, as on gRPC.
// Errors are {"error": "..."} (http_route.h).
//
// TLS: with tls_cert_file and tls_key_file the port speaks HTTPS only (OpenSSL, through cpp-httplib); with
// tls_client_ca_file too, a client without a certificate signed by that CA is refused in the handshake.
//
// Thread-safety: Create, port() and Shutdown from one thread. Ownership: `service` and `authorizer` must outlive
// the server. Shutdown (also the destructor) closes the listening socket, lets the requests being served finish
// and joins every thread.
#ifndef CNNSERVE_SERVER_HTTP_HTTP_SERVER_H_
#define CNNSERVE_SERVER_HTTP_HTTP_SERVER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "engine/common/status.h"
#include "server/auth/authorizer.h"
#include "server/http/http_route.h"

namespace cnnserve {
class InferenceService;
}

namespace cnnserve::http {

struct HttpServerOptions {
  // HOST:PORT ("[::1]:PORT" for IPv6); port 0 picks a free port (port()).
  std::string address = "127.0.0.1:8000";
  int worker_threads = 16;                       // connections served at once
  int64_t max_request_bytes = int64_t{64} << 20;  // body size limit (--max-receive-message-mb)
  int64_t read_timeout_ms = 5000;
  int64_t write_timeout_ms = 5000;
  int64_t keep_alive_timeout_ms = 5000;  // whole seconds are used (rounded up)
  int keep_alive_max_requests = 10000;
  int max_header_count = 100;                   // header fields per request (Apache's LimitRequestFields)
  int64_t max_header_bytes = int64_t{64} << 10;  // their names and values together
  std::string tls_cert_file;  // both set: HTTPS
  std::string tls_key_file;
  std::string tls_client_ca_file;  // set: clients must present a certificate signed by it (mTLS)
};

class HttpServer {
 public:
  // Binds `options.address` and starts serving `routes`. INVALID_ARGUMENT for a bad address or options,
  // UNAVAILABLE when the address cannot be bound (exclusively: SO_REUSEADDR, not SO_REUSEPORT, so a port another
  // process listens on fails), FAILED_PRECONDITION when the TLS files cannot be loaded.
  static StatusOr<std::unique_ptr<HttpServer>> Create(const HttpServerOptions& options, std::vector<Route> routes,
                                                      std::shared_ptr<const auth::Authorizer> authorizer);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const { return port_; }
  // "HOST:PORT" with the bound port.
  const std::string& address() const { return address_; }
  void Shutdown();

 private:
  class Dispatcher;
  HttpServer() = default;

  std::unique_ptr<httplib::Server> server_;
  std::shared_ptr<Dispatcher> dispatcher_;
  std::thread thread_;
  std::string address_;
  int port_ = 0;
};

}  // namespace cnnserve::http

#endif  // CNNSERVE_SERVER_HTTP_HTTP_SERVER_H_
