// The native API's explanations: cnnserve.v1 Explain (occlusion map and/or one layer's feature maps of one image)
// and Embed (one layer's activations for several images), translated to the service layer (server/service/
// explain.h: RunOcclusion; InferRequest::layer) and back.
// Thread-safety: ExplainNative and EmbedNative may be called from any thread. Ownership: `request` and `response`
// must stay alive until `done` has run (items view the request's bytes).
#ifndef CNNSERVE_SERVER_NATIVE_NATIVE_EXPLAIN_H_
#define CNNSERVE_SERVER_NATIVE_NATIVE_EXPLAIN_H_

#include <cstdint>
#include <functional>

#include "cnnserve/v1/classifier.pb.h"
#include "engine/common/status.h"
#include "server/service/inference_service.h"

namespace cnnserve {

// One Explain: the occlusion map when request.patch() > 0, then the feature maps when request.layer() is set;
// INVALID_ARGUMENT when neither is asked for, for a bad input, patch, stride, target class or layer (messages
// name the field); otherwise the errors of InferenceService::Infer. `done` runs exactly once.
void ExplainNative(InferenceService& service, const v1::ExplainRequest& request, v1::ExplainResponse* response,
                   int64_t deadline_us, std::function<bool()> cancelled, std::function<void(Status)> done);

// One Embed: the layer's activations of every input (images or raw tensors, as Classify takes them), batched by
// the layer servable. INVALID_ARGUMENT for an empty layer, no inputs, too many images, a bad input or an unknown
// layer; otherwise the errors of InferenceService::Infer. `done` runs exactly once.
void EmbedNative(InferenceService& service, const v1::EmbedRequest& request, v1::EmbedResponse* response,
                 int64_t deadline_us, std::function<bool()> cancelled, std::function<void(Status)> done);

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_NATIVE_NATIVE_EXPLAIN_H_
