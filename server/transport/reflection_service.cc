#include "server/transport/reflection_service.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>

#include <algorithm>
#include <utility>

#include "engine/common/strings.h"

namespace cnnserve {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::DescriptorPool;
using google::protobuf::FieldDescriptor;
using google::protobuf::FileDescriptor;
using grpc::reflection::v1alpha::ServerReflectionRequest;
using grpc::reflection::v1alpha::ServerReflectionResponse;

// Names come from the client: a message quotes at most this many bytes of one (engine/common/strings.h).
constexpr size_t kMaxQuotedNameBytes = 200;

void SetError(grpc::StatusCode code, const std::string& message, ServerReflectionResponse* response) {
  response->mutable_error_response()->set_error_code(static_cast<int32_t>(code));
  response->mutable_error_response()->set_error_message(message);
}

// Adds `file` and then, depth first, the files it imports, skipping what `sent` already holds.
void AddFileAndImports(const FileDescriptor* file, std::set<std::string>* sent,
                       ServerReflectionResponse* response) {
  if (!sent->insert(file->name()).second) return;
  google::protobuf::FileDescriptorProto proto;
  file->CopyTo(&proto);
  proto.SerializeToString(response->mutable_file_descriptor_response()->add_file_descriptor_proto());
  for (int i = 0; i < file->dependency_count(); ++i) AddFileAndImports(file->dependency(i), sent, response);
}

// Answers with `file`, or NOT_FOUND naming `what` when it is null.
void AnswerFile(const FileDescriptor* file, const std::string& what, std::set<std::string>* sent,
                ServerReflectionResponse* response) {
  if (file == nullptr) return SetError(grpc::StatusCode::NOT_FOUND, what + " not found", response);
  // A file this stream sent before is sent again (the client asked for it), without repeating its imports.
  sent->erase(file->name());
  AddFileAndImports(file, sent, response);
}

// The reactor of one stream: read a request, write its answer, read the next; OK when the client is done.
class ReflectionReactor final : public grpc::ServerBidiReactor<ServerReflectionRequest, ServerReflectionResponse> {
 public:
  explicit ReflectionReactor(const ReflectionService* service) : service_(service) { StartRead(&request_); }

  void OnReadDone(bool ok) override {
    if (!ok) return Finish(grpc::Status::OK);  // the client half-closed (or went away)
    response_ = service_->Answer(request_, &sent_files_);
    StartWrite(&response_);
  }
  void OnWriteDone(bool ok) override {
    if (!ok) return Finish(grpc::Status(grpc::StatusCode::CANCELLED, "ServerReflectionInfo: writing failed"));
    StartRead(&request_);
  }
  void OnDone() override { delete this; }

 private:
  const ReflectionService* const service_;
  ServerReflectionRequest request_;
  ServerReflectionResponse response_;
  std::set<std::string> sent_files_;
};

}  // namespace

ReflectionService::ReflectionService(std::vector<std::string> service_names,
                                     std::shared_ptr<const auth::Authorizer> authorizer)
    : service_names_(std::move(service_names)), auth_(std::move(authorizer)) {
  if (std::find(service_names_.begin(), service_names_.end(), kReflectionServiceName) == service_names_.end()) {
    service_names_.push_back(kReflectionServiceName);
  }
}

grpc::ServerBidiReactor<ServerReflectionRequest, ServerReflectionResponse>*
ReflectionService::ServerReflectionInfo(grpc::CallbackServerContext* context) {
  if (auto* refused = auth_.RefuseStream<ServerReflectionRequest, ServerReflectionResponse>(
          context, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")) {
    return refused;
  }
  return new ReflectionReactor(this);
}

ServerReflectionResponse ReflectionService::Answer(const ServerReflectionRequest& request,
                                                   std::set<std::string>* sent_files) const {
  const DescriptorPool* pool = DescriptorPool::generated_pool();
  ServerReflectionResponse response;
  response.set_valid_host(request.host());
  *response.mutable_original_request() = request;
  switch (request.message_request_case()) {
    case ServerReflectionRequest::kListServices:
      for (const std::string& name : service_names_) {
        response.mutable_list_services_response()->add_service()->set_name(name);
      }
      break;
    case ServerReflectionRequest::kFileByFilename:
      AnswerFile(pool->FindFileByName(request.file_by_filename()),
                 "file " + Quoted(request.file_by_filename(), kMaxQuotedNameBytes), sent_files, &response);
      break;
    case ServerReflectionRequest::kFileContainingSymbol:
      AnswerFile(pool->FindFileContainingSymbol(request.file_containing_symbol()),
                 "symbol " + Quoted(request.file_containing_symbol(), kMaxQuotedNameBytes), sent_files, &response);
      break;
    case ServerReflectionRequest::kFileContainingExtension: {
      const std::string& type = request.file_containing_extension().containing_type();
      const int32_t number = request.file_containing_extension().extension_number();
      const Descriptor* message = pool->FindMessageTypeByName(type);
      const FieldDescriptor* extension =
          message == nullptr ? nullptr : pool->FindExtensionByNumber(message, number);
      AnswerFile(extension == nullptr ? nullptr : extension->file(),
                 "extension " + std::to_string(number) + " of " + Quoted(type, kMaxQuotedNameBytes), sent_files,
                 &response);
      break;
    }
    case ServerReflectionRequest::kAllExtensionNumbersOfType: {
      const Descriptor* message = pool->FindMessageTypeByName(request.all_extension_numbers_of_type());
      if (message == nullptr) {
        SetError(grpc::StatusCode::NOT_FOUND,
                 "type " + Quoted(request.all_extension_numbers_of_type(), kMaxQuotedNameBytes) + " not found",
                 &response);
        break;
      }
      std::vector<const FieldDescriptor*> extensions;
      pool->FindAllExtensions(message, &extensions);
      std::vector<int32_t> numbers;
      for (const FieldDescriptor* extension : extensions) numbers.push_back(extension->number());
      std::sort(numbers.begin(), numbers.end());
      auto* answer = response.mutable_all_extension_numbers_response();
      answer->set_base_type_name(message->full_name());
      for (int32_t number : numbers) answer->add_extension_number(number);
      break;
    }
    case ServerReflectionRequest::MESSAGE_REQUEST_NOT_SET:
      SetError(grpc::StatusCode::INVALID_ARGUMENT, "the request names no kind of reflection request", &response);
      break;
  }
  return response;
}

}  // namespace cnnserve
