// Token authorization through a live cnnserve (--auth-token-file): every RPC of Classifier, KServe, health and
// reflection called with no token, an unknown token and a token of each scope (and one written as sha256:HEX),
// each answer's exact status code; refusals logged without the token; reflection still usable without tokens; a
// bad token file stops the start naming the file and line.
#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cnnserve/v1/classifier.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "inference/grpc_service.grpc.pb.h"
#include "tests/integration/test_env.h"

namespace cnnserve::integration {
namespace {

using grpc::StatusCode;
using grpc::reflection::v1alpha::ServerReflection;
using grpc::reflection::v1alpha::ServerReflectionRequest;
using grpc::reflection::v1alpha::ServerReflectionResponse;
namespace kserve = ::inference;

constexpr auto kCallTimeout = std::chrono::seconds(30);
// The token of the file's sha256: line: printf %s hashed-secret-token | sha256sum
constexpr char kHashedToken[] = "hashed-secret-token";
constexpr char kHashedTokenSha256[] = "c36ddc69f325f235fc27840724d3f7caaa414a4d2f8cca83fdaee6522de1eb3b";
constexpr char kUnknownModel[] = "no_such_model_for_auth_test";

// A token per scope, named after it; the hashed token has metadata and statistics.
const std::vector<std::string> kScopes = {"infer", "metadata", "statistics", "model-control", "all"};
std::string TokenOf(const std::string& scope) { return "tok3n-" + scope + "-0123456789abcdef"; }

std::string TokenFileText() {
  std::string text = "# cnnserve test tokens\n\n";
  for (const std::string& scope : kScopes) text += TokenOf(scope) + " " + scope + "   # " + scope + " only\n";
  text += "sha256:" + std::string(kHashedTokenSha256) + " metadata, statistics\n";
  return text;
}

// What a call gets once it is past authorization: an exact code, or "anything but a refusal" for the repository
// calls whose answer depends on the model-control mode.
struct Outcome {
  std::optional<StatusCode> code;  // nullopt: any code except UNAUTHENTICATED and PERMISSION_DENIED
};

struct Stubs {
  std::unique_ptr<v1::Classifier::Stub> classifier;
  std::unique_ptr<kserve::GRPCInferenceService::Stub> kserve;
  std::unique_ptr<grpc::health::v1::Health::Stub> health;
  std::unique_ptr<ServerReflection::Stub> reflection;
};

struct Rpc {
  std::string method;  // gRPC path
  std::string scope;   // "" for open methods
  Outcome passed;      // the answer once authorized
  std::function<grpc::Status(Stubs&, grpc::ClientContext*)> call;
};

template <typename Stream, typename Request, typename Response>
grpc::Status OneStreamRequest(Stream stream, const Request& request, Response* response) {
  (void)stream->Write(request);  // false when the server already ended the stream
  (void)stream->WritesDone();
  while (stream->Read(response)) {
  }
  return stream->Finish();
}

std::vector<Rpc> AllRpcs(const LabeledImage& image) {
  const Outcome ok{StatusCode::OK};
  std::vector<Rpc> rpcs;
  // cnnserve.v1.Classifier
  rpcs.push_back({"/cnnserve.v1.Classifier/Classify", "infer", ok, [image](Stubs& s, grpc::ClientContext* c) {
                    v1::ClassifyResponse response;
                    return s.classifier->Classify(c, ImageRequest({&image}, 1), &response);
                  }});
  rpcs.push_back(
      {"/cnnserve.v1.Classifier/ClassifyStream", "infer", ok, [image](Stubs& s, grpc::ClientContext* c) {
         v1::ClassifyResponse response;
         return OneStreamRequest(s.classifier->ClassifyStream(c), ImageRequest({&image}, 1), &response);
       }});
  rpcs.push_back({"/cnnserve.v1.Classifier/ListModels", "metadata", ok, [](Stubs& s, grpc::ClientContext* c) {
                    v1::ListModelsResponse response;
                    return s.classifier->ListModels(c, v1::ListModelsRequest(), &response);
                  }});
  rpcs.push_back({"/cnnserve.v1.Classifier/DescribeModel", "metadata", ok, [](Stubs& s, grpc::ClientContext* c) {
                    v1::DescribeModelRequest request;
                    request.set_model(kModel);
                    v1::DescribeModelResponse response;
                    return s.classifier->DescribeModel(c, request, &response);
                  }});
  rpcs.push_back({"/cnnserve.v1.Classifier/Explain", "infer", ok, [image](Stubs& s, grpc::ClientContext* c) {
                    v1::ExplainRequest request;
                    request.set_model(kModel);
                    *request.mutable_input() = ImageRequest({&image}, 1).inputs(0);
                    request.set_patch(8);
                    request.set_stride(8);
                    v1::ExplainResponse response;
                    return s.classifier->Explain(c, request, &response);
                  }});
  rpcs.push_back({"/cnnserve.v1.Classifier/Embed", "infer", ok, [image](Stubs& s, grpc::ClientContext* c) {
                    v1::EmbedRequest request;
                    request.set_model(kModel);
                    request.set_layer("relu4");
                    *request.add_inputs() = ImageRequest({&image}, 1).inputs(0);
                    v1::EmbedResponse response;
                    return s.classifier->Embed(c, request, &response);
                  }});
  // inference.GRPCInferenceService
  const std::string k = "/inference.GRPCInferenceService/";
  rpcs.push_back({k + "ServerLive", "", ok, [](Stubs& s, grpc::ClientContext* c) {
                    kserve::ServerLiveResponse response;
                    return s.kserve->ServerLive(c, kserve::ServerLiveRequest(), &response);
                  }});
  rpcs.push_back({k + "ServerReady", "", ok, [](Stubs& s, grpc::ClientContext* c) {
                    kserve::ServerReadyResponse response;
                    return s.kserve->ServerReady(c, kserve::ServerReadyRequest(), &response);
                  }});
  rpcs.push_back({k + "ModelReady", "metadata", ok, [](Stubs& s, grpc::ClientContext* c) {
                    kserve::ModelReadyRequest request;
                    request.set_name(kModel);
                    kserve::ModelReadyResponse response;
                    return s.kserve->ModelReady(c, request, &response);
                  }});
  rpcs.push_back({k + "ServerMetadata", "metadata", ok, [](Stubs& s, grpc::ClientContext* c) {
                    kserve::ServerMetadataResponse response;
                    return s.kserve->ServerMetadata(c, kserve::ServerMetadataRequest(), &response);
                  }});
  rpcs.push_back({k + "ModelMetadata", "metadata", ok, [](Stubs& s, grpc::ClientContext* c) {
                    kserve::ModelMetadataRequest request;
                    request.set_name(kModel);
                    kserve::ModelMetadataResponse response;
                    return s.kserve->ModelMetadata(c, request, &response);
                  }});
  rpcs.push_back({k + "ModelConfig", "metadata", ok, [](Stubs& s, grpc::ClientContext* c) {
                    kserve::ModelConfigRequest request;
                    request.set_name(kModel);
                    kserve::ModelConfigResponse response;
                    return s.kserve->ModelConfig(c, request, &response);
                  }});
  rpcs.push_back({k + "RepositoryIndex", "metadata", ok, [](Stubs& s, grpc::ClientContext* c) {
                    kserve::RepositoryIndexResponse response;
                    return s.kserve->RepositoryIndex(c, kserve::RepositoryIndexRequest(), &response);
                  }});
  // An empty request: INVALID_ARGUMENT proves the call got past authorization without running anything.
  rpcs.push_back(
      {k + "ModelInfer", "infer", Outcome{StatusCode::INVALID_ARGUMENT}, [](Stubs& s, grpc::ClientContext* c) {
         kserve::ModelInferResponse response;
         return s.kserve->ModelInfer(c, kserve::ModelInferRequest(), &response);
       }});
  // A failed request travels in the stream (error_message); the stream itself ends OK.
  rpcs.push_back({k + "ModelStreamInfer", "infer", ok, [](Stubs& s, grpc::ClientContext* c) {
                    kserve::ModelStreamInferResponse response;
                    return OneStreamRequest(s.kserve->ModelStreamInfer(c), kserve::ModelInferRequest(), &response);
                  }});
  rpcs.push_back({k + "ModelStatistics", "statistics", ok, [](Stubs& s, grpc::ClientContext* c) {
                    kserve::ModelStatisticsResponse response;
                    return s.kserve->ModelStatistics(c, kserve::ModelStatisticsRequest(), &response);
                  }});
  // An unknown model: nothing is loaded or unloaded whatever the model-control mode answers.
  rpcs.push_back({k + "RepositoryModelLoad", "model-control", Outcome{}, [](Stubs& s, grpc::ClientContext* c) {
                    kserve::RepositoryModelLoadRequest request;
                    request.set_model_name(kUnknownModel);
                    kserve::RepositoryModelLoadResponse response;
                    return s.kserve->RepositoryModelLoad(c, request, &response);
                  }});
  rpcs.push_back({k + "RepositoryModelUnload", "model-control", Outcome{}, [](Stubs& s, grpc::ClientContext* c) {
                    kserve::RepositoryModelUnloadRequest request;
                    request.set_model_name(kUnknownModel);
                    kserve::RepositoryModelUnloadResponse response;
                    return s.kserve->RepositoryModelUnload(c, request, &response);
                  }});
  // grpc.health.v1.Health: open.
  rpcs.push_back({"/grpc.health.v1.Health/Check", "", ok, [](Stubs& s, grpc::ClientContext* c) {
                    grpc::health::v1::HealthCheckResponse response;
                    return s.health->Check(c, grpc::health::v1::HealthCheckRequest(), &response);
                  }});
  rpcs.push_back({"/grpc.health.v1.Health/Watch", "", ok, [](Stubs& s, grpc::ClientContext* c) {
                    auto reader = s.health->Watch(c, grpc::health::v1::HealthCheckRequest());
                    grpc::health::v1::HealthCheckResponse response;
                    const bool got = reader->Read(&response);  // the current status comes at once
                    c->TryCancel();
                    const grpc::Status status = reader->Finish();
                    return got ? grpc::Status::OK : status;
                  }});
  // Reflection: metadata.
  rpcs.push_back({"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", "metadata", ok,
                  [](Stubs& s, grpc::ClientContext* c) {
                    ServerReflectionRequest request;
                    request.set_list_services("");
                    ServerReflectionResponse response;
                    return OneStreamRequest(s.reflection->ServerReflectionInfo(c), request, &response);
                  }});
  return rpcs;
}

std::string CodeName(StatusCode code) {
  static const std::map<StatusCode, std::string> kNames = {
      {StatusCode::OK, "OK"},
      {StatusCode::INVALID_ARGUMENT, "INVALID_ARGUMENT"},
      {StatusCode::NOT_FOUND, "NOT_FOUND"},
      {StatusCode::PERMISSION_DENIED, "PERMISSION_DENIED"},
      {StatusCode::UNAUTHENTICATED, "UNAUTHENTICATED"},
      {StatusCode::FAILED_PRECONDITION, "FAILED_PRECONDITION"},
      {StatusCode::UNIMPLEMENTED, "UNIMPLEMENTED"},
      {StatusCode::UNAVAILABLE, "UNAVAILABLE"}};
  const auto it = kNames.find(code);
  return it == kNames.end() ? "code " + std::to_string(static_cast<int>(code)) : it->second;
}

class TokenAuthTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    WriteFileBytes(dir_->path() / "tokens.txt", TokenFileText());
    server_ = ServerProcess::Start({"--model-repository", DefaultRepository().string(), "--auth-token-file",
                                    (dir_->path() / "tokens.txt").string()})
                  .release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(server_, nullptr) << "the server did not start"; }

  static Stubs NewStubs(const ServerProcess& server) {
    std::shared_ptr<grpc::Channel> channel = server.NewChannel();
    return Stubs{v1::Classifier::NewStub(channel), kserve::GRPCInferenceService::NewStub(channel),
                 grpc::health::v1::Health::NewStub(channel), ServerReflection::NewStub(channel)};
  }

  static grpc::Status Call(const Rpc& rpc, Stubs& stubs, const std::optional<std::string>& authorization) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + kCallTimeout);
    if (authorization) context.AddMetadata("authorization", *authorization);
    return rpc.call(stubs, &context);
  }

  static TempDir* dir_;
  static ServerProcess* server_;
};
TempDir* TokenAuthTest::dir_ = nullptr;
ServerProcess* TokenAuthTest::server_ = nullptr;

// The table covers every method of every service the server registers.
TEST_F(TokenAuthTest, TheTableCoversEveryRpc) {
  const std::vector<LabeledImage> images = LoadImages(".png", 1);
  std::set<std::string> table;
  for (const Rpc& rpc : AllRpcs(images[0])) table.insert(rpc.method);
  const google::protobuf::DescriptorPool* pool = google::protobuf::DescriptorPool::generated_pool();
  int methods = 0;
  for (const char* service : {"cnnserve.v1.Classifier", "inference.GRPCInferenceService", "grpc.health.v1.Health",
                              "grpc.reflection.v1alpha.ServerReflection"}) {
    const google::protobuf::ServiceDescriptor* descriptor = pool->FindServiceByName(service);
    ASSERT_NE(descriptor, nullptr) << service;
    for (int i = 0; i < descriptor->method_count(); ++i, ++methods) {
      const std::string path = "/" + std::string(service) + "/" + descriptor->method(i)->name();
      EXPECT_EQ(table.count(path), 1u) << path << " is missing from the table";
    }
  }
  EXPECT_EQ(static_cast<int>(table.size()), methods);
}

TEST_F(TokenAuthTest, EveryRpcWithEveryKindOfToken) {
  const std::vector<LabeledImage> images = LoadImages(".png", 1);
  Stubs stubs = NewStubs(*server_);
  struct Column {
    std::string name;
    std::optional<std::string> authorization;
    std::set<std::string> scopes;  // empty with a header: the token is unknown
  };
  std::vector<Column> columns = {
      {"no token", std::nullopt, {}},
      {"unknown token", "Bearer tok3n-unknown-0123456789abcdef", {}},
      {"sha256 token", "Bearer " + std::string(kHashedToken), {"metadata", "statistics"}}};
  for (const std::string& scope : kScopes) {
    std::set<std::string> granted = {scope};
    if (scope == "all") granted = {"infer", "metadata", "statistics", "model-control"};
    columns.push_back({"token with " + scope, "Bearer " + TokenOf(scope), granted});
  }
  for (const Rpc& rpc : AllRpcs(images[0])) {
    for (const Column& column : columns) {
      const grpc::Status status = Call(rpc, stubs, column.authorization);
      const std::string where = rpc.method + " with " + column.name + ": got " + CodeName(status.error_code()) +
                                " (" + status.error_message() + ")";
      const bool passes = rpc.scope.empty() || column.scopes.count(rpc.scope) > 0;
      if (!passes) {
        const StatusCode refusal =
            column.scopes.empty() ? StatusCode::UNAUTHENTICATED : StatusCode::PERMISSION_DENIED;
        EXPECT_EQ(status.error_code(), refusal) << where;
        if (refusal == StatusCode::PERMISSION_DENIED) {
          EXPECT_NE(status.error_message().find("lacks scope \"" + rpc.scope + "\""), std::string::npos) << where;
        } else {
          EXPECT_NE(status.error_message().find("Bearer TOKEN"), std::string::npos) << where;
        }
      } else if (rpc.passed.code) {
        EXPECT_EQ(status.error_code(), *rpc.passed.code) << where;
      } else {
        EXPECT_NE(status.error_code(), StatusCode::UNAUTHENTICATED) << where;
        EXPECT_NE(status.error_code(), StatusCode::PERMISSION_DENIED) << where;
        EXPECT_NE(status.error_code(), StatusCode::OK) << where;  // the model does not exist
      }
    }
  }
  // Refusals are logged with the method; no token ever appears in the log.
  const std::string log = server_->Log();
  EXPECT_NE(log.find("refused /inference.GRPCInferenceService/RepositoryModelUnload"), std::string::npos) << log;
  for (const std::string& scope : kScopes) EXPECT_EQ(log.find(TokenOf(scope)), std::string::npos);
  EXPECT_EQ(log.find(kHashedToken), std::string::npos);
  EXPECT_EQ(log.find("tok3n-unknown"), std::string::npos);
  EXPECT_NE(log.find("token authorization on (6 token(s) from"), std::string::npos) << log;
}

// A refused ClassifyStream answers nothing: the request written is never classified.
TEST_F(TokenAuthTest, ARefusedStreamReturnsNoResponse) {
  const std::vector<LabeledImage> images = LoadImages(".png", 1);
  Stubs stubs = NewStubs(*server_);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + kCallTimeout);
  context.AddMetadata("authorization", "Bearer " + TokenOf("metadata"));
  auto stream = stubs.classifier->ClassifyStream(&context);
  (void)stream->Write(ImageRequest({&images[0]}, 1));
  (void)stream->WritesDone();
  v1::ClassifyResponse response;
  EXPECT_FALSE(stream->Read(&response));
  EXPECT_EQ(stream->Finish().error_code(), StatusCode::PERMISSION_DENIED);
}

// Without a token file, reflection works as grpcurl uses it: list the services, then fetch a service's file.
TEST(ReflectionTest, WorksWithoutTokensAndDescribesTheServices) {
  auto server = ServerProcess::Start({"--model-repository", DefaultRepository().string()});
  ASSERT_NE(server, nullptr);
  auto stub = ServerReflection::NewStub(server->NewChannel());
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + kCallTimeout);
  auto stream = stub->ServerReflectionInfo(&context);
  ServerReflectionRequest list;
  list.set_list_services("");
  ASSERT_TRUE(stream->Write(list));
  ServerReflectionResponse listed;
  ASSERT_TRUE(stream->Read(&listed));
  std::set<std::string> services;
  for (const auto& service : listed.list_services_response().service()) services.insert(service.name());
  EXPECT_EQ(services,
            (std::set<std::string>{"cnnserve.v1.Classifier", "inference.GRPCInferenceService",
                                   "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"}));

  ServerReflectionRequest symbol;
  symbol.set_file_containing_symbol("cnnserve.v1.Classifier.Classify");
  ASSERT_TRUE(stream->Write(symbol));
  ServerReflectionResponse described;
  ASSERT_TRUE(stream->Read(&described));
  ASSERT_GE(described.file_descriptor_response().file_descriptor_proto_size(), 1);
  google::protobuf::FileDescriptorProto file;
  ASSERT_TRUE(file.ParseFromString(described.file_descriptor_response().file_descriptor_proto(0)));
  EXPECT_EQ(file.name(), "cnnserve/v1/classifier.proto");
  ASSERT_GE(file.service_size(), 1);
  EXPECT_EQ(file.service(0).name(), "Classifier");

  ServerReflectionRequest unknown;
  unknown.set_file_containing_symbol("no.such.Symbol");
  ASSERT_TRUE(stream->Write(unknown));
  ServerReflectionResponse missing;
  ASSERT_TRUE(stream->Read(&missing));
  EXPECT_EQ(missing.error_response().error_code(), static_cast<int>(StatusCode::NOT_FOUND));
  ASSERT_TRUE(stream->WritesDone());
  EXPECT_TRUE(stream->Finish().ok());
}

// A bad token file stops the start (exit 1) naming the file and the line, never the token.
TEST(TokenFileStartTest, BadTokenFilesStopTheStart) {
  TempDir dir;
  const std::string secret = "v3ry-s3cret-token";
  struct Case {
    std::string text;
    std::string expected;  // in stderr, after the file name
  };
  const std::vector<Case> cases = {
      {"# tokens\n" + secret + " infer,admin\n", ":2: scope 2 is unknown"},
      {secret + "\n", ":1: a token needs its scopes"},
      {"sha256:abc infer\n", ":1: sha256: must be followed by exactly 64 hex digits"},
      {secret + " infer\n" + secret + " all\n", ":2: the same token as line 1"},
      {"# nothing\n", ": holds no token"},
  };
  const std::string file = (dir.path() / "tokens.txt").string();
  for (const Case& c : cases) {
    WriteFileBytes(file, c.text);
    const CommandResult result =
        RunCommand({(BinDir() / "cnnserve").string(), "--address", "127.0.0.1:0", "--metrics-address", "none",
                    "--model-repository", DefaultRepository().string(), "--auth-token-file", file},
                   {}, std::chrono::seconds(120));
    EXPECT_EQ(result.exit_code, 1) << c.text << result.err;
    EXPECT_NE(result.err.find(file + c.expected), std::string::npos) << c.text << result.err;
    EXPECT_EQ(result.err.find(secret), std::string::npos) << result.err;
  }
  const CommandResult missing =
      RunCommand({(BinDir() / "cnnserve").string(), "--address", "127.0.0.1:0", "--metrics-address", "none",
                  "--auth-token-file", (dir.path() / "missing").string()},
                 {}, std::chrono::seconds(120));
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find((dir.path() / "missing").string() + ": cannot read"), std::string::npos)
      << missing.err;
}

}  // namespace
}  // namespace cnnserve::integration
