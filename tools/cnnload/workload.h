// What cnnload sends: a pool of pre-serialized requests (encoded images or synthetic float32 tensors) for the
// native Classify or the KServe ModelInfer method, and how a response is checked.
//
// Requests are serialized once, before the run, into grpc::ByteBuffers that every call shares (gRPC references
// their slices, it does not copy them), so the client spends no time building messages while it measures.
// Calls go through grpc::GenericStub with the method's full name; responses are parsed only to check that they
// carry one result per image sent.
//
// Thread-safety: a Workload is immutable after Create and may be shared by threads; a ResponseChecker belongs to
// one thread.
#ifndef CNNSERVE_TOOLS_CNNLOAD_WORKLOAD_H_
#define CNNSERVE_TOOLS_CNNLOAD_WORKLOAD_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/common/status.h"
#include "tools/cnnload/options.h"
#include "tools/common/tool_text.h"

namespace cnnserve::cnnload {

// Checks one response (non-OK: the response does not answer the request, e.g. the wrong number of results).
class ResponseChecker {
 public:
  virtual ~ResponseChecker() = default;
  // `response` may be consumed.
  virtual Status Check(grpc::ByteBuffer* response) = 0;
};

class Workload {
 public:
  virtual ~Workload() = default;

  // The full gRPC method name, e.g. "/cnnserve.v1.Classifier/Classify".
  const std::string& method() const { return method_; }
  // Request `i` of the pool (cycled through: i modulo the pool size).
  const grpc::ByteBuffer& request(uint64_t i) const { return requests_[i % requests_.size()]; }
  size_t pool_size() const { return requests_.size(); }
  int images_per_request() const { return images_per_request_; }
  int64_t mean_request_bytes() const { return mean_request_bytes_; }
  // "synthetic 3x227x227 float32" or "24 JPEG files".
  const std::string& input_description() const { return input_description_; }

  virtual std::unique_ptr<ResponseChecker> NewChecker() const = 0;

 protected:
  Workload() = default;
  // Sets the pool from serialized requests.
  void SetRequests(const std::vector<std::string>& serialized);

  std::string method_;
  int images_per_request_ = 1;
  std::string input_description_;

 private:
  std::vector<grpc::ByteBuffer> requests_;
  int64_t mean_request_bytes_ = 0;
};

// Reads the images to send: FILE arguments as given, DIR arguments' *.jpg, *.jpeg and *.png files (sorted by
// name, not recursive). Every file must start with JPEG or PNG magic bytes. INVALID_ARGUMENT / NOT_FOUND name the
// file.
StatusOr<std::vector<std::string>> ReadImages(const std::vector<std::string>& paths);

// The seeded synthetic values shared with bench/peers (lowbias32 hash of the element index, in [-1, 1)):
// element i of the flattened tensor.
float SyntheticValue(uint64_t index, uint64_t seed);

// Builds the workload for `options`: asks the server (over `channel`) for the model's input shape (native
// DescribeModel, KServe ModelMetadata) and serializes the request pool. `images` are the encoded images (ignored
// with --synthetic). Errors: the server's (NOT_FOUND for an unknown model, UNAVAILABLE when it cannot be reached
// within `connect_timeout_s`), UNIMPLEMENTED for --protocol kserve in a build without the KServe protos.
StatusOr<std::unique_ptr<Workload>> CreateWorkload(const LoadOptions& options,
                                                   const std::shared_ptr<grpc::Channel>& channel,
                                                   const std::vector<std::string>& images,
                                                   double connect_timeout_s);

using ::cnnserve::tools::GrpcCodeName;

}  // namespace cnnserve::cnnload

#endif  // CNNSERVE_TOOLS_CNNLOAD_WORKLOAD_H_
