#include "server/preprocess/preprocess.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <cstddef>
#include <exception>
#include <limits>
#include <new>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <string>
#include <utility>

namespace cnnserve {

// The decoded pixels: CV_8UC1, CV_8UC3, CV_16UC1 or CV_16UC3; colour is in BGR order.
struct DecodedImage::Impl {
  cv::Mat pixels;
  DecodeBudget::Reservation reservation;  // released with the pixels
};

struct DecodedImageAccess {
  static DecodedImage Make(ImageFormat format, cv::Mat pixels, DecodeBudget::Reservation reservation = {}) {
    DecodedImage image;
    image.format_ = format;
    image.width_px_ = pixels.cols;
    image.height_px_ = pixels.rows;
    image.channels_ = pixels.channels();
    image.bit_depth_ = pixels.depth() == CV_16U ? 16 : 8;
    auto impl = std::make_shared<DecodedImage::Impl>();
    impl->pixels = std::move(pixels);
    impl->reservation = std::move(reservation);
    image.impl_ = std::move(impl);
    return image;
  }
  static const cv::Mat& Pixels(const DecodedImage& image) { return image.impl_->pixels; }
};

DecodedImage::DecodedImage() = default;
DecodedImage::~DecodedImage() = default;
DecodedImage::DecodedImage(const DecodedImage&) = default;
DecodedImage& DecodedImage::operator=(const DecodedImage&) = default;
DecodedImage::DecodedImage(DecodedImage&&) noexcept = default;
DecodedImage& DecodedImage::operator=(DecodedImage&&) noexcept = default;

namespace {

constexpr int64_t kMaxImageBytesLimit = std::numeric_limits<int32_t>::max();  // cv::Mat extents are int
constexpr double kSixteenToEightBitDivisor = 257.0;                           // 65535 / 255
constexpr int kEightBitValues = 256;
constexpr int kMaxChannels = 3;

// Runs `fn`, which calls OpenCV, turning exceptions into a Status. OpenCV errors get `cv_error_code`
// (INVALID_ARGUMENT while decoding client data, INTERNAL elsewhere); running out of memory is RESOURCE_EXHAUSTED.
template <typename Fn>
Status RunOpenCv(const std::string& what, StatusCode cv_error_code, Fn&& fn) {
  try {
    fn();
    return OkStatus();
  } catch (const cv::Exception& e) {
    if (e.code == cv::Error::StsNoMem) return ResourceExhaustedError(what + " ran out of memory: " + e.err);
    return Status(cv_error_code, what + " failed: OpenCV error: " + e.err);
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError(what + " ran out of memory");
  } catch (const std::exception& e) {
    return InternalError(what + " failed: " + e.what());
  } catch (...) {
    return InternalError(what + " failed with an unknown exception");
  }
}

Status ValidateDecodeLimits(const DecodeLimits& limits) {
  if (limits.max_image_bytes <= 0 || limits.max_image_bytes > kMaxImageBytesLimit) {
    return InvalidArgumentError("max_image_bytes is " + std::to_string(limits.max_image_bytes) +
                                "; it must be in [1, " + std::to_string(kMaxImageBytesLimit) + "]");
  }
  if (limits.max_pixels <= 0) {
    return InvalidArgumentError("max_pixels is " + std::to_string(limits.max_pixels) + "; it must be positive");
  }
  if (limits.max_decoded_bytes <= 0) {
    return InvalidArgumentError("max_decoded_bytes is " + std::to_string(limits.max_decoded_bytes) +
                                "; it must be positive");
  }
  return OkStatus();
}

// Checks `bytes` against max_decoded_bytes and reserves them from the budget (when there is one). `what`
// describes the image for messages.
StatusOr<DecodeBudget::Reservation> ReserveDecodeMemory(int64_t bytes, const std::string& what,
                                                        const DecodeLimits& limits) {
  if (bytes > limits.max_decoded_bytes) {
    return InvalidArgumentError(what + " takes " + std::to_string(bytes) + " bytes to decode, over max_decoded_bytes " +
                                std::to_string(limits.max_decoded_bytes));
  }
  if (limits.budget == nullptr) return DecodeBudget::Reservation();
  return limits.budget->Reserve(bytes);
}

Status ValidatePerChannel(const char* field, const std::vector<float>& values, int channels, bool nonzero) {
  if (values.size() > 1 && values.size() != static_cast<size_t>(channels)) {
    return InvalidArgumentError(std::string(field) + " has " + std::to_string(values.size()) +
                                " entries; it must have 0, 1 or " + std::to_string(channels) +
                                " (one per output channel)");
  }
  for (size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i]) || (nonzero && values[i] == 0.0f)) {
      return InvalidArgumentError(std::string(field) + "[" + std::to_string(i) + "] is " +
                                  std::to_string(values[i]) + "; it must be finite" +
                                  (nonzero ? " and non-zero" : ""));
    }
  }
  return OkStatus();
}

float PerChannel(const std::vector<float>& values, int channel, float default_value) {
  if (values.empty()) return default_value;
  if (values.size() == 1) return values[0];
  return values[channel];
}

int ToOpenCvInterpolation(Interpolation interpolation) {
  switch (interpolation) {
    case Interpolation::kArea:
      return cv::INTER_AREA;
    case Interpolation::kNearest:
      return cv::INTER_NEAREST;
    case Interpolation::kBicubic:
      return cv::INTER_CUBIC;
    case Interpolation::kBilinear:
      break;
  }
  return cv::INTER_LINEAR;
}

}  // namespace

StatusOr<ResizeGeometry> ComputeResizeGeometry(int64_t src_width, int64_t src_height,
                                               const PreprocessOptions& options) {
  ResizeGeometry geometry;
  const int64_t height = options.target_height_px;
  const int64_t width = options.target_width_px;
  if (options.resize == ResizeMode::kExact) {
    geometry.resized_width = width;
    geometry.resized_height = height;
    return geometry;
  }
  const int64_t shorter =
      options.resize_shorter_side_px > 0 ? options.resize_shorter_side_px : std::max(height, width);
  // Sizes are < 2^31 and shorter <= kMaxTargetSidePx, so the products fit in int64.
  if (src_width <= src_height) {
    geometry.resized_width = shorter;
    geometry.resized_height = src_height * shorter / src_width;
  } else {
    geometry.resized_height = shorter;
    geometry.resized_width = src_width * shorter / src_height;
  }
  const int64_t max_side = std::numeric_limits<int>::max();
  if (geometry.resized_width > max_side || geometry.resized_height > max_side ||
      geometry.resized_width * geometry.resized_height > options.decode_limits.max_pixels) {
    return InvalidArgumentError("resizing the " + std::to_string(src_width) + "x" + std::to_string(src_height) +
                                " image so that its shorter side is " + std::to_string(shorter) + " gives " +
                                std::to_string(geometry.resized_width) + "x" +
                                std::to_string(geometry.resized_height) + " pixels, over max_pixels " +
                                std::to_string(options.decode_limits.max_pixels) +
                                ": the aspect ratio is too extreme");
  }
  geometry.crop_x = (geometry.resized_width - width) / 2;
  geometry.crop_y = (geometry.resized_height - height) / 2;
  return geometry;
}

namespace {

// Writes the planar, normalised output from `window` (target-sized, 1 or 3 channels, BGR order).
template <typename Sample, typename Convert>
void WritePlanes(const cv::Mat& window, const std::array<int, kMaxChannels>& src_channel, int out_channels,
                 Convert&& convert, float* dst) {
  const int height = window.rows;
  const int width = window.cols;
  const int src_channels = window.channels();
  const size_t plane = static_cast<size_t>(height) * width;
  for (int y = 0; y < height; ++y) {
    const Sample* row = window.ptr<Sample>(y);
    for (int c = 0; c < out_channels; ++c) {
      float* out = dst + c * plane + static_cast<size_t>(y) * width;
      const Sample* in = row + src_channel[c];
      for (int x = 0; x < width; ++x) out[x] = convert(c, in[static_cast<size_t>(x) * src_channels]);
    }
  }
}

}  // namespace

int OutputChannels(ColorFormat color) { return color == ColorFormat::kGray ? 1 : 3; }

Dims PreprocessedDims(const PreprocessOptions& options) {
  return {OutputChannels(options.color), options.target_height_px, options.target_width_px};
}

Status ValidatePreprocessOptions(const PreprocessOptions& options) {
  if (options.color != ColorFormat::kGray && options.color != ColorFormat::kRgb &&
      options.color != ColorFormat::kBgr) {
    return InvalidArgumentError("color is " + std::to_string(static_cast<int>(options.color)) +
                                ", not one of GRAY, RGB, BGR");
  }
  for (const auto& [field, value] : {std::pair{"target_height_px", options.target_height_px},
                                     std::pair{"target_width_px", options.target_width_px}}) {
    if (value < 1 || value > kMaxTargetSidePx) {
      return InvalidArgumentError(std::string(field) + " is " + std::to_string(value) + "; it must be in [1, " +
                                  std::to_string(kMaxTargetSidePx) + "]");
    }
  }
  if (options.resize != ResizeMode::kExact && options.resize != ResizeMode::kShorterSideCrop) {
    return InvalidArgumentError("resize is " + std::to_string(static_cast<int>(options.resize)) +
                                ", not one of EXACT, SHORTER_SIDE_CROP");
  }
  if (options.resize == ResizeMode::kShorterSideCrop && options.resize_shorter_side_px != 0) {
    const int64_t min_side = std::max(options.target_height_px, options.target_width_px);
    if (options.resize_shorter_side_px < min_side || options.resize_shorter_side_px > kMaxTargetSidePx) {
      return InvalidArgumentError("resize_shorter_side_px is " + std::to_string(options.resize_shorter_side_px) +
                                  "; it must be 0 (use " + std::to_string(min_side) + ") or in [" +
                                  std::to_string(min_side) + " (the larger target side), " +
                                  std::to_string(kMaxTargetSidePx) + "]");
    }
  }
  switch (options.interpolation) {
    case Interpolation::kBilinear:
    case Interpolation::kArea:
    case Interpolation::kNearest:
    case Interpolation::kBicubic:
      break;
    default:
      return InvalidArgumentError("interpolation is " + std::to_string(static_cast<int>(options.interpolation)) +
                                  ", not one of BILINEAR, AREA, NEAREST, BICUBIC");
  }
  if (!std::isfinite(options.scale)) {
    return InvalidArgumentError("scale is " + std::to_string(options.scale) + "; it must be finite");
  }
  const int channels = OutputChannels(options.color);
  CNN_RETURN_IF_ERROR(ValidatePerChannel("mean", options.mean, channels, /*nonzero=*/false));
  CNN_RETURN_IF_ERROR(ValidatePerChannel("stddev", options.stddev, channels, /*nonzero=*/true));
  return ValidateDecodeLimits(options.decode_limits);
}

int64_t DecodedBytes(const ImageHeader& header) {
  const int64_t bytes_per_sample = header.bit_depth > 8 ? 2 : 1;
  int decoded_channels = header.channels == 1 ? 1 : 3;  // JPEG: CMYK is converted row by row
  int copy_channels = 0;
  if (header.format == ImageFormat::kPng && (header.channels == 2 || header.channels == 4 || header.has_transparency)) {
    decoded_channels = 4;                              // OpenCV decodes alpha and tRNS as BGRA, grey + alpha too
    copy_channels = header.channels == 2 ? 1 : 3;      // DecodeImage keeps grey, or BGR
  }
  return header.width_px * header.height_px * bytes_per_sample * (decoded_channels + copy_channels);
}

StatusOr<DecodedImage> DecodeImage(std::string_view bytes, const DecodeLimits& limits) {
  CNN_RETURN_IF_ERROR(ValidateDecodeLimits(limits));
  if (bytes.size() > static_cast<uint64_t>(limits.max_image_bytes)) {
    return InvalidArgumentError("the image is " + std::to_string(bytes.size()) +
                                " bytes, which exceeds max_image_bytes " + std::to_string(limits.max_image_bytes));
  }
  CNN_ASSIGN_OR_RETURN(const ImageHeader header, InspectImage(bytes, limits.max_pixels));
  const std::string format_name(ImageFormatName(header.format));
  CNN_ASSIGN_OR_RETURN(DecodeBudget::Reservation reservation,
                       ReserveDecodeMemory(DecodedBytes(header),
                                           "the " + std::to_string(header.width_px) + "x" +
                                               std::to_string(header.height_px) + " " +
                                               std::to_string(header.bit_depth) + "-bit " + format_name + " image",
                                           limits));

  cv::Mat decoded;
  CNN_RETURN_IF_ERROR(RunOpenCv("decoding the " + format_name + " image", StatusCode::kInvalidArgument, [&] {
    // imdecode only reads the buffer; the const_cast is for cv::Mat's constructor.
    const cv::Mat encoded(1, static_cast<int>(bytes.size()), CV_8UC1, const_cast<char*>(bytes.data()));
    // IMREAD_UNCHANGED keeps 16-bit samples and does not apply EXIF orientation (so the size is the declared one).
    decoded = cv::imdecode(encoded, cv::IMREAD_UNCHANGED);
  }));
  if (decoded.empty()) {
    return InvalidArgumentError("the " + format_name + " image data could not be decoded (corrupt image data)");
  }
  if (decoded.cols != header.width_px || decoded.rows != header.height_px) {
    return InvalidArgumentError("the decoded " + format_name + " image is " + std::to_string(decoded.cols) + "x" +
                                std::to_string(decoded.rows) + ", not the declared " +
                                std::to_string(header.width_px) + "x" + std::to_string(header.height_px));
  }
  if (decoded.depth() != CV_8U && decoded.depth() != CV_16U) {
    return InvalidArgumentError("the decoded " + format_name +
                                " image has an unsupported sample depth (OpenCV depth " +
                                std::to_string(decoded.depth()) + ")");
  }
  cv::Mat pixels;
  const int channels = decoded.channels();
  CNN_RETURN_IF_ERROR(RunOpenCv("dropping the alpha channel", StatusCode::kInternal, [&] {
    // A grey + alpha PNG arrives as 2 channels or (OpenCV 4.6) as BGRA with B = G = R: keep one grey channel.
    if (channels == 2 || (channels == 4 && header.channels == 2)) {
      cv::extractChannel(decoded, pixels, 0);
    } else if (channels == 4) {  // BGRA
      cv::cvtColor(decoded, pixels, cv::COLOR_BGRA2BGR);
    } else {
      pixels = decoded;
    }
  }));
  if (pixels.channels() != 1 && pixels.channels() != 3) {
    return InvalidArgumentError("the decoded " + format_name + " image has " + std::to_string(channels) +
                                " channels; expected 1 to 4");
  }
  return DecodedImageAccess::Make(header.format, std::move(pixels), std::move(reservation));
}

bool PreprocessOptions::operator==(const PreprocessOptions& other) const {
  return color == other.color && target_height_px == other.target_height_px &&
         target_width_px == other.target_width_px && resize == other.resize &&
         resize_shorter_side_px == other.resize_shorter_side_px && interpolation == other.interpolation &&
         scale == other.scale && mean == other.mean && stddev == other.stddev &&
         decode_limits.max_image_bytes == other.decode_limits.max_image_bytes &&
         decode_limits.max_pixels == other.decode_limits.max_pixels &&
         decode_limits.max_decoded_bytes == other.decode_limits.max_decoded_bytes &&
         decode_limits.budget == other.decode_limits.budget;
}

StatusOr<DecodedImage> ImageFromPixels(std::string_view hwc, int64_t height, int64_t width, int channels,
                                       const DecodeLimits& limits) {
  CNN_RETURN_IF_ERROR(ValidateDecodeLimits(limits));
  if (channels != 1 && channels != 3) {
    return InvalidArgumentError("raw pixels have " + std::to_string(channels) +
                                " channels; expected 1 (gray) or 3 (RGB)");
  }
  if (height < 1 || width < 1 || height > kMaxTargetSidePx * 4 || width > kMaxTargetSidePx * 4) {
    return InvalidArgumentError("raw pixels of " + std::to_string(height) + "x" + std::to_string(width) +
                                ": each side must be in [1, " + std::to_string(kMaxTargetSidePx * 4) + "]");
  }
  if (height * width > limits.max_pixels) {
    return InvalidArgumentError("raw pixels of " + std::to_string(width) + "x" + std::to_string(height) + " = " +
                                std::to_string(height * width) + " pixels exceed max_pixels " +
                                std::to_string(limits.max_pixels));
  }
  const uint64_t expected = static_cast<uint64_t>(height * width * channels);
  if (hwc.size() != expected) {
    return InvalidArgumentError("raw pixels of " + std::to_string(height) + "x" + std::to_string(width) + "x" +
                                std::to_string(channels) + " need " + std::to_string(expected) + " bytes, got " +
                                std::to_string(hwc.size()));
  }
  CNN_ASSIGN_OR_RETURN(DecodeBudget::Reservation reservation,
                       ReserveDecodeMemory(static_cast<int64_t>(expected),
                                           "raw pixels of " + std::to_string(height) + "x" + std::to_string(width) +
                                               "x" + std::to_string(channels),
                                           limits));
  cv::Mat pixels;
  CNN_RETURN_IF_ERROR(RunOpenCv("copying raw pixels", StatusCode::kInternal, [&] {
    const cv::Mat view(static_cast<int>(height), static_cast<int>(width), channels == 1 ? CV_8UC1 : CV_8UC3,
                       const_cast<char*>(hwc.data()));
    if (channels == 3) {
      cv::cvtColor(view, pixels, cv::COLOR_RGB2BGR);  // DecodedImage keeps colour as BGR, like imdecode
    } else {
      pixels = view.clone();
    }
  }));
  return DecodedImageAccess::Make(ImageFormat::kRaw, std::move(pixels), std::move(reservation));
}

StatusOr<PixelImage> ToPixels(const DecodedImage& image) {
  if (image.empty()) return InvalidArgumentError("ToPixels: the decoded image is empty");
  const cv::Mat& src = DecodedImageAccess::Pixels(image);
  PixelImage out;
  out.height = src.rows;
  out.width = src.cols;
  out.channels = src.channels();
  CNN_RETURN_IF_ERROR(RunOpenCv("copying the image's pixels", StatusCode::kInternal, [&] {
    out.hwc.resize(static_cast<size_t>(out.height * out.width * out.channels));
    cv::Mat eight = src;
    if (src.depth() == CV_16U) src.convertTo(eight, CV_8U, 1.0 / 257.0);
    cv::Mat dst(src.rows, src.cols, out.channels == 1 ? CV_8UC1 : CV_8UC3, out.hwc.data());
    if (out.channels == 3) {
      cv::cvtColor(eight, dst, cv::COLOR_BGR2RGB);  // DecodedImage keeps colour as BGR
    } else {
      eight.copyTo(dst);
    }
  }));
  return out;
}

Status Preprocess(const DecodedImage& image, const PreprocessOptions& options, float* dst) {
  CNN_RETURN_IF_ERROR(ValidatePreprocessOptions(options));
  if (image.empty()) return InvalidArgumentError("Preprocess: the decoded image is empty");
  if (dst == nullptr) return InvalidArgumentError("Preprocess: dst is null");
  const cv::Mat& src = DecodedImageAccess::Pixels(image);
  CNN_ASSIGN_OR_RETURN(const ResizeGeometry geometry, ComputeResizeGeometry(src.cols, src.rows, options));
  const int out_channels = OutputChannels(options.color);
  const int height = static_cast<int>(options.target_height_px);
  const int width = static_cast<int>(options.target_width_px);

  cv::Mat window;
  CNN_RETURN_IF_ERROR(RunOpenCv("resizing the image", StatusCode::kInternal, [&] {
    cv::Mat working = src;
    if (out_channels == 1 && src.channels() == 3) {
      cv::cvtColor(src, working, cv::COLOR_BGR2GRAY);  // before resizing: a third of the work
    }
    const cv::Size resized_size(static_cast<int>(geometry.resized_width),
                                static_cast<int>(geometry.resized_height));
    if (working.size() != resized_size) {
      cv::Mat resized;
      cv::resize(working, resized, resized_size, 0, 0, ToOpenCvInterpolation(options.interpolation));
      working = resized;
    }
    window =
        working(cv::Rect(static_cast<int>(geometry.crop_x), static_cast<int>(geometry.crop_y), width, height));
  }));

  // Output channel c reads source channel src_channel[c] (the source is grey or BGR).
  std::array<int, kMaxChannels> src_channel = {0, 0, 0};
  if (window.channels() == 3) {
    for (int c = 0; c < kMaxChannels; ++c) src_channel[c] = options.color == ColorFormat::kRgb ? 2 - c : c;
  }
  std::array<double, kMaxChannels> mean{};
  std::array<double, kMaxChannels> stddev{};
  for (int c = 0; c < out_channels; ++c) {
    mean[c] = PerChannel(options.mean, c, 0.0f);
    stddev[c] = PerChannel(options.stddev, c, 1.0f);
  }
  const double scale = options.scale;

  if (window.depth() == CV_8U) {
    std::array<std::array<float, kEightBitValues>, kMaxChannels> table;
    for (int c = 0; c < out_channels; ++c) {
      for (int v = 0; v < kEightBitValues; ++v) {
        table[c][v] = static_cast<float>((v * scale - mean[c]) / stddev[c]);
      }
    }
    WritePlanes<uint8_t>(
        window, src_channel, out_channels, [&](int c, uint8_t v) { return table[c][v]; }, dst);
  } else {
    WritePlanes<uint16_t>(
        window, src_channel, out_channels,
        [&](int c, uint16_t v) {
          return static_cast<float>((v / kSixteenToEightBitDivisor * scale - mean[c]) / stddev[c]);
        },
        dst);
  }
  return OkStatus();
}

Status CheckFiniteFloats(std::string_view float32_bytes) {
  constexpr uint32_t kExponentMask = 0x7f800000u;  // all-ones exponent: infinity or NaN
  const size_t count = float32_bytes.size() / sizeof(float);
  // Fast pass over the bit patterns (a branch-free OR reduction the compiler vectorises); the slow pass below
  // runs only to name the first bad value.
  uint32_t any_bad = 0;
  for (size_t i = 0; i < count; ++i) {
    uint32_t bits;
    std::memcpy(&bits, float32_bytes.data() + i * sizeof(float), sizeof(bits));
    any_bad |= static_cast<uint32_t>((bits & kExponentMask) == kExponentMask);
  }
  if (any_bad == 0) return OkStatus();
  for (size_t i = 0; i < count; ++i) {
    float value;
    std::memcpy(&value, float32_bytes.data() + i * sizeof(float), sizeof(float));
    if (!std::isfinite(value)) {
      return InvalidArgumentError("value " + std::to_string(i) + " of the tensor is " +
                                  (std::isnan(value) ? "NaN" : "infinite") + ": tensor values must be finite");
    }
  }
  return OkStatus();
}

Status ValidateRawTensor(const Dims& declared, size_t byte_count, const Dims& expected_chw) {
  const auto shape = [](const Dims& dims) {
    return "[" + (dims.empty() ? std::string() : DimsToString(dims)) + "]";
  };
  if (expected_chw.size() != 3 || !ValidateDims(expected_chw).ok()) {
    return InternalError("ValidateRawTensor: the model input shape " + shape(expected_chw) +
                         " is not a valid C x H x W shape");
  }
  const std::string expected = shape(expected_chw);
  bool shape_matches = false;
  int64_t batch = 1;
  if (declared.size() == 3) {
    shape_matches = declared == expected_chw;
  } else if (declared.size() == 4) {
    batch = declared[0];
    shape_matches = std::equal(declared.begin() + 1, declared.end(), expected_chw.begin());
    if (shape_matches && batch < 1) {
      return InvalidArgumentError("raw tensor shape " + shape(declared) + " has batch size " +
                                  std::to_string(batch) + "; it must be at least 1");
    }
  }
  if (!shape_matches) {
    return InvalidArgumentError("raw tensor shape " + shape(declared) + " does not match the model input " +
                                expected + " (or [N x " + DimsToString(expected_chw) + "] with N >= 1)");
  }
  const int64_t values_per_image = NumElements(expected_chw);
  const int64_t bytes_per_image = values_per_image * static_cast<int64_t>(sizeof(float));
  if (batch > std::numeric_limits<int64_t>::max() / bytes_per_image) {
    return InvalidArgumentError("raw tensor shape " + shape(declared) + " is too large (" + std::to_string(batch) +
                                " images)");
  }
  const int64_t expected_bytes = batch * bytes_per_image;
  if (byte_count != static_cast<uint64_t>(expected_bytes)) {
    return InvalidArgumentError("raw tensor data has " + std::to_string(byte_count) + " bytes but shape " +
                                shape(declared) + " of float32 needs " + std::to_string(expected_bytes) +
                                " bytes (" + std::to_string(batch * values_per_image) + " values x " +
                                std::to_string(sizeof(float)) + " bytes)");
  }
  return OkStatus();
}

void SetPreprocessThreads(int n) {
  try {
    cv::setNumThreads(n);
  } catch (...) {  // NOLINT(bugprone-empty-catch): documented as never failing; the setting stays unchanged
  }
}

}  // namespace cnnserve
