// Fuzz target: client image bytes through the server's image input path, as ModelServable::PrepareItem runs it:
// header inspection and decoding (DecodeImage, which runs InspectImage first) or raw pixels (ImageFromPixels),
// then the model's preprocessing (PreprocessImage) into its input tensor.
// Input layout: byte 0 picks the model (FuzzModels) and the kind: bit 7 clear = encoded JPEG/PNG in the rest;
// bit 7 set = raw HWC pixels, bytes 1-2 height, 3-4 width (little-endian), byte 5 channels, then the samples.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "server/servables/image_input.h"
#include "server/preprocess/preprocess.h"
#include "tests/fuzz/fuzz_models.h"

namespace {

constexpr size_t kPixelHeaderBytes = 6;

cnnserve::StatusOr<cnnserve::DecodedImage> Decode(const uint8_t* data, size_t size) {
  const bool pixels = (data[0] & 0x80) != 0;
  const cnnserve::DecodeLimits limits = cnnserve::fuzz::FuzzDecodeLimits();
  if (!pixels) return cnnserve::DecodeImage(std::string_view(reinterpret_cast<const char*>(data + 1), size - 1), limits);
  if (size < kPixelHeaderBytes) return cnnserve::InvalidArgumentError("short");
  const int64_t height = data[1] | (data[2] << 8);
  const int64_t width = data[3] | (data[4] << 8);
  const int channels = data[5];
  const std::string_view samples(reinterpret_cast<const char*>(data + kPixelHeaderBytes), size - kPixelHeaderBytes);
  return cnnserve::ImageFromPixels(samples, height, width, channels, limits);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::vector<cnnserve::ServableInfo>& models = cnnserve::fuzz::FuzzModels();
  const cnnserve::ServableInfo& model = models[(data[0] & 0x7f) % models.size()];
  cnnserve::StatusOr<cnnserve::DecodedImage> image = Decode(data, size);
  if (!image.ok()) return 0;
  std::vector<float> input(static_cast<size_t>(model.item_input_dims[0] * model.item_input_dims[1] *
                                               model.item_input_dims[2]));
  (void)cnnserve::PreprocessImage(*image, *model.preprocess, input.data());
  return 0;
}
