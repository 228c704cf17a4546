#include "tests/integration/test_env.h"

#include <algorithm>

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <thread>
#include <utility>

#include "grpc/health/v1/health.grpc.pb.h"

extern char** environ;

namespace cnnserve::integration {
namespace {

constexpr char kListeningPrefix[] = "cnnserve listening on ";
constexpr auto kPollInterval = std::chrono::milliseconds(20);

// argv/envp arrays that stay valid in a forked child (built before fork: no allocation after it).
struct ExecArgs {
  std::vector<std::string> storage;
  std::vector<char*> argv;
  std::vector<std::string> env_storage;
  std::vector<char*> envp;

  ExecArgs(const std::vector<std::string>& args, const std::vector<std::string>& extra_env) : storage(args) {
    for (std::string& s : storage) argv.push_back(s.data());
    argv.push_back(nullptr);
    std::map<std::string, std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string entry(*e);
      env[entry.substr(0, entry.find('='))] = entry;
    }
    for (const std::string& entry : extra_env) env[entry.substr(0, entry.find('='))] = entry;
    for (auto& [name, entry] : env) env_storage.push_back(entry);
    for (std::string& s : env_storage) envp.push_back(s.data());
    envp.push_back(nullptr);
  }
};

// In the child: die with the parent, then exec. Only async-signal-safe calls.
[[noreturn]] void ExecChild(const ExecArgs& args, pid_t parent, int stdin_fd, int stdout_fd, int stderr_fd) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(127);
  dup2(stdin_fd, STDIN_FILENO);
  dup2(stdout_fd, STDOUT_FILENO);
  dup2(stderr_fd, STDERR_FILENO);
  // Unblock everything the parent (gtest, gRPC) may have blocked: the server takes SIGTERM through its own mask.
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  execve(args.argv[0], args.argv.data(), args.envp.data());
  _exit(127);
}

std::string FileContents(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace

std::string RequiredEnv(const char* name) {
  const char* value = std::getenv(name);
  if (value != nullptr && *value != '\0') return value;
  // Defaults compiled in by tests/integration/CMakeLists.txt.
  static const std::map<std::string, std::string> kBuiltIn = {
      {"CNNSERVE_SOURCE_DIR", CNNSERVE_TEST_SOURCE_DIR},
      {"CNNSERVE_BIN_DIR", CNNSERVE_TEST_BIN_DIR},
      {"CNNSERVE_TESTDATA_DIR", CNNSERVE_TEST_TESTDATA_DIR},
      {"CNNSERVE_PYTHON_STUBS", CNNSERVE_TEST_PYTHON_STUBS}};
  const auto it = kBuiltIn.find(name);
  if (it != kBuiltIn.end()) return it->second;
  ADD_FAILURE() << "environment variable " << name << " is not set";
  return "";
}

std::filesystem::path SourceDir() { return RequiredEnv("CNNSERVE_SOURCE_DIR"); }
std::filesystem::path BinDir() { return RequiredEnv("CNNSERVE_BIN_DIR"); }
std::filesystem::path TestDataDir() { return RequiredEnv("CNNSERVE_TESTDATA_DIR"); }
std::filesystem::path DefaultRepository() { return SourceDir() / "models" / "repository"; }

std::string ReadFileBytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void WriteFileBytes(const std::filesystem::path& path, const std::string& bytes) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  EXPECT_TRUE(out.good()) << "cannot write " << path;
}

std::vector<LabeledImage> LoadImages(const std::string& extension, int count) {
  std::vector<LabeledImage> images;
  const std::filesystem::path dir = TestDataDir();
  std::ifstream csv(dir / "labels.csv");
  EXPECT_TRUE(csv.good()) << "missing " << dir / "labels.csv"
                          << " (the CTest fixture writes it)";
  std::string line;
  std::getline(csv, line);  // header
  while (std::getline(csv, line) && static_cast<int>(images.size()) < count) {
    const size_t comma = line.find(',');
    if (comma == std::string::npos) continue;
    LabeledImage image;
    image.name = line.substr(0, comma);
    if (!image.name.ends_with(extension)) continue;
    image.label = std::stoi(line.substr(comma + 1));
    image.bytes = ReadFileBytes(dir / image.name);
    images.push_back(std::move(image));
  }
  EXPECT_EQ(static_cast<int>(images.size()), count) << "not enough " << extension << " test images in " << dir;
  return images;
}

TempDir::TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "cnnserve_test_XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) ADD_FAILURE() << "mkdtemp: " << std::strerror(errno);
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::unique_ptr<ServerProcess> ServerProcess::Start(const std::vector<std::string>& args,
                                                    std::chrono::seconds timeout) {
  return Start(args, nullptr, timeout);
}

std::unique_ptr<ServerProcess> ServerProcess::Start(const std::vector<std::string>& args,
                                                    std::shared_ptr<grpc::ChannelCredentials> credentials,
                                                    std::chrono::seconds timeout) {
  std::unique_ptr<ServerProcess> server(new ServerProcess());
  server->credentials_ = std::move(credentials);
  server->dir_ = std::make_unique<TempDir>();
  const std::filesystem::path out_path = server->dir_->path() / "stdout.txt";
  const std::filesystem::path err_path = server->dir_->path() / "stderr.txt";
  std::vector<std::string> argv = {(BinDir() / "cnnserve").string(), "--address", "127.0.0.1:0"};
  // Servers of tests running at the same time must not compete for the default metrics port.
  const bool metrics_given = std::any_of(args.begin(), args.end(), [](const std::string& a) {
    return a.rfind("--metrics-address", 0) == 0;
  });
  if (!metrics_given) argv.insert(argv.end(), {"--metrics-address", "127.0.0.1:0"});
  argv.insert(argv.end(), args.begin(), args.end());
  const ExecArgs exec_args(argv, {});
  const int in_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  const int out_fd = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const int err_fd = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (in_fd < 0 || out_fd < 0 || err_fd < 0) {
    ADD_FAILURE() << "cannot open the server's output files: " << std::strerror(errno);
    return nullptr;
  }
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) ExecChild(exec_args, parent, in_fd, out_fd, err_fd);
  close(in_fd);
  close(out_fd);
  close(err_fd);
  if (pid < 0) {
    ADD_FAILURE() << "fork: " << std::strerror(errno);
    return nullptr;
  }
  server->pid_ = pid;

  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (server->address_.empty()) {
    const std::string out = server->Stdout();
    if (const size_t at = out.find(kListeningPrefix); at != std::string::npos) {
      const size_t end = out.find('\n', at);
      if (end != std::string::npos) {
        server->address_ =
            out.substr(at + std::strlen(kListeningPrefix), end - at - std::strlen(kListeningPrefix));
        break;
      }
    }
    if (!server->running()) {
      ADD_FAILURE() << "cnnserve exited during start-up; its log:\n" << server->Log();
      return nullptr;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      ADD_FAILURE() << "cnnserve did not start listening within " << timeout.count() << " s; its log:\n"
                    << server->Log();
      return nullptr;
    }
    std::this_thread::sleep_for(kPollInterval);
  }
  if (!server->address_.starts_with("127.0.0.1:")) {
    ADD_FAILURE() << "cnnserve listens on '" << server->address_ << "', not on 127.0.0.1";
    return nullptr;
  }
  std::string health;
  while ((health = HealthStatus(server->address_, "", server->credentials_)) != "SERVING") {
    if (std::chrono::steady_clock::now() > deadline) {
      ADD_FAILURE() << "cnnserve at " << server->address_ << " is not SERVING (" << health << "); its log:\n"
                    << server->Log();
      return nullptr;
    }
    std::this_thread::sleep_for(kPollInterval);
  }
  return server;
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0 && !reaped_) {
    kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
  }
}

void ServerProcess::Signal(int signal) {
  if (pid_ > 0 && !reaped_) kill(pid_, signal);
}

std::optional<int> ServerProcess::WaitForExit(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    int status = 0;
    const pid_t got = waitpid(pid_, &status, WNOHANG);
    if (got == pid_) {
      reaped_ = true;
      return status;
    }
    if (got < 0 || std::chrono::steady_clock::now() > deadline) return std::nullopt;
    std::this_thread::sleep_for(kPollInterval);
  }
}

bool ServerProcess::running() {
  if (reaped_) return false;
  int status = 0;
  const pid_t got = waitpid(pid_, &status, WNOHANG);
  if (got == pid_) reaped_ = true;
  return got == 0;
}

std::string ServerProcess::Log() const { return FileContents(dir_->path() / "stderr.txt"); }
std::string ServerProcess::Stdout() const { return FileContents(dir_->path() / "stdout.txt"); }

int64_t ServerProcess::RssBytes() const {
  std::ifstream status("/proc/" + std::to_string(pid_) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.starts_with("VmRSS:")) return std::stoll(line.substr(6)) * 1024;  // "VmRSS:   12345 kB"
  }
  return 0;
}

std::shared_ptr<grpc::Channel> ConnectedChannel(const std::string& address, std::chrono::milliseconds timeout,
                                                std::shared_ptr<grpc::ChannelCredentials> credentials) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a connection of its own
  args.SetMaxReceiveMessageSize(64 << 20);
  // gRPC 1.51's TCP client now and then reports a loopback connect as failed ("connect: No such file or
  // directory": errno read after other calls); retry such a connect quickly instead of after the default 1 s.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 500);
  if (credentials == nullptr) credentials = grpc::InsecureChannelCredentials();
  auto channel = grpc::CreateCustomChannel(address, credentials, args);
  (void)channel->WaitForConnected(std::chrono::system_clock::now() + timeout);
  return channel;
}

std::shared_ptr<grpc::Channel> ServerProcess::NewChannel() const {
  std::shared_ptr<grpc::Channel> channel = ConnectedChannel(address_, std::chrono::seconds(10), credentials_);
  EXPECT_EQ(channel->GetState(false), GRPC_CHANNEL_READY) << "cannot connect to " << address_;
  return channel;
}

std::unique_ptr<v1::Classifier::Stub> ServerProcess::NewStub() const {
  return v1::Classifier::NewStub(NewChannel());
}

std::string HealthStatus(const std::string& address, const std::string& service,
                         std::shared_ptr<grpc::ChannelCredentials> credentials) {
  auto stub = grpc::health::v1::Health::NewStub(ConnectedChannel(address, std::chrono::seconds(2), credentials));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  const grpc::Status status = stub->Check(&context, request, &response);
  if (!status.ok()) {
    return "error " + std::to_string(static_cast<int>(status.error_code())) + ": " + status.error_message();
  }
  return grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status());
}

CommandResult RunCommand(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                         std::chrono::seconds timeout) {
  CommandResult result;
  const ExecArgs exec_args(argv, env);
  int out_pipe[2];
  int err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe: " << std::strerror(errno);
    return result;
  }
  const int in_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) ExecChild(exec_args, parent, in_fd, out_pipe[1], err_pipe[1]);
  close(in_fd);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (pid < 0) {
    ADD_FAILURE() << "fork: " << std::strerror(errno);
    close(out_pipe[0]);
    close(err_pipe[0]);
    return result;
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  int open_fds = 2;
  bool timed_out = false;
  while (open_fds > 0) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    if (poll(fds, 2, static_cast<int>(left.count())) < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buf[4096];
      const ssize_t n = read(fds[i].fd, buf, sizeof(buf));
      if (n > 0) {
        sinks[i]->append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (pollfd& fd : fds) {
    if (fd.fd >= 0) close(fd.fd);
  }
  if (timed_out) {
    kill(pid, SIGKILL);
    ADD_FAILURE() << argv[0] << " did not finish within " << timeout.count() << " s";
  }
  int status = 0;
  waitpid(pid, &status, 0);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

v1::ClassifyRequest ImageRequest(const std::vector<const LabeledImage*>& images, int top_k) {
  v1::ClassifyRequest request;
  request.set_model(kModel);
  request.set_top_k(top_k);
  for (const LabeledImage* image : images) request.add_inputs()->set_image(image->bytes);
  return request;
}

grpc::Status Classify(v1::Classifier::Stub& stub, const v1::ClassifyRequest& request,
                      v1::ClassifyResponse* response, std::chrono::milliseconds timeout) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  return stub.Classify(&context, request, response);
}

int Top1(const v1::Classification& result) { return result.classes_size() == 0 ? -1 : result.classes(0).index(); }

}  // namespace cnnserve::integration
