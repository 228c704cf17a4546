// Fuzz target: client image bytes through the server's one image-input path, PrepareItem
// (server/preprocess/image_input.h), as ModelServable and EnsembleServable run it: header inspection and decoding
// (DecodeImage, which runs InspectImage first) or raw pixels (ImageFromPixels), then the model's preprocessing
// (PreprocessImage) into its input tensor.
// Input layout: byte 0 picks the model (FuzzModels) and the kind: bit 7 clear = encoded JPEG/PNG in the rest;
// bit 7 set = raw HWC pixels, bytes 1-2 height, 3-4 width (little-endian), byte 5 channels, then the samples.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "server/preprocess/image_input.h"
#include "tests/fuzz/fuzz_models.h"

namespace {

constexpr size_t kPixelHeaderBytes = 6;

// The item the input describes; false when it is too short to describe one.
bool ParseItem(const uint8_t* data, size_t size, cnnserve::ImageItem* item) {
  if ((data[0] & 0x80) == 0) {
    item->kind = cnnserve::ImageItem::Kind::kEncoded;
    item->data = std::string_view(reinterpret_cast<const char*>(data + 1), size - 1);
    return true;
  }
  if (size < kPixelHeaderBytes) return false;
  item->kind = cnnserve::ImageItem::Kind::kPixels;
  item->height = data[1] | (data[2] << 8);
  item->width = data[3] | (data[4] << 8);
  item->channels = data[5];
  item->data = std::string_view(reinterpret_cast<const char*>(data + kPixelHeaderBytes), size - kPixelHeaderBytes);
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::vector<cnnserve::ServableInfo>& models = cnnserve::fuzz::FuzzModels();
  const cnnserve::ServableInfo& model = models[(data[0] & 0x7f) % models.size()];
  cnnserve::ImageItem item;
  if (!ParseItem(data, size, &item)) return 0;
  cnnserve::fuzz::PrepareItems({item}, model);
  return 0;
}
