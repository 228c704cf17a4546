// LayerServables: servables that compute a model version only up to one of its layers (feature maps,
// embeddings), built on demand per (model, version, layer) and cached with a small bound.
//
// A layer servable is a ModelServable over Model::UpToLayer (engine/runtime/model.h): the model's preprocessing,
// max_batch_size and preferred batch sizes, its own DynamicBatcher (one instance) and plans that stop at the
// layer, running on the same compute lanes as every model (ModelServableOptions::lanes), so that feature maps
// and embeddings share the cores with ordinary traffic. Its RunResult rows (`scores`) are the layer's
// activations of each item (num_classes = the layer's values per item); ServableInfo::layer and
// item_output_dims say which layer and its per-item shape.
//
// Thread-safety: every method may be called from any thread. Ownership: a servable handed out stays usable while
// held, also after eviction; an evicted servable is destroyed by a later Get or by Shutdown, on the caller's
// thread, once nobody else holds it (never on a batcher worker of its own).
#ifndef CNNSERVE_SERVER_SERVABLES_LAYER_SERVABLE_H_
#define CNNSERVE_SERVER_SERVABLES_LAYER_SERVABLE_H_

#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "server/servables/model_servable.h"

namespace cnnserve {

// Layer servables kept built at once (each holds plans and prepared weights up to its layer).
inline constexpr size_t kDefaultMaxLayerServables = 4;

class LayerServables {
 public:
  // `options.lanes` must outlive this object.
  explicit LayerServables(ModelServableOptions options, size_t max_cached = kDefaultMaxLayerServables)
      : options_(std::move(options)), max_cached_(max_cached < 1 ? 1 : max_cached) {}
  ~LayerServables() { Shutdown(SteadyNowMicros()); }

  // The servable computing `version` of `entry` up to `layer` (a node or tensor name of the imported graph,
  // engine/graph/truncate.h), from the cache or built now (compiles and warms up its plans: blocks the caller,
  // outside the lock: other layers are found meanwhile; a request for the same layer waits for that one build,
  // and a failed build is not cached). Errors:
  // INVALID_ARGUMENT for a version without an engine model (null platform) or a name that is not a layer (the
  // message names it and where names are listed); the engine's errors; UNAVAILABLE after Shutdown.
  StatusOr<std::shared_ptr<Servable>> Get(const ModelEntry& entry, const VersionEntry& version,
                                          const std::string& layer);

  // Drains and stops every cached layer servable (by `drain_deadline_us`, steady clock). Idempotent.
  void Shutdown(int64_t drain_deadline_us);

 private:
  struct Cached {
    std::weak_ptr<const Model> base;  // the full model it was cut from (a reload makes a new one)
    std::string value;            // the resolved layer value
    std::shared_ptr<Servable> servable;
    uint64_t last_used = 0;
  };
  // A servable being built, and the result that requests for the same layer wait for.
  using BuildResult = std::shared_future<StatusOr<std::shared_ptr<Servable>>>;
  struct Building {
    std::weak_ptr<const Model> base;
    std::string value;
    BuildResult result;
  };
  // The cached servable of `value` cut from `base` (marked used), or null; drops entries of models that are gone.
  // Requires mu_.
  std::shared_ptr<Servable> FindCached(const std::shared_ptr<const Model>& base, const std::string& value);
  // Compiles and warms up the servable (without mu_).
  StatusOr<std::shared_ptr<Servable>> Build(const ModelEntry& entry, const VersionEntry& version,
                                            const std::string& value) const;
  // Caches a built servable, evicting the least recently used beyond max_cached_. Requires mu_.
  void Insert(const std::shared_ptr<const Model>& base, const std::string& value, std::shared_ptr<Servable> servable);
  // Destroys evicted servables nobody holds any more. Requires mu_.
  void ReleaseEvicted();

  const ModelServableOptions options_;
  const size_t max_cached_;
  std::mutex mu_;  // guards everything below; not held while a servable is built
  std::vector<Cached> cache_;
  std::vector<Building> building_;
  std::vector<std::shared_ptr<Servable>> evicted_;
  uint64_t uses_ = 0;
  bool shut_down_ = false;
};

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_SERVABLES_LAYER_SERVABLE_H_
