// Fuzz target: a serialized native cnnserve.v1.ClassifyRequest through what Classify runs before a batch is
// scheduled: protobuf parsing, the conversion of its inputs to items (BuildNativeItems: image counts, raw tensor
// shapes and byte counts, the per-request image limit), then every item as the model servable prepares it (decode
// + preprocess for images, the byte count and finiteness for tensors). Byte 0 picks the model (FuzzModels).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "cnnserve/v1/classifier.pb.h"
#include "server/native/native_request.h"
#include "server/preprocess/preprocess.h"
#include "tests/fuzz/fuzz_models.h"

namespace {

constexpr int64_t kMaxImagesPerRequest = 256;  // the server's default

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::vector<cnnserve::ServableInfo>& models = cnnserve::fuzz::FuzzModels();
  const cnnserve::ServableInfo& model = models[data[0] % models.size()];
  cnnserve::v1::ClassifyRequest request;
  if (!request.ParseFromArray(data + 1, static_cast<int>(size - 1))) return 0;
  cnnserve::RunRequest run;
  if (!cnnserve::BuildNativeItems(request, model, kMaxImagesPerRequest, &run).ok()) return 0;
  cnnserve::fuzz::PrepareItems(run.items, model);
  return 0;
}
