// PreprocessPool: a small fixed set of worker threads that decode and preprocess requests, so that a costly image
// (a large PNG takes seconds to decode) holds a decode worker, never a thread that serves other requests (a gRPC
// or HTTP front-end thread). Its queue is bounded: a job past the bound is refused at once with UNAVAILABLE,
// naming the bound, never waited for.
//
// The pool runs jobs; it does not know what they do. The InferenceService submits one job per request that has
// encoded or raw-pixel images (server/service/inference_service.cc); the job checks the request's deadline and
// cancellation when a worker picks it up, then decodes and schedules it on its model's batcher.
//
// Thread-safety: Submit and counters may be called from any thread, also from a job. Ownership: the pool owns its
// threads; the destructor runs every job still queued (each holds a request that must be answered), then joins.
#ifndef CNNSERVE_SERVER_PREPROCESS_PREPROCESS_POOL_H_
#define CNNSERVE_SERVER_PREPROCESS_PREPROCESS_POOL_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/common/status.h"

namespace cnnserve {

struct PreprocessPoolOptions {
  int threads = 2;            // worker threads, >= 1
  int64_t max_queued = 256;   // jobs waiting for a worker (not counting running ones), >= 1
};

class PreprocessPool {
 public:
  // INVALID_ARGUMENT when an option is out of range (naming it).
  static StatusOr<std::unique_ptr<PreprocessPool>> Create(const PreprocessPoolOptions& options);
  ~PreprocessPool();
  PreprocessPool(const PreprocessPool&) = delete;
  PreprocessPool& operator=(const PreprocessPool&) = delete;

  // Queues `job` for the next free worker. UNAVAILABLE (the job is not kept and not run) when max_queued jobs
  // already wait.
  Status Submit(std::function<void()> job);

  struct Counters {
    int64_t queued = 0;     // waiting now
    int64_t running = 0;    // on a worker now
    int64_t completed = 0;  // since creation
    int64_t refused = 0;    // Submit calls refused because the queue was full
  };
  Counters counters() const;

  // How long a job submitted now would wait for a worker, estimated from the jobs ahead of it (the running ones
  // count as half done) and the recent time of a job (a moving average); 0 before the first job has run.
  // Admission (server/service/admission.h) counts it as part of a request's wait.
  int64_t ExpectedWaitMicros() const;

  // Blocks until no job is queued or running (jobs submitted meanwhile are waited for too). For a shutdown that
  // must know every admitted request has been answered.
  void WaitIdle();
  int threads() const { return static_cast<int>(workers_.size()); }

 private:
  explicit PreprocessPool(const PreprocessPoolOptions& options) : options_(options) {}
  void Work();
  void RecordJobMicros(int64_t micros);  // with mu_ held

  const PreprocessPoolOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable idle_cv_;  // notified when a job completes
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  Counters counters_;
  int64_t job_micros_ = 0;  // recent time of a job (moving average); 0 before the first
  std::vector<std::thread> workers_;
};

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_PREPROCESS_PREPROCESS_POOL_H_
