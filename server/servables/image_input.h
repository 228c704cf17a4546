// Model input from a request: the model config's preprocessing as PreprocessOptions, and image -> float input
// that equals the training pipeline's input.
//
// Why this is not a single call of Preprocess (server/preprocess): Preprocess resizes the decoded 8-bit image,
// and OpenCV resizes CV_8U in fixed point with rounding to integers (up to 0.75/255 off per pixel). Training
// pipelines convert to float first and resize the float image (models/zoo/train_fashion_mnist.py: decode ->
// float32 -> cv::resize INTER_LINEAR -> (x * scale - mean) / std in float32). So PreprocessImage asks Preprocess
// only for the colour-converted float image at its own size (scale 1, no mean/std: exact sample values), then
// resizes that float image with OpenCV's INTER_LINEAR arithmetic (half-pixel centres, float32 weights, edge
// clamping, horizontal then vertical pass: ResizeBilinearWindow) and normalises in float32 as NumPy does. For the
// default lenet5_fashion model the result is bit-identical to the training script's input.npy (tested).
// A source larger than kMaxFloatResizeSourceValues floats (after colour conversion) is resized by Preprocess in
// 8 bits instead, to bound memory; the two paths differ only by that rounding.
// Thread-safety: pure functions.
#ifndef CNNSERVE_SERVER_SERVABLES_IMAGE_INPUT_H_
#define CNNSERVE_SERVER_SERVABLES_IMAGE_INPUT_H_

#include <cstdint>

#include "cnnserve/v1/model_config.pb.h"
#include "engine/common/status.h"
#include "server/preprocess/preprocess.h"

namespace cnnserve {

// 16 Mi floats (64 MiB): e.g. a 2360 x 2360 RGB image or a 4096 x 4096 gray one.
inline constexpr int64_t kMaxFloatResizeSourceValues = int64_t{16} << 20;

// The PreprocessOptions of a model whose config has been validated by the repository (input.dims set, colour
// consistent with the channels). INVALID_ARGUMENT when they are not valid PreprocessOptions.
StatusOr<PreprocessOptions> PreprocessOptionsFromConfig(const v1::ModelConfig& config, const DecodeLimits& limits);

// Writes the C*H*W floats of PreprocessedDims(options) for `image` to `dst` (caller-owned), as described above.
// `max_float_source_values` bounds the float path (see kMaxFloatResizeSourceValues). Errors as Preprocess.
Status PreprocessImage(const DecodedImage& image, const PreprocessOptions& options, float* dst,
                       int64_t max_float_source_values = kMaxFloatResizeSourceValues);

// OpenCV's INTER_LINEAR resize of one float plane (src_h x src_w, row-major) to resized_h x resized_w, of which
// only the window of out_h x out_w at (crop_y, crop_x) is written to `dst` (row-major, out_w per row). The
// window must lie inside the resized image. Same results as cv::resize on CV_32F, window by window.
void ResizeBilinearWindow(const float* src, int64_t src_h, int64_t src_w, int64_t resized_h, int64_t resized_w,
                          int64_t crop_y, int64_t crop_x, int64_t out_h, int64_t out_w, float* dst);

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_SERVABLES_IMAGE_INPUT_H_
