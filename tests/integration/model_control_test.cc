// Model control against a real cnnserve under load (build/bin/cnnload keeping 8 requests in flight):
//   poll mode (--repository-poll-secs 1) on a temporary repository: a version 2 is added (then served by
//   default), version 1 removed, another model added and removed; every change must be visible within two poll
//   periods, and cnnload must report 0 failed requests;
//   explicit mode: three loads of the serving model under load, 0 failed requests; an unload takes the server
//   out of rotation (ServerReady false, health NOT_SERVING: strict readiness) and a load brings it back.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "inference/grpc_service.grpc.pb.h"
#include "tests/integration/test_env.h"

namespace cnnserve::integration {
namespace {

namespace fs = std::filesystem;
using std::chrono::steady_clock;

constexpr int kPollSecs = 1;
constexpr double kVisibleWithinS = 2.0 * kPollSecs;  // two poll periods
constexpr char kOtherModel[] = "lenet5_fashion_s1";
constexpr int kInFlight = 8;
constexpr int kLoadSeconds = 15;

// cnnload on `model` with kInFlight requests in flight for `seconds`, on a thread of its own; Join returns its
// single JSON row.
class Load {
 public:
  Load(const std::string& address, const std::string& model, int seconds) {
    thread_ = std::thread([this, address, model, seconds] {
      // PNG files: each request decodes on the server before it is scheduled, which widens any window between
      // finding a servable and running it.
      result_ = RunCommand({(BinDir() / "cnnload").string(), "--server", address, "--quiet", "--json", "--model",
                            model, "--images", TestDataDir().string(), "--batch", "4", "--concurrency",
                            std::to_string(kInFlight), "--warmup", "0", "--duration", std::to_string(seconds)},
                           {}, std::chrono::seconds(seconds + 120));
    });
  }
  ~Load() {
    if (thread_.joinable()) thread_.join();
  }
  google::protobuf::Struct Join() {
    thread_.join();
    EXPECT_EQ(result_.exit_code, 0) << result_.err;
    google::protobuf::Struct doc;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(result_.out, &doc).ok()) << result_.out;
    const auto& rows = doc.fields().at("rows").list_value();
    EXPECT_EQ(rows.values_size(), 1);
    return rows.values_size() == 1 ? rows.values(0).struct_value() : google::protobuf::Struct();
  }

 private:
  CommandResult result_;
  std::thread thread_;
};

void ExpectNoFailures(const google::protobuf::Struct& row) {
  const auto& r = row.fields();
  ASSERT_TRUE(r.count("ok_requests"));
  std::printf("cnnload: %.0f OK requests, %.0f errors, %.0f requests/s\n", r.at("ok_requests").number_value(),
              r.at("error_count").number_value(), r.at("requests_per_s").number_value());
  EXPECT_GT(r.at("ok_requests").number_value(), 100);
  EXPECT_EQ(r.at("error_count").number_value(), 0);
  EXPECT_EQ(r.at("errors").struct_value().fields_size(), 0);
}

// Seconds until `visible` holds (checked every 20 ms), or -1 after 30 s.
double SecondsUntil(const std::function<bool()>& visible) {
  const auto start = steady_clock::now();
  while (!visible()) {
    if (steady_clock::now() - start > std::chrono::seconds(30)) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return std::chrono::duration<double>(steady_clock::now() - start).count();
}

// "READY" / "UNAVAILABLE" / ... of `model` at `version` in ListModels; "" when not listed.
std::string VersionState(v1::Classifier::Stub& stub, const std::string& model, int64_t version) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::ListModelsResponse list;
  if (!stub.ListModels(&context, {}, &list).ok()) return "error";
  for (const v1::ModelSummary& m : list.models()) {
    if (m.name() != model) continue;
    for (const v1::ModelVersionState& v : m.versions()) {
      if (v.version() == version) return v.state();
    }
  }
  return "";
}

bool Listed(v1::Classifier::Stub& stub, const std::string& model) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::ListModelsResponse list;
  if (!stub.ListModels(&context, {}, &list).ok()) return true;
  for (const v1::ModelSummary& m : list.models()) {
    if (m.name() == model) return true;
  }
  return false;
}

// Copies `from` to a staging folder beside the repository, then renames it to `to` (atomic, as documented in
// models/repository/README.md).
void CopyAtomically(const fs::path& from, const fs::path& staging, const fs::path& to) {
  fs::remove_all(staging);
  fs::copy(from, staging, fs::copy_options::recursive);
  fs::rename(staging, to);
}

TEST(ModelControlTest, PollModeFollowsTheRepositoryUnderLoadWithoutFailures) {
  TempDir repo;
  TempDir staging;
  const fs::path model = repo.path() / kModel;
  fs::copy(DefaultRepository() / kModel, model, fs::copy_options::recursive);
  auto server = ServerProcess::Start({"--model-repository", repo.path().string(), "--model-control-mode", "poll",
                                      "--repository-poll-secs", std::to_string(kPollSecs)});
  ASSERT_NE(server, nullptr);
  auto stub = server->NewStub();
  const std::vector<LabeledImage> png = LoadImages(".png", 1);

  const auto start = steady_clock::now();
  Load load(server->address(), kModel, kLoadSeconds);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // cnnload connected and sending

  // 1. Version 2 appears: READY, and the default.
  CopyAtomically(model / "1", staging.path() / "v", model / "2");
  const double added = SecondsUntil([&] { return VersionState(*stub, kModel, 2) == "READY"; });
  v1::ClassifyResponse response;
  ASSERT_TRUE(Classify(*stub, ImageRequest({&png[0]}), &response).ok());
  EXPECT_EQ(response.version(), 2);
  // 2. Version 1 removed (moved out of the repository in one step).
  fs::rename(model / "1", staging.path() / "old_version");
  const double removed = SecondsUntil([&] { return VersionState(*stub, kModel, 1).empty(); });
  // 3. Another model added, then 4. removed.
  CopyAtomically(DefaultRepository() / kOtherModel, staging.path() / "m", repo.path() / kOtherModel);
  const double model_added = SecondsUntil([&] { return VersionState(*stub, kOtherModel, 1) == "READY"; });
  fs::rename(repo.path() / kOtherModel, staging.path() / "gone");
  const double model_removed = SecondsUntil([&] { return !Listed(*stub, kOtherModel); });
  const double changes_done_s = std::chrono::duration<double>(steady_clock::now() - start).count();

  std::printf(
      "visible after: version added %.2f s, version removed %.2f s, model added %.2f s, model removed "
      "%.2f s (poll period %d s)\n",
      added, removed, model_added, model_removed, kPollSecs);
  for (double seconds : {added, removed, model_added, model_removed}) {
    EXPECT_GE(seconds, 0) << "a change was never visible";
    EXPECT_LE(seconds, kVisibleWithinS);
  }
  EXPECT_LT(changes_done_s, kLoadSeconds) << "the changes must happen while cnnload runs";
  ExpectNoFailures(load.Join());
  EXPECT_EQ(HealthStatus(server->address()), "SERVING");
  ASSERT_TRUE(Classify(*stub, ImageRequest({&png[0]}), &response).ok());
  EXPECT_EQ(response.version(), 2);

  // Load/unload RPCs are refused in poll mode, naming the mode.
  auto kserve = inference::GRPCInferenceService::NewStub(server->NewChannel());
  grpc::ClientContext context;
  inference::RepositoryModelLoadRequest request;
  request.set_model_name(kModel);
  inference::RepositoryModelLoadResponse loaded;
  const grpc::Status refused = kserve->RepositoryModelLoad(&context, request, &loaded);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(refused.error_message().find("--model-control-mode poll"), std::string::npos)
      << refused.error_message();
}

grpc::Status RepositoryCall(inference::GRPCInferenceService::Stub& stub, bool load, const std::string& model) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  if (load) {
    inference::RepositoryModelLoadRequest request;
    request.set_model_name(model);
    inference::RepositoryModelLoadResponse response;
    return stub.RepositoryModelLoad(&context, request, &response);
  }
  inference::RepositoryModelUnloadRequest request;
  request.set_model_name(model);
  inference::RepositoryModelUnloadResponse response;
  return stub.RepositoryModelUnload(&context, request, &response);
}

bool ServerReady(inference::GRPCInferenceService::Stub& stub) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  inference::ServerReadyResponse response;
  return stub.ServerReady(&context, {}, &response).ok() && response.ready();
}

TEST(ModelControlTest, ExplicitReloadsUnderLoadWithoutFailuresAndUnloadLeavesRotation) {
  constexpr int kCycles = 3;
  TempDir repo;
  fs::copy(DefaultRepository() / kModel, repo.path() / kModel, fs::copy_options::recursive);
  fs::copy(DefaultRepository() / kOtherModel, repo.path() / kOtherModel, fs::copy_options::recursive);
  auto server =
      ServerProcess::Start({"--model-repository", repo.path().string(), "--model-control-mode", "explicit"});
  ASSERT_NE(server, nullptr);
  auto kserve = inference::GRPCInferenceService::NewStub(server->NewChannel());

  {
    Load load(server->address(), kModel, 10);
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    for (int cycle = 0; cycle < kCycles; ++cycle) {
      const grpc::Status status = RepositoryCall(*kserve, /*load=*/true, kModel);
      EXPECT_TRUE(status.ok()) << "cycle " << cycle << ": " << status.error_message();
      EXPECT_TRUE(ServerReady(*kserve)) << "a reload never takes the server out of rotation";
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    ExpectNoFailures(load.Join());
  }

  // Strict readiness: an unloaded model of the repository takes the server out of rotation until it is loaded.
  ASSERT_TRUE(RepositoryCall(*kserve, /*load=*/false, kOtherModel).ok());
  EXPECT_FALSE(ServerReady(*kserve));
  EXPECT_GE(SecondsUntil([&] { return HealthStatus(server->address()) == "NOT_SERVING"; }), 0);
  ASSERT_TRUE(RepositoryCall(*kserve, /*load=*/true, kOtherModel).ok());
  EXPECT_TRUE(ServerReady(*kserve));
  EXPECT_GE(SecondsUntil([&] { return HealthStatus(server->address()) == "SERVING"; }), 0);

  // Names are names: paths are INVALID_ARGUMENT, unknown names NOT_FOUND, and neither reveals the repository.
  for (const std::string& name :
       {std::string("../") + kModel, std::string("/etc/passwd"), std::string(4000, 'x')}) {
    const grpc::Status status = RepositoryCall(*kserve, /*load=*/true, name);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    EXPECT_LT(status.error_message().size(), 300u);
    EXPECT_EQ(status.error_message().find(repo.path().string()), std::string::npos) << status.error_message();
  }
  const grpc::Status missing = RepositoryCall(*kserve, /*load=*/true, "no_such_model");
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(missing.error_message(), "model \"no_such_model\" is not in the model repository");
}

TEST(ModelControlFlagsTest, BadValuesExitTwoNamingTheFlag) {
  const std::string cnnserve = (BinDir() / "cnnserve").string();
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"--model-control-mode", "EXPLICIT"},
                                             {"--model-control-mode", ""},
                                             {"--model-control-mode"},
                                             {"--repository-poll-secs", "0"},
                                             {"--repository-poll-secs", "3601"},
                                             {"--repository-poll-secs", "1.5"},
                                             {"--strict-readiness", "yes"},
                                             {"--strict-readiness", "1"}}) {
    std::vector<std::string> argv = {cnnserve};
    argv.insert(argv.end(), args.begin(), args.end());
    const CommandResult result = RunCommand(argv, {}, std::chrono::seconds(20));
    EXPECT_EQ(result.exit_code, 2) << args[0] << ": " << result.err;
    EXPECT_NE(result.err.find(args[0]), std::string::npos) << result.err;
  }
  const CommandResult help = RunCommand({cnnserve, "--help"});
  EXPECT_EQ(help.exit_code, 0);
  for (const char* flag : {"--model-control-mode", "--repository-poll-secs", "--strict-readiness"}) {
    EXPECT_NE(help.out.find(flag), std::string::npos) << flag;
  }
}

}  // namespace
}  // namespace cnnserve::integration
