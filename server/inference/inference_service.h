// InferenceService: everything the transport needs to serve the native Classifier API, with no gRPC in sight.
//
// It owns the model repository (models/repository), one DynamicBatcher (server/batching) per served model
// version with N instances each holding its own engine Session, and the preprocessing (server/preprocess) of
// request images. Requests and responses are the cnnserve.v1 protobuf messages (proto/cnnserve/v1/).
//
// Request path: Classify validates the request (model, version, top_k, input count/kind/shape), decodes and
// preprocesses every image on the calling thread, hands one task (all of the request's images) to the model's
// batcher and returns at once; a batcher worker runs the batch and calls `done` from its thread.
//
// Model control (model_control.h): InferenceServiceOptions::model_control_mode decides whether LoadModel and
// UnloadModel may run (explicit) or are refused with FAILED_PRECONDITION (none, poll); in poll mode a
// RepositoryPoller (repository_poller.h) owned by the service loads, reloads and removes models as their folders
// change. Every front end therefore behaves the same.
//
// Zero-downtime swaps: a (re)load builds and warms the new versions beside the serving ones and publishes them
// in one step; the replaced versions are retired only once no request can still reach them (every holder of the
// old servable has let go), then drained. A request never finds "nothing" because of a swap.
//
// Readiness (strict, Triton's): Ready() is true once start-up loading is done, until Shutdown, and, with
// strict_readiness, only while every model of the repository has a ready version. "A model of the repository"
// is every model listed by Index(): the folders found at start-up, those loaded since, and those that failed to
// load; a model unloaded by UnloadModel counts, since its folder is still there and the server cannot serve it
// (so a load balancer sends its traffic to replicas that can; Triton's explicit mode forgets unloaded models
// instead), until its folder is deleted and it is unloaded again, which drops it from the index; in poll mode a
// deleted folder is dropped from the index. A model whose first load is still running is
// not listed yet (a new model never takes a serving server out of rotation while it loads; it counts once it is
// listed, ready or failed). A model with a ready version and a broken extra version counts as ready (the broken
// version is listed UNAVAILABLE). strict_readiness = false: Ready() ignores the models.
//
// Client-facing messages (errors of LoadModel/UnloadModel/Find, Index reasons) name files relative to the
// repository root, never the root's own path.
//
// Thread-safety: every method may be called from any thread concurrently. Ownership: the caller keeps the request
// and response alive until `done` has been called; `done` is called exactly once.
#ifndef CNNSERVE_SERVER_INFERENCE_INFERENCE_SERVICE_H_
#define CNNSERVE_SERVER_INFERENCE_INFERENCE_SERVICE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cnnserve/v1/classifier.pb.h"
#include "engine/common/status.h"
#include "server/inference/model_control.h"
#include "server/inference/servable.h"

namespace cnnserve {

struct InferenceServiceOptions {
  std::string model_repository;         // root folder in Triton's layout
  int total_threads = 0;                // cores to divide between model instances (0: all)
  int64_t max_images_per_request = 256;
  int64_t max_pixels = 40'000'000;      // per image, checked from the header before decoding
  int64_t max_image_bytes = 64 << 20;
  // Most memory one image may take to decode (DecodedBytes in server/preprocess/preprocess.h).
  int64_t max_decoded_image_bytes = int64_t{256} << 20;
  // Most memory all decodes in flight may hold at once, every model and request together (DecodeBudget); an
  // image that does not fit now is refused with UNAVAILABLE.
  int64_t max_decode_memory_bytes = int64_t{512} << 20;
  int64_t default_max_queue_size = 1024;
  // How long a replaced or unloaded model version may take to finish its requests (LoadModel/UnloadModel).
  int64_t retire_drain_timeout_us = 30'000'000;
  // Who may change the served models (model_control.h; the --model-control-mode flag).
  ModelControlMode model_control_mode = ModelControlMode::kNone;
  // Poll mode: how often the repository folder is scanned (the --repository-poll-secs flag). >= 1.
  int64_t repository_poll_interval_ms = 5000;
  // Ready() requires every model of the repository to be ready (see above; --strict-readiness).
  bool strict_readiness = true;
};

class InferenceService {
 public:
  // Loads every model of the repository (a broken model is logged and reported UNAVAILABLE in ListModels; it
  // never stops the others), creates the batchers and warms every model at every batch size it will run.
  // Fails only when the repository folder itself cannot be read.
  static StatusOr<std::unique_ptr<InferenceService>> Create(const InferenceServiceOptions& options);
  virtual ~InferenceService() = default;

  // Asynchronous classification. Errors, with DESIGN.md's codes and messages naming field and limit:
  // INVALID_ARGUMENT (bad image, shape, byte count, top_k < 0, no inputs or more than allowed), NOT_FOUND
  // (unknown model or version), UNAVAILABLE (queue full, shutting down, model failed to load),
  // DEADLINE_EXCEEDED (deadline passed before the batch ran), CANCELLED (`cancelled` returned true).
  // `deadline_us` is absolute on the steady clock in microseconds (0: none). `cancelled` may be null; it must be
  // cheap and non-blocking.
  // The response has one result per image, in input order; a raw tensor of shape [N, C, H, W] counts as N images
  // (N consecutive results). A request with more images than the model's max_batch_size is split into several
  // tasks (batches) and answered once all of them have run. `done` may run on the calling thread (validation
  // errors) or on a batcher worker thread.
  virtual void Classify(const v1::ClassifyRequest& request, v1::ClassifyResponse* response, int64_t deadline_us,
                        std::function<bool()> cancelled, std::function<void(Status)> done) = 0;

  // The servable that serves `name` at `version` (0: the newest ready version). The pointer stays valid while
  // held, also across UnloadModel/LoadModel (requests in flight finish on the old one). Errors:
  // INVALID_ARGUMENT (empty name, version < 0), NOT_FOUND (unknown model or version), UNAVAILABLE (not ready,
  // failed to load, unloaded, shutting down).
  virtual StatusOr<std::shared_ptr<Servable>> Find(const std::string& name, int64_t version) const = 0;

  // Every model folder of the repository and each version's state, sorted by name then version (a model with
  // no version has one row of version 0).
  struct VersionRow {
    std::string name;
    int64_t version = 0;
    std::string state;   // "READY", "LOADING", "UNAVAILABLE"
    std::string reason;  // why not READY
  };
  virtual std::vector<VersionRow> Index() const = 0;

  // Statistics of the loaded versions of `name` (empty: every model) at `version` (0: every version). NOT_FOUND
  // for an unknown model or version.
  virtual StatusOr<std::vector<ServableStats>> Statistics(const std::string& name, int64_t version) const = 0;

  // (Re)loads model `name` from its repository folder (new or changed config.pbtxt, versions or files) and warms
  // it up beside the serving versions; once ready, new requests go to it and the old one drains. Ensembles that
  // use it pick up the new one. Other models' traffic is not disturbed. Errors: FAILED_PRECONDITION (mode none
  // or poll, naming the mode), INVALID_ARGUMENT (not a plain model name, see CheckModelName; or its config is
  // broken), NOT_FOUND ("model "x" is not in the model repository"), UNAVAILABLE (no version could be loaded;
  // the reasons). On error a serving model keeps serving and Index() shows the failure (the READY rows' reason
  // says the last load failed and why); a model that was not serving is listed UNAVAILABLE with the reason.
  virtual Status LoadModel(const std::string& name) = 0;
  // Unloads `name`: it stays listed (state UNAVAILABLE, reason "unloaded"), new requests get UNAVAILABLE, the
  // requests in flight finish. When its folder is gone from the repository it is dropped from the index instead.
  // Errors: FAILED_PRECONDITION (mode none or poll), INVALID_ARGUMENT (not a plain model name), NOT_FOUND (not
  // listed). Idempotent.
  virtual Status UnloadModel(const std::string& name) = 0;

  virtual const InferenceServiceOptions& options() const = 0;

  virtual Status ListModels(v1::ListModelsResponse* response) const = 0;
  virtual Status DescribeModel(const v1::DescribeModelRequest& request, v1::DescribeModelResponse* response) const = 0;

  // True once start-up loading is done, until Shutdown starts; with strict_readiness also only while every
  // model of the repository has a ready version (see the top of this file).
  virtual bool Ready() const = 0;
  // Names of the models that are ready (for per-service health), whatever Ready() says; empty before start-up
  // loading is done and once Shutdown has started.
  virtual std::vector<std::string> ReadyModels() const = 0;
  // Stops the repository poller (after the load in progress, if any), stops admitting (new requests get
  // UNAVAILABLE "shutting down"), finishes what was admitted until
  // `drain_deadline_us` (steady clock), then stops the workers. Idempotent.
  virtual Status Shutdown(int64_t drain_deadline_us) = 0;
};

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_INFERENCE_INFERENCE_SERVICE_H_
