#include "engine/common/listen_address.h"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <string_view>
#include <utility>

#include "engine/common/strings.h"

namespace cnnserve {

Status SplitHostPort(const std::string& address, std::string* host, int* port) {
  const size_t colon = address.rfind(':');
  const Status bad = InvalidArgumentError(Quoted(address) + " is not HOST:PORT");
  if (colon == std::string::npos || colon == 0) return bad;
  std::string h = address.substr(0, colon);
  if (h.front() == '[') {
    if (h.size() < 3 || h.back() != ']') return bad;
    h = h.substr(1, h.size() - 2);
  }
  const std::string_view p = std::string_view(address).substr(colon + 1);
  int value = -1;
  const auto [end, error] = std::from_chars(p.data(), p.data() + p.size(), value);
  if (p.empty() || error != std::errc() || end != p.data() + p.size() || value < 0 || value > 65535) return bad;
  *host = std::move(h);
  *port = value;
  return OkStatus();
}

namespace {

// Whether binding `info`'s address fails because something listens there.
bool AddressInUse(const addrinfo& info) {
  const int fd = socket(info.ai_family, info.ai_socktype | SOCK_CLOEXEC, info.ai_protocol);
  if (fd < 0) return false;
  const int on = 1;
  (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
  const bool in_use = bind(fd, info.ai_addr, info.ai_addrlen) != 0 && errno == EADDRINUSE;
  close(fd);
  return in_use;
}

}  // namespace

Status CheckPortFree(const std::string& address) {
  std::string host;
  int port = 0;
  if (!SplitHostPort(address, &host, &port).ok() || port == 0) return OkStatus();
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &found) != 0) return OkStatus();
  bool in_use = false;
  for (const addrinfo* info = found; info != nullptr && !in_use; info = info->ai_next) {
    in_use = AddressInUse(*info);
  }
  freeaddrinfo(found);
  if (!in_use) return OkStatus();
  return UnavailableError("cannot listen on " + Quoted(address) +
                          ": the port is in use (another process listens there)");
}

}  // namespace cnnserve
