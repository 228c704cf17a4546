#include "server/http/client_connection.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <string>

#include "server/http/connection_stream.h"

namespace cnnserve::http {
namespace {

bool SameAddress(const std::string& a, const std::string& b) {
  constexpr char kMapped[] = "::ffff:";
  const auto plain = [&](const std::string& s) {
    return s.rfind(kMapped, 0) == 0 ? s.substr(sizeof(kMapped) - 1) : s;
  };
  return plain(a) == plain(b);
}

// Whether `fd` is the TCP connection between the request's local and remote address.
bool IsConnection(int fd, const httplib::Request& request) {
  sockaddr_storage local{};
  sockaddr_storage peer{};
  socklen_t local_size = sizeof(local);
  socklen_t peer_size = sizeof(peer);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_size) != 0) return false;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_size) != 0) return false;
  std::string host;
  int port = -1;
  if (!SocketAddressText(peer, &host, &port) || port != request.remote_port ||
      !SameAddress(host, request.remote_addr)) {
    return false;
  }
  return SocketAddressText(local, &host, &port) && port == request.local_port &&
         SameAddress(host, request.local_addr);
}

// The socket of the connection this worker serves, when its addresses are the request's.
int FindConnection(const httplib::Request& request) {
  const int fd = CurrentConnectionSocket();
  return fd >= 0 && IsConnection(fd, request) ? fd : -1;
}

}  // namespace

ClientConnection::ClientConnection(const httplib::Request& request) : fd_(FindConnection(request)) {}

ClientConnection::~ClientConnection() { serving_->store(false); }

std::function<bool()> ClientConnection::Check() const {
  return [fd = fd_, serving = serving_] {
    if (!serving->load()) return true;
    if (fd < 0) return false;
    pollfd entry{fd, POLLRDHUP, 0};
    if (poll(&entry, 1, 0) != 1) return false;
    return (entry.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
  };
}

}  // namespace cnnserve::http
