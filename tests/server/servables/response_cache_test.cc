// The response cache (LRU bounded in bytes, SHA-256 keys, generations) and CachedServable over a counting fake
// servable: what is a hit, what is not stored, and what the statistics say. The real server path (gRPC, reload,
// KServe statistics, /metrics) is tests/integration/response_cache_test.cc.
#include "server/servables/response_cache.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "server/servables/cached_servable.h"

namespace cnnserve {
namespace {

constexpr int64_t kClasses = 4;

RunResult ResultWithRows(int64_t items, float value) {
  RunResult result;
  result.model = "m";
  result.version = 1;
  result.num_classes = kClasses;
  result.num_items = items;
  result.scores.assign(static_cast<size_t>(items * kClasses), value);
  result.probabilities.assign(static_cast<size_t>(items * kClasses), 0.25f);
  result.compute_us = 123;
  return result;
}

CacheKey KeyOf(int n) {
  CacheKey key{};
  key[0] = static_cast<uint8_t>(n);
  key[31] = 7;
  return key;
}

RunRequest EncodedRequest(const std::vector<std::string>* images) {
  RunRequest request;
  for (const std::string& bytes : *images) request.items.push_back(ImageItem{ImageItem::Kind::kEncoded, bytes});
  return request;
}

TEST(ResponseCacheTest, LeastRecentlyUsedGoesFirstAndBytesStayBounded) {
  const size_t entry = CachedResultBytes(ResultWithRows(2, 1.0f));
  ResponseCache cache(2 * entry + entry / 2);  // room for two
  const uint64_t gen = cache.generation();
  ASSERT_TRUE(cache.Insert(KeyOf(1), 1, gen, ResultWithRows(2, 1.0f)));
  ASSERT_TRUE(cache.Insert(KeyOf(2), 1, gen, ResultWithRows(2, 2.0f)));
  ASSERT_TRUE(cache.Lookup(KeyOf(1)).has_value());  // 1 is now the most recently used
  ASSERT_TRUE(cache.Insert(KeyOf(3), 1, gen, ResultWithRows(2, 3.0f)));
  EXPECT_FALSE(cache.Lookup(KeyOf(2)).has_value());  // evicted
  std::optional<RunResult> one = cache.Lookup(KeyOf(1));
  ASSERT_TRUE(one.has_value());
  EXPECT_EQ(one->scores, std::vector<float>(8, 1.0f));
  EXPECT_EQ(one->compute_us, 0);  // timings belong to the request that computed it
  EXPECT_TRUE(cache.Lookup(KeyOf(3)).has_value());
  const ResponseCache::Stats stats = cache.stats();
  EXPECT_EQ(stats.entries, 2u);
  EXPECT_EQ(stats.bytes, 2 * entry);
  EXPECT_LE(stats.bytes, cache.capacity_bytes());
  EXPECT_EQ(stats.evictions, 1u);
  EXPECT_EQ(stats.hits, 3u);
  EXPECT_EQ(stats.misses, 1u);
  EXPECT_EQ(cache.BytesOf(1), 2 * entry);
  EXPECT_EQ(cache.BytesOf(2), 0u);
}

TEST(ResponseCacheTest, OversizedResultsAndAnswersFromBeforeAClearAreNotKept) {
  ResponseCache cache(CachedResultBytes(ResultWithRows(1, 0)) + 16);
  EXPECT_FALSE(cache.Insert(KeyOf(1), 1, cache.generation(), ResultWithRows(100, 1.0f)));
  EXPECT_EQ(cache.stats().entries, 0u);
  const uint64_t before = cache.generation();
  ASSERT_TRUE(cache.Insert(KeyOf(2), 1, before, ResultWithRows(1, 1.0f)));
  cache.Clear();
  EXPECT_FALSE(cache.Lookup(KeyOf(2)).has_value());
  EXPECT_EQ(cache.stats().bytes, 0u);
  // Computed before the Clear (e.g. by an ensemble whose member was just replaced): not stored.
  EXPECT_FALSE(cache.Insert(KeyOf(3), 1, before, ResultWithRows(1, 1.0f)));
  EXPECT_TRUE(cache.Insert(KeyOf(3), 1, cache.generation(), ResultWithRows(1, 1.0f)));
  ResponseCache none(0);
  EXPECT_FALSE(none.Insert(KeyOf(1), 1, none.generation(), ResultWithRows(1, 1.0f)));
}

TEST(ResponseCacheTest, KeysDependOnEveryThingThatChangesTheAnswer) {
  const std::vector<std::string> ab_c = {"ab", "c"}, a_bc = {"a", "bc"}, ab_c_copy = {std::string("ab"), "c"};
  const RunRequest base = EncodedRequest(&ab_c);
  const CacheKey key = ResponseCacheKey(1, base);
  EXPECT_EQ(ResponseCacheKey(1, EncodedRequest(&ab_c_copy)), key);  // bytes, not addresses
  EXPECT_NE(ResponseCacheKey(1, EncodedRequest(&a_bc)), key);       // item boundaries count
  EXPECT_NE(ResponseCacheKey(2, base), key);                        // another servable
  RunRequest members = base;
  members.want_member_results = true;
  EXPECT_NE(ResponseCacheKey(1, members), key);
  RunRequest tensor = base;
  tensor.items[0].kind = ImageItem::Kind::kTensor;
  EXPECT_NE(ResponseCacheKey(1, tensor), key);
  RunRequest pixels = base;
  pixels.items[0] = ImageItem{ImageItem::Kind::kPixels, "ab", 1, 2, 1};
  RunRequest pixels_transposed = base;
  pixels_transposed.items[0] = ImageItem{ImageItem::Kind::kPixels, "ab", 2, 1, 1};
  EXPECT_NE(ResponseCacheKey(1, pixels), ResponseCacheKey(1, pixels_transposed));
  RunRequest deadline = base;  // options that do not change the answer do not change the key
  deadline.deadline_us = 42;
  deadline.request_id = "other";
  EXPECT_EQ(ResponseCacheKey(1, deadline), key);
}

// Several threads inserting, looking up and clearing at once (make test-tsan runs this suite): the byte bound and
// the entry count stay consistent.
TEST(ResponseCacheTest, ConcurrentUseKeepsTheBound) {
  const size_t entry = CachedResultBytes(ResultWithRows(2, 1.0f));
  ResponseCache cache(20 * entry);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&cache, t] {
      for (int i = 0; i < 2000; ++i) {
        const CacheKey key = KeyOf((t * 2000 + i) % 64);
        if (!cache.Lookup(key)) cache.Insert(key, static_cast<uint64_t>(t), cache.generation(), ResultWithRows(2, 1));
        if (t == 0 && i % 500 == 0) cache.Clear();
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  const ResponseCache::Stats stats = cache.stats();
  EXPECT_LE(stats.bytes, cache.capacity_bytes());
  EXPECT_EQ(stats.bytes, stats.entries * entry);
  EXPECT_EQ(stats.hits + stats.misses, 4u * 2000u);
}

// Answers every item with a row of its first byte; counts its runs; fails while `fail` is set.
class CountingServable final : public Servable {
 public:
  CountingServable() {
    info_.name = "m";
    info_.version = 1;
    info_.platform = "onnx";
    info_.num_classes = kClasses;
  }
  const ServableInfo& info() const override { return info_; }
  void Run(std::shared_ptr<const RunRequest> request, RunResult* result, std::function<void(Status)> done) override {
    ++runs;
    if (fail) return done(UnavailableError("busy"));
    *result = ResultWithRows(static_cast<int64_t>(request->items.size()), 0.0f);
    for (size_t i = 0; i < request->items.size(); ++i) {
      for (int64_t c = 0; c < kClasses; ++c) {
        result->scores[i * kClasses + c] = static_cast<float>(request->items[i].data[0]) + static_cast<float>(c);
      }
    }
    ++stats_.success.count;
    stats_.inference_count += request->items.size();
    done(OkStatus());
  }
  ServableStats Stats() const override { return stats_; }
  Status Shutdown(int64_t) override { return OkStatus(); }

  int runs = 0;
  bool fail = false;

 private:
  ServableInfo info_;
  ServableStats stats_;
};

// The service's path: AnswerFromCache, then Run on a miss. Returns the status; `hit` says which way it went.
Status Serve(Servable& servable, const std::vector<std::string>& images, RunResult* result, bool* hit,
             bool cacheable = true) {
  auto request = std::make_shared<RunRequest>(EncodedRequest(&images));
  request->cacheable = cacheable;
  *hit = servable.AnswerFromCache(request.get(), result);
  if (*hit) return OkStatus();
  Status out = InternalError("not answered");
  servable.Run(request, result, [&out](Status s) { out = std::move(s); });
  return out;
}

TEST(CachedServableTest, AnEqualRequestIsAnsweredFromTheCacheAndFailuresAreNotKept) {
  auto inner = std::make_shared<CountingServable>();
  auto cache = std::make_shared<ResponseCache>(1 << 20);
  v1::ModelConfig config;
  config.mutable_response_cache()->set_enable(true);
  std::shared_ptr<Servable> cached = WithResponseCache(inner, config, cache);
  ASSERT_NE(cached, inner);
  const std::vector<std::string> images = {"A-image", "B-image"};
  RunResult first, second;
  bool hit = true;
  ASSERT_TRUE(Serve(*cached, images, &first, &hit).ok());
  EXPECT_FALSE(hit);
  ASSERT_TRUE(Serve(*cached, images, &second, &hit).ok());
  EXPECT_TRUE(hit);
  EXPECT_EQ(inner->runs, 1);
  EXPECT_EQ(second.scores, first.scores);
  EXPECT_EQ(second.scores[kClasses], static_cast<float>('B'));
  EXPECT_EQ(second.compute_us, 0);

  // Another image runs; a failure is not stored, so the same request runs again.
  RunResult other;
  inner->fail = true;
  EXPECT_EQ(Serve(*cached, {"C-image"}, &other, &hit).code(), StatusCode::kUnavailable);
  inner->fail = false;
  ASSERT_TRUE(Serve(*cached, {"C-image"}, &other, &hit).ok());
  EXPECT_FALSE(hit);
  EXPECT_EQ(inner->runs, 3);
  // Not cacheable (occlusion maps): neither looked up nor stored.
  ASSERT_TRUE(Serve(*cached, images, &other, &hit, false).ok());
  EXPECT_FALSE(hit);
  EXPECT_EQ(inner->runs, 4);

  // A caller that calls Run alone (an ensemble calling its member) is answered from the cache too.
  RunResult direct;
  Status status = InternalError("not answered");
  cached->Run(std::make_shared<RunRequest>(EncodedRequest(&images)), &direct, [&](Status s) { status = s; });
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(direct.scores, first.scores);
  EXPECT_EQ(inner->runs, 4);

  const ServableStats stats = cached->Stats();
  EXPECT_EQ(stats.cache_hit.count, 2u);
  EXPECT_EQ(stats.cache_miss.count, 3u);  // the first request, the failure, C
  // The inner servable's successes (A/B, C, A/B not cacheable: 5 images) and the two hits (4 images).
  EXPECT_EQ(stats.success.count, 3u + 2u);
  EXPECT_EQ(stats.inference_count, 5u + 4u);
  EXPECT_GT(stats.cache_bytes, 0);
  EXPECT_EQ(stats.cache_bytes, static_cast<int64_t>(cache->stats().bytes));
}

TEST(CachedServableTest, OnlyModelsThatEnableItAndAServerWithACacheAreWrapped) {
  auto inner = std::make_shared<CountingServable>();
  v1::ModelConfig off, on;
  on.mutable_response_cache()->set_enable(true);
  EXPECT_EQ(WithResponseCache(inner, off, std::make_shared<ResponseCache>(1 << 20)), inner);
  EXPECT_EQ(WithResponseCache(inner, on, std::make_shared<ResponseCache>(0)), inner);
  EXPECT_EQ(WithResponseCache(inner, on, nullptr), inner);
  EXPECT_NE(WithResponseCache(inner, on, std::make_shared<ResponseCache>(1)), inner);
}

}  // namespace
}  // namespace cnnserve
