#include "server/http/connection_stream.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

namespace cnnserve::http {
namespace {

thread_local bool t_head_cut_off = false;
thread_local int t_connection_socket = -1;

}  // namespace

bool HeadCutOff() { return t_head_cut_off; }

int CurrentConnectionSocket() { return t_connection_socket; }

bool WaitForSocket(int fd, short events, int64_t timeout_ms) {
  pollfd p{fd, events, 0};
  const int timeout = static_cast<int>(std::clamp<int64_t>(timeout_ms, 0, INT_MAX));
  int n = 0;
  do {
    n = poll(&p, 1, timeout);
  } while (n < 0 && errno == EINTR);
  return n > 0;
}

bool SocketAddressText(const sockaddr_storage& address, std::string* host, int* port) {
  char text[INET6_ADDRSTRLEN] = {};
  if (address.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(address);
    if (inet_ntop(AF_INET, &in.sin_addr, text, sizeof(text)) == nullptr) return false;
    *port = ntohs(in.sin_port);
  } else if (address.ss_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(address);
    if (inet_ntop(AF_INET6, &in6.sin6_addr, text, sizeof(text)) == nullptr) return false;
    *port = ntohs(in6.sin6_port);
  } else {
    return false;
  }
  *host = text;
  return true;
}

ConnectionStream::ConnectionStream(int fd, SSL* ssl, StreamTimeouts timeouts, int64_t max_head_bytes)
    : fd_(fd), ssl_(ssl), timeouts_(timeouts), max_head_bytes_(max_head_bytes) {
  t_connection_socket = fd;
}

ConnectionStream::~ConnectionStream() {
  t_connection_socket = -1;
  t_head_cut_off = false;
}

void ConnectionStream::BeginRequest() {
  head_bytes_ = 0;
  in_head_ = true;
  at_line_start_ = true;
  cr_at_line_start_ = false;
  head_too_large_ = false;
  t_head_cut_off = false;
}

bool ConnectionStream::Buffered() const { return begin_ < end_ || (ssl_ != nullptr && SSL_pending(ssl_) > 0); }

bool ConnectionStream::WaitForRequest(int64_t timeout_ms) const {
  return Buffered() || WaitForSocket(fd_, POLLIN, timeout_ms);
}

bool ConnectionStream::is_readable() const { return Buffered() || WaitForSocket(fd_, POLLIN, timeouts_.read_ms); }

bool ConnectionStream::is_writable() const { return WaitForSocket(fd_, POLLOUT, timeouts_.write_ms); }

ssize_t ConnectionStream::Fill() {
  begin_ = end_ = 0;
  if (ssl_ == nullptr) {
    if (!WaitForSocket(fd_, POLLIN, timeouts_.read_ms)) return -1;
    ssize_t n = 0;
    do {
      n = recv(fd_, buffer_.data(), buffer_.size(), 0);
    } while (n < 0 && errno == EINTR);
    if (n > 0) end_ = static_cast<size_t>(n);
    return n;
  }
  // TLS: a record may be half in; SSL_read then wants more, which gets another wait of the read timeout.
  while (true) {
    if (SSL_pending(ssl_) == 0 && !WaitForSocket(fd_, POLLIN, timeouts_.read_ms)) return -1;
    const int n = SSL_read(ssl_, buffer_.data(), static_cast<int>(buffer_.size()));
    if (n > 0) {
      end_ = static_cast<size_t>(n);
      return n;
    }
    const int error = SSL_get_error(ssl_, n);
    if (error == SSL_ERROR_ZERO_RETURN) return 0;
    if (error != SSL_ERROR_WANT_READ) return -1;
  }
}

bool ConnectionStream::Admit(const char* data, size_t size) {
  for (size_t i = 0; in_head_ && i < size; ++i) {
    if (++head_bytes_ > max_head_bytes_) {
      head_too_large_ = true;
      t_head_cut_off = true;
      return false;
    }
    const char c = data[i];
    // The empty line ends the head: what follows is the body or the next request's concern.
    in_head_ = !(cr_at_line_start_ && c == '\n');
    cr_at_line_start_ = at_line_start_ && c == '\r';
    at_line_start_ = c == '\n';
  }
  return true;
}

ssize_t ConnectionStream::read(char* ptr, size_t size) {
  if (head_too_large_) return -1;
  if (begin_ == end_) {
    const ssize_t n = Fill();
    if (n <= 0) return n;
  }
  const size_t take = std::min(size, end_ - begin_);
  if (!Admit(buffer_.data() + begin_, take)) return -1;
  std::memcpy(ptr, buffer_.data() + begin_, take);
  begin_ += take;
  return static_cast<ssize_t>(take);
}

ssize_t ConnectionStream::write(const char* ptr, size_t size) {
  if (!is_writable()) return -1;
  if (ssl_ == nullptr) {
    ssize_t n = 0;
    do {
      n = send(fd_, ptr, size, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n;
  }
  const int chunk = static_cast<int>(std::min<size_t>(size, INT_MAX));
  while (true) {
    const int n = SSL_write(ssl_, ptr, chunk);
    if (n > 0) return n;
    if (SSL_get_error(ssl_, n) != SSL_ERROR_WANT_WRITE || !is_writable()) return -1;
  }
}

void ConnectionStream::get_remote_ip_and_port(std::string& ip, int& port) const {
  sockaddr_storage address{};
  socklen_t size = sizeof(address);
  if (getpeername(fd_, reinterpret_cast<sockaddr*>(&address), &size) == 0) SocketAddressText(address, &ip, &port);
}

void ConnectionStream::get_local_ip_and_port(std::string& ip, int& port) const {
  sockaddr_storage address{};
  socklen_t size = sizeof(address);
  if (getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &size) == 0) SocketAddressText(address, &ip, &port);
}

}  // namespace cnnserve::http
