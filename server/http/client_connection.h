// ClientConnection: whether the client of an HTTP request is still connected, for the request's cancellation
// check (InferRequest::cancelled), so that a client that disconnects stops its inference as a gRPC client's
// cancellation does.
//
// cpp-httplib 0.11 gives a handler neither the socket nor a "connection closed" callback; the socket is the one
// whose ConnectionStream the handler's thread serves (connection_stream.h), taken when its local and peer
// addresses are the request's (local_addr, local_port, remote_addr, remote_port). The check then polls it
// without waiting: the peer closed or shut down its side (POLLRDHUP, POLLHUP, POLLERR) means gone, as Go's
// net/http cancels a request's context when its connection reads EOF. A client that half-closes after sending
// its request therefore counts as gone. Where the socket cannot be found the check always says "connected".
//
// Lifetime: the descriptor is the worker's only while the handler runs; the check returned by Check() answers
// "gone" without touching it once the ClientConnection is destroyed (the handler returned), so a late call never
// polls a descriptor that was closed and reused.
// Thread-safety: construct and destroy on the handler's thread; the check may be called from any thread.
#ifndef CNNSERVE_SERVER_HTTP_CLIENT_CONNECTION_H_
#define CNNSERVE_SERVER_HTTP_CLIENT_CONNECTION_H_

#include <httplib.h>

#include <atomic>
#include <functional>
#include <memory>

namespace cnnserve::http {

class ClientConnection {
 public:
  explicit ClientConnection(const httplib::Request& request);
  ~ClientConnection();
  ClientConnection(const ClientConnection&) = delete;
  ClientConnection& operator=(const ClientConnection&) = delete;

  // True when the socket was found (the check can ever say "gone" while the handler runs).
  bool found() const { return fd_ >= 0; }
  // Cheap and non-blocking: true once the client has gone (or this object was destroyed).
  std::function<bool()> Check() const;

 private:
  int fd_ = -1;
  std::shared_ptr<std::atomic<bool>> serving_ = std::make_shared<std::atomic<bool>>(true);
};

}  // namespace cnnserve::http

#endif  // CNNSERVE_SERVER_HTTP_CLIENT_CONNECTION_H_
