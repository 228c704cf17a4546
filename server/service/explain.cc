#include "server/service/explain.h"

#include <algorithm>
#include <cstring>

#include "engine/common/strings.h"

namespace cnnserve {
namespace {

// Everything the request's items point into; kept alive until the answer.
struct OcclusionInputs {
  int64_t item_floats = 0;
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<float> values;  // the unmasked image, then rows * cols masked copies, back to back
};

// Prepares the image for `info`, checks the geometry and the limit, and writes the items into `run`.
Status BuildOcclusionItems(const InferenceService& service, const OcclusionRequest& request,
                           const ServableInfo& info, OcclusionInputs* inputs, RunRequest* run) {
  const Dims& chw = info.item_input_dims;
  if (chw.size() != 3) {
    return InvalidArgumentError("model " + Quoted(info.name) + " takes inputs of shape [" + DimsToString(chw) +
                                "], not C x H x W images: no occlusion map");
  }
  if (request.target_class >= info.num_classes) {
    return InvalidArgumentError("field target_class: " + std::to_string(request.target_class) + " is not a class of " +
                                Quoted(info.name) + " (0 to " + std::to_string(info.num_classes - 1) + ")");
  }
  CNN_ASSIGN_OR_RETURN(inputs->rows, OcclusionPositions(chw[1], request.patch, request.stride, "height"));
  CNN_ASSIGN_OR_RETURN(inputs->cols, OcclusionPositions(chw[2], request.patch, request.stride, "width"));
  const int64_t masks = inputs->rows * inputs->cols;
  const int64_t limit = service.options().max_explain_masks;
  if (masks > limit) {
    return InvalidArgumentError("patch " + std::to_string(request.patch) + " with stride " +
                                std::to_string(request.stride) + " makes " + std::to_string(masks) +
                                " masked copies, more than the limit of " + std::to_string(limit) +
                                " (--max-explain-masks): use a larger stride");
  }
  inputs->item_floats = NumElements(chw);
  inputs->values.assign(static_cast<size_t>((masks + 1) * inputs->item_floats), 0.0f);
  ItemTarget target;
  target.model = info.name;
  target.preprocess = info.preprocess.has_value() ? &*info.preprocess : nullptr;
  target.input_dims = chw;
  target.dst = inputs->values.data();
  if (Status s = PrepareItem(request.image, service.decode_limits(), target); !s.ok()) {
    return Status(s.code(), "field image: " + s.message());
  }
  MakeOcclusionMasks(inputs->values.data(), chw, request.patch, request.stride, request.fill,
                     inputs->values.data() + inputs->item_floats);
  const size_t bytes = static_cast<size_t>(inputs->item_floats) * sizeof(float);
  const char* base = reinterpret_cast<const char*>(inputs->values.data());
  run->items.clear();
  for (int64_t i = 0; i <= masks; ++i) {
    run->items.push_back({ImageItem::Kind::kTensor, std::string_view(base + static_cast<size_t>(i) * bytes, bytes)});
  }
  const int64_t cols = inputs->cols;
  run->item_name = [cols](int64_t item) {
    if (item == 0) return std::string("image");
    return "masked copy at (" + std::to_string((item - 1) / cols) + ", " + std::to_string((item - 1) % cols) + ")";
  };
  return OkStatus();
}

// The map from the rows of the unmasked image (item 0) and its masked copies.
OcclusionMap MapFromResult(const RunResult& result, int64_t requested_class, int64_t rows, int64_t cols) {
  OcclusionMap map;
  map.rows = rows;
  map.cols = cols;
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
    return InvalidArgumentError("field patch: " + std::to_string(patch) + " must be 1 to the input " + axis + " (" +
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
                    outcome->map = MapFromResult(outcome->infer->result, shared_request->target_class,
                                                 inputs->rows, inputs->cols);
                  }
                  done(std::move(status));
                });
}

}  // namespace cnnserve
