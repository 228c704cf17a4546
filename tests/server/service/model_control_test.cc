// Model control: the mode checks, the model name checks, and what InferenceService does with them (modes, names,
// client-facing messages, strict readiness) on real repositories in temporary folders.
#include "server/service/model_control.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <future>
#include <string>
#include <vector>

#include "server/service/inference_service.h"
#include "tests/models/repository/test_repository.h"

namespace cnnserve {
namespace {

namespace fs = std::filesystem;
using ::cnnserve::testing::CopyLenet;
using ::cnnserve::testing::TempDir;
using ::cnnserve::testing::WriteFileBytes;

TEST(ModelControlModeTest, ParsesTritonsNamesOnly) {
  EXPECT_EQ(ParseModelControlMode("none"), ModelControlMode::kNone);
  EXPECT_EQ(ParseModelControlMode("explicit"), ModelControlMode::kExplicit);
  EXPECT_EQ(ParseModelControlMode("poll"), ModelControlMode::kPoll);
  for (const char* bad : {"", "None", "EXPLICIT", "polling", "explicit "}) {
    EXPECT_EQ(ParseModelControlMode(bad), std::nullopt) << bad;
  }
  for (ModelControlMode mode : {ModelControlMode::kNone, ModelControlMode::kExplicit, ModelControlMode::kPoll}) {
    EXPECT_EQ(ParseModelControlMode(ModelControlModeName(mode)), mode);
  }
}

TEST(ModelControlModeTest, OnlyExplicitAllowsLoadAndUnload) {
  struct Row {
    ModelControlMode mode;
    StatusCode code;
    const char* names;  // in the message
  };
  for (const Row& row :
       {Row{ModelControlMode::kNone, StatusCode::kFailedPrecondition, "--model-control-mode none"},
        Row{ModelControlMode::kExplicit, StatusCode::kOk, ""},
        Row{ModelControlMode::kPoll, StatusCode::kFailedPrecondition, "--model-control-mode poll"}}) {
    for (const char* operation : {"load", "unload"}) {
      const Status status = CheckModelControlAllowed(row.mode, operation);
      EXPECT_EQ(status.code(), row.code) << ModelControlModeName(row.mode) << " " << operation;
      EXPECT_NE(status.message().find(row.names), std::string::npos) << status.message();
      if (!status.ok()) {
        EXPECT_NE(status.message().find(operation), std::string::npos) << status.message();
      }
    }
  }
  EXPECT_NE(
      CheckModelControlAllowed(ModelControlMode::kNone, "load").message().find("--model-control-mode explicit"),
      std::string::npos);
}

TEST(ModelNameTest, PlainNamesPassAndPathsDoNot) {
  for (const std::string& good : std::vector<std::string>{"lenet5_fashion", "a", "model-v2.1", "x..y",
                                                          std::string(kMaxModelNameBytes, 'm')}) {
    EXPECT_TRUE(CheckModelName(good).ok()) << good << ": " << CheckModelName(good).ToString();
  }
  const std::vector<std::string> bad = {"",          ".",
                                        "..",        "../x",
                                        "a/b",       "/etc",
                                        "/abs/path", "a\\b",
                                        "..\\x",     std::string("a\0b", 3),
                                        "a\nb",      "tab\there",
                                        "del\x7f",   ".hidden",
                                        "x/",        std::string(kMaxModelNameBytes + 1, 'm')};
  for (const std::string& name : bad) {
    const Status status = CheckModelName(name);
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << name;
    EXPECT_LT(status.message().size(), 300u) << status.message();
    EXPECT_EQ(status.message().find('\n'), std::string::npos) << status.message();
    EXPECT_EQ(status.message().find(std::string(1, '\0')), std::string::npos);
  }
}

TEST(ModelNameTest, LongNamesAreNotEchoedInFull) {
  const std::string huge(100'000, 'q');
  const Status status = CheckModelName(huge);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_LT(status.message().size(), 300u);
  EXPECT_NE(status.message().find("100000 bytes"), std::string::npos) << status.message();
  EXPECT_EQ(QuotedModelName("a\x01"
                            "b"),
            "\"a\\x01b\"");
  EXPECT_EQ(QuotedModelName(std::string(70, 'z')),
            "\"" + std::string(kMaxQuotedNameBytes, 'z') + "\"... (70 bytes)");
}

class ServiceModelControlTest : public ::testing::Test {
 protected:
  std::unique_ptr<InferenceService> Create(ModelControlMode mode, bool strict_readiness = true) {
    InferenceServiceOptions options;
    options.model_repository = repo_.path().string();
    options.total_threads = 1;
    options.model_control_mode = mode;
    options.strict_readiness = strict_readiness;
    StatusOr<std::unique_ptr<InferenceService>> service = InferenceService::Create(options);
    EXPECT_TRUE(service.ok()) << service.status().ToString();
    return service.ok() ? *std::move(service) : nullptr;
  }
  // The repository's absolute path appears nowhere in `message`.
  void ExpectNoRoot(const std::string& message) {
    EXPECT_EQ(message.find(fs::absolute(repo_.path()).string()), std::string::npos) << message;
  }
  const InferenceService::VersionRow* Row(const std::vector<InferenceService::VersionRow>& rows,
                                          const std::string& name) {
    for (const InferenceService::VersionRow& row : rows) {
      if (row.name == name) return &row;
    }
    return nullptr;
  }

  TempDir repo_;
};

TEST_F(ServiceModelControlTest, NoneAndPollRefuseLoadAndUnloadNamingTheMode) {
  CopyLenet(repo_.path(), "lenet");
  for (ModelControlMode mode : {ModelControlMode::kNone, ModelControlMode::kPoll}) {
    std::unique_ptr<InferenceService> service = Create(mode);
    ASSERT_NE(service, nullptr);
    const std::string flag = "--model-control-mode " + std::string(ModelControlModeName(mode));
    for (const Status& status : {service->LoadModel("lenet"), service->UnloadModel("lenet"),
                                 service->LoadModel("../etc"), service->UnloadModel("absent")}) {
      EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition) << status.ToString();
      EXPECT_NE(status.message().find(flag), std::string::npos) << status.message();
    }
    EXPECT_TRUE(service->Find("lenet", 0).ok()) << "a refused unload changes nothing";
    EXPECT_TRUE(service->Ready());
  }
}

TEST_F(ServiceModelControlTest, ExplicitChecksNamesAndRevealsNoPaths) {
  CopyLenet(repo_.path(), "lenet");
  WriteFileBytes(repo_.path() / "plain_file", "not a model");
  std::unique_ptr<InferenceService> service = Create(ModelControlMode::kExplicit);
  ASSERT_NE(service, nullptr);
  for (const std::string& name :
       std::vector<std::string>{"../lenet", "/etc", "/var/lib/models/lenet", "a\\b", std::string("le\0net", 6),
                                std::string(5000, 'x'), ".hidden"}) {
    for (const Status& status : {service->LoadModel(name), service->UnloadModel(name)}) {
      EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status.ToString();
      EXPECT_LT(status.message().size(), 300u);
      ExpectNoRoot(status.message());
    }
  }
  // Well-formed names that are not folders of the repository: the same answer whatever is on disk.
  for (const std::string name : {"absent", "plain_file"}) {
    const Status load = service->LoadModel(name);
    EXPECT_EQ(load.code(), StatusCode::kNotFound);
    EXPECT_EQ(load.message(), "model \"" + name + "\" is not in the model repository");
    const Status unload = service->UnloadModel(name);
    EXPECT_EQ(unload.code(), StatusCode::kNotFound);
    EXPECT_EQ(unload.message(), "model \"" + name + "\" is not in the model repository");
  }
  // A broken config names the file relative to the repository.
  CopyLenet(repo_.path(), "broken");
  WriteFileBytes(repo_.path() / "broken" / "config.pbtxt", "max_batch_size: [");
  const Status broken = service->LoadModel("broken");
  EXPECT_EQ(broken.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(broken.message().rfind("broken/config.pbtxt:", 0), 0u) << broken.message();
  for (const InferenceService::VersionRow& row : service->Index()) ExpectNoRoot(row.reason);
  ExpectNoRoot(service->Find("broken", 0).status().message());
}

TEST_F(ServiceModelControlTest, ReadinessFollowsTheModelsOfTheRepository) {
  CopyLenet(repo_.path(), "a");
  CopyLenet(repo_.path(), "b");
  std::unique_ptr<InferenceService> service = Create(ModelControlMode::kExplicit);
  ASSERT_NE(service, nullptr);
  EXPECT_TRUE(service->Ready());

  ASSERT_TRUE(service->UnloadModel("a").ok());
  EXPECT_FALSE(service->Ready()) << "an unloaded model of the repository is unavailable";
  EXPECT_EQ(service->ReadyModels(), (std::vector<std::string>{"b"}));
  ASSERT_TRUE(service->LoadModel("a").ok());
  EXPECT_TRUE(service->Ready());

  // A failed reload keeps the serving version (still ready) and says why in the index.
  WriteFileBytes(repo_.path() / "a" / "config.pbtxt", "max_batch_size: [");
  EXPECT_EQ(service->LoadModel("a").code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(service->Ready());
  EXPECT_TRUE(service->Find("a", 0).ok());
  const std::vector<InferenceService::VersionRow> rows = service->Index();
  const InferenceService::VersionRow* a = Row(rows, "a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->state, "READY");
  EXPECT_EQ(a->reason.rfind("serving the previous load; the last load failed: a/config.pbtxt:", 0), 0u)
      << a->reason;

  // A new model that fails to load is listed UNAVAILABLE and counts.
  CopyLenet(repo_.path(), "c");
  WriteFileBytes(repo_.path() / "c" / "1" / "model.onnx", "truncated");
  EXPECT_EQ(service->LoadModel("c").code(), StatusCode::kUnavailable);
  EXPECT_FALSE(service->Ready());
  ASSERT_NE(Row(service->Index(), "c"), nullptr);
  EXPECT_EQ(Row(service->Index(), "c")->state, "UNAVAILABLE");
  // Retired for good: its folder deleted, then unloaded: it leaves the index and readiness.
  fs::remove_all(repo_.path() / "c");
  ASSERT_TRUE(service->UnloadModel("c").ok());
  EXPECT_EQ(Row(service->Index(), "c"), nullptr);
  EXPECT_EQ(service->Find("c", 0).status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(service->Ready());

  ASSERT_TRUE(service->Shutdown(SteadyNowMicros()).ok());
  EXPECT_FALSE(service->Ready());
}

TEST_F(ServiceModelControlTest, BrokenModelAtStartUpKeepsAStrictServerNotReady) {
  CopyLenet(repo_.path(), "good");
  CopyLenet(repo_.path(), "bad");
  WriteFileBytes(repo_.path() / "bad" / "config.pbtxt", "max_batch_size: [");
  std::unique_ptr<InferenceService> strict = Create(ModelControlMode::kNone);
  ASSERT_NE(strict, nullptr);
  EXPECT_FALSE(strict->Ready());
  EXPECT_EQ(strict->ReadyModels(), (std::vector<std::string>{"good"}));
  std::unique_ptr<InferenceService> lenient = Create(ModelControlMode::kNone, /*strict_readiness=*/false);
  ASSERT_NE(lenient, nullptr);
  EXPECT_TRUE(lenient->Ready());
}

// Infers one zero image (a raw 32x32 tensor) with member results, and waits.
StatusOr<RunResult> InferZeros(InferenceService& service, const std::string& model) {
  InferRequest request;
  request.model = model;
  request.want_member_results = true;
  const std::string zeros(32 * 32 * sizeof(float), '\0');
  request.build_items = [&zeros](const ServableInfo&, RunRequest* run) {
    run->items.push_back({ImageItem::Kind::kTensor, zeros});
    return OkStatus();
  };
  auto outcome = std::make_shared<InferOutcome>();
  std::promise<Status> done;
  service.Infer(std::move(request), outcome, [&done](Status status) { done.set_value(std::move(status)); });
  std::future<Status> future = done.get_future();
  if (future.wait_for(std::chrono::seconds(60)) != std::future_status::ready) return InternalError("no answer");
  CNN_RETURN_IF_ERROR(future.get());
  return outcome->result;
}

TEST_F(ServiceModelControlTest, AnEnsemblePicksUpAReloadedMember) {
  CopyLenet(repo_.path(), "a");
  CopyLenet(repo_.path(), "b");
  fs::create_directories(repo_.path() / "vote");
  WriteFileBytes(repo_.path() / "vote" / "config.pbtxt",
                 "name: \"vote\"\nplatform: \"ensemble\"\n"
                 "ensemble { members { model: \"a\" } members { model: \"b\" } strategy: SOFT_MEAN }\n");
  std::unique_ptr<InferenceService> service = Create(ModelControlMode::kExplicit);
  ASSERT_NE(service, nullptr);
  ASSERT_TRUE(service->Ready());
  const auto member_version = [&](const std::string& member) -> int64_t {
    StatusOr<RunResult> result = InferZeros(*service, "vote");
    EXPECT_TRUE(result.ok()) << result.status().ToString();
    if (!result.ok() || result->num_items != 1) return -1;
    for (const MemberResult& m : result->members) {
      if (m.model == member) return m.version;
    }
    return -1;
  };
  EXPECT_EQ(member_version("a"), 1);
  fs::copy(repo_.path() / "a" / "1", repo_.path() / "a" / "2", fs::copy_options::recursive);
  ASSERT_TRUE(service->LoadModel("a").ok());
  EXPECT_EQ(member_version("a"), 2);
  EXPECT_EQ(member_version("b"), 1);
}

}  // namespace
}  // namespace cnnserve
