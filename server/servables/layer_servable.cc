#include "server/servables/layer_servable.h"

#include <algorithm>

#include "engine/common/strings.h"
#include "engine/graph/truncate.h"

namespace cnnserve {
namespace {

// A ModelServable over a truncated model, with an info that names the layer and its per-item shape.
class LayerServable final : public Servable {
 public:
  LayerServable(std::unique_ptr<ModelServable> inner, std::string layer, Dims item_output_dims)
      : inner_(std::move(inner)), info_(inner_->info()) {
    info_.layer = std::move(layer);
    info_.item_output_dims = std::move(item_output_dims);
    info_.labels.clear();  // rows are activations, not classes
  }
  const ServableInfo& info() const override { return info_; }
  void Run(std::shared_ptr<const RunRequest> request, RunResult* result,
           std::function<void(Status)> done) override {
    inner_->Run(std::move(request), result, std::move(done));
  }
  ServableStats Stats() const override { return inner_->Stats(); }
  Status Shutdown(int64_t drain_deadline_us) override { return inner_->Shutdown(drain_deadline_us); }
  Status CheckAdmission(int64_t items, int64_t deadline_us) override {
    return inner_->CheckAdmission(items, deadline_us);
  }

 private:
  std::unique_ptr<ModelServable> inner_;
  ServableInfo info_;
};

}  // namespace

StatusOr<std::shared_ptr<Servable>> LayerServables::Get(const ModelEntry& entry, const VersionEntry& version,
                                                        const std::string& layer) {
  if (version.model == nullptr) {
    return InvalidArgumentError("model " + Quoted(entry.name) + " version " + std::to_string(version.version) +
                                " has no engine model, so no layers (platform " + entry.config.platform() + ")");
  }
  StatusOr<std::string> resolved = ResolveLayer(version.model->graph(), layer);
  if (!resolved.ok()) return resolved.status().WithContext("model " + Quoted(entry.name));
  const std::string value = *std::move(resolved);
  std::promise<StatusOr<std::shared_ptr<Servable>>> promise;
  BuildResult other_build;  // another request builds it: wait for that build
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shut_down_) return UnavailableError("shutting down");
    if (std::shared_ptr<Servable> cached = FindCached(version.model, value)) return cached;
    for (const Building& b : building_) {
      if (b.base.lock() == version.model && b.value == value) other_build = b.result;
    }
    if (!other_build.valid()) building_.push_back(Building{version.model, value, promise.get_future().share()});
  }
  if (other_build.valid()) return other_build.get();
  StatusOr<std::shared_ptr<Servable>> built = Build(entry, version, value);
  {
    std::lock_guard<std::mutex> lock(mu_);
    building_.erase(std::find_if(building_.begin(), building_.end(), [&](const Building& b) {
      return b.base.lock() == version.model && b.value == value;
    }));
    if (built.ok() && shut_down_) {
      (void)(*built)->Shutdown(SteadyNowMicros());
      built = UnavailableError("shutting down");
    } else if (built.ok()) {
      Insert(version.model, value, *built);
    }
  }
  promise.set_value(built);
  return built;
}

std::shared_ptr<Servable> LayerServables::FindCached(const std::shared_ptr<const Model>& base,
                                                     const std::string& value) {
  // Entries of models that are gone (unloaded, replaced) go first.
  for (auto it = cache_.begin(); it != cache_.end();) {
    if (it->base.expired()) {
      evicted_.push_back(std::move(it->servable));
      it = cache_.erase(it);
    } else {
      ++it;
    }
  }
  ReleaseEvicted();
  for (Cached& c : cache_) {
    if (c.base.lock() == base && c.value == value) {
      c.last_used = ++uses_;
      return c.servable;
    }
  }
  return nullptr;
}

StatusOr<std::shared_ptr<Servable>> LayerServables::Build(const ModelEntry& entry, const VersionEntry& version,
                                                          const std::string& value) const {
  CNN_ASSIGN_OR_RETURN(std::shared_ptr<const Model> truncated, version.model->UpToLayer(value));
  ModelEntry layer_entry = entry;
  layer_entry.config.mutable_instance_group()->set_count(1);
  VersionEntry layer_version = version;
  layer_version.model = truncated;
  layer_version.graph = truncated->shared_graph();
  layer_version.num_classes = truncated->item_output_size();
  CNN_ASSIGN_OR_RETURN(std::unique_ptr<ModelServable> inner,
                       ModelServable::Create(layer_entry, layer_version, options_));
  return std::shared_ptr<Servable>(
      std::make_shared<LayerServable>(std::move(inner), value, truncated->item_output_dims()));
}

void LayerServables::Insert(const std::shared_ptr<const Model>& base, const std::string& value,
                            std::shared_ptr<Servable> servable) {
  if (cache_.size() >= max_cached_) {
    auto lru = std::min_element(cache_.begin(), cache_.end(),
                                [](const Cached& a, const Cached& b) { return a.last_used < b.last_used; });
    evicted_.push_back(std::move(lru->servable));
    cache_.erase(lru);
  }
  cache_.push_back(Cached{base, value, std::move(servable), ++uses_});
}

void LayerServables::ReleaseEvicted() {
  for (auto it = evicted_.begin(); it != evicted_.end();) {
    if (it->use_count() == 1) {
      it = evicted_.erase(it);  // drains its (empty) queue and stops its workers here
    } else {
      ++it;
    }
  }
}

void LayerServables::Shutdown(int64_t drain_deadline_us) {
  std::lock_guard<std::mutex> lock(mu_);
  shut_down_ = true;
  for (Cached& c : cache_) evicted_.push_back(std::move(c.servable));
  cache_.clear();
  for (const std::shared_ptr<Servable>& s : evicted_) (void)s->Shutdown(drain_deadline_us);
  ReleaseEvicted();
}

}  // namespace cnnserve
