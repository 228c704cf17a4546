#include "server/servables/cached_servable.h"

#include <algorithm>
#include <chrono>
#include <utility>

namespace cnnserve {
namespace {

uint64_t NanosSince(std::chrono::steady_clock::time_point start) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start).count());
}

}  // namespace

CachedServable::CachedServable(std::shared_ptr<Servable> inner, std::shared_ptr<ResponseCache> cache)
    : inner_(std::move(inner)), cache_(std::move(cache)), id_(cache_->NewServableId()) {}

CacheKey CachedServable::KeyOf(const RunRequest& request) const {
  if (request.cache_key_servable == id_) return request.cache_key;
  return ResponseCacheKey(id_, request);
}

bool CachedServable::AnswerFromCache(RunRequest* request, RunResult* result) {
  if (!request->cacheable) return false;
  const auto start = std::chrono::steady_clock::now();
  const CacheKey key = KeyOf(*request);
  std::optional<RunResult> cached = cache_->Lookup(key);
  if (!cached) {
    request->cache_key_servable = id_;
    request->cache_key = key;
    return false;
  }
  *result = std::move(*cached);
  CountHit(*result, NanosSince(start));
  return true;
}

void CachedServable::Run(std::shared_ptr<const RunRequest> request, RunResult* result,
                         std::function<void(Status)> done) {
  if (!request->cacheable) return inner_->Run(std::move(request), result, std::move(done));
  auto start = std::chrono::steady_clock::now();
  const CacheKey key = KeyOf(*request);
  if (request->cache_key_servable != id_) {  // not looked up by AnswerFromCache yet (e.g. an ensemble member)
    if (std::optional<RunResult> cached = cache_->Lookup(key)) {
      *result = std::move(*cached);
      CountHit(*result, NanosSince(start));
      return done(OkStatus());
    }
  }
  const uint64_t lookup_ns = NanosSince(start);
  const uint64_t generation = cache_->generation();
  inner_->Run(std::move(request), result,
              [this, key, generation, lookup_ns, result, done = std::move(done)](Status status) {
                const auto insert_start = std::chrono::steady_clock::now();
                if (status.ok()) cache_->Insert(key, id_, generation, *result);
                CountMiss(lookup_ns + NanosSince(insert_start));
                done(std::move(status));
              });
}

void CachedServable::CountHit(const RunResult& result, uint64_t ns) {
  std::lock_guard<std::mutex> lock(mu_);
  hits_.Add(ns);
  hit_success_.Add(ns);
  hit_items_ += static_cast<uint64_t>(result.num_items);
  last_hit_ms_ = WallNowMillis();
}

void CachedServable::CountMiss(uint64_t ns) {
  std::lock_guard<std::mutex> lock(mu_);
  misses_.Add(ns);
}

ServableStats CachedServable::Stats() const {
  ServableStats stats = inner_->Stats();
  std::lock_guard<std::mutex> lock(mu_);
  stats.cache_hit = hits_;
  stats.cache_miss = misses_;
  stats.success.count += hit_success_.count;
  stats.success.total_ns += hit_success_.total_ns;
  stats.inference_count += hit_items_;
  stats.last_inference_ms = std::max(stats.last_inference_ms, last_hit_ms_);
  stats.cache_bytes = static_cast<int64_t>(cache_->BytesOf(id_));
  return stats;
}

std::shared_ptr<Servable> WithResponseCache(std::shared_ptr<Servable> servable, const v1::ModelConfig& config,
                                            const std::shared_ptr<ResponseCache>& cache) {
  if (!config.response_cache().enable() || cache == nullptr || cache->capacity_bytes() == 0) return servable;
  return std::make_shared<CachedServable>(std::move(servable), cache);
}

}  // namespace cnnserve
