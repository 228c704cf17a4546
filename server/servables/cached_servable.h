// CachedServable: a Servable (a model version or an ensemble) whose answers are kept in the server's
// ResponseCache (response_cache.h), for models whose config says `response_cache { enable: true }`.
//
// A request equal to an earlier successful one (same items, bytes for bytes, and the same options that change
// the result) is answered from the cache: the service asks AnswerFromCache before admission, so a hit takes no
// decode, no queue and no admission room. A miss runs the wrapped servable and stores its answer if it succeeded.
// Failures are never stored. Everything else (info, admission, shutdown) is the wrapped servable's.
// Statistics: the wrapped servable's, plus cache_hit / cache_miss (counts and time spent in the cache) and
// cache_bytes; a hit also counts as a success with its items inferred (as Triton counts them).
// Thread-safety: as Servable.
#ifndef CNNSERVE_SERVER_SERVABLES_CACHED_SERVABLE_H_
#define CNNSERVE_SERVER_SERVABLES_CACHED_SERVABLE_H_

#include <functional>
#include <memory>
#include <mutex>

#include "server/servables/response_cache.h"
#include "server/servables/servable.h"

namespace cnnserve {

class CachedServable final : public Servable {
 public:
  CachedServable(std::shared_ptr<Servable> inner, std::shared_ptr<ResponseCache> cache);

  const ServableInfo& info() const override { return inner_->info(); }
  bool AnswerFromCache(RunRequest* request, RunResult* result) override;
  void Run(std::shared_ptr<const RunRequest> request, RunResult* result, std::function<void(Status)> done) override;
  ServableStats Stats() const override;
  Status Shutdown(int64_t drain_deadline_us) override { return inner_->Shutdown(drain_deadline_us); }
  Status CheckAdmission(int64_t items, int64_t deadline_us) override {
    return inner_->CheckAdmission(items, deadline_us);
  }
  int64_t ExpectedWorkMicros(int64_t items) const override { return inner_->ExpectedWorkMicros(items); }
  std::shared_ptr<void> ExpectIncoming(int64_t items) override { return inner_->ExpectIncoming(items); }

 private:
  // The request's key, computed once (and noted in `request` when it may be written).
  CacheKey KeyOf(const RunRequest& request) const;
  void CountHit(const RunResult& result, uint64_t ns);
  void CountMiss(uint64_t ns);

  const std::shared_ptr<Servable> inner_;
  const std::shared_ptr<ResponseCache> cache_;
  const uint64_t id_;
  mutable std::mutex mu_;
  DurationStat hits_;
  DurationStat misses_;
  DurationStat hit_success_;  // hits, as successful requests
  uint64_t hit_items_ = 0;
  uint64_t last_hit_ms_ = 0;
};

// `servable` itself when `config` does not enable the response cache or `cache` is null or empty; else it
// wrapped in a CachedServable over `cache`.
std::shared_ptr<Servable> WithResponseCache(std::shared_ptr<Servable> servable, const v1::ModelConfig& config,
                                            const std::shared_ptr<ResponseCache>& cache);

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_SERVABLES_CACHED_SERVABLE_H_
