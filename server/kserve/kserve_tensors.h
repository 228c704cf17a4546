// KServe v2 tensors <-> cnnserve's servable API: the validation and conversion behind ModelInfer (gRPC) and the
// REST infer route (server/http), free of any transport code so that both share it; tested as plain functions
// (tests/server/kserve/).
//
// Inputs. A model takes exactly one input tensor, named as ModelMetadata declares it (ServableInfo::input_name),
// in one of three forms, with the batch dimension first:
//   FP32  [N, C, H, W]  the model's input as is (C, H, W = ServableInfo::item_input_dims) -> ImageItem::kTensor
//   UINT8 [N, H, W, C]  8-bit pixels, C 1 (gray) or 3 (RGB), preprocessed like an image -> ImageItem::kPixels
//   BYTES [N] or [N, 1] encoded JPEG/PNG images, preprocessed                             -> ImageItem::kEncoded
// The data comes either in raw_input_contents (one entry per input, row-major little-endian; a BYTES element is
// a 4-byte little-endian length and then the bytes) or in the typed contents (fp32_contents; uint_contents for
// UINT8, one value per byte; bytes_contents, one entry per element), never both. Every violation is
// INVALID_ARGUMENT with a message naming the model, the tensor and what was expected (datatype, shape, byte size
// or element count).
//
// Outputs. The model's one output (ServableInfo::output_name) is FP32 [N, num_classes] (RunResult::scores: the
// model's output row; an ensemble's combining scores) in raw_output_contents. With the classification extension
// (parameter "classification" = k on the requested output) it is instead BYTES [N, min(k, num_classes)] of
// "score:index:label" strings ("score:index" when the class has no label), best first, the score printed like
// printf's %f, also in raw_output_contents with the BYTES length framing.
//
// Thread-safety: pure functions. Ownership: a ParsedInferInput's items point into the request's bytes and into
// its own `storage`; the request and the ParsedInferInput must outlive every use of the items.
#ifndef CNNSERVE_SERVER_KSERVE_KSERVE_TENSORS_H_
#define CNNSERVE_SERVER_KSERVE_KSERVE_TENSORS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/common/status.h"
#include "inference/grpc_service.pb.h"
#include "server/servables/servable.h"

namespace cnnserve {

// KServe datatype names used here.
inline constexpr char kKServeFp32[] = "FP32";
inline constexpr char kKServeUint8[] = "UINT8";
inline constexpr char kKServeBytes[] = "BYTES";
// The requested-output parameter of the classification extension.
inline constexpr char kClassificationParameter[] = "classification";

// What a request is checked against (InferenceServiceOptions gives the server's values).
struct KServeInputLimits {
  int64_t max_items = 256;          // images (the batch dimension N) per request
  int64_t max_pixels = 40'000'000;  // H * W of one UINT8 image
};

// One request's input, ready for RunRequest::items.
struct ParsedInferInput {
  std::string name;
  std::string datatype;
  std::vector<int64_t> shape;
  std::vector<ImageItem> items;  // N, in batch order
  // Bytes converted from typed contents (fp32_contents, uint_contents) that items point into. Heap-held so that
  // moving the ParsedInferInput does not move them.
  std::shared_ptr<const std::string> storage;
};

// Validates the inputs of `request` for the servable described by `info` and returns its images.
StatusOr<ParsedInferInput> ParseInferInput(const inference::ModelInferRequest& request, const ServableInfo& info,
                                           const KServeInputLimits& limits);

// One output to return.
struct RequestedOutput {
  std::string name;
  int64_t classification = 0;  // 0: the FP32 tensor; k > 0: the top-k strings (k clamped to num_classes)
};

// The outputs `request` asks for (none listed: the model's one output as a tensor; for a layer servable, the one
// output requested, which named the layer: RunKServeInfer asks for a layer when the only requested output is not
// the model's output). INVALID_ARGUMENT for an unknown output name, an output listed twice, or a "classification" parameter that is not an integer >= 1
// (int64_param or uint64_param). Other parameters are ignored.
StatusOr<std::vector<RequestedOutput>> ParseRequestedOutputs(const inference::ModelInferRequest& request,
                                                             const ServableInfo& info);

// Fills outputs and raw_output_contents of `response` (appending) from `result` (num_items rows filled) for
// `outputs`, and model_name and model_version from the result. id and parameters are left to the caller. A layer's
// tensor has the shape [rows, its per-item dims...] (ServableInfo::item_output_dims).
void FillInferOutputs(const RunResult& result, const ServableInfo& info,
                      const std::vector<RequestedOutput>& outputs, inference::ModelInferResponse* response);

// "score:index:label" (or "score:index" when `labels` has no entry for the class), score printed like %f.
std::string ClassificationString(const ScoredClass& scored, const std::vector<std::string>& labels);

// A model version on the wire: "" -> 0 (the newest ready version), "3" -> 3. INVALID_ARGUMENT for anything that
// is not a positive decimal integer, naming `field` and the value.
StatusOr<int64_t> ParseModelVersion(std::string_view version, std::string_view field = "model_version");

// Appends `element` to `out` with the BYTES framing (4-byte little-endian length first).
void AppendBytesElement(std::string_view element, std::string* out);

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_KSERVE_KSERVE_TENSORS_H_
