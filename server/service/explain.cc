#include "server/service/explain.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <mutex>

#include "engine/common/strings.h"

namespace cnnserve {
namespace {

// The most bytes of masked copies one request of an occlusion map may carry in the image's pixels (an ensemble
// whose members take different inputs, see explain.h); in a model's input space --max-explain-masks bounds them.
constexpr int64_t kMaxPixelChunkBytes = int64_t{256} << 20;
// Requests of a map in flight at once: while one runs, the next waits in the queue and the one after is written.
constexpr int kChunksInFlight = 2;
// Masked copies per request: this many of the model's largest batches.
constexpr int64_t kBatchesPerChunk = 2;

// One occlusion map being made. The first request (the image and the first chunk of copies) fixes the space and
// the version; then the copies go in chunks, kChunksInFlight at a time, each written into a buffer that the
// chunk before it used (so the copies of a whole map never exist at once: 387 MB for AlexNet at 625 positions).
struct OcclusionJob {
  InferenceService* service = nullptr;
  OcclusionRequest request;
  std::shared_ptr<OcclusionOutcome> outcome;
  std::function<void(Status)> done;

  // Set by the first request's build_items, read-only afterwards.
  bool pixel_space = false;
  Dims shape;  // C, H, W of the space the patch moves in
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t version = 0;        // of the servable the first request found; the chunks go to it
  int64_t first_copies = 0;   // copies in the first request (with the image: one batch of the largest plan)
  int64_t chunk_copies = 0;   // copies in each later request
  int64_t copy_bytes = 0;
  std::vector<float> image;        // the preprocessed image (input space)
  PixelImage pixels;               // the image's samples (pixel space)
  std::vector<uint8_t> pixel_fill;  // one sample per channel (pixel space)

  std::mutex mu;
  int64_t next_copy = 0;  // copies given to requests so far
  int in_flight = 0;
  Status failure;
  bool answered = false;  // done has been called (or is being called)
  int64_t num_classes = 0;
  std::vector<float> probabilities;  // (1 + rows * cols) x num_classes, row 0 the unmasked image
  std::vector<int32_t> top1;         // 1 + rows * cols
  std::vector<std::shared_ptr<std::vector<char>>> spare;  // buffers of finished chunks
};

// Patch positions over job->shape and the --max-explain-masks limit.
Status CountPositions(OcclusionJob* job, const char* space) {
  const OcclusionRequest& request = job->request;
  const std::string height = std::string(space) + " height", width = std::string(space) + " width";
  CNN_ASSIGN_OR_RETURN(job->rows, OcclusionPositions(job->shape[1], request.patch, request.stride, height.c_str()));
  CNN_ASSIGN_OR_RETURN(job->cols, OcclusionPositions(job->shape[2], request.patch, request.stride, width.c_str()));
  const int64_t masks = job->rows * job->cols;
  const int64_t limit = job->service->options().max_explain_masks;
  if (masks > limit) {
    return InvalidArgumentError("patch " + std::to_string(request.patch) + " with stride " +
                                std::to_string(request.stride) + " makes " + std::to_string(masks) +
                                " masked copies, more than the limit of " + std::to_string(limit) +
                                " (--max-explain-masks): use a larger stride");
  }
  return OkStatus();
}

// In the model's input space: the image preprocessed once with the model's preprocessing.
Status PrepareInputSpace(OcclusionJob* job, const ServableInfo& info) {
  job->shape = info.item_input_dims;
  CNN_RETURN_IF_ERROR(CountPositions(job, "input"));
  job->image.assign(static_cast<size_t>(NumElements(job->shape)), 0.0f);
  ItemTarget target;
  target.model = info.name;
  target.preprocess = info.preprocess.has_value() ? &*info.preprocess : nullptr;
  target.input_dims = job->shape;
  target.dst = job->image.data();
  if (Status s = PrepareItem(job->request.image, job->service->decode_limits(), target); !s.ok()) {
    return Status(s.code(), "field image: " + s.message());
  }
  job->copy_bytes = static_cast<int64_t>(job->image.size() * sizeof(float));
  return OkStatus();
}

// In the image's pixels (an ensemble whose members take different inputs): the image's 8-bit samples, and the
// samples that `fill` stands for in the first member's preprocessing.
Status PreparePixelSpace(OcclusionJob* job, const ServableInfo& info) {
  if (!info.preprocess.has_value()) {
    return InvalidArgumentError("ensemble " + Quoted(info.name) + " takes no images: no occlusion map");
  }
  StatusOr<PixelImage> image = ItemPixels(job->request.image, job->service->decode_limits());
  if (!image.ok()) {
    return Status(image.status().code(), "field image: ensemble " + Quoted(info.name) +
                                             " has members with different inputs, so its map is made on the "
                                             "image's pixels: " + image.status().message());
  }
  job->pixel_space = true;
  job->pixels = *std::move(image);
  job->shape = {job->pixels.channels, job->pixels.height, job->pixels.width};
  CNN_RETURN_IF_ERROR(CountPositions(job, "image"));
  job->copy_bytes = static_cast<int64_t>(job->pixels.hwc.size());
  if (job->copy_bytes * (job->chunk_copies + 1) > kMaxPixelChunkBytes) {
    return InvalidArgumentError("the masked copies of this " + std::to_string(job->pixels.width) + "x" +
                                std::to_string(job->pixels.height) + " image take more than " +
                                std::to_string(kMaxPixelChunkBytes >> 20) + " MiB per batch of " +
                                std::to_string(job->chunk_copies) + ": send a smaller image");
  }
  job->pixel_fill = PixelFill(*info.preprocess, job->request.fill, job->pixels.channels);
  return OkStatus();
}

// Checks the model and the target class, and prepares the space explain.h describes.
Status PrepareOcclusion(OcclusionJob* job, const ServableInfo& info) {
  if (info.item_input_dims.size() != 3) {
    return InvalidArgumentError("model " + Quoted(info.name) + " takes inputs of shape [" +
                                DimsToString(info.item_input_dims) + "], not C x H x W images: no occlusion map");
  }
  if (job->request.target_class >= info.num_classes) {
    return InvalidArgumentError("field target_class: " + std::to_string(job->request.target_class) +
                                " is not a class of " + Quoted(info.name) + " (0 to " +
                                std::to_string(info.num_classes - 1) + ")");
  }
  job->version = info.version;
  job->first_copies = std::max<int64_t>(1, info.max_batch_size) - 1;
  job->chunk_copies = std::max<int64_t>(1, info.max_batch_size) * kBatchesPerChunk;
  if (info.members_share_input) return PrepareInputSpace(job, info);
  return PreparePixelSpace(job, info);
}

// Writes the unmasked image (copy < 0) or masked copy `copy` to `dst` (job->copy_bytes).
void WriteCopy(const OcclusionJob& job, int64_t copy, char* dst) {
  const int64_t patch = job.request.patch, stride = job.request.stride;
  const int64_t top = copy < 0 ? 0 : copy / job.cols * stride, left = copy < 0 ? 0 : copy % job.cols * stride;
  if (!job.pixel_space) {
    float* out = reinterpret_cast<float*>(dst);
    std::copy(job.image.begin(), job.image.end(), out);
    if (copy >= 0) FillPatch(job.shape, top, left, patch, job.request.fill, out);
    return;
  }
  std::copy(job.pixels.hwc.begin(), job.pixels.hwc.end(), reinterpret_cast<uint8_t*>(dst));
  if (copy >= 0) FillPixelPatch(job.pixels, top, left, patch, job.pixel_fill, reinterpret_cast<uint8_t*>(dst));
}

// The items of one request: the image when `with_image`, then copies [first, first + count), written to `buffer`.
void BuildChunkItems(const OcclusionJob& job, bool with_image, int64_t first, int64_t count, std::vector<char>& buffer,
                     RunRequest* run) {
  const int64_t items = count + (with_image ? 1 : 0);
  buffer.resize(static_cast<size_t>(items * job.copy_bytes));
  ImageItem kind;
  kind.kind = ImageItem::Kind::kTensor;
  if (job.pixel_space) {
    kind.kind = ImageItem::Kind::kPixels;
    kind.height = static_cast<int32_t>(job.pixels.height);
    kind.width = static_cast<int32_t>(job.pixels.width);
    kind.channels = job.pixels.channels;
  }
  run->cacheable = false;  // masked copies are new every time: hashing them would only cost
  run->items.clear();
  for (int64_t i = 0; i < items; ++i) {
    const int64_t copy = with_image ? first + i - 1 : first + i;
    char* dst = buffer.data() + i * job.copy_bytes;
    WriteCopy(job, copy, dst);
    ImageItem item = kind;
    item.data = std::string_view(dst, static_cast<size_t>(job.copy_bytes));
    run->items.push_back(item);
  }
  const int64_t cols = job.cols;
  run->item_name = [cols, first, with_image](int64_t item) {
    if (with_image && item == 0) return std::string("image");
    const int64_t copy = first + item - (with_image ? 1 : 0);
    return "masked copy at (" + std::to_string(copy / cols) + ", " + std::to_string(copy % cols) + ")";
  };
}

// The map from the rows of the unmasked image (row 0) and its masked copies.
OcclusionMap MapFromRows(const OcclusionJob& job) {
  OcclusionMap map;
  map.shape = job.shape;
  map.pixel_space = job.pixel_space;
  map.rows = job.rows;
  map.cols = job.cols;
  map.top1 = job.top1[0];
  map.target_class = job.request.target_class >= 0 ? job.request.target_class : map.top1;
  const size_t n = static_cast<size_t>(job.num_classes);
  const size_t target = static_cast<size_t>(map.target_class);
  map.probability = job.probabilities[target];
  map.drop.resize(static_cast<size_t>(job.rows * job.cols));
  map.top1_at.assign(job.top1.begin() + 1, job.top1.end());
  for (size_t i = 0; i < map.drop.size(); ++i) map.drop[i] = map.probability - job.probabilities[(i + 1) * n + target];
  return map;
}

void SubmitChunkOnDecodeWorker(const std::shared_ptr<OcclusionJob>& job);

// Answers once the map is over (it failed, or every copy has been answered) and no chunk is in flight; at most
// once.
void AnswerIfOver(const std::shared_ptr<OcclusionJob>& job) {
  {
    std::lock_guard<std::mutex> lock(job->mu);
    if (job->answered || job->in_flight > 0) return;
    if (job->failure.ok() && job->next_copy < job->rows * job->cols) return;
    job->answered = true;
  }
  if (job->failure.ok()) job->outcome->map = MapFromRows(*job);
  job->done(job->failure);
}

// Keeps the rows of a finished request (the first row, `first_row`, in map order), then starts the next chunk or
// answers.
void OnChunkDone(const std::shared_ptr<OcclusionJob>& job, const InferOutcome& infer, int64_t first_row,
                 std::shared_ptr<std::vector<char>> buffer, Status status) {
  bool submit = false;
  {
    std::lock_guard<std::mutex> lock(job->mu);
    --job->in_flight;
    if (status.ok() && job->failure.ok()) {
      const RunResult& result = infer.result;
      const size_t n = static_cast<size_t>(job->num_classes);
      std::copy(result.probabilities.begin(), result.probabilities.end(),
                job->probabilities.begin() + static_cast<ptrdiff_t>(static_cast<size_t>(first_row) * n));
      for (int64_t i = 0; i < result.num_items; ++i) {
        job->top1[static_cast<size_t>(first_row + i)] = static_cast<int32_t>(result.Ranked(i, 1).at(0).index);
      }
    } else if (job->failure.ok()) {
      job->failure = std::move(status);
    }
    job->spare.push_back(std::move(buffer));
    submit = job->failure.ok() && job->next_copy < job->rows * job->cols;
  }
  if (submit) return SubmitChunkOnDecodeWorker(job);
  AnswerIfOver(job);
}

// Sends the next chunk of copies to the version the first request found; nothing when none is left or the map
// has failed.
void SubmitChunk(const std::shared_ptr<OcclusionJob>& job) {
  int64_t first = 0, count = 0;
  std::shared_ptr<std::vector<char>> buffer;
  {
    std::lock_guard<std::mutex> lock(job->mu);
    if (!job->failure.ok() || job->next_copy >= job->rows * job->cols) return;  // another thread took the rest
    first = job->next_copy;
    count = std::min(job->chunk_copies, job->rows * job->cols - first);
    job->next_copy += count;
    ++job->in_flight;
    if (!job->spare.empty()) {
      buffer = std::move(job->spare.back());
      job->spare.pop_back();
    }
  }
  if (buffer == nullptr) buffer = std::make_shared<std::vector<char>>();
  const InferOutcome& head = *job->outcome->infer;
  InferRequest infer;
  infer.model = job->request.model;
  infer.version = job->version;
  infer.request_id = head.request_id;
  infer.deadline_us = job->request.deadline_us;
  infer.cancelled = job->request.cancelled;
  infer.build_items = [job, buffer, first, count](const ServableInfo&, RunRequest* run) {
    BuildChunkItems(*job, false, first, count, *buffer, run);
    return OkStatus();
  };
  auto outcome = std::make_shared<InferOutcome>();
  job->service->Infer(std::move(infer), outcome, [job, outcome, buffer, first](Status status) mutable {
    OnChunkDone(job, *outcome, first + 1, std::move(buffer), std::move(status));
  });
}

// SubmitChunk on a decode worker: writing a chunk's copies holds no batcher thread. A full decode queue fails the
// map like a chunk that failed.
void SubmitChunkOnDecodeWorker(const std::shared_ptr<OcclusionJob>& job) {
  Status queued = job->service->RunOnDecodeWorker([job] { SubmitChunk(job); });
  if (queued.ok()) return;
  {
    std::lock_guard<std::mutex> lock(job->mu);
    if (job->failure.ok()) job->failure = std::move(queued);
  }
  AnswerIfOver(job);
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

void FillPatch(const Dims& chw, int64_t top, int64_t left, int64_t patch, float fill, float* image) {
  const int64_t h = chw[1], w = chw[2];
  for (int64_t ch = 0; ch < chw[0]; ++ch) {
    for (int64_t y = top; y < top + patch; ++y) std::fill_n(image + (ch * h + y) * w + left, patch, fill);
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

void FillPixelPatch(const PixelImage& image, int64_t top, int64_t left, int64_t patch, std::span<const uint8_t> fill,
                    uint8_t* hwc) {
  const int64_t c = image.channels;
  for (int64_t y = top; y < top + patch; ++y) {
    for (int64_t x = left; x < left + patch; ++x) std::copy_n(fill.data(), c, hwc + (y * image.width + x) * c);
  }
}

void RunOcclusion(InferenceService& service, OcclusionRequest request, std::shared_ptr<OcclusionOutcome> outcome,
                  std::function<void(Status)> done) {
  auto job = std::make_shared<OcclusionJob>();
  job->service = &service;
  job->request = std::move(request);
  job->outcome = std::move(outcome);
  job->done = std::move(done);
  job->in_flight = 1;  // the first request
  auto buffer = std::make_shared<std::vector<char>>();
  InferRequest infer;
  infer.model = job->request.model;
  infer.version = job->request.version;
  infer.request_id = job->request.request_id;
  infer.deadline_us = job->request.deadline_us;
  infer.cancelled = job->request.cancelled;
  infer.build_items = [job, buffer](const ServableInfo& info, RunRequest* run) {
    CNN_RETURN_IF_ERROR(PrepareOcclusion(job.get(), info));
    const int64_t copies = job->rows * job->cols;
    std::lock_guard<std::mutex> lock(job->mu);
    job->num_classes = info.num_classes;
    job->probabilities.assign(static_cast<size_t>((copies + 1) * info.num_classes), 0.0f);
    job->top1.assign(static_cast<size_t>(copies + 1), 0);
    job->next_copy = std::min(job->first_copies, copies);
    BuildChunkItems(*job, true, 0, job->next_copy, *buffer, run);
    return OkStatus();
  };
  // From a decode worker (the first request decodes the image): the first request, one batch with the image, then
  // at once the next chunk, so that the engine has the next batches queued while the first one runs.
  auto first = [job, buffer, infer = std::move(infer)]() mutable {
    job->service->Infer(std::move(infer), job->outcome->infer, [job, buffer](Status status) mutable {
      OnChunkDone(job, *job->outcome->infer, 0, std::move(buffer), std::move(status));
    });
    for (int i = 1; i < kChunksInFlight; ++i) SubmitChunk(job);
  };
  if (Status queued = service.RunOnDecodeWorker(std::move(first)); !queued.ok()) job->done(std::move(queued));
}

}  // namespace cnnserve
