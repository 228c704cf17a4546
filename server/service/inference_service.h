// InferenceService: the protocol-neutral service layer. Every front end (the native cnnserve.v1 Classifier and
// KServe v2 over gRPC in server/transport, HTTP in server/http) translates its wire messages into the types of
// this header and of server/servables/servable.h and back; none of them is known here (no protobuf of a wire
// protocol, no gRPC).
//
// It owns the model repository (models/repository) and one Servable per served model version
// (server/servables: an engine model or the null model with its DynamicBatcher and engine sessions;
// server/ensemble: an ensemble over member servables).
//
// Request path (Infer): shutting-down check, Find(model, version), deadline and cancellation checks, the front
// end's build_items (its wire request -> items, validated against the servable's info), the servable's
// admission check (Servable::CheckAdmission: a request its queue cannot take is refused at once, before any
// decode), then Servable::Run, which decodes and preprocesses the images, hands them to the model's batcher and
// returns at once; a batcher worker runs the batch and calls `done` from its thread (or, for a cheap request that
// finds its model idle, the calling thread does, before Run returns: max_inline_run_us). A request with encoded or
// raw-pixel images that take more than kInlineDecodeBytes to decode (admission.h) is run on the service's decode
// workers (PreprocessPool, server/preprocess/preprocess_pool.h: as many as the cores of total_threads, at least
// 2; at most max_decode_queue requests wait for one, the next gets UNAVAILABLE), which check its deadline and
// cancellation when they pick it up; one of only raw tensors or small images runs on the calling thread. A
// request that the servable's response cache answers (Servable::AnswerFromCache) is answered before admission.
// A failed request is logged here, once.
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
// Thread-safety: every method may be called from any thread concurrently. Ownership: see Infer.
#ifndef CNNSERVE_SERVER_SERVICE_INFERENCE_SERVICE_H_
#define CNNSERVE_SERVER_SERVICE_INFERENCE_SERVICE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cnnserve/v1/model_config.pb.h"
#include "engine/common/status.h"
#include "engine/graph/inspect.h"
#include "server/servables/servable.h"
#include "server/service/model_control.h"

namespace cnnserve {

struct InferenceServiceOptions {
  std::string model_repository;  // root folder in Triton's layout
  // Cores to divide between model instances (0: all): the compute lanes, and OpenCV's pool for preprocessing
  // (SetPreprocessThreads, server/preprocess/preprocess.h), which the service sets to the same count.
  int total_threads = 0;
  int64_t max_images_per_request = 256;
  int64_t max_pixels = 40'000'000;  // per image, checked from the header before decoding
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
  // Most requests in flight at once, every front end and model together (--max-in-flight; 0: no limit); one
  // more is refused with UNAVAILABLE before any work is spent on it (request_gate.h).
  int64_t max_in_flight = 1024;
  // The deadline of a request that comes without one: this long after it arrives (--default-timeout-s; 0: none).
  int64_t default_timeout_us = 60'000'000;
  // Most requests with images to decode that may wait for a decode worker (see the top of this file); >= 1.
  int64_t max_decode_queue = 256;
  // A request is admitted only when its model's queue (and the decode queue before it) is expected to have run
  // it within this long, whatever its deadline (--max-queue-wait-ms; 0: only the deadline bounds it). Past
  // capacity this keeps the admitted requests' latency near the bound and refuses the rest at once.
  int64_t max_queue_wait_us = 1'000'000;
  // Most masked copies one occlusion map may run (explain.h; --max-explain-masks).
  int64_t max_explain_masks = 4096;
  // Run to completion: a request arriving while its model is idle, whose batch is expected to take at most this
  // long on one engine thread, is run and answered on the thread that received it, without a hand-off to the
  // model's worker (ModelServableOptions::max_inline_run_us; --max-inline-run-us; 0: never).
  int64_t max_inline_run_us = 100;
  // Bytes of the response cache shared by the models whose config enables it (--cache-size-mb; 0: no caching).
  size_t response_cache_bytes = size_t{64} << 20;
};

// One inference in the project's own terms; every front end builds one from its wire request.
struct InferRequest {
  std::string model;
  int64_t version = 0;               // 0: the newest ready version
  std::string request_id;            // empty: the service assigns one
  int64_t deadline_us = 0;           // absolute, steady clock (SteadyNowMicros); 0: none
  std::function<bool()> cancelled;   // optional; cheap and non-blocking
  bool want_member_results = false;  // ensembles: fill the members' probability rows
  // Non-empty: run the model only up to this layer (FindLayer); the result's rows are the layer's activations
  // (feature maps, embeddings) and outcome->servable->info() says their shape.
  std::string layer;
  // Turns the wire request into run->items (and run->item_name) once the servable is known: its info (input
  // dims, classes, max_batch_size, preprocessing) validates raw tensors. Its error is the request's error.
  // Called at most once, on the calling thread, before Run. Required.
  std::function<Status(const ServableInfo& info, RunRequest* run)> build_items;
};

// What Infer leaves for the front end to format.
struct InferOutcome {
  std::shared_ptr<Servable> servable;  // set once found: info() has the labels and classes
  RunResult result;                    // on OK: one row per item (RunResult::Ranked gives the top-k)
  std::string request_id;              // the one used (assigned when the request had none)
  int64_t start_us = 0;                // steady clock when Infer started; total = SteadyNowMicros() - start_us
};

class InferenceService {
 public:
  // Loads every model of the repository (a broken model is logged and reported UNAVAILABLE in ListModels; it
  // never stops the others), creates the batchers and warms every model at every batch size it will run.
  // Fails only when the repository folder itself cannot be read.
  static StatusOr<std::unique_ptr<InferenceService>> Create(const InferenceServiceOptions& options);
  virtual ~InferenceService() = default;

  // The one request path of every front end (see the top of this file). Asynchronous: `done` runs exactly once,
  // on the calling thread (errors found before Run, cache hits, and requests run to completion:
  // max_inline_run_us), a decode worker or a batcher worker (or reply) thread. Errors, with DESIGN.md's codes and
  // messages naming field and limit: those of Find, of `build_items` (INVALID_ARGUMENT ...) and of Servable::Run
  // (INVALID_ARGUMENT, UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED, INTERNAL); UNAVAILABLE while shutting down.
  // `outcome` must stay alive until `done` (it is shared with the batcher's callback); on OK its result holds one
  // row per item in item order.
  virtual void Infer(InferRequest request, std::shared_ptr<InferOutcome> outcome,
                     std::function<void(Status)> done) = 0;

  // The servable that serves `name` at `version` (0: the newest ready version). The pointer stays valid while
  // held, also across UnloadModel/LoadModel (requests in flight finish on the old one). Errors:
  // INVALID_ARGUMENT (empty name, version < 0), NOT_FOUND (unknown model or version), UNAVAILABLE (not ready,
  // failed to load, unloaded, shutting down).
  virtual StatusOr<std::shared_ptr<Servable>> Find(const std::string& name, int64_t version) const = 0;

  // The servable that runs `name` at `version` only up to `layer` (server/servables/layer_servable.h: built on
  // the first request for that layer, which waits while it compiles; a few are cached). Errors: those of Find;
  // INVALID_ARGUMENT for a model without layers (ensembles, the null platform) or a name that is not a layer of
  // the model (naming it and where layer names are listed). The default (a service without layers) is
  // UNIMPLEMENTED.
  virtual StatusOr<std::shared_ptr<Servable>> FindLayer(const std::string& name, int64_t version,
                                                        const std::string& layer) {
    return UnimplementedError("this service computes no layers");
  }
  // The limits every image decode of this service obeys (sizes, the shared decode memory budget). The default:
  // DecodeLimits' defaults, no budget.
  virtual const DecodeLimits& decode_limits() const {
    static const DecodeLimits kDefaults;
    return kDefaults;
  }

  // Runs `work` on a decode worker (the pool that decodes request images, after the jobs queued before it), so
  // that work which decodes or copies images holds a decode worker, never a front-end or batcher thread.
  // UNAVAILABLE (work not run) when the pool's queue is full. Queued work always runs, also at shutdown. The
  // default (a service without a pool): runs it here.
  virtual Status RunOnDecodeWorker(std::function<void()> work) {
    work();
    return OkStatus();
  }

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

  // Metadata, for every front end's model listing and description.
  struct ModelSummary {
    std::string name;
    std::vector<VersionRow> versions;  // as Index() lists them (one row of version 0 for a model with none)
    Dims input_dims;                   // C, H, W of one image (the ready version's, else the config's)
    int64_t num_classes = 0;
    std::string platform;  // "onnx", "null", "ensemble"; empty when the config is broken
  };
  struct ModelDescription {
    ModelSummary summary;
    std::optional<v1::ModelConfig> config;  // as loaded; absent when config.pbtxt is broken
    std::optional<GraphStats> stats;        // the version's layers (engine models with a loaded graph)
    std::string layer_table;                // FormatStatsTable(stats), the same table as `cnnbench inspect`
    std::vector<std::string> labels;        // the ready version's labels (may be empty)
  };
  // Every model of the index, sorted by name.
  virtual std::vector<ModelSummary> Models() const = 0;
  // One model at `version` (0: the newest ready version, else the newest with a graph). INVALID_ARGUMENT (empty
  // name, version < 0), NOT_FOUND (unknown model or version).
  virtual StatusOr<ModelDescription> Describe(const std::string& name, int64_t version) const = 0;

  // True once start-up loading is done, until Shutdown starts; with strict_readiness also only while every
  // model of the repository has a ready version (see the top of this file).
  virtual bool Ready() const = 0;
  // Names of the models that are ready (for per-service health), whatever Ready() says; empty before start-up
  // loading is done and once Shutdown has started.
  virtual std::vector<std::string> ReadyModels() const = 0;
  // Stops admitting (new requests get UNAVAILABLE "shutting down"), stops the repository poller (after the load
  // in progress, if any), waits until every admitted request has been answered (also those still being decoded
  // or validated) or until `drain_deadline_us` (steady clock), then stops the servables: what is still queued
  // then ends with DEADLINE_EXCEEDED. Logs how the requests in flight were answered. Idempotent.
  virtual Status Shutdown(int64_t drain_deadline_us) = 0;
};

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_SERVICE_INFERENCE_SERVICE_H_
