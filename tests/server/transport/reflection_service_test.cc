// ReflectionService::Answer on its own (the streams and their authorization run through a live server in
// tests/integration/token_auth_test.cc), and the method table of server/auth against the services the transport
// registers: every method of them has an explicit rule.
#include "server/transport/reflection_service.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "cnnserve/v1/classifier.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "inference/grpc_service.grpc.pb.h"
#include "server/auth/scope.h"

namespace cnnserve {
namespace {

using grpc::reflection::v1alpha::ServerReflectionRequest;
using grpc::reflection::v1alpha::ServerReflectionResponse;

std::vector<std::string> FileNames(const ServerReflectionResponse& response) {
  std::vector<std::string> names;
  for (const std::string& bytes : response.file_descriptor_response().file_descriptor_proto()) {
    google::protobuf::FileDescriptorProto file;
    EXPECT_TRUE(file.ParseFromString(bytes));
    names.push_back(file.name());
  }
  return names;
}

// The generated files register their descriptors when linked; these references link them into this test (in
// cnnserve the services and clients do).
void LinkTheProtos() {
  (void)v1::ClassifyRequest::descriptor();
  (void)inference::ModelInferRequest::descriptor();
  (void)grpc::health::v1::HealthCheckRequest::descriptor();
}

class ReflectionServiceTest : public ::testing::Test {
 protected:
  void SetUp() override { LinkTheProtos(); }

  ReflectionService service_{{"cnnserve.v1.Classifier", "inference.GRPCInferenceService"}, nullptr};
  std::set<std::string> sent_;
};

TEST_F(ReflectionServiceTest, ListsTheServicesAndItself) {
  ServerReflectionRequest request;
  request.set_host("h");
  request.set_list_services("*");
  const ServerReflectionResponse response = service_.Answer(request, &sent_);
  EXPECT_EQ(response.valid_host(), "h");
  EXPECT_EQ(response.original_request().list_services(), "*");
  std::vector<std::string> names;
  for (const auto& s : response.list_services_response().service()) names.push_back(s.name());
  EXPECT_EQ(names, (std::vector<std::string>{"cnnserve.v1.Classifier", "inference.GRPCInferenceService",
                                             "grpc.reflection.v1alpha.ServerReflection"}));
}

TEST_F(ReflectionServiceTest, FilesComeWithTheirImportsOncePerStream) {
  ServerReflectionRequest request;
  request.set_file_containing_symbol("inference.GRPCInferenceService.ModelInfer");
  EXPECT_EQ(FileNames(service_.Answer(request, &sent_)),
            (std::vector<std::string>{"inference/grpc_service.proto", "inference/model_config.proto"}));
  // Asked again: the file itself again, its import not (the stream has it).
  request.set_file_by_filename("inference/grpc_service.proto");
  EXPECT_EQ(FileNames(service_.Answer(request, &sent_)),
            (std::vector<std::string>{"inference/grpc_service.proto"}));
  request.set_file_by_filename("inference/model_config.proto");
  EXPECT_EQ(FileNames(service_.Answer(request, &sent_)),
            (std::vector<std::string>{"inference/model_config.proto"}));
  // A message, a field and an enum value are symbols too.
  for (const char* symbol : {"cnnserve.v1.ClassifyRequest", "cnnserve.v1.ClassifyRequest.model",
                             "grpc.health.v1.HealthCheckResponse.SERVING"}) {
    std::set<std::string> fresh;
    request.set_file_containing_symbol(symbol);
    const ServerReflectionResponse response = service_.Answer(request, &fresh);
    ASSERT_FALSE(response.has_error_response()) << symbol << ": " << response.error_response().error_message();
    EXPECT_GE(response.file_descriptor_response().file_descriptor_proto_size(), 1) << symbol;
  }
}

TEST_F(ReflectionServiceTest, UnknownNamesAndEmptyRequestsAreErrorsInTheStream) {
  ServerReflectionRequest request;
  request.set_file_containing_symbol("no.such.Symbol");
  ServerReflectionResponse response = service_.Answer(request, &sent_);
  EXPECT_EQ(response.error_response().error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(response.error_response().error_message(), "symbol \"no.such.Symbol\" not found");

  request.set_file_by_filename(std::string(5000, 'x'));
  response = service_.Answer(request, &sent_);
  EXPECT_EQ(response.error_response().error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_LT(response.error_response().error_message().size(), 300u);  // the name is cut

  request.mutable_file_containing_extension()->set_containing_type("cnnserve.v1.ClassifyRequest");
  request.mutable_file_containing_extension()->set_extension_number(1000);
  EXPECT_EQ(service_.Answer(request, &sent_).error_response().error_code(), grpc::StatusCode::NOT_FOUND);

  request.set_all_extension_numbers_of_type("cnnserve.v1.ClassifyRequest");
  response = service_.Answer(request, &sent_);
  EXPECT_EQ(response.all_extension_numbers_response().base_type_name(), "cnnserve.v1.ClassifyRequest");
  EXPECT_EQ(response.all_extension_numbers_response().extension_number_size(), 0);
  request.set_all_extension_numbers_of_type("no.Such");
  EXPECT_EQ(service_.Answer(request, &sent_).error_response().error_code(), grpc::StatusCode::NOT_FOUND);

  EXPECT_EQ(service_.Answer(ServerReflectionRequest(), &sent_).error_response().error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(sent_.empty());
}

// A new RPC in one of the protos must get its scope in server/auth/scope.cc (else it needs `all`).
TEST(MethodTableTest, EveryServedMethodHasARule) {
  LinkTheProtos();
  const google::protobuf::DescriptorPool* pool = google::protobuf::DescriptorPool::generated_pool();
  int methods = 0;
  for (const char* name :
       {v1::Classifier::service_full_name(), inference::GRPCInferenceService::service_full_name(),
        "grpc.health.v1.Health", kReflectionServiceName}) {
    const google::protobuf::ServiceDescriptor* service = pool->FindServiceByName(name);
    ASSERT_NE(service, nullptr) << name;
    for (int i = 0; i < service->method_count(); ++i, ++methods) {
      const std::string path = "/" + std::string(name) + "/" + service->method(i)->name();
      EXPECT_TRUE(auth::FindAccess(path).has_value()) << path;
    }
  }
  EXPECT_EQ(methods, 6 + 12 + 2 + 1);  // Classifier, KServe, health, reflection
}

}  // namespace
}  // namespace cnnserve
