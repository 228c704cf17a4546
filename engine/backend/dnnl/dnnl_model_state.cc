#include "engine/backend/dnnl/dnnl_model_state.h"

namespace cnnserve::dnnl_internal {

memory ModelState::Weights(const std::string& key, const Md& user_md, const float* user_data, const Md& want) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const WeightEntry& entry : weights_) {
    if (entry.key == key && entry.md == want) {
      ++counters_.weight_cache_hits;
      return entry.mem;
    }
  }
  memory user(user_md, engine_, const_cast<float*>(user_data));
  memory prepared = user;
  if (!(want == user_md)) {
    prepared = memory(want, engine_);
    dnnl::stream stream(engine_);
    dnnl::reorder(user, prepared).execute(stream, user, prepared);
    stream.wait();
    ++counters_.weight_reorders;
    counters_.weight_bytes_copied += static_cast<int64_t>(want.get_size());
  }
  ++counters_.weight_preparations;
  weights_.push_back({key, want, prepared});
  return prepared;
}

std::optional<Md> ModelState::PreferredWeights(const std::string& key, const Md* exclude) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const WeightEntry& entry : weights_) {
    if (entry.key == key && (exclude == nullptr || !(entry.md == *exclude))) return entry.md;
  }
  return std::nullopt;
}

void ModelState::CountPlan(int64_t primitives, int64_t memories) {
  std::lock_guard<std::mutex> lock(mu_);
  ++counters_.plans_compiled;
  counters_.primitives_created += primitives;
  counters_.memories_created += memories;
}

BackendCounters ModelState::counters() {
  std::lock_guard<std::mutex> lock(mu_);
  return counters_;
}

}  // namespace cnnserve::dnnl_internal
