#include "server/preprocess/image_input.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

#include "engine/common/strings.h"

namespace cnnserve {
namespace {

// One output coordinate of OpenCV's INTER_LINEAR: value = src[i0] * w0 + src[i1] * w1, or src[i0] alone when
// `single` (OpenCV's right-border case).
struct LinearTap {
  int64_t i0 = 0;
  int64_t i1 = 0;
  float w0 = 1.0f;
  float w1 = 0.0f;
  bool single = false;
};

// OpenCV: scale = 1 / (dst / src) in double; f = (float)((d + 0.5) * scale - 0.5); s = floor(f); f -= s.
float SourceCoordinate(int64_t d, double scale, int64_t* s) {
  float f = static_cast<float>((static_cast<double>(d) + 0.5) * scale - 0.5);
  *s = static_cast<int64_t>(std::floor(f));
  return f - static_cast<float>(*s);
}

double InverseScale(int64_t src, int64_t dst) {
  return 1.0 / (static_cast<double>(dst) / static_cast<double>(src));
}

// Columns: the index and weight are clamped together at both borders (cv::resize's xofs/alpha tables).
LinearTap ColumnTap(int64_t d, double scale, int64_t src) {
  LinearTap tap;
  int64_t s = 0;
  float f = SourceCoordinate(d, scale, &s);
  if (s < 0) {
    s = 0;
    f = 0.0f;
  }
  if (s >= src - 1) {
    s = src - 1;
    f = 0.0f;
    tap.single = true;
  }
  tap.i0 = s;
  tap.i1 = std::min(s + 1, src - 1);
  tap.w0 = 1.0f - f;
  tap.w1 = f;
  return tap;
}

// Rows: only the indices are clamped; the weights stay (1 - f, f) (cv::resize's yofs/beta tables).
LinearTap RowTap(int64_t d, double scale, int64_t src) {
  LinearTap tap;
  int64_t s = 0;
  const float f = SourceCoordinate(d, scale, &s);
  tap.i0 = std::clamp<int64_t>(s, 0, src - 1);
  tap.i1 = std::clamp<int64_t>(s + 1, 0, src - 1);
  tap.w0 = 1.0f - f;
  tap.w1 = f;
  return tap;
}

float PerChannel(const std::vector<float>& values, int c, float default_value) {
  if (values.empty()) return default_value;
  return values.size() == 1 ? values[0] : values[static_cast<size_t>(c)];
}

// The item's pixels: decoded (kEncoded) or copied from raw samples (kPixels).
StatusOr<DecodedImage> DecodeItem(const ImageItem& item, const DecodeLimits& limits) {
  if (item.kind == ImageItem::Kind::kEncoded) return DecodeImage(item.data, limits);
  return ImageFromPixels(item.data, item.height, item.width, item.channels, limits);
}

std::string ModelName(const ItemTarget& target) {
  return target.model.empty() ? "the model" : "model " + Quoted(target.model);
}

Status PreprocessTarget(const DecodedImage& image, const ItemTarget& target) {
  if (target.preprocess == nullptr) {
    return InvalidArgumentError(ModelName(target) +
                                " has no image preprocessing (its input is not C x H x W): send tensors");
  }
  if (target.dst != nullptr) return PreprocessImage(image, *target.preprocess, target.dst);
  // Check only: the options, and whether the image fits them (the crop of an extreme aspect ratio).
  CNN_RETURN_IF_ERROR(ValidatePreprocessOptions(*target.preprocess));
  return ComputeResizeGeometry(image.width_px(), image.height_px(), *target.preprocess).status();
}

// A kTensor item for one target: its size, then the copy. Its values were checked once for every target.
Status CopyTensorTarget(std::string_view data, const ItemTarget& target) {
  if (target.input_dims.empty()) return OkStatus();
  const size_t bytes = static_cast<size_t>(NumElements(target.input_dims)) * sizeof(float);
  if (data.size() != bytes) {
    return InvalidArgumentError("a tensor of " + std::to_string(data.size()) + " bytes; " + ModelName(target) + " takes " +
                                DimsToString(target.input_dims) + " float32 = " + std::to_string(bytes) +
                                " bytes per image");
  }
  if (target.dst != nullptr) std::memcpy(target.dst, data.data(), bytes);  // little-endian float32, as the host
  return OkStatus();
}

}  // namespace

void ResizeBilinearWindow(const float* src, int64_t src_h, int64_t src_w, int64_t resized_h, int64_t resized_w,
                          int64_t crop_y, int64_t crop_x, int64_t out_h, int64_t out_w, float* dst) {
  const double scale_x = InverseScale(src_w, resized_w);
  const double scale_y = InverseScale(src_h, resized_h);
  std::vector<LinearTap> columns(static_cast<size_t>(out_w));
  for (int64_t x = 0; x < out_w; ++x) columns[static_cast<size_t>(x)] = ColumnTap(crop_x + x, scale_x, src_w);
  std::vector<LinearTap> rows(static_cast<size_t>(out_h));
  int64_t first_row = src_h;
  int64_t last_row = -1;
  for (int64_t y = 0; y < out_h; ++y) {
    rows[static_cast<size_t>(y)] = RowTap(crop_y + y, scale_y, src_h);
    first_row = std::min(first_row, rows[static_cast<size_t>(y)].i0);
    last_row = std::max(last_row, rows[static_cast<size_t>(y)].i1);
  }
  if (out_h <= 0 || out_w <= 0) return;
  // Horizontal pass over the source rows the window reads, then the vertical pass.
  const int64_t num_rows = last_row - first_row + 1;
  std::vector<float> horizontal(static_cast<size_t>(num_rows * out_w));
  for (int64_t r = 0; r < num_rows; ++r) {
    const float* in = src + (first_row + r) * src_w;
    float* out = horizontal.data() + r * out_w;
    for (int64_t x = 0; x < out_w; ++x) {
      const LinearTap& t = columns[static_cast<size_t>(x)];
      out[x] = t.single ? in[t.i0] : in[t.i0] * t.w0 + in[t.i1] * t.w1;
    }
  }
  for (int64_t y = 0; y < out_h; ++y) {
    const LinearTap& t = rows[static_cast<size_t>(y)];
    const float* row0 = horizontal.data() + (t.i0 - first_row) * out_w;
    const float* row1 = horizontal.data() + (t.i1 - first_row) * out_w;
    float* out = dst + y * out_w;
    for (int64_t x = 0; x < out_w; ++x) out[x] = row0[x] * t.w0 + row1[x] * t.w1;
  }
}

Status PreprocessImage(const DecodedImage& image, const PreprocessOptions& options, float* dst,
                       int64_t max_float_source_values) {
  CNN_RETURN_IF_ERROR(ValidatePreprocessOptions(options));
  if (image.empty()) return InvalidArgumentError("the decoded image is empty");
  const int channels = OutputChannels(options.color);
  const int64_t src_h = image.height_px();
  const int64_t src_w = image.width_px();
  const bool float_path = src_h <= kMaxTargetSidePx && src_w <= kMaxTargetSidePx &&
                          src_h * src_w * channels <= max_float_source_values;
  if (!float_path) return Preprocess(image, options, dst);

  // The colour-converted image as exact float sample values (scale 1, mean 0, std 1, no resize).
  PreprocessOptions identity;
  identity.color = options.color;
  identity.target_height_px = src_h;
  identity.target_width_px = src_w;
  identity.resize = ResizeMode::kExact;
  identity.scale = 1.0f;
  identity.decode_limits = options.decode_limits;
  std::vector<float> source(static_cast<size_t>(src_h * src_w * channels));
  CNN_RETURN_IF_ERROR(Preprocess(image, identity, source.data()));

  const int64_t out_h = options.target_height_px;
  const int64_t out_w = options.target_width_px;
  CNN_ASSIGN_OR_RETURN(const ResizeGeometry g, ComputeResizeGeometry(src_w, src_h, options));
  const int64_t plane = out_h * out_w;
  for (int c = 0; c < channels; ++c) {
    const float* in = source.data() + static_cast<int64_t>(c) * src_h * src_w;
    float* out = dst + static_cast<int64_t>(c) * plane;
    if (g.resized_height == src_h &&
        g.resized_width == src_w) {  // cv::resize copies when the size does not change
      for (int64_t y = 0; y < out_h; ++y) {
        std::copy_n(in + (g.crop_y + y) * src_w + g.crop_x, out_w, out + y * out_w);
      }
    } else {
      ResizeBilinearWindow(in, src_h, src_w, g.resized_height, g.resized_width, g.crop_y, g.crop_x, out_h, out_w,
                           out);
    }
    // Normalise in float32, operation by operation, as NumPy does: (x * scale - mean) / std.
    const float scale = options.scale;
    const float mean = PerChannel(options.mean, c, 0.0f);
    const float stddev = PerChannel(options.stddev, c, 1.0f);
    for (int64_t i = 0; i < plane; ++i) out[i] = (out[i] * scale - mean) / stddev;
  }
  return OkStatus();
}

Status PrepareItem(const ImageItem& item, const DecodeLimits& limits, std::span<const ItemTarget> targets,
                   std::span<Status> target_status) {
  if (target_status.size() != targets.size()) {
    return InternalError("PrepareItem: " + std::to_string(targets.size()) + " targets but " +
                         std::to_string(target_status.size()) + " statuses");
  }
  switch (item.kind) {
    case ImageItem::Kind::kTensor:
      CNN_RETURN_IF_ERROR(CheckFiniteFloats(item.data));
      for (size_t t = 0; t < targets.size(); ++t) target_status[t] = CopyTensorTarget(item.data, targets[t]);
      return OkStatus();
    case ImageItem::Kind::kEncoded:
    case ImageItem::Kind::kPixels: {
      const bool any_preprocess = std::any_of(targets.begin(), targets.end(),
                                              [](const ItemTarget& t) { return t.preprocess != nullptr; });
      if (!targets.empty() && !any_preprocess) {  // no target takes images: do not decode for nothing
        for (size_t t = 0; t < targets.size(); ++t) target_status[t] = PreprocessTarget(DecodedImage(), targets[t]);
        return OkStatus();
      }
      CNN_ASSIGN_OR_RETURN(const DecodedImage image, DecodeItem(item, limits));
      for (size_t t = 0; t < targets.size(); ++t) target_status[t] = PreprocessTarget(image, targets[t]);
      return OkStatus();
    }
  }
  return InvalidArgumentError("unknown item kind " + std::to_string(static_cast<int>(item.kind)));
}

StatusOr<PixelImage> ItemPixels(const ImageItem& item, const DecodeLimits& limits) {
  if (item.kind != ImageItem::Kind::kEncoded && item.kind != ImageItem::Kind::kPixels) {
    return InvalidArgumentError("a tensor has no pixels: send the image (encoded bytes or raw pixels)");
  }
  CNN_ASSIGN_OR_RETURN(const DecodedImage image, DecodeItem(item, limits));
  return ToPixels(image);
}

Status PrepareItem(const ImageItem& item, const DecodeLimits& limits, const ItemTarget& target) {
  Status target_status;
  CNN_RETURN_IF_ERROR(PrepareItem(item, limits, std::span<const ItemTarget>(&target, 1),
                                  std::span<Status>(&target_status, 1)));
  return target_status;
}

}  // namespace cnnserve
