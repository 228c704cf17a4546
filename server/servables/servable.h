// Servable: what serves one (model name, version) pair, whatever it is inside. Every front end (the native
// cnnserve.v1 Classifier, the KServe v2 service) resolves a name to a Servable through the InferenceService and
// calls Run; none of them asks whether the name is an engine model, an ensemble or the built-in null model
// (DESIGN.md section 1 rule 5).
//
// Implementations: the engine model version (server/servables/model_servable.h: preprocessing + one
// DynamicBatcher with N engine sessions), the null model (same batcher, zeros instead of an engine), and the
// ensemble (server/ensemble: fan-out to member Servables + voting).
//
// A request is a list of images (ImageItem, server/preprocess/image_input.h), each in one of three forms:
// encoded JPEG/PNG bytes, raw 8-bit pixels (HWC), or an already preprocessed float32 tensor of the model's per-image input shape (C x H x W). The
// result is one row of num_classes floats per image (scores and probabilities) plus, for ensembles, the members'
// rows and agreement.
//
// Thread-safety: a Servable is immutable after creation except for its statistics; Run and Stats may be called
// from any thread concurrently. Ownership: Run's caller keeps `result` and the bytes the items point to alive
// until `done` has run; the request itself is shared.
#ifndef CNNSERVE_SERVER_SERVABLES_SERVABLE_H_
#define CNNSERVE_SERVER_SERVABLES_SERVABLE_H_

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cnnserve/v1/model_config.pb.h"
#include "engine/common/status.h"
#include "engine/tensor/tensor.h"
#include "server/preprocess/image_input.h"  // ImageItem
#include "server/preprocess/preprocess.h"
#include "server/servables/classification.h"

namespace cnnserve {

struct RunRequest {
  std::vector<ImageItem> items;       // >= 1
  int64_t deadline_us = 0;            // absolute, steady clock (SteadyNowMicros); 0: none
  std::function<bool()> cancelled;    // optional; cheap and non-blocking
  bool want_member_results = false;   // ensembles: fill RunResult::members[*].probabilities
  std::string request_id;             // for log lines
  // How error messages name item i (e.g. "inputs[2].image"); empty: "items[i]".
  std::function<std::string(int64_t item)> item_name;
  // false: never answered from or stored in a response cache (occlusion maps: every request is new).
  bool cacheable = true;
  // The response cache key of this request for the servable with cache id `cache_key_servable` (set by
  // CachedServable::AnswerFromCache on a miss, so that Run does not hash the items again).
  uint64_t cache_key_servable = 0;
  std::array<uint8_t, 32> cache_key{};

  std::string ItemName(int64_t item) const {
    return item_name ? item_name(item) : "items[" + std::to_string(item) + "]";
  }
};

// One ensemble member's part of a result.
struct MemberResult {
  std::string model;
  int64_t version = 0;
  float weight = 1.0f;
  // OK, or why the member did not contribute (its error, DEADLINE_EXCEEDED after member_timeout_ms, ...).
  Status status;
  // num_items x num_classes softmax probabilities; filled when status is OK and want_member_results.
  std::vector<float> probabilities;
};

struct RunResult {
  std::string model;
  int64_t version = 0;
  int64_t num_classes = 0;
  int64_t num_items = 0;
  // num_items x num_classes. A model: its raw output row (logits). An ensemble: the strategy's score per class
  // (votes, mean probability, Borda points, ...), which is what ranks the classes.
  std::vector<float> scores;
  // num_items x num_classes. A model: softmax of its output. An ensemble: its combined distribution (sums to 1).
  std::vector<float> probabilities;
  // Empty, or num_items x num_classes: the second ranking key after `scores` (ensembles: the members' summed
  // probability); the third is the lower class index. See Ranked().
  std::vector<float> tie_break;

  // Ensembles only (members empty otherwise).
  std::vector<MemberResult> members;  // in config order
  int32_t members_answered = 0;
  int32_t members_total = 0;
  std::vector<float> agreement;  // per item: share of answering members whose top-1 equals the ensemble's top-1

  // Timings of this request, microseconds.
  int64_t preprocess_us = 0;  // decoding + preprocessing on the thread that called Run (a decode worker)
  int64_t queue_us = 0;       // longest wait in a batcher queue
  int64_t compute_us = 0;     // summed run time of the batches that ran its items

  // The k best classes of item `item` (k clamped to num_classes), best first: higher score, then higher
  // tie_break (when present), then lower index; NaN scores last. ScoredClass::probability comes from
  // `probabilities`. Precondition: item < num_items and the rows are filled.
  std::vector<ScoredClass> Ranked(int64_t item, int k) const;
};

// Counters and summed durations, as Triton's statistics extension reports them.
struct DurationStat {
  uint64_t count = 0;
  uint64_t total_ns = 0;
  void Add(uint64_t ns) {
    ++count;
    total_ns += ns;
  }
};

// Agreement histogram buckets (upper bounds, inclusive) for ensembles; the last bucket is +Inf.
inline constexpr std::array<double, 5> kAgreementBucketBounds = {0.2, 0.4, 0.6, 0.8, 1.0};

struct ServableStats {
  std::string name;
  int64_t version = 0;
  std::string platform;         // "onnx", "null", "ensemble"
  uint64_t last_inference_ms = 0;  // wall clock, milliseconds since the Unix epoch; 0: never
  uint64_t inference_count = 0;    // images inferred successfully
  uint64_t execution_count = 0;    // batches executed (ensembles: requests fanned out)
  DurationStat success;            // whole Run calls that succeeded, with their duration
  DurationStat fail;               // Run calls that failed (after the servable was found)
  DurationStat queue;              // per task: time waiting in the batcher queue
  DurationStat preprocess;         // per Run call: decode + preprocess
  DurationStat compute_input;      // per batch: copying inputs into the batch tensor
  DurationStat compute_infer;      // per batch: the engine run
  DurationStat compute_output;     // per batch: copying outputs out
  DurationStat cache_hit;          // requests answered from the response cache, with the lookup time
  DurationStat cache_miss;         // requests of a caching servable that ran, with lookup + insert time
  int64_t cache_bytes = 0;         // bytes of the response cache holding this servable's answers
  struct BatchStat {
    int64_t batch_size = 0;  // images in the batch (before padding to a plan size)
    DurationStat compute_input;
    DurationStat compute_infer;
    DurationStat compute_output;
  };
  std::vector<BatchStat> batch_stats;  // ascending batch_size, only sizes that ran
  int64_t queue_depth = 0;             // tasks waiting now
  int64_t inline_execution_count = 0;  // of execution_count: batches run to completion on the receiving thread
  // Ensembles: agreement per image, bucketed by kAgreementBucketBounds (+1 for +Inf); sum and count of values.
  std::array<uint64_t, kAgreementBucketBounds.size() + 1> agreement_buckets{};
  double agreement_sum = 0.0;
  uint64_t agreement_count = 0;
};

// What a client may need to know about a servable before sending to it.
struct ServableInfo {
  std::string name;
  int64_t version = 0;
  std::string platform;  // "onnx", "null", "ensemble"
  Dims item_input_dims;  // C, H, W (ensembles: the first member's; tensors must match every member's)
  int64_t num_classes = 0;
  std::vector<std::string> labels;  // may be empty or shorter than num_classes
  int64_t max_batch_size = 1;       // most images per batch (a Run may carry more; it is split)
  std::optional<PreprocessOptions> preprocess;  // how kEncoded / kPixels items are turned into the input
  // Ensembles: false when members differ in item_input_dims or preprocessing (a tensor item then cannot mean the
  // same to every member, and an occlusion map is made on the image's pixels instead). Models: true.
  bool members_share_input = true;
  std::string input_name = "input";             // the ONNX graph's input and output names
  std::string output_name = "output";
  v1::ModelConfig config;  // as loaded from config.pbtxt
  // A layer servable (layer_servable.h): the layer value its rows hold, and one item's activation shape.
  std::string layer;       // empty: the model's output (classes)
  Dims item_output_dims;   // empty: [num_classes]
};

class Servable {
 public:
  virtual ~Servable() = default;

  virtual const ServableInfo& info() const = 0;

  // Runs every item and fills `result` (rows in item order). Asynchronous: returns at once; `done` runs exactly
  // once, on the calling thread (validation errors; a cheap request that found its model idle, run to completion
  // before Run returns: DynamicBatcherOptions::max_inline_run_us) or on a worker thread. Errors: INVALID_ARGUMENT (an item
  // that cannot be decoded or preprocessed, a tensor of the wrong size, no items), UNAVAILABLE (queue full,
  // shutting down), DEADLINE_EXCEEDED, CANCELLED, INTERNAL (engine failure); ensembles: UNAVAILABLE when fewer
  // than quorum members answered, naming each failed member and why. Messages name the item ("items[3]").
  virtual void Run(std::shared_ptr<const RunRequest> request, RunResult* result,
                   std::function<void(Status)> done) = 0;

  // A snapshot of the statistics since creation.
  virtual ServableStats Stats() const = 0;

  // Stops admitting and drains (see Scheduler::Shutdown). Idempotent. Ensembles do not own their members and
  // only stop admitting.
  virtual Status Shutdown(int64_t drain_deadline_us) = 0;

  // Answers `*request` from the response cache when this servable keeps one (cached_servable.h): true with
  // `*result` filled (no Run follows). May note the request's cache key in `*request`. The default: false.
  virtual bool AnswerFromCache(RunRequest* request, RunResult* result) { return false; }

  // Whether a Run of `items` items with this deadline (absolute, steady clock; 0: none) would be admitted now:
  // OK, or the UNAVAILABLE (queue full, overloaded, shutting down) or DEADLINE_EXCEEDED that Run would meet.
  // Reserves nothing. An ensemble asks its members before it decodes anything, so that a request the members
  // cannot take is refused before any work is spent on it. The default admits everything.
  virtual Status CheckAdmission(int64_t items, int64_t deadline_us) { return OkStatus(); }

  // How long from now a Run of `items` items would take to finish, by the same estimate admission uses (the work
  // queued ahead of it and its own run time; with 0 items, the wait alone); 0 when unknown (nothing timed yet, or
  // no queue). An ensemble adds up its members' (they share the compute lanes). The default knows nothing: 0.
  virtual int64_t ExpectedWorkMicros(int64_t items) const { return 0; }

  // Counts `items` as coming to this servable's queue until the returned handle is destroyed: a request that
  // CheckAdmission admitted and whose images are still being decoded. Admission counts them as queued (so the
  // requests admitted meanwhile see the work they will add); the handle must be destroyed before Run is called
  // for them (or when they fail first). An ensemble holds one on each member. The default counts nothing (null).
  virtual std::shared_ptr<void> ExpectIncoming(int64_t items) { return nullptr; }
};

// How an ensemble finds its members: (model name, version or 0 for the newest ready) -> servable.
// NOT_FOUND / UNAVAILABLE as InferenceService::Find.
using ServableResolver =
    std::function<StatusOr<std::shared_ptr<Servable>>(const std::string& model, int64_t version)>;

// Microseconds on the steady clock (the clock of deadlines).
int64_t SteadyNowMicros();
// Milliseconds since the Unix epoch (for last_inference_ms).
uint64_t WallNowMillis();

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_SERVABLES_SERVABLE_H_
