#include "server/native/native_explain.h"

#include <memory>
#include <string>
#include <utility>

#include "server/native/native_request.h"
#include "server/preprocess/preprocess.h"
#include "server/service/explain.h"

namespace cnnserve {
namespace {

// `input` as one item, viewing its bytes; a raw tensor must hold one C x H x W image of `chw` (empty: its own
// shape is only checked for consistency with its bytes, the model checks the size).
StatusOr<ImageItem> ItemFromInput(const v1::Input& input, const Dims& chw) {
  switch (input.kind_case()) {
    case v1::Input::kImage:
      return ImageItem{ImageItem::Kind::kEncoded, input.image()};
    case v1::Input::kTensor: {
      const Dims shape(input.tensor().shape().begin(), input.tensor().shape().end());
      const Dims expected = chw.empty() ? (shape.size() == 4 ? Dims(shape.begin() + 1, shape.end()) : shape) : chw;
      if (Status s = ValidateRawTensor(shape, input.tensor().data().size(), expected); !s.ok()) {
        return InvalidArgumentError("field input.tensor: " + s.message());
      }
      if (shape.size() == 4 && shape[0] != 1) {
        return InvalidArgumentError("field input.tensor: one image is explained at a time, the shape has " +
                                    std::to_string(shape[0]));
      }
      return ImageItem{ImageItem::Kind::kTensor, input.tensor().data()};
    }
    case v1::Input::KIND_NOT_SET:
      break;
  }
  return InvalidArgumentError("field input: neither image nor tensor is set");
}

void FillLayerTensor(const InferOutcome& outcome, v1::LayerTensor* out) {
  const ServableInfo& info = outcome.servable->info();
  out->set_layer(info.layer);
  for (int64_t d : info.item_output_dims) out->add_shape(d);
  out->set_count(static_cast<int32_t>(outcome.result.num_items));
  out->mutable_values()->Assign(outcome.result.scores.begin(), outcome.result.scores.end());
}

void FillOcclusion(const OcclusionOutcome& outcome, const v1::ExplainRequest& request, v1::OcclusionMap* out) {
  const OcclusionMap& map = outcome.map;
  const ServableInfo& info = outcome.infer->servable->info();
  out->set_target_class(static_cast<int32_t>(map.target_class));
  if (static_cast<size_t>(map.target_class) < info.labels.size()) {
    out->set_target_label(info.labels[static_cast<size_t>(map.target_class)]);
  }
  out->set_probability(map.probability);
  out->set_top1(static_cast<int32_t>(map.top1));
  out->set_rows(static_cast<int32_t>(map.rows));
  out->set_cols(static_cast<int32_t>(map.cols));
  out->set_patch(request.patch());
  out->set_stride(request.stride());
  out->mutable_drop()->Assign(map.drop.begin(), map.drop.end());
  out->mutable_top1_at()->Assign(map.top1_at.begin(), map.top1_at.end());
  for (int64_t d : map.shape) out->add_input_shape(d);
  out->set_pixel_space(map.pixel_space);
  out->set_masks(static_cast<int32_t>(map.rows * map.cols));
}

// Runs `infer` (up to its layer) and fills the response's model, version, request id and `tensor`.
template <typename Response>
void RunLayer(InferenceService& service, InferRequest infer, Response* response, v1::LayerTensor* tensor,
              std::function<void(Status)> done) {
  auto outcome = std::make_shared<InferOutcome>();
  service.Infer(std::move(infer), outcome, [outcome, response, tensor, done = std::move(done)](Status status) {
    if (!status.ok()) return done(std::move(status));
    response->set_model(outcome->result.model);
    response->set_version(outcome->result.version);
    response->set_request_id(outcome->request_id);
    FillLayerTensor(*outcome, tensor);
    done(OkStatus());
  });
}

InferRequest LayerRequest(const std::string& model, int64_t version, const std::string& request_id,
                          int64_t deadline_us, std::function<bool()> cancelled, const std::string& layer) {
  InferRequest infer;
  infer.model = model;
  infer.version = version;
  infer.request_id = request_id;
  infer.deadline_us = deadline_us;
  infer.cancelled = std::move(cancelled);
  infer.layer = layer;
  return infer;
}

// The feature-map half of Explain.
void RunFeatures(InferenceService& service, const v1::ExplainRequest& request, v1::ExplainResponse* response,
                 int64_t deadline_us, std::function<bool()> cancelled, std::function<void(Status)> done) {
  InferRequest infer =
      LayerRequest(request.model(), request.version(),
                   response->request_id().empty() ? request.request_id() : response->request_id(), deadline_us,
                   std::move(cancelled), request.layer());
  infer.build_items = [&request](const ServableInfo& info, RunRequest* run) -> Status {
    CNN_ASSIGN_OR_RETURN(ImageItem item, ItemFromInput(request.input(), info.item_input_dims));
    run->items = {item};
    run->item_name = [](int64_t) { return std::string("input"); };
    return OkStatus();
  };
  RunLayer(service, std::move(infer), response, response->mutable_features(), std::move(done));
}

}  // namespace

void ExplainNative(InferenceService& service, const v1::ExplainRequest& request, v1::ExplainResponse* response,
                   int64_t deadline_us, std::function<bool()> cancelled, std::function<void(Status)> done) {
  if (request.patch() == 0 && request.layer().empty()) {
    return done(InvalidArgumentError("fields patch and layer: ask for an occlusion map (patch > 0), feature maps "
                                     "(a layer) or both"));
  }
  if (request.patch() == 0) {
    return RunFeatures(service, request, response, deadline_us, std::move(cancelled), std::move(done));
  }
  StatusOr<ImageItem> item = ItemFromInput(request.input(), {});
  if (!item.ok()) return done(item.status());
  OcclusionRequest occlusion;
  occlusion.model = request.model();
  occlusion.version = request.version();
  occlusion.request_id = request.request_id();
  occlusion.deadline_us = deadline_us;
  occlusion.cancelled = cancelled;
  occlusion.image = *item;
  occlusion.target_class = request.has_target_class() ? request.target_class() : -1;
  occlusion.patch = request.patch();
  occlusion.stride = request.stride();
  occlusion.fill = request.fill();
  auto outcome = std::make_shared<OcclusionOutcome>();
  RunOcclusion(service, std::move(occlusion), outcome,
               [&service, &request, response, deadline_us, cancelled, outcome,
                done = std::move(done)](Status status) mutable {
                 if (!status.ok()) return done(std::move(status));
                 response->set_model(outcome->infer->result.model);
                 response->set_version(outcome->infer->result.version);
                 response->set_request_id(outcome->infer->request_id);
                 FillOcclusion(*outcome, request, response->mutable_occlusion());
                 if (request.layer().empty()) return done(OkStatus());
                 RunFeatures(service, request, response, deadline_us, std::move(cancelled), std::move(done));
               });
}

void EmbedNative(InferenceService& service, const v1::EmbedRequest& request, v1::EmbedResponse* response,
                 int64_t deadline_us, std::function<bool()> cancelled, std::function<void(Status)> done) {
  if (request.layer().empty()) {
    return done(InvalidArgumentError("field layer is empty: name a layer (DescribeModel lists them)"));
  }
  const int64_t max_images = service.options().max_images_per_request;
  if (request.inputs_size() == 0) {
    return done(InvalidArgumentError("field inputs: the request has no inputs (send 1 to " +
                                     std::to_string(max_images) + " images)"));
  }
  InferRequest infer = LayerRequest(request.model(), request.version(), request.request_id(), deadline_us,
                                    std::move(cancelled), request.layer());
  infer.build_items = [&request, max_images](const ServableInfo& info, RunRequest* run) {
    return BuildNativeItems(request.inputs(), info, max_images, run);
  };
  RunLayer(service, std::move(infer), response, response->mutable_embeddings(), std::move(done));
}

}  // namespace cnnserve
