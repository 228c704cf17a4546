// Fuzz target: a serialized KServe v2 ModelInferRequest through what ModelInfer runs before a batch is scheduled:
// protobuf parsing, the version string, the input checks and conversion to items (ParseInferInput), the requested
// outputs (ParseRequestedOutputs), then every item as the model servable prepares it (decode + preprocess for
// images and pixels, the byte count for tensors). Byte 0 picks the model (FuzzModels); the rest is the message.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "inference/grpc_service.pb.h"
#include "server/kserve/kserve_tensors.h"
#include "tests/fuzz/fuzz_models.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::vector<cnnserve::ServableInfo>& models = cnnserve::fuzz::FuzzModels();
  const cnnserve::ServableInfo& model = models[data[0] % models.size()];
  inference::ModelInferRequest request;
  if (!request.ParseFromArray(data + 1, static_cast<int>(size - 1))) return 0;
  (void)cnnserve::ParseModelVersion(request.model_version());
  (void)cnnserve::ParseRequestedOutputs(request, model);
  cnnserve::StatusOr<cnnserve::ParsedInferInput> input =
      cnnserve::ParseInferInput(request, model, cnnserve::KServeInputLimits{});
  if (input.ok()) cnnserve::fuzz::PrepareItems(input->items, model);
  return 0;
}
