// ResponseCache: the server's one cache of inference answers (RunResult), shared by every model whose config
// says `response_cache { enable: true }` (cached_servable.h), bounded in bytes, least recently used out first.
//
// Keys are SHA-256 digests of what decides an answer: the servable instance (a per-load id, so a reloaded or
// replaced version never sees the old one's answers), the request options that change the result, and every
// item's form and bytes (image bytes, pixels with their shape, or tensor values). A cryptographic digest, because
// the cache is shared: a client must not be able to make another request's key collide with its own.
// An entry's size is the bytes of its result rows plus a fixed overhead; an entry larger than the whole cache is
// not kept.
// Thread-safety: every method may be called from any thread concurrently (one mutex; lookups copy the result).
#ifndef CNNSERVE_SERVER_SERVABLES_RESPONSE_CACHE_H_
#define CNNSERVE_SERVER_SERVABLES_RESPONSE_CACHE_H_

#include <array>
#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "server/servables/servable.h"

namespace cnnserve {

using CacheKey = std::array<uint8_t, 32>;

// The key of `request` run by the servable with cache id `servable_id`.
CacheKey ResponseCacheKey(uint64_t servable_id, const RunRequest& request);

// What one result costs in the cache.
size_t CachedResultBytes(const RunResult& result);

class ResponseCache {
 public:
  struct Stats {
    uint64_t hits = 0;
    uint64_t misses = 0;
    uint64_t insertions = 0;
    uint64_t evictions = 0;
    size_t bytes = 0;
    size_t entries = 0;
  };

  // `capacity_bytes` 0: nothing is ever kept.
  explicit ResponseCache(size_t capacity_bytes) : capacity_(capacity_bytes) {}
  ResponseCache(const ResponseCache&) = delete;
  ResponseCache& operator=(const ResponseCache&) = delete;

  size_t capacity_bytes() const { return capacity_; }

  // A copy of the result stored under `key` (now the most recently used), or nullopt (counted as a miss).
  std::optional<RunResult> Lookup(const CacheKey& key);
  // The generation to pass to Insert for an answer computed from now on.
  uint64_t generation() const;
  // Stores `result` (its timings cleared) under `key` for `servable_id`, evicting least recently used entries to
  // make room; replaces an entry of the same key. Not stored (false) when the result alone is larger than the
  // cache, or when Clear ran since `generation` was read (the answer may come from a replaced model).
  bool Insert(const CacheKey& key, uint64_t servable_id, uint64_t generation, RunResult result);
  // Drops every entry and starts a new generation: the service calls it whenever a model is loaded, reloaded or
  // unloaded (an ensemble's answer depends on its members' versions).
  void Clear();
  // Hands out the ids servables key their entries with (never 0, never reused).
  uint64_t NewServableId();

  Stats stats() const;
  // Bytes held for `servable_id`'s entries.
  size_t BytesOf(uint64_t servable_id) const;

 private:
  struct KeyHash {
    size_t operator()(const CacheKey& key) const;
  };
  struct Entry {
    CacheKey key;
    uint64_t servable_id = 0;
    size_t bytes = 0;
    RunResult result;
  };
  using Lru = std::list<Entry>;  // most recently used first

  void EraseLocked(Lru::iterator it);

  const size_t capacity_;
  mutable std::mutex mu_;
  Lru lru_;
  std::unordered_map<CacheKey, Lru::iterator, KeyHash> index_;
  std::unordered_map<uint64_t, size_t> bytes_by_servable_;
  Stats stats_;
  uint64_t generation_ = 0;
  uint64_t next_servable_id_ = 1;
};

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_SERVABLES_RESPONSE_CACHE_H_
