#include "server/service/explain.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/common/strings.h"

namespace cnnserve {
namespace {

// The most bytes of masked copies an occlusion map of an image's pixels may take (an ensemble whose members take
// different inputs, see explain.h); the copies in a model's input space are bounded by --max-explain-masks alone.
constexpr int64_t kMaxPixelMaskBytes = int64_t{256} << 20;

// Everything the request's items point into; kept alive until the answer.
struct OcclusionInputs {
  Dims shape;  // C, H, W of the space the patch moves in
  int64_t rows = 0;
  int64_t cols = 0;
  // The unmasked image, then rows * cols masked copies, back to back: floats in a model's input space, or 8-bit
  // HWC samples in the image's pixels.
  std::vector<float> values;
  std::vector<uint8_t> pixels;
};

// Patch positions over inputs->shape and the --max-explain-masks limit.
Status CountPositions(const InferenceService& service, const OcclusionRequest& request, const char* space,
                      OcclusionInputs* inputs) {
  const std::string height = std::string(space) + " height", width = std::string(space) + " width";
  CNN_ASSIGN_OR_RETURN(inputs->rows, OcclusionPositions(inputs->shape[1], request.patch, request.stride,
                                                        height.c_str()));
  CNN_ASSIGN_OR_RETURN(inputs->cols, OcclusionPositions(inputs->shape[2], request.patch, request.stride,
                                                        width.c_str()));
  const int64_t masks = inputs->rows * inputs->cols;
  const int64_t limit = service.options().max_explain_masks;
  if (masks > limit) {
    return InvalidArgumentError("patch " + std::to_string(request.patch) + " with stride " +
                                std::to_string(request.stride) + " makes " + std::to_string(masks) +
                                " masked copies, more than the limit of " + std::to_string(limit) +
                                " (--max-explain-masks): use a larger stride");
  }
  return OkStatus();
}

// The request's items: the unmasked image and its copies, `item_bytes` each, back to back from `base`.
void SetOcclusionItems(const ImageItem& kind, const char* base, size_t item_bytes, int64_t rows, int64_t cols,
                       RunRequest* run) {
  run->items.clear();
  for (int64_t i = 0; i <= rows * cols; ++i) {
    ImageItem item = kind;
    item.data = std::string_view(base + static_cast<size_t>(i) * item_bytes, item_bytes);
    run->items.push_back(item);
  }
  run->item_name = [cols](int64_t item) {
    if (item == 0) return std::string("image");
    return "masked copy at (" + std::to_string((item - 1) / cols) + ", " + std::to_string((item - 1) % cols) + ")";
  };
}

// In the model's input space: the image preprocessed once, the copies masked with `fill`, sent as tensors.
Status BuildInputSpaceItems(const InferenceService& service, const OcclusionRequest& request,
                            const ServableInfo& info, OcclusionInputs* inputs, RunRequest* run) {
  inputs->shape = info.item_input_dims;
  CNN_RETURN_IF_ERROR(CountPositions(service, request, "input", inputs));
  const int64_t item_floats = NumElements(inputs->shape);
  inputs->values.assign(static_cast<size_t>((inputs->rows * inputs->cols + 1) * item_floats), 0.0f);
  ItemTarget target;
  target.model = info.name;
  target.preprocess = info.preprocess.has_value() ? &*info.preprocess : nullptr;
  target.input_dims = inputs->shape;
  target.dst = inputs->values.data();
  if (Status s = PrepareItem(request.image, service.decode_limits(), target); !s.ok()) {
    return Status(s.code(), "field image: " + s.message());
  }
  MakeOcclusionMasks(inputs->values.data(), inputs->shape, request.patch, request.stride, request.fill,
                     inputs->values.data() + item_floats);
  ImageItem kind;
  kind.kind = ImageItem::Kind::kTensor;
  SetOcclusionItems(kind, reinterpret_cast<const char*>(inputs->values.data()),
                    static_cast<size_t>(item_floats) * sizeof(float), inputs->rows, inputs->cols, run);
  return OkStatus();
}

// In the image's pixels (an ensemble whose members take different inputs): the copies masked with the 8-bit
// samples of `fill`, sent as raw pixels that every member preprocesses its own way.
Status BuildPixelSpaceItems(const InferenceService& service, const OcclusionRequest& request,
                            const ServableInfo& info, OcclusionInputs* inputs, RunRequest* run) {
  if (!info.preprocess.has_value()) {
    return InvalidArgumentError("ensemble " + Quoted(info.name) + " takes no images: no occlusion map");
  }
  StatusOr<PixelImage> image = ItemPixels(request.image, service.decode_limits());
  if (!image.ok()) {
    return Status(image.status().code(), "field image: ensemble " + Quoted(info.name) +
                                             " has members with different inputs, so its map is made on the "
                                             "image's pixels: " + image.status().message());
  }
  inputs->shape = {image->channels, image->height, image->width};
  CNN_RETURN_IF_ERROR(CountPositions(service, request, "image", inputs));
  const int64_t item_bytes = static_cast<int64_t>(image->hwc.size());
  const int64_t total = (inputs->rows * inputs->cols + 1) * item_bytes;
  if (total > kMaxPixelMaskBytes) {
    return InvalidArgumentError("the masked copies of this " + std::to_string(image->width) + "x" +
                                std::to_string(image->height) + " image take " + std::to_string(total >> 20) +
                                " MiB, more than " + std::to_string(kMaxPixelMaskBytes >> 20) +
                                " MiB: send a smaller image or use a larger stride");
  }
  inputs->pixels.resize(static_cast<size_t>(total));
  std::copy(image->hwc.begin(), image->hwc.end(), inputs->pixels.begin());
  MakePixelOcclusionMasks(*image, request.patch, request.stride,
                          PixelFill(*info.preprocess, request.fill, image->channels),
                          inputs->pixels.data() + item_bytes);
  ImageItem kind;
  kind.kind = ImageItem::Kind::kPixels;
  kind.height = static_cast<int32_t>(image->height);
  kind.width = static_cast<int32_t>(image->width);
  kind.channels = image->channels;
  SetOcclusionItems(kind, reinterpret_cast<const char*>(inputs->pixels.data()), static_cast<size_t>(item_bytes),
                    inputs->rows, inputs->cols, run);
  return OkStatus();
}

// Checks the model and the target class, then builds the items in the space explain.h describes.
Status BuildOcclusionItems(const InferenceService& service, const OcclusionRequest& request,
                           const ServableInfo& info, OcclusionInputs* inputs, RunRequest* run) {
  if (info.item_input_dims.size() != 3) {
    return InvalidArgumentError("model " + Quoted(info.name) + " takes inputs of shape [" +
                                DimsToString(info.item_input_dims) + "], not C x H x W images: no occlusion map");
  }
  if (request.target_class >= info.num_classes) {
    return InvalidArgumentError("field target_class: " + std::to_string(request.target_class) + " is not a class of " +
                                Quoted(info.name) + " (0 to " + std::to_string(info.num_classes - 1) + ")");
  }
  if (info.members_share_input) return BuildInputSpaceItems(service, request, info, inputs, run);
  return BuildPixelSpaceItems(service, request, info, inputs, run);
}

// The map from the rows of the unmasked image (item 0) and its masked copies.
OcclusionMap MapFromResult(const RunResult& result, int64_t requested_class, const OcclusionInputs& inputs) {
  OcclusionMap map;
  map.shape = inputs.shape;
  map.rows = inputs.rows;
  map.cols = inputs.cols;
  map.pixel_space = !inputs.pixels.empty();
  const int64_t rows = map.rows, cols = map.cols;
  map.top1 = result.Ranked(0, 1).at(0).index;
  map.target_class = requested_class >= 0 ? requested_class : map.top1;
  const size_t n = static_cast<size_t>(result.num_classes);
  const size_t target = static_cast<size_t>(map.target_class);
  map.probability = result.probabilities[target];
  map.drop.resize(static_cast<size_t>(rows * cols));
  map.top1_at.resize(map.drop.size());
  for (size_t i = 0; i < map.drop.size(); ++i) {
    map.drop[i] = map.probability - result.probabilities[(i + 1) * n + target];
    map.top1_at[i] = result.Ranked(static_cast<int64_t>(i + 1), 1).at(0).index;
  }
  return map;
}

}  // namespace

StatusOr<int64_t> OcclusionPositions(int64_t size, int64_t patch, int64_t stride, const char* axis) {
  if (patch < 1 || patch > size) {
    return InvalidArgumentError("field patch: " + std::to_string(patch) + " must be 1 to the " + axis + " (" +
                                std::to_string(size) + ")");
  }
  if (stride < 1) return InvalidArgumentError("field stride: " + std::to_string(stride) + " must be >= 1");
  return (size - patch) / stride + 1;
}

void MakeOcclusionMasks(const float* image, const Dims& chw, int64_t patch, int64_t stride, float fill, float* dst) {
  const int64_t c = chw[0], h = chw[1], w = chw[2];
  const int64_t rows = (h - patch) / stride + 1, cols = (w - patch) / stride + 1;
  const int64_t item = c * h * w;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t q = 0; q < cols; ++q) {
      float* copy = dst + (r * cols + q) * item;
      std::memcpy(copy, image, static_cast<size_t>(item) * sizeof(float));
      for (int64_t ch = 0; ch < c; ++ch) {
        for (int64_t y = r * stride; y < r * stride + patch; ++y) {
          std::fill_n(copy + (ch * h + y) * w + q * stride, patch, fill);
        }
      }
    }
  }
}

std::vector<uint8_t> PixelFill(const PreprocessOptions& preprocess, float fill, int channels) {
  // The model channel each pixel channel (R, G, B, or gray) becomes.
  const auto model_channel = [&](int c) {
    if (preprocess.color == ColorFormat::kGray) return 0;
    return preprocess.color == ColorFormat::kBgr ? 2 - c : c;
  };
  const auto sample = [&](int model_c) {
    const auto per_channel = [model_c](const std::vector<float>& v, float unset) {
      if (v.empty()) return unset;
      return v.size() == 1 ? v[0] : v[static_cast<size_t>(model_c)];
    };
    const double x = (static_cast<double>(fill) * per_channel(preprocess.stddev, 1.0f) +
                      per_channel(preprocess.mean, 0.0f)) / preprocess.scale;
    return std::isfinite(x) ? std::clamp(std::lround(x), 0L, 255L) : 0L;
  };
  std::vector<uint8_t> out(static_cast<size_t>(channels));
  if (channels == 1 && preprocess.color != ColorFormat::kGray) {  // a gray image the model sees as R = G = B
    out[0] = static_cast<uint8_t>((sample(0) + sample(1) + sample(2) + 1) / 3);
    return out;
  }
  for (int c = 0; c < channels; ++c) out[static_cast<size_t>(c)] = static_cast<uint8_t>(sample(model_channel(c)));
  return out;
}

void MakePixelOcclusionMasks(const PixelImage& image, int64_t patch, int64_t stride, std::span<const uint8_t> fill,
                             uint8_t* dst) {
  const int64_t h = image.height, w = image.width, c = image.channels;
  const int64_t rows = (h - patch) / stride + 1, cols = (w - patch) / stride + 1;
  const int64_t item = h * w * c;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t q = 0; q < cols; ++q) {
      uint8_t* copy = dst + (r * cols + q) * item;
      std::copy_n(image.hwc.data(), item, copy);
      for (int64_t y = r * stride; y < r * stride + patch; ++y) {
        for (int64_t x = q * stride; x < q * stride + patch; ++x) {
          std::copy_n(fill.data(), c, copy + (y * w + x) * c);
        }
      }
    }
  }
}

void RunOcclusion(InferenceService& service, OcclusionRequest request, std::shared_ptr<OcclusionOutcome> outcome,
                  std::function<void(Status)> done) {
  auto inputs = std::make_shared<OcclusionInputs>();
  auto shared_request = std::make_shared<OcclusionRequest>(std::move(request));
  InferRequest infer;
  infer.model = shared_request->model;
  infer.version = shared_request->version;
  infer.request_id = shared_request->request_id;
  infer.deadline_us = shared_request->deadline_us;
  infer.cancelled = shared_request->cancelled;
  infer.build_items = [&service, shared_request, inputs](const ServableInfo& info, RunRequest* run) {
    return BuildOcclusionItems(service, *shared_request, info, inputs.get(), run);
  };
  service.Infer(std::move(infer), outcome->infer,
                [outcome, inputs, shared_request, done = std::move(done)](Status status) {
                  if (status.ok()) {
                    outcome->map = MapFromResult(outcome->infer->result, shared_request->target_class, *inputs);
                  }
                  done(std::move(status));
                });
}

}  // namespace cnnserve
