// The one image-input path: an item of a request (encoded JPEG/PNG bytes, raw 8-bit pixels or a float32 tensor)
// -> the C*H*W float input of one or more models. Every servable calls PrepareItem (the model servable with one
// target, the ensemble with one target per distinct preprocessing among its members, so that an image is decoded
// once however many members read it); the fuzz target tests/fuzz/fuzz_image_input.cc runs the same function.
// Protocol-neutral: the front ends build ImageItems from their wire requests.
//
// Images: DecodeImage or ImageFromPixels (preprocess.h: the checks before any decoder runs), then, per target,
// PreprocessImage, which equals the training pipeline's input:
// Preprocess (preprocess.h) resizes the decoded 8-bit image, and OpenCV resizes CV_8U in fixed point with rounding
// to integers (up to 0.75/255 off per pixel). Training pipelines convert to float first and resize the float image
// (models/zoo/train_fashion_mnist.py: decode -> float32 -> cv::resize INTER_LINEAR -> (x * scale - mean) / std in
// float32). So PreprocessImage asks Preprocess only for the colour-converted float image at its own size (scale 1,
// no mean/std: exact sample values), then resizes that float image with OpenCV's INTER_LINEAR arithmetic
// (half-pixel centres, float32 weights, edge clamping, horizontal then vertical pass: ResizeBilinearWindow) and
// normalises in float32 as NumPy does. For the default lenet5_fashion model the result is bit-identical to the
// training script's input.npy (tested). A source larger than kMaxFloatResizeSourceValues floats (after colour
// conversion) is resized by Preprocess in 8 bits instead, to bound memory; the two paths differ only by that
// rounding. The float path resizes bilinearly whatever options.interpolation says (model configs only have
// bilinear); the 8-bit fallback honours it.
//
// Tensors: checked for non-finite values (CheckFiniteFloats), then per target for their size, and copied.
//
// Thread-safety: pure functions; any number may run concurrently.
#ifndef CNNSERVE_SERVER_PREPROCESS_IMAGE_INPUT_H_
#define CNNSERVE_SERVER_PREPROCESS_IMAGE_INPUT_H_

#include <cstdint>
#include <span>
#include <string_view>

#include "engine/common/status.h"
#include "engine/tensor/tensor.h"
#include "server/preprocess/preprocess.h"

namespace cnnserve {

// One image of a request, in the form it arrived. `data` is a view: the caller keeps the bytes alive while the
// item is in use (for a Servable::Run, until its `done` has been called).
struct ImageItem {
  enum class Kind {
    kEncoded,  // data: JPEG or PNG bytes; decoded and preprocessed with the model's preprocessing
    kPixels,   // data: height * width * channels uint8 samples, row-major HWC; channels 1 (gray) or 3 (RGB);
               // preprocessed with the model's preprocessing
    kTensor,   // data: the model's per-image input, C*H*W little-endian float32 (alignment not required); used as is
  };
  Kind kind = Kind::kEncoded;
  std::string_view data;
  int32_t height = 0;    // kPixels only
  int32_t width = 0;     // kPixels only
  int32_t channels = 0;  // kPixels only
};

// One model input that PrepareItem writes an item into.
struct ItemTarget {
  // The model's name, for messages (quoted with Quoted()); empty: "the model".
  std::string_view model;
  // The model's image preprocessing; null when the model takes tensors only (an image item then fails this
  // target with INVALID_ARGUMENT). Not owned.
  const PreprocessOptions* preprocess = nullptr;
  // The model's per-image input, C x H x W: a kTensor item must hold exactly NumElements(input_dims) float32
  // values. Empty: a kTensor item is not sized or copied for this target (its values are still checked).
  Dims input_dims;
  // Where the NumElements(input_dims) floats go (caller-owned, not kept; e.g. the item's row of a batch); null:
  // check only (a tensor's size; an image's fit with the preprocessing, without preprocessing it). On a failure
  // the row may be partly written.
  float* dst = nullptr;
};

// 16 Mi floats (64 MiB): e.g. a 2360 x 2360 RGB image or a 4096 x 4096 gray one.
inline constexpr int64_t kMaxFloatResizeSourceValues = int64_t{16} << 20;

// Prepares `item` for every target: decodes (or builds, or checks) it once, then writes each target's input.
// Returns the item's own error, for which no target was written: INVALID_ARGUMENT for bytes that cannot be
// decoded, raw pixels that do not match their shape, a non-finite tensor value, an unknown kind (messages as
// DecodeImage / ImageFromPixels / CheckFiniteFloats); UNAVAILABLE when the decode budget cannot hold the image
// now; RESOURCE_EXHAUSTED; INTERNAL when target_status and targets differ in size. Otherwise OK, and
// target_status[t] is OK when target t was written, or its own error: INVALID_ARGUMENT for an image sent to a
// model without preprocessing ("model "m" has no image preprocessing ..."), a tensor of the wrong size
// ("a tensor of N bytes; model "m" takes C x H x W float32 = M bytes per image"), a preprocessing failure (as PreprocessImage).
Status PrepareItem(const ImageItem& item, const DecodeLimits& limits, std::span<const ItemTarget> targets,
                   std::span<Status> target_status);

// PrepareItem for one target: the item's error, else the target's.
Status PrepareItem(const ImageItem& item, const DecodeLimits& limits, const ItemTarget& target);

// The 8-bit samples of an image item (encoded bytes decoded, raw pixels checked), before any preprocessing.
// Errors: those of DecodeImage / ImageFromPixels, INVALID_ARGUMENT for a tensor item (it has no pixels).
StatusOr<PixelImage> ItemPixels(const ImageItem& item, const DecodeLimits& limits);

// The preprocessing step of PrepareItem for an image already decoded: writes the C*H*W floats of
// PreprocessedDims(options) for `image` to `dst` (caller-owned), as described above. `max_float_source_values`
// bounds the float path (see kMaxFloatResizeSourceValues). Errors as Preprocess.
Status PreprocessImage(const DecodedImage& image, const PreprocessOptions& options, float* dst,
                       int64_t max_float_source_values = kMaxFloatResizeSourceValues);

// OpenCV's INTER_LINEAR resize of one float plane (src_h x src_w, row-major) to resized_h x resized_w, of which
// only the window of out_h x out_w at (crop_y, crop_x) is written to `dst` (row-major, out_w per row). The
// window must lie inside the resized image. Same results as cv::resize on CV_32F, window by window.
void ResizeBilinearWindow(const float* src, int64_t src_h, int64_t src_w, int64_t resized_h, int64_t resized_w,
                          int64_t crop_y, int64_t crop_x, int64_t out_h, int64_t out_w, float* dst);

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_PREPROCESS_IMAGE_INPUT_H_
