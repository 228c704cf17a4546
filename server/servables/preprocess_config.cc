#include "server/servables/preprocess_config.h"

#include <string>

namespace cnnserve {
namespace {

constexpr float kDefaultScale = 1.0f / 255.0f;

}  // namespace

StatusOr<PreprocessOptions> PreprocessOptionsFromConfig(const v1::ModelConfig& config,
                                                        const DecodeLimits& limits) {
  const auto& dims = config.input().dims();
  if (dims.size() != 3) {
    return InvalidArgumentError("model \"" + config.name() + "\": input.dims has " + std::to_string(dims.size()) +
                                " values; expected C, H, W");
  }
  const v1::PreprocessConfig& pre = config.preprocess();
  PreprocessOptions options;
  switch (pre.color()) {
    case v1::PreprocessConfig::GRAY:
      options.color = ColorFormat::kGray;
      break;
    case v1::PreprocessConfig::RGB:
      options.color = ColorFormat::kRgb;
      break;
    case v1::PreprocessConfig::BGR:
      options.color = ColorFormat::kBgr;
      break;
    default:
      options.color = dims[0] == 1 ? ColorFormat::kGray : ColorFormat::kRgb;
      break;
  }
  options.target_height_px = dims[1];
  options.target_width_px = dims[2];
  options.resize =
      pre.resize() == v1::PreprocessConfig::SHORTER_SIDE_CROP ? ResizeMode::kShorterSideCrop : ResizeMode::kExact;
  options.resize_shorter_side_px = pre.resize_shorter_side();
  options.interpolation = Interpolation::kBilinear;
  options.scale = pre.scale() == 0.0f ? kDefaultScale : pre.scale();
  options.mean.assign(pre.mean().begin(), pre.mean().end());
  options.stddev.assign(pre.std().begin(), pre.std().end());
  options.decode_limits = limits;
  if (OutputChannels(options.color) != dims[0]) {
    return InvalidArgumentError("model \"" + config.name() + "\": preprocess.color gives " +
                                std::to_string(OutputChannels(options.color)) + " channels but the input has " +
                                std::to_string(dims[0]));
  }
  if (Status status = ValidatePreprocessOptions(options); !status.ok()) {
    return InvalidArgumentError("model \"" + config.name() + "\": preprocess: " + status.message());
  }
  return options;
}

}  // namespace cnnserve
