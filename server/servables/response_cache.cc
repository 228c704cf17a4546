#include "server/servables/response_cache.h"

#include <openssl/evp.h>

#include <cstring>
#include <memory>
#include <string>
#include <utility>

namespace cnnserve {
namespace {

// Bookkeeping per entry besides its rows: the list node, the index slot, the key, the strings of the result.
constexpr size_t kEntryOverheadBytes = 256;

struct DigestDeleter {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};

class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) {
    if (ctx_ == nullptr || EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) != 1) throw std::bad_alloc();
  }
  void Add(const void* data, size_t size) { EVP_DigestUpdate(ctx_.get(), data, size); }
  template <typename T>
  void AddValue(T value) {
    Add(&value, sizeof(value));
  }
  // Length-prefixed, so that two fields can never run into each other.
  void AddBytes(std::string_view bytes) {
    AddValue<uint64_t>(bytes.size());
    Add(bytes.data(), bytes.size());
  }
  CacheKey Finish() {
    CacheKey key{};
    unsigned int size = 0;
    EVP_DigestFinal_ex(ctx_.get(), key.data(), &size);
    return key;
  }

 private:
  std::unique_ptr<EVP_MD_CTX, DigestDeleter> ctx_;
};

size_t FloatBytes(const std::vector<float>& v) { return v.size() * sizeof(float); }

}  // namespace

CacheKey ResponseCacheKey(uint64_t servable_id, const RunRequest& request) {
  Sha256 digest;
  digest.AddBytes("cnnserve response cache v1");
  digest.AddValue<uint64_t>(servable_id);
  digest.AddValue<uint8_t>(request.want_member_results ? 1 : 0);
  digest.AddValue<uint64_t>(request.items.size());
  for (const ImageItem& item : request.items) {
    digest.AddValue<int32_t>(static_cast<int32_t>(item.kind));
    digest.AddValue<int32_t>(item.height);
    digest.AddValue<int32_t>(item.width);
    digest.AddValue<int32_t>(item.channels);
    digest.AddBytes(item.data);
  }
  return digest.Finish();
}

size_t CachedResultBytes(const RunResult& result) {
  size_t bytes = kEntryOverheadBytes + FloatBytes(result.scores) + FloatBytes(result.probabilities) +
                 FloatBytes(result.tie_break) + FloatBytes(result.agreement) + result.model.size();
  for (const MemberResult& member : result.members) {
    bytes += sizeof(MemberResult) + member.model.size() + FloatBytes(member.probabilities) +
             member.status.message().size();
  }
  return bytes;
}

size_t ResponseCache::KeyHash::operator()(const CacheKey& key) const {
  size_t h = 0;
  std::memcpy(&h, key.data(), sizeof(h));  // already uniformly distributed
  return h;
}

std::optional<RunResult> ResponseCache::Lookup(const CacheKey& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(key);
  if (it == index_.end()) {
    ++stats_.misses;
    return std::nullopt;
  }
  ++stats_.hits;
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->result;
}

uint64_t ResponseCache::generation() const {
  std::lock_guard<std::mutex> lock(mu_);
  return generation_;
}

bool ResponseCache::Insert(const CacheKey& key, uint64_t servable_id, uint64_t generation, RunResult result) {
  result.preprocess_us = 0;
  result.queue_us = 0;
  result.compute_us = 0;
  const size_t bytes = CachedResultBytes(result);
  std::lock_guard<std::mutex> lock(mu_);
  if (generation != generation_ || bytes > capacity_) return false;
  if (auto it = index_.find(key); it != index_.end()) EraseLocked(it->second);
  while (stats_.bytes + bytes > capacity_ && !lru_.empty()) {
    EraseLocked(std::prev(lru_.end()));
    ++stats_.evictions;
  }
  lru_.push_front(Entry{key, servable_id, bytes, std::move(result)});
  index_.emplace(key, lru_.begin());
  bytes_by_servable_[servable_id] += bytes;
  stats_.bytes += bytes;
  ++stats_.entries;
  ++stats_.insertions;
  return true;
}

void ResponseCache::EraseLocked(Lru::iterator it) {
  stats_.bytes -= it->bytes;
  --stats_.entries;
  auto owner = bytes_by_servable_.find(it->servable_id);
  if (owner != bytes_by_servable_.end()) {
    owner->second -= it->bytes;
    if (owner->second == 0) bytes_by_servable_.erase(owner);
  }
  index_.erase(it->key);
  lru_.erase(it);
}

void ResponseCache::Clear() {
  std::lock_guard<std::mutex> lock(mu_);
  ++generation_;
  lru_.clear();
  index_.clear();
  bytes_by_servable_.clear();
  stats_.bytes = 0;
  stats_.entries = 0;
}

uint64_t ResponseCache::NewServableId() {
  std::lock_guard<std::mutex> lock(mu_);
  return next_servable_id_++;
}

ResponseCache::Stats ResponseCache::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

size_t ResponseCache::BytesOf(uint64_t servable_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = bytes_by_servable_.find(servable_id);
  return it == bytes_by_servable_.end() ? 0 : it->second;
}

}  // namespace cnnserve
