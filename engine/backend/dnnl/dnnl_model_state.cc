#include "engine/backend/dnnl/dnnl_model_state.h"

namespace cnnserve::dnnl_internal {

memory ModelState::Weights(const std::string& key, const Md& user_md, const float* user_data, const Md& want) {
  std::lock_guard<std::mutex> lock(mu_);
  return PrepareLocked(key, memory(user_md, engine_, const_cast<float*>(user_data)), want, dnnl::primitive_attr());
}

memory ModelState::QuantizedWeights(const std::string& key, const Md& user_md, const float* user_data,
                                    const Md& want, const std::vector<float>& scales, int mask) {
  dnnl::primitive_attr attr;
  attr.set_output_scales(mask, scales);
  std::lock_guard<std::mutex> lock(mu_);
  return PrepareLocked(key, memory(user_md, engine_, const_cast<float*>(user_data)), want, attr);
}

memory ModelState::PrepareLocked(const std::string& key, memory user, const Md& want,
                                 const dnnl::primitive_attr& attr) {
  for (const WeightEntry& entry : weights_) {
    if (entry.key == key && entry.md == want) {
      ++counters_.weight_cache_hits;
      return entry.mem;
    }
  }
  memory prepared = user;
  if (!(want == user.get_desc())) {
    prepared = memory(want, engine_);
    dnnl::stream stream(engine_);
    const dnnl::reorder::primitive_desc pd(engine_, user.get_desc(), engine_, want, attr);
    dnnl::reorder(pd).execute(stream, user, prepared);
    stream.wait();
    ++counters_.weight_reorders;
    counters_.weight_bytes_copied += static_cast<int64_t>(want.get_size());
  }
  ++counters_.weight_preparations;
  weights_.push_back({key, want, prepared});
  return prepared;
}

const std::vector<float>& ModelState::Derived(const std::string& key,
                                              const std::function<std::vector<float>()>& make) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = derived_.find(key);
  if (it == derived_.end()) it = derived_.emplace(key, make()).first;
  return it->second;
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
