// The command-line clients against a live cnnserve: cnnctl (classify, --json, list, describe, health, errors),
// tools/python/classify.py, and cnnserve's own --health-probe and flag checking.
#include <gtest/gtest.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "tests/integration/test_env.h"

namespace cnnserve::integration {
namespace {

constexpr int kFiles = 12;
constexpr char kDeadAddress[] = "127.0.0.1:1";  // nothing listens on port 1

class ClientsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = ServerProcess::Start({"--model-repository", DefaultRepository().string()}).release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(server_, nullptr) << "the server did not start"; }

  static std::string Cnnctl() { return (BinDir() / "cnnctl").string(); }
  static std::string Cnnserve() { return (BinDir() / "cnnserve").string(); }

  // The served top-1 label of each file, straight through gRPC.
  static std::vector<std::string> ServedLabels(const std::vector<LabeledImage>& images) {
    std::vector<const LabeledImage*> all;
    for (const LabeledImage& image : images) all.push_back(&image);
    v1::ClassifyResponse response;
    auto stub = server_->NewStub();
    EXPECT_TRUE(Classify(*stub, ImageRequest(all, 1), &response).ok());
    std::vector<std::string> labels;
    for (const v1::Classification& r : response.results()) labels.push_back(r.classes(0).label());
    return labels;
  }

  static std::vector<std::string> Paths(const std::vector<LabeledImage>& images) {
    std::vector<std::string> paths;
    for (const LabeledImage& image : images) paths.push_back((TestDataDir() / image.name).string());
    return paths;
  }

  static ServerProcess* server_;
};
ServerProcess* ClientsTest::server_ = nullptr;

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t begin = 0;
  while (begin < text.size()) {
    const size_t end = text.find('\n', begin);
    lines.push_back(text.substr(begin, end == std::string::npos ? std::string::npos : end - begin));
    if (end == std::string::npos) break;
    begin = end + 1;
  }
  return lines;
}

TEST_F(ClientsTest, CnnctlClassifyPrintsATableOfTheServedTopK) {
  std::vector<LabeledImage> images = LoadImages(".png", kFiles / 2);
  for (LabeledImage& image : LoadImages(".jpg", kFiles / 2)) images.push_back(std::move(image));
  const std::vector<std::string> served = ServedLabels(images);
  std::vector<std::string> argv = {Cnnctl(),  "--server", server_->address(), "classify", "--model", kModel,
                                   "--top-k", "3",        "--batch",          "5"};
  for (const std::string& path : Paths(images)) argv.push_back(path);
  const CommandResult result = RunCommand(argv);
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const std::vector<std::string> lines = Lines(result.out);
  ASSERT_EQ(lines.size(), 1 + 3 * images.size()) << result.out;
  EXPECT_NE(lines[0].find("probability"), std::string::npos);
  for (size_t i = 0; i < images.size(); ++i) {
    const std::string& first = lines[1 + 3 * i];
    EXPECT_EQ(first.rfind(Paths(images)[i], 0), 0u) << first;
    EXPECT_NE(first.find(" 1  " + served[i]), std::string::npos) << first << " vs " << served[i];
  }
}

TEST_F(ClientsTest, CnnctlClassifyJson) {
  const std::vector<LabeledImage> images = LoadImages(".png", 3);
  const std::vector<std::string> served = ServedLabels(images);
  std::vector<std::string> argv = {Cnnctl(), "--server", server_->address(), "classify", "--model",
                                   kModel,   "--json"};
  for (const std::string& path : Paths(images)) argv.push_back(path);
  const CommandResult result = RunCommand(argv);
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out.front(), '[');
  size_t count = 0;
  for (size_t at = result.out.find("\"rank\": 1,"); at != std::string::npos;
       at = result.out.find("\"rank\": 1,", at + 1)) {
    ++count;
  }
  EXPECT_EQ(count, images.size()) << result.out;
  for (const std::string& label : served)
    EXPECT_NE(result.out.find("\"label\": \"" + label + "\""), std::string::npos);
  // Python's json module accepts it.
  const CommandResult check = RunCommand(
      {"/usr/bin/python3", "-c",
       "import json,sys; d=json.loads(sys.argv[1]); assert len(d)==3 and len(d[0]['classes'])==5", result.out});
  EXPECT_EQ(check.exit_code, 0) << check.err;
}

TEST_F(ClientsTest, CnnctlListDescribeHealth) {
  const CommandResult list = RunCommand({Cnnctl(), "--server", server_->address(), "list"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_NE(list.out.find(kModel), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("1:READY"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("1x32x32"), std::string::npos) << list.out;

  const CommandResult describe = RunCommand({Cnnctl(), "--server", server_->address(), "describe", kModel});
  ASSERT_EQ(describe.exit_code, 0) << describe.err;
  EXPECT_NE(describe.out.find("61706"), std::string::npos) << describe.out;
  EXPECT_NE(describe.out.find("precision:  FP32\n"), std::string::npos) << describe.out;

  const CommandResult json = RunCommand({Cnnctl(), "--server", server_->address(), "describe", kModel, "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  EXPECT_NE(json.out.find("\"summary\""), std::string::npos) << json.out;

  const CommandResult health = RunCommand({Cnnctl(), "--server", server_->address(), "health"});
  EXPECT_EQ(health.exit_code, 0) << health.err;
  EXPECT_EQ(health.out, "SERVING\n");
  const CommandResult service =
      RunCommand({Cnnctl(), "--server", server_->address(), "health", "--service", "cnnserve.v1.Classifier"});
  EXPECT_EQ(service.exit_code, 0) << service.err;
}

TEST_F(ClientsTest, CnnctlErrorsPrintTheCodeAndExitNonZero) {
  const std::string png = Paths(LoadImages(".png", 1))[0];
  const CommandResult unknown =
      RunCommand({Cnnctl(), "--server", server_->address(), "classify", "--model", "no_such_model", png});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.err.find("NOT_FOUND"), std::string::npos) << unknown.err;

  const CommandResult bad_top_k =
      RunCommand({Cnnctl(), "--server", server_->address(), "classify", "--model", kModel, "--top-k", "-1", png});
  EXPECT_EQ(bad_top_k.exit_code, 1);
  EXPECT_NE(bad_top_k.err.find("INVALID_ARGUMENT"), std::string::npos) << bad_top_k.err;

  const CommandResult not_image = RunCommand({Cnnctl(), "--server", server_->address(), "classify", "--model",
                                              kModel, (TestDataDir() / "labels.csv").string()});
  EXPECT_EQ(not_image.exit_code, 1);
  EXPECT_NE(not_image.err.find("INVALID_ARGUMENT"), std::string::npos) << not_image.err;

  const CommandResult describe = RunCommand({Cnnctl(), "--server", server_->address(), "describe", "nope"});
  EXPECT_EQ(describe.exit_code, 1);
  EXPECT_NE(describe.err.find("NOT_FOUND"), std::string::npos) << describe.err;

  const CommandResult dead = RunCommand({Cnnctl(), "--server", kDeadAddress, "--timeout-s", "3", "health"});
  EXPECT_EQ(dead.exit_code, 1);
  EXPECT_NE(dead.err.find("UNAVAILABLE"), std::string::npos) << dead.err;

  EXPECT_EQ(RunCommand({Cnnctl(), "frobnicate"}).exit_code, 2);
  EXPECT_EQ(RunCommand({Cnnctl(), "classify", png}).exit_code, 2);  // no --model
  EXPECT_EQ(RunCommand({Cnnctl(), "classify", "--model", kModel, "/no/such/file.png"}).exit_code, 2);
  EXPECT_EQ(RunCommand({Cnnctl(), "--server"}).exit_code, 2);
}

TEST_F(ClientsTest, PythonClientPrintsTheServedTopK) {
  const std::vector<LabeledImage> images = LoadImages(".jpg", 4);
  const std::vector<std::string> served = ServedLabels(images);
  const std::string script = (SourceDir() / "tools" / "python" / "classify.py").string();
  const std::vector<std::string> env = {"CNNSERVE_PYTHON_STUBS=" + RequiredEnv("CNNSERVE_PYTHON_STUBS")};
  std::vector<std::string> argv = {"/usr/bin/python3", script, "--server", server_->address(),
                                   "--model",          kModel, "--top-k",  "2"};
  for (const std::string& path : Paths(images)) argv.push_back(path);
  const CommandResult result = RunCommand(argv, env);
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const std::vector<std::string> lines = Lines(result.out);
  ASSERT_EQ(lines.size(), 1 + 3 * images.size()) << result.out;
  EXPECT_EQ(lines[0], "model lenet5_fashion version 1");
  for (size_t i = 0; i < images.size(); ++i) {
    EXPECT_EQ(lines[1 + 3 * i], Paths(images)[i]);
    EXPECT_EQ(lines[2 + 3 * i].rfind("  1. " + served[i] + " ", 0), 0u) << lines[2 + 3 * i];
  }

  argv[5] = "no_such_model";
  const CommandResult unknown = RunCommand(argv, env);
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.err.find("NOT_FOUND"), std::string::npos) << unknown.err;
}

TEST_F(ClientsTest, HealthProbeFlag) {
  const CommandResult serving = RunCommand({Cnnserve(), "--health-probe", server_->address()});
  EXPECT_EQ(serving.exit_code, 0) << serving.err;
  EXPECT_EQ(serving.out, "SERVING\n");
  const CommandResult dead = RunCommand({Cnnserve(), "--health-probe", kDeadAddress});
  EXPECT_EQ(dead.exit_code, 1);
}

TEST(CnnserveFlagsTest, BadCommandLinesExitTwo) {
  const std::string cnnserve = (BinDir() / "cnnserve").string();
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"--bogus"},
                                             {"--threads", "many"},
                                             {"--threads", "-1"},
                                             {"--threads"},
                                             {"--address", "nohostport"},
                                             {"--address", "127.0.0.1:99999"},
                                             {"--log-level", "loud"},
                                             {"--max-receive-message-mb", "0"},
                                             {"--max-images-per-request", "0"},
                                             {"--max-pixels", "1e9"},
                                             {"--drain-timeout-s", "-3"},
                                             {"--health-probe", "x"},
                                             {"positional"}}) {
    std::vector<std::string> argv = {cnnserve};
    argv.insert(argv.end(), args.begin(), args.end());
    const CommandResult result = RunCommand(argv, {}, std::chrono::seconds(20));
    EXPECT_EQ(result.exit_code, 2) << args[0] << ": " << result.err;
    EXPECT_FALSE(result.err.empty()) << args[0];
  }
  const CommandResult help = RunCommand({cnnserve, "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("--model-repository"), std::string::npos);
  const CommandResult missing =
      RunCommand({cnnserve, "--address", "127.0.0.1:0", "--model-repository", "/no/such/repository"}, {},
                 std::chrono::seconds(60));
  EXPECT_EQ(missing.exit_code, 1) << missing.err;
}

// A second cnnserve on a port in use fails at once, before it loads a model (a repository of large models takes
// minutes to load and warm up), naming the flag; the same for a metrics or HTTP port given on the command line.
TEST_F(ClientsTest, APortInUseFailsTheStartBeforeAnyModelLoads) {
  const std::string taken = server_->address();
  const std::vector<std::string> flags = {"--address", "--metrics-address", "--http-address"};
  for (const std::string& flag : flags) {
    std::vector<std::string> argv = {Cnnserve(), "--model-repository", DefaultRepository().string()};
    for (const std::string& other : flags) {
      argv.push_back(other);
      if (other == flag) {
        argv.push_back(taken);
      } else {
        argv.push_back(other == "--address" ? "127.0.0.1:0" : "none");
      }
    }
    const CommandResult result = RunCommand(argv, {}, std::chrono::seconds(60));
    EXPECT_EQ(result.exit_code, 1) << flag << ": " << result.err;
    EXPECT_NE(result.err.find(flag + ": cannot listen on \"" + taken + "\": the port is in use"),
              std::string::npos)
        << result.err;
    EXPECT_EQ(result.err.find("READY"), std::string::npos) << flag << ": a model was loaded first:\n"
                                                           << result.err;
  }
  EXPECT_EQ(HealthStatus(taken), "SERVING");
}

}  // namespace
}  // namespace cnnserve::integration
