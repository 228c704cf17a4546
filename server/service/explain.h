// Occlusion sensitivity (Zeiler & Fergus 2014) over the InferenceService: how much a model's probability for a
// class falls when a square patch of the image is covered, at every patch position.
//
// The image is decoded and preprocessed once (the model's own preprocessing, InferenceService::decode_limits), on a
// decode worker; the masked copies are made after that, in the model's input space (the patch is set to `fill`
// in every channel: 0 is the dataset mean after normalisation), and run as raw-tensor items of
// InferenceService::Infer requests: first the unmasked image with max_batch_size - 1 copies (one batch of the
// largest plan; this request finds the model and its version), then at once the other copies in chunks of
// 2 x max_batch_size for that version, two requests in flight: while one runs, the next waits in the queue and
// the one after is written (on a decode worker) into the buffer of a request that has finished. So the copies go
// through the model's own batcher in batches of its largest plans, each request counted against its queue limits
// like a request of that many images, the engine does not wait for the copies to be written, and a whole map's
// copies never exist at once (for AlexNet's 625 positions they would be 387 MB, and writing fresh memory costs
// more than the copying). An ensemble gives the map of its combined probability. The first error ends the map
// (requests in flight finish first).
//
// An ensemble whose members take different inputs (ServableInfo::members_share_input false: other sizes, or other
// normalisations, as in the shipped fashion_ensemble) has no one input space: one tensor would mean different
// things to its members. Its map is made on the image's pixels: the image is decoded once to 8-bit samples, the
// patch (in image pixels) is set to the samples that `fill` stands for in the first member's preprocessing (0: its
// dataset mean), and the copies go as raw pixels that each member preprocesses its own way; a chunk of them takes
// at most 256 MiB. Feature maps and embeddings need nothing here: they are InferRequests with `layer` set
// (inference_service.h).
//
// Thread-safety: RunOcclusion may be called from any thread; the pure helpers are pure.
#ifndef CNNSERVE_SERVER_SERVICE_EXPLAIN_H_
#define CNNSERVE_SERVER_SERVICE_EXPLAIN_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/common/status.h"
#include "server/preprocess/image_input.h"
#include "server/service/inference_service.h"

namespace cnnserve {

struct OcclusionRequest {
  std::string model;
  int64_t version = 0;              // 0: the newest ready version
  std::string request_id;           // empty: the service assigns one
  int64_t deadline_us = 0;          // absolute, steady clock; 0: the service's default
  std::function<bool()> cancelled;  // optional
  ImageItem image;                  // the caller keeps its bytes alive until `done`
  int64_t target_class = -1;        // < 0: the top-1 class of the unmasked image
  int64_t patch = 0;                // side of the square patch, input pixels; 1 .. min(H, W)
  int64_t stride = 0;               // step between patch positions, input pixels; >= 1
  float fill = 0.0f;                // value of the covered inputs (after normalisation)
};

struct OcclusionMap {
  int64_t target_class = 0;
  float probability = 0.0f;  // p(target_class | image)
  // C, H, W of where the patch moved: the model's input, or (pixel_space) the image's 8-bit pixels.
  Dims shape;
  bool pixel_space = false;
  int64_t top1 = 0;          // top-1 class of the unmasked image
  // Patch positions: row r, column c covers rows of `shape` [r * stride, r * stride + patch) and the same columns.
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<float> drop;    // rows * cols: p(target | image) - p(target | image with the patch at (r, c))
  std::vector<int32_t> top1_at;  // rows * cols: the top-1 class with the patch at (r, c)
};

struct OcclusionOutcome {
  std::shared_ptr<InferOutcome> infer = std::make_shared<InferOutcome>();  // servable, request id, raw rows
  OcclusionMap map;
};

// Patch positions along an axis of `size` inputs: (size - patch) / stride + 1. INVALID_ARGUMENT (naming the field
// and the input size) for patch < 1, patch > size, stride < 1.
StatusOr<int64_t> OcclusionPositions(int64_t size, int64_t patch, int64_t stride, const char* axis);

// Sets the patch x patch square at (top, left) of a C x H x W float image to `fill` in every channel. The square
// lies inside the image.
void FillPatch(const Dims& chw, int64_t top, int64_t left, int64_t patch, float fill, float* image);

// The 8-bit sample per pixel channel (1: gray, 3: R, G, B) that becomes `fill` after `preprocess` normalises it
// (rounded, clamped to 0..255). A gray image for a colour model: the mean over the model's channels.
std::vector<uint8_t> PixelFill(const PreprocessOptions& preprocess, float fill, int channels);

// FillPatch on 8-bit HWC samples of image's size (`hwc`, not image.hwc): each pixel of the square takes `fill`,
// one sample per channel.
void FillPixelPatch(const PixelImage& image, int64_t top, int64_t left, int64_t patch, std::span<const uint8_t> fill,
                    uint8_t* hwc);

// Validates, prepares the masked copies and runs them (see the top of this file); `done` runs exactly once, on the
// calling thread (errors; a cheap model run to completion) or a batcher worker, and outcome->map is filled on OK. Errors: those of Infer; INVALID_ARGUMENT
// for a bad image, patch or stride, a target_class outside the model's classes, a model that takes no C x H x W
// images, more than options().max_explain_masks masked copies (naming the limit and --max-explain-masks).
void RunOcclusion(InferenceService& service, OcclusionRequest request, std::shared_ptr<OcclusionOutcome> outcome,
                  std::function<void(Status)> done);

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_SERVICE_EXPLAIN_H_
