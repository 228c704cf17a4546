// The native Classifier API's translation: a v1::ClassifyRequest's inputs as the items of a RunRequest (encoded
// images and raw tensors, viewed in place), and a finished RunResult as a v1::ClassifyResponse (top-k classes
// with labels; for ensembles agreement, margin and member results); ClassifyNative runs one request through the
// service layer's one request path (InferenceService::Infer).
// Thread-safety: BuildNativeItems and FillClassifyResponse are pure functions; ClassifyNative may be called from
// any thread. Ownership: the items view the request's bytes; keep the request alive while the RunRequest is used.
#ifndef CNNSERVE_SERVER_NATIVE_NATIVE_REQUEST_H_
#define CNNSERVE_SERVER_NATIVE_NATIVE_REQUEST_H_

#include <cstdint>
#include <functional>

#include "cnnserve/v1/classifier.pb.h"
#include "engine/common/status.h"
#include "server/servables/servable.h"
#include "server/service/inference_service.h"

namespace cnnserve {

// Counts the images of every input (validating raw tensors against `info`'s input) and lists them as items of
// `run`, with item names ("inputs[2].tensor[1]") for messages. INVALID_ARGUMENT naming the input for a bad
// tensor, an input with neither image nor tensor, or more than `max_images_per_request` images in all.
Status BuildNativeItems(const v1::ClassifyRequest& request, const ServableInfo& info,
                        int64_t max_images_per_request, RunRequest* run);
// The same for a list of inputs of any request (EmbedRequest.inputs).
Status BuildNativeItems(const google::protobuf::RepeatedPtrField<v1::Input>& inputs, const ServableInfo& info,
                        int64_t max_images_per_request, RunRequest* run);

// Fills `response` (results only: model, version and timings are the caller's) from a finished Run: the top
// `top_k` classes per image; for an ensemble also agreement and margin, and with `members` each member's top-k.
void FillClassifyResponse(const RunResult& result, const ServableInfo& info, int top_k, bool members,
                          v1::ClassifyResponse* response);

// Validates the request's own fields (top_k, number of inputs) and builds its items: BuildNativeItems after the
// checks that do not need the model. INVALID_ARGUMENT naming the field.
Status BuildClassifyItems(const v1::ClassifyRequest& request, const ServableInfo& info,
                          int64_t max_images_per_request, RunRequest* run);

// One native Classify: InferenceService::Infer with BuildClassifyItems, then `response` filled (model, version,
// request id, results, and timings when asked). Errors as InferenceService::Infer. `done` runs exactly once, on
// the calling thread or a worker; `request` and `response` must stay alive until then.
void ClassifyNative(InferenceService& service, const v1::ClassifyRequest& request, v1::ClassifyResponse* response,
                    int64_t deadline_us, std::function<bool()> cancelled, std::function<void(Status)> done);

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_NATIVE_NATIVE_REQUEST_H_
