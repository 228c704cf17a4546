// ModelServable: one version of a repository model as a Servable: its preprocessing, one DynamicBatcher with
// N instances (each an engine Session with plans for a few batch sizes, warmed up before the servable exists; or
// the built-in null runner), and its statistics.
//
// Run first asks the batcher whether it would take the request's tasks now (CheckAdmission) and refuses at once
// when not (UNAVAILABLE queue full or overloaded, DEADLINE_EXCEEDED), before anything is decoded; then it turns
// every item into the model's input on the calling thread (decode + preprocess for images, a copy for tensors;
// the InferenceService calls Run from a decode worker when there are images to decode), splits the items into
// tasks of at most max_batch_size, hands them to the batcher and returns; the last finishing task fills the result
// (raw output rows and their softmax) and calls `done` on a batcher thread, or on the calling thread when the
// batcher ran the tasks to completion there (a cheap request that found the model idle: max_inline_run_us).
//
// Thread-safety: as Servable. Ownership: the servable owns its batcher; it keeps the engine Model alive.
#ifndef CNNSERVE_SERVER_SERVABLES_MODEL_SERVABLE_H_
#define CNNSERVE_SERVER_SERVABLES_MODEL_SERVABLE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "models/repository/model_repository.h"
#include "server/batching/dynamic_batcher.h"
#include "server/servables/compute_lanes.h"
#include "server/servables/model_runner.h"
#include "server/servables/servable.h"

namespace cnnserve {

struct ModelServableOptions {
  DecodeLimits decode_limits;
  int64_t default_max_queue_size = 1024;  // when the config leaves dynamic_batching.max_queue_size 0
  // Where instances with several engine threads run their engine work (compute_lanes.h); null: inline on each
  // batcher worker. Not owned; used during Create only (the instances keep their lanes alive).
  ComputeLanes* lanes = nullptr;
  // Run to completion (DynamicBatcherOptions::max_inline_run_us; --max-inline-run-us): a request whose batch is
  // expected to take at most this long, arriving while the model is idle, runs on the thread that brought it.
  // Only for instances whose engine work runs on one thread (never one that would wait for a compute lane).
  int64_t max_inline_run_us = 0;
};

// The request's items as one float array, when every item is a tensor of exactly `item_floats` floats and they lie
// back to back in memory, float-aligned (one raw [N, C, H, W] tensor of a request, an ensemble's preprocessed
// rows); null otherwise. ModelServable's batches then read them in place instead of from a copy (AlexNet, 32
// images per request: 20 MB copied and 5,000 page faults less per request).
const float* ContiguousTensorItems(const RunRequest& request, int64_t item_floats);

// Whether a model instance whose runs use `engine_threads` threads (0: all `cpus`) should have its batch's answers
// sent by a second thread while the next batch runs (DynamicBatcherOptions::overlap_answers): yes for one engine
// thread (the answers slow that run by at most their own time) or when the run leaves a core free. Not when a
// run's OpenMP threads fill every core: they meet at barriers, and a thread that takes a core from one of them
// stalls them all.
bool OverlapPays(int engine_threads, int cpus);

class ModelServable final : public Servable {
 public:
  // `entry` must have a valid config and `version` must be READY (an "onnx" model with a loaded engine Model,
  // or the "null" platform's version). Compiles and warms up every instance. Errors: INVALID_ARGUMENT for bad
  // preprocessing options, the engine's errors (naming the batch size) when a plan cannot be built.
  static StatusOr<std::unique_ptr<ModelServable>> Create(const ModelEntry& entry, const VersionEntry& version,
                                                         const ModelServableOptions& options);
  ~ModelServable() override;

  const ServableInfo& info() const override { return info_; }
  void Run(std::shared_ptr<const RunRequest> request, RunResult* result,
           std::function<void(Status)> done) override;
  ServableStats Stats() const override;
  Status Shutdown(int64_t drain_deadline_us) override;
  // Asks the batcher about the tasks a Run of `items` would schedule (split by max_batch_size).
  Status CheckAdmission(int64_t items, int64_t deadline_us) override;
  int64_t ExpectedWorkMicros(int64_t items) const override;
  std::shared_ptr<void> ExpectIncoming(int64_t items) override;

  // The batch sizes each instance compiled (PlanBatchSizes).
  const std::vector<int64_t>& plan_sizes() const { return plan_sizes_; }
  int num_instances() const { return num_instances_; }

 private:
  ModelServable() = default;

  // Writes item `i` as the model's input at `dst`.
  // With a null `dst`, a tensor item is only checked (the batch reads it where it is: ContiguousTensorItems).
  Status PrepareItem(const RunRequest& request, int64_t i, float* dst) const;
  void RecordFinish(const Status& status, int64_t start_us, int64_t items, int64_t queue_us);

  ServableInfo info_;
  ModelServableOptions options_;
  int64_t item_input_size_ = 0;
  std::vector<int64_t> plan_sizes_;
  int num_instances_ = 1;
  std::shared_ptr<BatchStatsRecorder> batch_stats_ = std::make_shared<BatchStatsRecorder>();
  std::unique_ptr<DynamicBatcher> batcher_;

  mutable std::mutex stats_mu_;
  ServableStats stats_;  // request-level counters; batch counters live in batch_stats_
};

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_SERVABLES_MODEL_SERVABLE_H_
