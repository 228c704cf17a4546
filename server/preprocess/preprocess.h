// Image preprocessing: client image bytes -> the model's NCHW float input. The only component that uses OpenCV
// (DESIGN.md section 1 rule 3); no OpenCV type appears in this header.
//
// The steps of the image-input path. Servables do not call them one by one: they call PrepareItem
// (image_input.h), which decodes an item once and preprocesses it for one or more models.
//   DecodeImage(bytes, limits) -> DecodedImage      checks the bytes (image_header.h), then decodes with OpenCV
//   ImageFromPixels(hwc, ...) -> DecodedImage       raw 8-bit samples
//   Preprocess(image, options, dst)                 colour -> resize (-> centre crop) -> scale/mean/std -> planar,
//                                                   resizing the 8-bit samples (PreprocessImage in image_input.h
//                                                   resizes in float, as training does, and uses Preprocess for
//                                                   colour conversion and as its fallback for huge images)
//
// Decoding, and why it is safe to expose to clients (image decoding is the server's main attack surface):
//   - Only JPEG and PNG, identified by their magic bytes; everything else is rejected before any decoder runs.
//   - The declared dimensions are read from the header by our own bounds-checked parser and capped by
//     DecodeLimits::max_pixels before cv::imdecode is called (OpenCV's own cap, OPENCV_IO_MAX_IMAGE_PIXELS, is
//     read from the environment once at start-up and is 2^30 by default; ours is the real check).
//   - Truncated uploads are rejected: a PNG must reach its IEND chunk and a JPEG its EOI marker, walking the
//     container structure (image_header.h). libjpeg would otherwise return a grey-padded image and only warn.
//   - Every OpenCV call is wrapped; cv::Exception and std::exception become a Status.
//   - The decoded size must equal the declared size.
// What a DecodedImage holds: 1 (grey) or 3 (colour, BGR) channels of 8- or 16-bit samples. Alpha is dropped
// (not composited), CMYK JPEGs are converted to colour, palettes are expanded, PNGs with fewer than 8 bits are
// expanded to 8. EXIF orientation is not applied (like PIL/torchvision loaders, so served inputs match training).
//
// Preprocessing, per output channel c (in the target colour order):
//   dst[c][y][x] = (v * scale - mean[c]) / stddev[c],  v = the sample in [0, 255] (16-bit samples are divided by
//   257, so 65535 -> 255 exactly, and keep their extra precision).
//   Colour to GRAY uses the ITU-R BT.601 luma weights (cv::COLOR_BGR2GRAY) before resizing; GRAY to RGB/BGR
//   replicates the channel. Resize is skipped when the size already matches, so PNG input of the target size is
//   bit-exact. OpenCV's bilinear filter does not antialias when shrinking by more than 2x; choose kArea for that.
//
// Threads: OpenCV runs its parallel loops (colour conversion, resize) on its own pool (TBB in Debian's build),
// by default as wide as the machine. The server decides: InferenceService gives it the cores of --threads, the
// same ones as its compute lanes (SetPreprocessThreads(ComputeLanes::cpus()) where it creates them), so that
// preprocessing does not spread over cores the operator kept for something else.
//
// Thread-safety: all functions are reentrant and may run concurrently. A DecodedImage is immutable; copies share
// its pixels, and several threads may Preprocess the same DecodedImage at once. SetPreprocessThreads changes a
// process-wide OpenCV setting: call it at start-up (the last call wins).
#ifndef CNNSERVE_SERVER_PREPROCESS_PREPROCESS_H_
#define CNNSERVE_SERVER_PREPROCESS_PREPROCESS_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "engine/common/status.h"
#include "engine/common/units.h"
#include "engine/tensor/tensor.h"
#include "server/preprocess/decode_budget.h"
#include "server/preprocess/image_header.h"

namespace cnnserve {

// Caps applied before decoding.
struct DecodeLimits {
  // Largest accepted upload. > 0.
  int64_t max_image_bytes = 64 * kBytesPerMiB;
  // Largest accepted declared width * height; also bounds the intermediate image of kShorterSideCrop. > 0.
  int64_t max_pixels = 40'000'000;
  // Largest memory one image may take to decode (DecodedBytes: samples at their bit depth and channel count,
  // plus the copy that drops alpha). > 0. 256 MiB admits a 40M-pixel 8-bit RGB JPEG or a 6000 x 4000 RGBA PNG,
  // not a 6300 x 6300 16-bit RGBA PNG (555 MB).
  int64_t max_decoded_bytes = 256 * kBytesPerMiB;
  // Shared by every decode in the process (decode_budget.h); null: no bound on concurrent decode memory.
  std::shared_ptr<DecodeBudget> budget;
};

// Channel count and order of the model input.
enum class ColorFormat { kGray, kRgb, kBgr };
enum class ResizeMode {
  // Resize straight to target_height_px x target_width_px (the aspect ratio is not kept).
  kExact,
  // Resize (keeping the aspect ratio) so that the shorter side is resize_shorter_side_px, then take the centre
  // target_height_px x target_width_px (offset floor((resized - target) / 2) on each axis).
  kShorterSideCrop,
};
enum class Interpolation {
  kBilinear,  // cv::INTER_LINEAR
  kArea,      // cv::INTER_AREA: pixel-area averaging, the better choice when shrinking a lot
  kNearest,   // cv::INTER_NEAREST
  kBicubic,   // cv::INTER_CUBIC
};

// How one model wants its input. Mirrors PreprocessConfig in proto/cnnserve/v1/model_config.proto.
struct PreprocessOptions {
  ColorFormat color = ColorFormat::kRgb;
  // Output size. Each in [1, kMaxTargetSidePx].
  int64_t target_height_px = 224;
  int64_t target_width_px = 224;
  ResizeMode resize = ResizeMode::kExact;
  // kShorterSideCrop only: the shorter side after resizing, e.g. 256 for 224x224 crops. 0: use
  // max(target_height_px, target_width_px). Otherwise in [max(target_height_px, target_width_px),
  // kMaxTargetSidePx].
  int64_t resize_shorter_side_px = 0;
  Interpolation interpolation = Interpolation::kBilinear;
  // Multiplies the [0, 255] sample value first. Finite. (PreprocessConfig.scale 0, "unset", means this default.)
  float scale = 1.0f / 255.0f;
  // Per output channel, in the target colour order (R, G, B for kRgb). Each has 0 entries (mean 0 / stddev 1),
  // 1 entry (used for every channel) or one entry per output channel. stddev entries must be finite and non-zero.
  std::vector<float> mean;
  std::vector<float> stddev;
  // The caps of the model's decoding; Preprocess reads max_pixels (the kShorterSideCrop intermediate image).
  DecodeLimits decode_limits;

  // Field-wise; two models with equal options get bit-identical inputs from one image.
  bool operator==(const PreprocessOptions& other) const;
};

inline constexpr int64_t kMaxTargetSidePx = 16384;

// OK, or INVALID_ARGUMENT naming the first bad field, its value and the allowed range. Call it when loading a
// model's config; Preprocess checks again.
Status ValidatePreprocessOptions(const PreprocessOptions& options);

// 1 for kGray, else 3.
int OutputChannels(ColorFormat color);
// {C, H, W} of the preprocessed image. Precondition: ValidatePreprocessOptions(options).ok().
Dims PreprocessedDims(const PreprocessOptions& options);

// Where Preprocess takes its output from: the (colour-converted) source is resized to resized_width x
// resized_height, then the target-sized window at (crop_x, crop_y) is kept. INVALID_ARGUMENT when the shorter-side
// resize of an extreme aspect ratio would exceed decode_limits.max_pixels.
struct ResizeGeometry {
  int64_t resized_width = 0;
  int64_t resized_height = 0;
  int64_t crop_x = 0;
  int64_t crop_y = 0;
};
StatusOr<ResizeGeometry> ComputeResizeGeometry(int64_t src_width, int64_t src_height,
                                               const PreprocessOptions& options);

// A decoded image, ready to be preprocessed any number of times. Immutable; cheap to copy (copies share the
// pixel buffer, which is freed with the last copy). Not tied to the bytes it was decoded from.
class DecodedImage {
 public:
  DecodedImage();  // empty: Preprocess rejects it
  ~DecodedImage();
  DecodedImage(const DecodedImage&);
  DecodedImage& operator=(const DecodedImage&);
  DecodedImage(DecodedImage&&) noexcept;
  DecodedImage& operator=(DecodedImage&&) noexcept;

  bool empty() const { return impl_ == nullptr; }
  ImageFormat format() const { return format_; }
  int64_t width_px() const { return width_px_; }
  int64_t height_px() const { return height_px_; }
  // 1 (grey) or 3 (colour).
  int channels() const { return channels_; }
  // 8 or 16.
  int bit_depth() const { return bit_depth_; }

 private:
  struct Impl;  // the pixels (a cv::Mat), defined in preprocess.cc
  friend struct DecodedImageAccess;

  std::shared_ptr<const Impl> impl_;
  ImageFormat format_ = ImageFormat::kPng;
  int64_t width_px_ = 0;
  int64_t height_px_ = 0;
  int channels_ = 0;
  int bit_depth_ = 0;
};

// The peak memory that decoding an image with this header takes: width * height * bytes per sample (2 for
// 16-bit PNGs) * (the channels the decoder produces + the channels of the copy that drops alpha). The decoder
// produces 4 channels (BGRA) for PNGs with alpha or a tRNS chunk, and for CMYK JPEGs.
int64_t DecodedBytes(const ImageHeader& header);

// Checks and decodes a JPEG or PNG. Does not keep `bytes`. With limits.budget, DecodedBytes(header) are reserved
// before decoding and held by the DecodedImage (and its copies) until the last one is destroyed.
// Errors: INVALID_ARGUMENT for anything wrong with the bytes (size over max_image_bytes, unsupported format,
// malformed or truncated header or structure, declared pixels over max_pixels, decoded bytes over
// max_decoded_bytes, decoder failure) or with `limits`; UNAVAILABLE when the budget cannot hold the image now;
// RESOURCE_EXHAUSTED if memory runs out; INTERNAL if OpenCV fails unexpectedly. Messages name the problem and the
// numbers involved.
StatusOr<DecodedImage> DecodeImage(std::string_view bytes, const DecodeLimits& limits);

// An image from raw 8-bit samples: `hwc` holds height * width * channels bytes, row-major, channels interleaved;
// channels 1 (gray) or 3 (R, G, B in that order). Copies the samples (reserving their size from limits.budget,
// as DecodeImage does). Errors: INVALID_ARGUMENT for a size that does not match, channels other than 1 or 3,
// non-positive sides, or more than limits.max_pixels pixels; UNAVAILABLE when the budget cannot hold the copy.
StatusOr<DecodedImage> ImageFromPixels(std::string_view hwc, int64_t height, int64_t width, int channels,
                                       const DecodeLimits& limits);

// An image as 8-bit samples, the form ImageFromPixels takes: height * width * channels bytes, row-major, channels
// interleaved; channels 1 (gray) or 3 (R, G, B).
struct PixelImage {
  int64_t height = 0;
  int64_t width = 0;
  int channels = 0;
  std::vector<uint8_t> hwc;
};

// The samples of a decoded image as a PixelImage, so that it can be changed pixel by pixel and preprocessed again
// (an ensemble's occlusion map). 16-bit samples become 8-bit (value / 257, rounded). INVALID_ARGUMENT for an empty
// image; RESOURCE_EXHAUSTED if memory runs out; INTERNAL if OpenCV fails unexpectedly.
StatusOr<PixelImage> ToPixels(const DecodedImage& image);

// Writes the C*H*W floats of PreprocessedDims(options), channel planes in order, to `dst` (caller-owned, not
// kept; e.g. one image's slot in a batch tensor). On error `dst` may be partly written.
// Errors: INVALID_ARGUMENT for bad options, an empty image, or a kShorterSideCrop whose intermediate image would
// exceed options.decode_limits.max_pixels (an extreme aspect ratio); RESOURCE_EXHAUSTED if memory runs out;
// INTERNAL if OpenCV fails unexpectedly.
Status Preprocess(const DecodedImage& image, const PreprocessOptions& options, float* dst);

// Checks a raw float32 tensor sent instead of an image. `declared` is the client's shape: C x H x W, or N x C x H
// x W with N >= 1; `byte_count` the size of its data; `expected_chw` the model's per-image input (rank 3).
// Errors: INVALID_ARGUMENT "raw tensor shape ... does not match the model input ..." for a wrong rank or extent,
// "... has N bytes but shape ... needs M bytes" for a byte count that does not match a valid shape, or a
// non-positive extent; INTERNAL if `expected_chw` is not a valid rank-3 shape.
Status ValidateRawTensor(const Dims& declared, size_t byte_count, const Dims& expected_chw);

// Checks that every value of a raw float32 tensor (little-endian, any alignment) is finite: a NaN or an infinity
// would flow through the network into every class's score. INVALID_ARGUMENT naming the first bad value's index
// and whether it is NaN or infinite. A trailing partial value is not inspected (ValidateRawTensor checks sizes).
Status CheckFiniteFloats(std::string_view float32_bytes);

// Sets how many threads OpenCV may use for its parallel loops (resize, colour conversion), process-wide, via
// cv::setNumThreads: n > 1 up to n threads; 0 or 1 sequentially on the calling thread; negative OpenCV's default
// (all cores). Called by InferenceService where it creates its compute lanes, with their core count (--threads,
// 0: all); see "Threads" above. Never fails (an OpenCV error is ignored and leaves the setting unchanged).
void SetPreprocessThreads(int n);

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_PREPROCESS_PREPROCESS_H_
