#include "tools/cnnctl/png_image.h"

#include <png.h>

#include <algorithm>
#include <cmath>

#include "engine/common/strings.h"

namespace cnnserve::tools {
namespace {

constexpr int kChannels = 3;
constexpr float kMaxByte = 255.0f;

uint8_t ToByte(float v) { return static_cast<uint8_t>(std::clamp(std::lround(v * kMaxByte), 0L, 255L)); }

// White at 0, red towards +1, blue towards -1.
void Diverging(float t, uint8_t* rgb) {
  t = std::clamp(t, -1.0f, 1.0f);
  const float fade = 1.0f - std::fabs(t);
  rgb[0] = ToByte(t >= 0 ? 1.0f : fade);
  rgb[1] = ToByte(fade);
  rgb[2] = ToByte(t <= 0 ? 1.0f : fade);
}

}  // namespace

RgbImage OcclusionHeatMap(const std::vector<float>& drop, int rows, int cols, int patch, int stride, int input_h,
                          int input_w) {
  std::vector<double> sum(static_cast<size_t>(input_h) * input_w, 0.0);
  std::vector<int> count(sum.size(), 0);
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < cols; ++c) {
      const float d = drop[static_cast<size_t>(r) * cols + c];
      for (int y = r * stride; y < std::min(input_h, r * stride + patch); ++y) {
        for (int x = c * stride; x < std::min(input_w, c * stride + patch); ++x) {
          sum[static_cast<size_t>(y) * input_w + x] += d;
          ++count[static_cast<size_t>(y) * input_w + x];
        }
      }
    }
  }
  double scale = 0;
  for (size_t i = 0; i < sum.size(); ++i) {
    if (count[i] > 0) sum[i] /= count[i];
    scale = std::max(scale, std::fabs(sum[i]));
  }
  RgbImage out{input_w, input_h, std::vector<uint8_t>(sum.size() * kChannels)};
  for (size_t i = 0; i < sum.size(); ++i) {
    Diverging(scale > 0 ? static_cast<float>(sum[i] / scale) : 0.0f, &out.rgb[i * kChannels]);
  }
  return out;
}

RgbImage Overlay(const RgbImage& base, const RgbImage& heat, float alpha) {
  RgbImage out = base;
  for (int y = 0; y < base.height; ++y) {
    const int hy = std::min(heat.height - 1, y * heat.height / base.height);
    for (int x = 0; x < base.width; ++x) {
      const int hx = std::min(heat.width - 1, x * heat.width / base.width);
      for (int k = 0; k < kChannels; ++k) {
        const size_t o = (static_cast<size_t>(y) * base.width + x) * kChannels + k;
        const float h = heat.rgb[(static_cast<size_t>(hy) * heat.width + hx) * kChannels + k];
        out.rgb[o] = static_cast<uint8_t>(std::lround((1 - alpha) * base.rgb[o] + alpha * h));
      }
    }
  }
  return out;
}

RgbImage Enlarge(const RgbImage& image, int factor) {
  factor = std::max(1, factor);
  RgbImage out{image.width * factor, image.height * factor, {}};
  out.rgb.resize(static_cast<size_t>(out.width) * out.height * kChannels);
  for (int y = 0; y < out.height; ++y) {
    for (int x = 0; x < out.width; ++x) {
      std::copy_n(&image.rgb[(static_cast<size_t>(y / factor) * image.width + x / factor) * kChannels], kChannels,
                  &out.rgb[(static_cast<size_t>(y) * out.width + x) * kChannels]);
    }
  }
  return out;
}

RgbImage FeatureGrid(const float* values, int channels, int height, int width) {
  const int per_row = std::max(1, static_cast<int>(std::ceil(std::sqrt(static_cast<double>(channels)))));
  const int grid_rows = (channels + per_row - 1) / per_row;
  RgbImage out{per_row * (width + 1) - 1, grid_rows * (height + 1) - 1, {}};
  out.rgb.assign(static_cast<size_t>(out.width) * out.height * kChannels, ToByte(0.5f));  // gaps in gray
  const size_t plane = static_cast<size_t>(height) * width;
  for (int c = 0; c < channels; ++c) {
    const float* v = values + c * plane;
    const auto [lo, hi] = std::minmax_element(v, v + plane);
    const float range = *hi - *lo;
    const int x0 = (c % per_row) * (width + 1), y0 = (c / per_row) * (height + 1);
    for (int y = 0; y < height; ++y) {
      for (int x = 0; x < width; ++x) {
        const uint8_t g = ToByte(range > 0 ? (v[static_cast<size_t>(y) * width + x] - *lo) / range : 0.0f);
        std::fill_n(&out.rgb[(static_cast<size_t>(y0 + y) * out.width + x0 + x) * kChannels], kChannels, g);
      }
    }
  }
  return out;
}

StatusOr<RgbImage> DecodePng(const std::string& bytes) {
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&image, bytes.data(), bytes.size())) {
    return InvalidArgumentError(std::string("not a PNG: ") + image.message);
  }
  image.format = PNG_FORMAT_RGB;
  RgbImage out{static_cast<int>(image.width), static_cast<int>(image.height), {}};
  out.rgb.resize(PNG_IMAGE_SIZE(image));
  if (!png_image_finish_read(&image, nullptr, out.rgb.data(), 0, nullptr)) {
    png_image_free(&image);
    return InvalidArgumentError(std::string("cannot decode the PNG: ") + image.message);
  }
  return out;
}

Status WritePng(const std::string& path, const RgbImage& image) {
  png_image png{};
  png.version = PNG_IMAGE_VERSION;
  png.width = static_cast<png_uint_32>(image.width);
  png.height = static_cast<png_uint_32>(image.height);
  png.format = PNG_FORMAT_RGB;
  if (!png_image_write_to_file(&png, path.c_str(), 0, image.rgb.data(), 0, nullptr)) {
    return InvalidArgumentError("cannot write " + Quoted(path, kMaxQuotedPathBytes) + ": " + png.message);
  }
  return OkStatus();
}

}  // namespace cnnserve::tools
