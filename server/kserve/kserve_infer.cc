#include "server/kserve/kserve_infer.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "server/kserve/kserve_tensors.h"

namespace cnnserve {
namespace {

// Everything one inference needs until Infer's `done`: the parsed input (its items point into the request and
// into its storage), the outputs to return, and the service's outcome (the servable, kept alive across unloads,
// and the result).
struct InferCall {
  ParsedInferInput input;
  std::vector<RequestedOutput> outputs;
  std::shared_ptr<InferOutcome> outcome = std::make_shared<InferOutcome>();
};

}  // namespace

void RunKServeInfer(InferenceService* service, const inference::ModelInferRequest& request,
                    inference::ModelInferResponse* response, int64_t deadline_us, std::function<bool()> cancelled,
                    std::function<void(Status)> done) {
  if (request.model_name().empty()) return done(InvalidArgumentError("model_name is empty"));
  const StatusOr<int64_t> version = ParseModelVersion(request.model_version(), "model_version");
  if (!version.ok()) return done(version.status());
  auto call = std::make_shared<InferCall>();
  InferRequest infer;
  infer.model = request.model_name();
  infer.version = *version;
  infer.request_id = request.id();
  infer.deadline_us = deadline_us;
  infer.cancelled = std::move(cancelled);
  // One requested output that is not the model's: an internal layer (feature maps, embeddings; issue 16).
  if (request.outputs_size() == 1) {
    StatusOr<std::shared_ptr<Servable>> found = service->Find(infer.model, infer.version);
    if (found.ok() && request.outputs(0).name() != (*found)->info().output_name) {
      infer.layer = request.outputs(0).name();
      // Built now (Infer then finds it cached), so that a name that is no layer reads as an unknown output.
      if (StatusOr<std::shared_ptr<Servable>> layer = service->FindLayer(infer.model, infer.version, infer.layer);
          !layer.ok()) {
        if (layer.status().code() != StatusCode::kInvalidArgument) return done(layer.status());
        return done(InvalidArgumentError("model '" + infer.model + "': unknown output '" + infer.layer +
                                         "' requested; the model's output is '" + (*found)->info().output_name +
                                         "' (" + layer.status().message() + ")"));
      }
    }
  }
  KServeInputLimits limits;
  limits.max_items = service->options().max_images_per_request;
  limits.max_pixels = service->options().max_pixels;
  infer.build_items = [&request, call, limits](const ServableInfo& info, RunRequest* run) {
    StatusOr<std::vector<RequestedOutput>> outputs = ParseRequestedOutputs(request, info);
    if (!outputs.ok()) return outputs.status();
    call->outputs = std::move(*outputs);
    StatusOr<ParsedInferInput> input = ParseInferInput(request, info, limits);
    if (!input.ok()) return input.status();
    call->input = std::move(*input);
    run->items = call->input.items;
    run->item_name = [name = call->input.name](int64_t item) {
      return "input '" + name + "'[" + std::to_string(item) + "]";
    };
    return OkStatus();
  };
  service->Infer(std::move(infer), call->outcome,
                 [call, response, id = request.id(), done = std::move(done)](Status status) {
                   if (status.ok()) {
                     FillInferOutputs(call->outcome->result, call->outcome->servable->info(), call->outputs,
                                      response);
                     response->set_id(id);
                   }
                   done(std::move(status));
                 });
}

}  // namespace cnnserve
