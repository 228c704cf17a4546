// Support for the integration tests: real cnnserve processes on 127.0.0.1 with an ephemeral port, the test
// images written by the CTest fixture, gRPC clients and command runners with bounded time.
//
// Paths: CNNSERVE_SOURCE_DIR, CNNSERVE_BIN_DIR (cnnserve, cnnctl), CNNSERVE_TESTDATA_DIR (fashion_NNNNN.png/.jpg,
// labels.csv, input.npy, written by the CTest fixture) and CNNSERVE_PYTHON_STUBS, from the environment when set,
// else as compiled in by tests/integration/CMakeLists.txt.
// Every server is killed (SIGKILL) when its ServerProcess is destroyed, and also when the test process dies
// (PR_SET_PDEATHSIG), so a failing or timed-out test leaves no server behind.
#ifndef CNNSERVE_TESTS_INTEGRATION_TEST_ENV_H_
#define CNNSERVE_TESTS_INTEGRATION_TEST_ENV_H_

#include <grpcpp/grpcpp.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cnnserve/v1/classifier.grpc.pb.h"

namespace cnnserve::integration {

inline constexpr char kModel[] = "lenet5_fashion";
inline constexpr int kNumClasses = 10;

// The value of an environment variable the tests need (fails the test when missing).
std::string RequiredEnv(const char* name);
std::filesystem::path SourceDir();
std::filesystem::path BinDir();
std::filesystem::path TestDataDir();
std::filesystem::path DefaultRepository();  // <source>/models/repository

std::string ReadFileBytes(const std::filesystem::path& path);
void WriteFileBytes(const std::filesystem::path& path, const std::string& bytes);

// One test image: its file name (fashion_00042.png), bytes and true label.
struct LabeledImage {
  std::string name;
  std::string bytes;
  int label = -1;
};
// The first `count` images of labels.csv with the given extension (".png" or ".jpg"), in file order.
std::vector<LabeledImage> LoadImages(const std::string& extension, int count);

// A temporary directory removed (recursively) on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// A cnnserve child process. Start() runs build/bin/cnnserve --address 127.0.0.1:0 ARGS..., waits for the
// "cnnserve listening on" line and then for health SERVING. stdout and stderr go to files (no pipe can fill up).
// The health checks and NewChannel use `credentials` (a TLS server: TlsCredentials of test_certs.h), insecure
// ones when null.
class ServerProcess {
 public:
  static std::unique_ptr<ServerProcess> Start(const std::vector<std::string>& args,
                                              std::chrono::seconds timeout = std::chrono::seconds(120));
  static std::unique_ptr<ServerProcess> Start(const std::vector<std::string>& args,
                                              std::shared_ptr<grpc::ChannelCredentials> credentials,
                                              std::chrono::seconds timeout = std::chrono::seconds(120));
  ~ServerProcess();  // SIGKILL and reap when still running
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  const std::string& address() const { return address_; }
  pid_t pid() const { return pid_; }
  // Sends `signal` to the server.
  void Signal(int signal);
  // Waits for the process to exit; the raw wait status, or nullopt on timeout.
  std::optional<int> WaitForExit(std::chrono::milliseconds timeout);
  bool running();
  // What the server wrote to stderr (its log) and stdout so far.
  std::string Log() const;
  std::string Stdout() const;
  // Resident set size in bytes (from /proc/PID/status), 0 when unknown.
  int64_t RssBytes() const;

  // A fresh channel with its own connection (not shared with other channels of the process), connected.
  std::shared_ptr<grpc::Channel> NewChannel() const;
  std::unique_ptr<v1::Classifier::Stub> NewStub() const;

 private:
  ServerProcess() = default;

  pid_t pid_ = -1;
  bool reaped_ = false;
  std::unique_ptr<TempDir> dir_;
  std::string address_;
  std::shared_ptr<grpc::ChannelCredentials> credentials_;  // null: insecure
};

// A channel to `address` with a connection of its own, after waiting up to `timeout` for it to connect (it is
// returned whether or not it connected). `credentials`: insecure when null.
std::shared_ptr<grpc::Channel> ConnectedChannel(const std::string& address, std::chrono::milliseconds timeout,
                                                std::shared_ptr<grpc::ChannelCredentials> credentials = nullptr);

// "SERVING", "NOT_SERVING", or "error CODE: message" for the health of `service` at `address`.
std::string HealthStatus(const std::string& address, const std::string& service = "",
                         std::shared_ptr<grpc::ChannelCredentials> credentials = nullptr);

// Runs a command (argv[0] is a path) with `env` added to the environment, stdin from /dev/null, and waits at most
// `timeout` (then kills it). Exit code (-1 when killed or signalled) and captured stdout/stderr.
struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};
CommandResult RunCommand(const std::vector<std::string>& argv, const std::vector<std::string>& env = {},
                         std::chrono::seconds timeout = std::chrono::seconds(60));

// Helpers for requests.
v1::ClassifyRequest ImageRequest(const std::vector<const LabeledImage*>& images, int top_k = 0);
grpc::Status Classify(v1::Classifier::Stub& stub, const v1::ClassifyRequest& request,
                      v1::ClassifyResponse* response,
                      std::chrono::milliseconds timeout = std::chrono::milliseconds(60'000));
// Index of the best class of a classification (-1 if empty).
int Top1(const v1::Classification& result);

}  // namespace cnnserve::integration

#endif  // CNNSERVE_TESTS_INTEGRATION_TEST_ENV_H_
