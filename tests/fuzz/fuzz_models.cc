#include "tests/fuzz/fuzz_models.h"

#include <cstdio>
#include <cstdlib>
#include <string>

#include "models/repository/model_repository.h"
#include "server/servables/image_input.h"

namespace cnnserve::fuzz {
namespace {

constexpr int64_t kFuzzMaxPixels = int64_t{1} << 22;  // 4 Mi pixels

constexpr char kLenetConfig[] = R"pb(
  name: "lenet5_fashion" platform: "onnx" max_batch_size: 64
  input { dims: [1, 32, 32] }
  preprocess { color: GRAY resize: EXACT scale: 0.0039215688593685627 mean: [0.2860] std: [0.3530] }
)pb";
constexpr char kNativeConfig[] = R"pb(
  name: "native28" platform: "onnx" max_batch_size: 8
  input { dims: [1, 28, 28] }
  preprocess { color: GRAY resize: EXACT scale: 1.0 }
)pb";
constexpr char kImagenetConfig[] = R"pb(
  name: "alexnet" platform: "onnx" max_batch_size: 32
  input { dims: [3, 227, 227] }
  preprocess {
    color: RGB resize: SHORTER_SIDE_CROP resize_shorter_side: 256 scale: 0.0039215688593685627
    mean: [0.485, 0.456, 0.406] std: [0.229, 0.224, 0.225]
  }
)pb";

[[noreturn]] void Die(const std::string& what, const Status& status) {
  std::fprintf(stderr, "fuzz_models: %s: %s\n", what.c_str(), status.ToString().c_str());
  std::abort();
}

ServableInfo InfoFromConfig(const char* text, int64_t num_classes) {
  StatusOr<v1::ModelConfig> config = ParseModelConfig(text, "fuzz/config.pbtxt");
  if (!config.ok()) Die("config", config.status());
  if (Status status = ValidateModelConfig(*config, "fuzz/config.pbtxt", config->name()); !status.ok()) {
    Die(config->name(), status);
  }
  StatusOr<PreprocessOptions> preprocess = PreprocessOptionsFromConfig(*config, FuzzDecodeLimits());
  if (!preprocess.ok()) Die(config->name(), preprocess.status());
  ServableInfo info;
  info.name = config->name();
  info.version = 1;
  info.platform = config->platform();
  info.item_input_dims.assign(config->input().dims().begin(), config->input().dims().end());
  info.num_classes = num_classes;
  for (int64_t i = 0; i < num_classes; ++i) info.labels.push_back("class_" + std::to_string(i));
  info.max_batch_size = config->max_batch_size();
  info.preprocess = *preprocess;
  info.config = *config;
  return info;
}

}  // namespace

DecodeLimits FuzzDecodeLimits() {
  DecodeLimits limits;
  limits.max_pixels = kFuzzMaxPixels;
  return limits;
}

const std::vector<ServableInfo>& FuzzModels() {
  static const std::vector<ServableInfo> models = {
      InfoFromConfig(kLenetConfig, 10), InfoFromConfig(kNativeConfig, 10), InfoFromConfig(kImagenetConfig, 1000)};
  return models;
}

void PrepareItems(const std::vector<ImageItem>& items, const ServableInfo& model) {
  const Dims& chw = model.item_input_dims;
  const size_t item_floats = static_cast<size_t>(chw[0] * chw[1] * chw[2]);
  std::vector<float> dst(item_floats);
  for (const ImageItem& item : items) {
    if (item.kind == ImageItem::Kind::kTensor) {
      if (item.data.size() != item_floats * sizeof(float)) __builtin_trap();
      (void)CheckFiniteFloats(item.data);
      continue;
    }
    StatusOr<DecodedImage> image = item.kind == ImageItem::Kind::kEncoded
                                       ? DecodeImage(item.data, FuzzDecodeLimits())
                                       : ImageFromPixels(item.data, item.height, item.width, item.channels,
                                                         FuzzDecodeLimits());
    if (image.ok()) (void)PreprocessImage(*image, *model.preprocess, dst.data());
  }
}

}  // namespace cnnserve::fuzz
