#include "engine/common/listen_address.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

namespace cnnserve {
namespace {

TEST(SplitHostPort, SplitsHostsAndBracketedV6) {
  std::string host;
  int port = 0;
  ASSERT_TRUE(SplitHostPort("[::1]:80", &host, &port).ok());
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, 80);
  ASSERT_TRUE(SplitHostPort("localhost:0", &host, &port).ok());
  EXPECT_EQ(host, "localhost");
  EXPECT_EQ(port, 0);
  for (const char* bad : {"nohost", ":80", "h:", "h:65536", "h:8x", "[::1:80", "h:-1"}) {
    const Status status = SplitHostPort(bad, &host, &port);
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(status.message().find("is not HOST:PORT"), std::string::npos) << status.ToString();
  }
}

// A TCP socket of this test on 127.0.0.1, listening or only bound; closed on destruction.
class LoopbackSocket {
 public:
  explicit LoopbackSocket(bool listening) : fd_(socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&address), length) != 0 ||
        (listening && listen(fd_, 1) != 0) ||
        getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      return;
    }
    port_ = ntohs(address.sin_port);
  }
  ~LoopbackSocket() {
    if (fd_ >= 0) close(fd_);
  }
  LoopbackSocket(const LoopbackSocket&) = delete;
  LoopbackSocket& operator=(const LoopbackSocket&) = delete;

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }

 private:
  int fd_;
  int port_ = 0;
};

TEST(CheckPortFree, AListeningPortIsInUseAndFreeOnceClosed) {
  std::string address;
  {
    LoopbackSocket listener(/*listening=*/true);
    ASSERT_NE(listener.port(), 0);
    address = listener.address();
    const Status status = CheckPortFree(address);
    EXPECT_EQ(status.code(), StatusCode::kUnavailable) << status.ToString();
    EXPECT_NE(status.message().find("the port is in use"), std::string::npos) << status.ToString();
    EXPECT_NE(status.message().find(address), std::string::npos) << status.ToString();
    // The wildcard address covers loopback: the same port is in use there too.
    EXPECT_EQ(CheckPortFree("0.0.0.0:" + std::to_string(listener.port())).code(), StatusCode::kUnavailable);
  }
  EXPECT_TRUE(CheckPortFree(address).ok());
}

TEST(CheckPortFree, LeavesWhatItCannotJudgeToTheRealBind) {
  EXPECT_TRUE(CheckPortFree("127.0.0.1:0").ok());                // any free port
  EXPECT_TRUE(CheckPortFree("unix:/tmp/cnnserve.sock").ok());    // not HOST:PORT
  EXPECT_TRUE(CheckPortFree("no-such-host.invalid:8001").ok());  // does not resolve
  LoopbackSocket bound_only(/*listening=*/false);                // bound, never listening: still in use
  ASSERT_NE(bound_only.port(), 0);
  EXPECT_EQ(CheckPortFree(bound_only.address()).code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace cnnserve
