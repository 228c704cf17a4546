#include "tests/fuzz/fuzz_models.h"

#include <cstdio>
#include <cstdlib>
#include <string>

#include "models/repository/model_repository.h"
#include "server/preprocess/image_input.h"
#include "server/servables/preprocess_config.h"

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
  ItemTarget target;
  target.model = model.name;
  target.preprocess = model.preprocess.has_value() ? &*model.preprocess : nullptr;
  target.input_dims = model.item_input_dims;
  std::vector<float> dst(static_cast<size_t>(NumElements(model.item_input_dims)));
  target.dst = dst.data();
  for (const ImageItem& item : items) {
    const Status status = PrepareItem(item, FuzzDecodeLimits(), target);
    // The request parsers promise tensors of the model's size: PrepareItem's size check must never fire.
    if (item.kind == ImageItem::Kind::kTensor && !status.ok() && status.message().find("takes") != std::string::npos) {
      __builtin_trap();
    }
  }
}

}  // namespace cnnserve::fuzz
