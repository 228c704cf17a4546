#include "server/http/http_server.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <exception>
#include <optional>
#include <utility>

#include "engine/common/listen_address.h"
#include "engine/common/units.h"
#include "server/http/bounded_server.h"
#include "server/http/connection_stream.h"

namespace cnnserve::http {
namespace {

constexpr char kAuthorization[] = "Authorization";
constexpr int kRequestHeaderFieldsTooLarge = 431;

// cpp-httplib adds the connection's addresses to a request's headers; they are not the client's fields.
bool IsConnectionPseudoHeader(const std::string& name) {
  return name == "REMOTE_ADDR" || name == "REMOTE_PORT" || name == "LOCAL_ADDR" || name == "LOCAL_PORT";
}
constexpr char kBearerChallenge[] = "Bearer realm=\"cnnserve\"";

void Apply(const Reply& reply, httplib::Response* res) {
  res->status = reply.status;
  for (const auto& [name, value] : reply.headers) res->set_header(name, value);
  res->set_content(reply.body, reply.content_type.c_str());
}

Status CheckOptions(const HttpServerOptions& o) {
  if (o.worker_threads < 1) return InvalidArgumentError("HTTP worker_threads must be >= 1");
  if (o.max_request_bytes < 1) return InvalidArgumentError("HTTP max_request_bytes must be >= 1");
  if (o.read_timeout_ms < 1 || o.write_timeout_ms < 1 || o.keep_alive_timeout_ms < 1) {
    return InvalidArgumentError("HTTP timeouts must be >= 1 ms");
  }
  if (o.keep_alive_max_requests < 1) return InvalidArgumentError("HTTP keep_alive_max_requests must be >= 1");
  if (o.max_header_count < 1 || o.max_header_bytes < 1) {
    return InvalidArgumentError("HTTP max_header_count and max_header_bytes must be >= 1");
  }
  if (o.tls_cert_file.empty() != o.tls_key_file.empty() ||
      (!o.tls_client_ca_file.empty() && o.tls_cert_file.empty())) {
    return InvalidArgumentError("HTTP TLS needs both a certificate and a key file");
  }
  return OkStatus();
}

}  // namespace

// Finds the route of a request, checks its token and runs it. Shared by every worker thread (immutable).
class HttpServer::Dispatcher {
 public:
  Dispatcher(std::vector<Route> routes, std::shared_ptr<const auth::Authorizer> authorizer)
      : routes_(std::move(routes)), authorizer_(std::move(authorizer)) {}

  void Serve(const httplib::Request& req, httplib::Response& res) const {
    Reply reply;
    Handle(req, &reply);
    Apply(reply, &res);
  }

 private:
  void Handle(const httplib::Request& req, Reply* reply) const {
    const std::string method = req.method == "HEAD" ? "GET" : req.method;
    std::string allowed;
    std::smatch match;
    for (const Route& route : routes_) {
      if (!std::regex_match(req.path, match, route.path)) continue;
      if (route.method != method) {
        if (allowed.find(route.method) == std::string::npos)
          allowed += (allowed.empty() ? "" : ", ") + route.method;
        continue;
      }
      if (!Authorized(req, route, reply)) return;
      std::vector<std::string> captures;
      for (size_t i = 1; i < match.size(); ++i) captures.push_back(match[i].str());
      route.handler(req, captures, reply);
      return;
    }
    if (!allowed.empty()) {
      reply->status = 405;
      reply->body = ErrorBody("method " + req.method + " is not allowed on " + req.path + "; allowed: " + allowed);
      reply->headers.emplace_back("Allow", allowed);
      return;
    }
    reply->status = 404;
    reply->body = ErrorBody("no route for " + req.method + " " + req.path);
  }

  bool Authorized(const httplib::Request& req, const Route& route, Reply* reply) const {
    if (route.operation.empty() || authorizer_ == nullptr) return true;
    std::optional<std::string_view> header;
    const std::string value = req.get_header_value(kAuthorization);
    if (req.has_header(kAuthorization)) header = value;
    const Status status = authorizer_->CheckMethod(header, route.operation);
    if (status.ok()) return true;
    SetError(status, reply);
    if (status.code() == StatusCode::kUnauthenticated) {
      reply->headers.emplace_back("WWW-Authenticate", kBearerChallenge);
    } else if (status.code() == StatusCode::kPermissionDenied) {
      reply->headers.emplace_back("WWW-Authenticate",
                                  std::string(kBearerChallenge) + ", error=\"insufficient_scope\"");
    }
    spdlog::debug("HTTP {} {} from {}: {}", req.method, route.operation, req.remote_addr, status.ToString());
    return false;
  }

  const std::vector<Route> routes_;
  const std::shared_ptr<const auth::Authorizer> authorizer_;
};

namespace {

// The message of an answer cpp-httplib gives itself, before any route runs.
std::string LibraryErrorMessage(int status, int64_t max_request_bytes) {
  switch (status) {
    case 413:
      return "the request body exceeds the limit of " + std::to_string(max_request_bytes) + " bytes";
    case 414:
      return "the request line is too long";
    case 400:
      return "malformed HTTP request";
    default:
      return "HTTP status " + std::to_string(status);
  }
}

// The most a request's head (request line and header block) may take on the wire: a request line with a target
// up to cpp-httplib's 8 KiB (above it: 414), the fields the options allow with their ": " and CRLF, the empty
// line.
int64_t MaxHeadBytes(const HttpServerOptions& options) {
  constexpr int64_t kRequestLineBytes = 9 * kBytesPerKiB;
  constexpr int64_t kFieldSyntaxBytes = 4;
  return kRequestLineBytes + options.max_header_bytes + options.max_header_count * kFieldSyntaxBytes + 2;
}

std::unique_ptr<httplib::Server> NewServer(const HttpServerOptions& options) {
  const int64_t max_head_bytes = MaxHeadBytes(options);
  if (options.tls_cert_file.empty()) return std::make_unique<BoundedServer<httplib::Server>>(max_head_bytes);
  return std::make_unique<BoundedServer<httplib::SSLServer>>(
      max_head_bytes, options.tls_cert_file.c_str(), options.tls_key_file.c_str(),
      options.tls_client_ca_file.empty() ? nullptr : options.tls_client_ca_file.c_str());
}

// The answer to a request whose head ConnectionStream cut off (cpp-httplib made it a 400).
void AnswerHeadTooLarge(int64_t max_head_bytes, httplib::Response* res) {
  res->status = kRequestHeaderFieldsTooLarge;
  res->set_header("Connection", "close");
  res->set_content(
      ErrorBody("the request line and header fields take more than " + std::to_string(max_head_bytes) + " bytes"),
      kJsonContentType);
}

void Configure(const HttpServerOptions& options, httplib::Server* server) {
  const int workers = options.worker_threads;
  server->new_task_queue = [workers] { return new httplib::ThreadPool(static_cast<size_t>(workers)); };
  server->set_keep_alive_max_count(static_cast<size_t>(options.keep_alive_max_requests));
  server->set_keep_alive_timeout((options.keep_alive_timeout_ms + kMillisPerSecond - 1) / kMillisPerSecond);
  server->set_read_timeout(options.read_timeout_ms / kMillisPerSecond,
                           (options.read_timeout_ms % kMillisPerSecond) * kMicrosPerMilli);
  server->set_write_timeout(options.write_timeout_ms / kMillisPerSecond,
                            (options.write_timeout_ms % kMillisPerSecond) * kMicrosPerMilli);
  server->set_payload_max_length(static_cast<size_t>(options.max_request_bytes));
  server->set_tcp_nodelay(true);
  // The library's default socket options add SO_REUSEPORT, which lets a second server bind the same port and take
  // a share of its connections unnoticed; SO_REUSEADDR alone still allows a restart while old connections linger.
  server->set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  // Answers the library makes itself (413, 400 for a malformed request) get a JSON body too; a route's own error
  // already has one.
  const httplib::Server::HandlerWithResponse on_error = [limit = options.max_request_bytes,
                                                         head = MaxHeadBytes(options)](const httplib::Request&,
                                                                                       httplib::Response& res) {
    if (HeadCutOff()) {
      AnswerHeadTooLarge(head, &res);
      return httplib::Server::HandlerResponse::Handled;
    }
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    res.set_content(ErrorBody(LibraryErrorMessage(res.status, limit)), kJsonContentType);
    return httplib::Server::HandlerResponse::Handled;
  };
  server->set_error_handler(on_error);
  // Header limits, checked once the header block is read, before routing and before the body is read.
  server->set_pre_routing_handler([count = options.max_header_count, bytes = options.max_header_bytes](
                                      const httplib::Request& req, httplib::Response& res) {
    int64_t total = 0;
    int64_t fields = 0;
    for (const auto& [name, value] : req.headers) {
      if (IsConnectionPseudoHeader(name)) continue;
      total += static_cast<int64_t>(name.size() + value.size());
      ++fields;
    }
    if (fields <= count && total <= bytes) return httplib::Server::HandlerResponse::Unhandled;
    res.status = kRequestHeaderFieldsTooLarge;
    res.set_header("Connection", "close");
    res.set_content(ErrorBody("the request has " + std::to_string(fields) + " header fields of " +
                              std::to_string(total) + " bytes; at most " + std::to_string(count) + " fields of " +
                              std::to_string(bytes) + " bytes are accepted"),
                    kJsonContentType);
    return httplib::Server::HandlerResponse::Handled;
  });
  server->set_exception_handler([](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    spdlog::error("HTTP {} {}: {}", req.method, req.path.substr(0, kMaxErrorMessageBytes), what);
    res.status = 500;
    res.set_content(ErrorBody("internal error"), kJsonContentType);
  });
}

}  // namespace

StatusOr<std::unique_ptr<HttpServer>> HttpServer::Create(const HttpServerOptions& options,
                                                         std::vector<Route> routes,
                                                         std::shared_ptr<const auth::Authorizer> authorizer) {
  if (Status s = CheckOptions(options); !s.ok()) return s;
  std::string host;
  int port = 0;
  if (Status s = SplitHostPort(options.address, &host, &port); !s.ok()) return s;
  std::unique_ptr<HttpServer> server(new HttpServer());
  server->server_ = NewServer(options);
  if (!server->server_->is_valid()) {
    return FailedPreconditionError("HTTP: cannot load the TLS certificate '" + options.tls_cert_file +
                                   "' and key '" + options.tls_key_file + "'");
  }
  Configure(options, server->server_.get());
  server->dispatcher_ = std::make_shared<Dispatcher>(std::move(routes), std::move(authorizer));
  const auto serve = [dispatcher = server->dispatcher_](const httplib::Request& req, httplib::Response& res) {
    dispatcher->Serve(req, res);
  };
  constexpr char kAnyPath[] = ".*";
  server->server_->Get(kAnyPath, serve).Post(kAnyPath, serve).Put(kAnyPath, serve).Delete(kAnyPath, serve);
  server->server_->Patch(kAnyPath, serve).Options(kAnyPath, serve);
  if (host.find(':') != std::string::npos) server->server_->set_address_family(AF_INET6);
  if (port == 0) {
    port = server->server_->bind_to_any_port(host);
    if (port < 0) return UnavailableError("HTTP: cannot bind " + options.address);
  } else if (!server->server_->bind_to_port(host, port)) {
    return UnavailableError("HTTP: cannot bind " + options.address + " (in use or not a local address)");
  }
  server->port_ = port;
  server->address_ = (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
  server->thread_ = std::thread([s = server->server_.get()] { s->listen_after_bind(); });
  return server;
}

HttpServer::~HttpServer() { Shutdown(); }

void HttpServer::Shutdown() {
  if (!thread_.joinable()) return;
  server_->stop();
  thread_.join();
}

}  // namespace cnnserve::http
