// ConnectionStream: one accepted HTTP connection (plain TCP, or TLS through an OpenSSL SSL*) as cpp-httplib's
// Stream, with a byte budget on the head of every request (its request line and header block).
//
// Why: cpp-httplib 0.11 reads a request's whole head into memory before any hook runs, with no bound on the
// number of header lines (measured before this stream: 2,000,000 lines, 28 MB sent, took the server's RSS from 103
// to 317 MB). The library reads the head one byte at a time through Stream::read, so this stream sees where it
// ends (the first line that is exactly CRLF, as the library's reader ends it) and fails the read that would cross
// `max_head_bytes`: the library answers 400, which HttpServer turns into 431 (HeadCutOff), and the connection is
// closed. Body bytes are not counted (max_request_bytes bounds them).
//
// Reads and writes wait at most the read / write timeout for progress (poll), as cpp-httplib's own stream does.
// Writes on a plain socket use MSG_NOSIGNAL; cpp-httplib's Server ignores SIGPIPE for the TLS writes.
//
// Thread-safety: one thread at a time (the worker serving the connection). Does not own the socket or the SSL*.
#ifndef CNNSERVE_SERVER_HTTP_CONNECTION_STREAM_H_
#define CNNSERVE_SERVER_HTTP_CONNECTION_STREAM_H_

#include <httplib.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace cnnserve::http {

struct StreamTimeouts {
  int64_t read_ms = 0;
  int64_t write_ms = 0;
};

class ConnectionStream final : public httplib::Stream {
 public:
  // `ssl` null: plain TCP on `fd`; otherwise TLS, after the handshake.
  // The stream is this thread's connection (CurrentConnectionSocket) until it is destroyed.
  ConnectionStream(int fd, SSL* ssl, StreamTimeouts timeouts, int64_t max_head_bytes);
  ~ConnectionStream() override;
  ConnectionStream(const ConnectionStream&) = delete;
  ConnectionStream& operator=(const ConnectionStream&) = delete;

  // A new request starts: its head gets the whole budget again.
  void BeginRequest();
  // Whether the current request's head went over the budget (the read that crossed it failed).
  bool head_too_large() const { return head_too_large_; }
  // Waits at most `timeout_ms` for the first byte of the next request (true at once when one is buffered); also
  // true when the peer closed, which the next read reports.
  bool WaitForRequest(int64_t timeout_ms) const;

  bool is_readable() const override;
  bool is_writable() const override;
  ssize_t read(char* ptr, size_t size) override;
  ssize_t write(const char* ptr, size_t size) override;
  void get_remote_ip_and_port(std::string& ip, int& port) const override;
  void get_local_ip_and_port(std::string& ip, int& port) const override;
  socket_t socket() const override { return fd_; }

 private:
  bool Buffered() const;
  // Reads what the connection has into buffer_ (at most one wait of the read timeout): bytes read, 0 at the
  // peer's end, -1 on an error or a timeout.
  ssize_t Fill();
  // Counts `size` bytes about to be handed out against the head budget (until the head ends); false when the
  // budget is spent first.
  bool Admit(const char* data, size_t size);

  const int fd_;
  SSL* const ssl_;
  const StreamTimeouts timeouts_;
  const int64_t max_head_bytes_;
  std::array<char, 4096> buffer_{};
  size_t begin_ = 0;
  size_t end_ = 0;
  // Head of the current request: bytes so far, whether it ended, and where its reader is in the line.
  int64_t head_bytes_ = 0;
  bool in_head_ = true;
  bool at_line_start_ = true;
  bool cr_at_line_start_ = false;
  bool head_too_large_ = false;
};

// True on the thread serving a connection while it answers a request whose head ConnectionStream cut off (set by
// the failing read, cleared by BeginRequest): cpp-httplib's error handler runs on that thread with status 400.
bool HeadCutOff();

// The socket of the connection whose ConnectionStream lives on this thread (the worker serving it, so also inside
// a route's handler), or -1.
int CurrentConnectionSocket();

// Waits at most `timeout_ms` for `events` (poll's POLLIN, POLLOUT) on `fd`; false on a timeout or an error.
bool WaitForSocket(int fd, short events, int64_t timeout_ms);

// "ADDR" and port of an AF_INET or AF_INET6 socket address, numeric (IPv6 without brackets, IPv4-mapped as
// "::ffff:a.b.c.d"), as cpp-httplib reports a request's addresses; false for other families.
bool SocketAddressText(const sockaddr_storage& address, std::string* host, int* port);

}  // namespace cnnserve::http

#endif  // CNNSERVE_SERVER_HTTP_CONNECTION_STREAM_H_
