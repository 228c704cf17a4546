// The one KServe v2 inference path, shared by gRPC's ModelInfer / ModelStreamInfer (server/transport) and the REST
// infer route (server/http): a ModelInferRequest is validated by the shared translation (kserve_tensors.h), run
// through InferenceService::Infer and answered in a ModelInferResponse, so both protocols validate, fail and
// answer identically.
//
// Thread-safety: may be called from any thread. Ownership: `request` and `response` must stay alive until `done`.
#ifndef CNNSERVE_SERVER_KSERVE_KSERVE_INFER_H_
#define CNNSERVE_SERVER_KSERVE_KSERVE_INFER_H_

#include <cstdint>
#include <functional>

#include "engine/common/status.h"
#include "inference/grpc_service.pb.h"
#include "server/service/inference_service.h"

namespace cnnserve {

// Validates `request` (model name and version, requested outputs, the input; limits from service->options()),
// runs it and fills `response` (outputs, model name and version, id echoed). Asynchronous: `done` runs exactly
// once, on the calling thread (errors found before Run) or on a worker. `deadline_us`: steady clock, 0 for none;
// `cancelled` may be null. Errors: those of InferenceService::Infer and of ParseRequestedOutputs /
// ParseInferInput (INVALID_ARGUMENT naming the field). A request whose only requested output is not the model's
// output names an internal layer (a node or tensor name, as DescribeModel lists them): it gets that layer's
// activations, shaped [N, the layer's per-item dims] (InferRequest::layer), or INVALID_ARGUMENT for a name that is
// not a layer.
void RunKServeInfer(InferenceService* service, const inference::ModelInferRequest& request,
                    inference::ModelInferResponse* response, int64_t deadline_us, std::function<bool()> cancelled,
                    std::function<void(Status)> done);

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_KSERVE_KSERVE_INFER_H_
