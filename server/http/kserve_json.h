// KServe v2 REST bodies <-> the KServe protobuf messages (proto/inference): the REST infer route parses its body
// into an inference::ModelInferRequest and renders the inference::ModelInferResponse that the shared translation
// (server/kserve/kserve_tensors.h) filled, so REST and gRPC validate and answer identically.
//
// Request body (Content-Type application/json), as the Open Inference Protocol's REST binding says:
//   {"id": "...", "parameters": {...},
//    "inputs": [{"name": "x", "shape": [1, 1, 32, 32], "datatype": "FP32", "parameters": {...}, "data": [...]}],
//    "outputs": [{"name": "y", "parameters": {"classification": 3, "binary_data": true}}]}
// `data` is flat or nested row-major; its element count must match the shape. FP32 takes numbers, UINT8
// integers 0..255, BYTES strings; any other datatype is passed on without data, for the shared translation to
// refuse by name. Parameters become InferParameter values (bool, int64, uint64 when above INT64_MAX, double,
// string). Unknown keys are ignored; a known key of the wrong type is INVALID_ARGUMENT naming it
// ("inputs[0].shape[2] is not a non-negative integer").
//
// Triton's binary data extension: with the header Inference-Header-Content-Length = L the body is L bytes of JSON
// followed by the binary data of every input that has parameters.binary_data_size (in input order, each exactly
// that many bytes, together exactly the rest of the body). The data is the tensor's raw form (row-major
// little-endian; BYTES elements as a 4-byte little-endian length and the bytes). When any input is binary every
// input travels in raw_input_contents (JSON data is converted); otherwise in the typed contents. Outputs are
// returned binary when they ask for parameters.binary_data = true, or all of them when the request has
// parameters.binary_data_output = true; binary_data and binary_data_size are transport parameters and are not
// passed on.
//
// Response body: {"model_name", "model_version", "id", "parameters", "outputs": [{"name", "datatype", "shape",
// "data"}]} with FP32 data as numbers and BYTES data as strings (bytes that are not UTF-8 are replaced by
// U+FFFD); a binary output has parameters.binary_data_size instead of data and its bytes follow the JSON, and the
// answer then carries Inference-Header-Content-Length.
//
// Thread-safety: pure functions.
#ifndef CNNSERVE_SERVER_HTTP_KSERVE_JSON_H_
#define CNNSERVE_SERVER_HTTP_KSERVE_JSON_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/common/status.h"
#include "inference/grpc_service.pb.h"

namespace cnnserve::http {

// The header of Triton's binary data extension.
inline constexpr char kInferenceHeaderContentLength[] = "Inference-Header-Content-Length";

struct RestInferRequest {
  inference::ModelInferRequest request;  // model_name and model_version are left to the caller (they are the URL's)
  // Per entry of request.outputs(): whether it is answered binary; `all_binary_outputs` for outputs not listed.
  std::vector<bool> binary_outputs;
  bool all_binary_outputs = false;
};

// Parses `body`. `json_length`: the value of Inference-Header-Content-Length when present (nullopt: the whole
// body is JSON). INVALID_ARGUMENT for malformed JSON (with the byte offset), wrong types, element counts that do
// not match the shape, a header length outside 0 < L <= body size, or binary sizes that do not add up to the
// body's binary part.
StatusOr<RestInferRequest> ParseRestInferRequest(std::string_view body, std::optional<std::string_view> json_length);

struct RestInferResponse {
  std::string body;
  std::optional<size_t> json_length;  // set when binary outputs follow the JSON
};

// Renders `response` (outputs with raw_output_contents, as FillInferOutputs fills them); an output is binary when
// `parsed` says so (by name for listed outputs).
RestInferResponse RenderRestInferResponse(const inference::ModelInferResponse& response, const RestInferRequest& parsed);

}  // namespace cnnserve::http

#endif  // CNNSERVE_SERVER_HTTP_KSERVE_JSON_H_
