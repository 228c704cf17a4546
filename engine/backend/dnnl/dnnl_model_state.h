// What every plan of one oneDNN backend shares (private to engine/backend/dnnl): the graph, the options, the
// oneDNN engine, the lowered ops, and the cache of weights prepared in primitive layouts, with its counters.
// Ownership: the backend and each of its plans hold a shared_ptr, so prepared weights live as long as any plan.
// Thread-safety: the accessors read immutable data; Weights, QuantizedWeights, Derived, PreferredWeights,
// CountPlan and counters lock.
#ifndef CNNSERVE_ENGINE_BACKEND_DNNL_DNNL_MODEL_STATE_H_
#define CNNSERVE_ENGINE_BACKEND_DNNL_DNNL_MODEL_STATE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/backend/backend.h"
#include "engine/backend/dnnl/dnnl_backend_internal.h"
#include "engine/backend/dnnl/dnnl_lower.h"
#include "engine/backend/dnnl/dnnl_util.h"
#include "engine/graph/graph.h"

namespace cnnserve::dnnl_internal {

class ModelState {
 public:
  ModelState(std::shared_ptr<const Graph> graph, const BackendOptions& options, dnnl::engine engine,
             std::vector<LoweredOp> ops)
      : graph_(std::move(graph)), options_(options), engine_(std::move(engine)), ops_(std::move(ops)) {}

  const Graph& graph() const { return *graph_; }
  const BackendOptions& options() const { return options_; }
  const dnnl::engine& engine() const { return engine_; }
  const std::vector<LoweredOp>& ops() const { return ops_; }

  // The weights of `key` laid out as `want`. The first call reorders `user_data` (laid out as `user_md`) into
  // a buffer the cache owns (or, when the layouts match and it is no view, wraps `user_data` itself); later calls
  // with the same key and layout return the same memory. Throws dnnl::error. `view`: the mapped-file tensor
  // `user_data` lies in (LoweredOp::weights_view), or nullptr. Its weights are always copied (serving never reads
  // the file) in slices of its outer dimension (the rows contiguous in the file: output channels of a conv's or
  // inner product's weights, K or N of a matmul's), each slice's file pages dropped once converted, so that a
  // large tensor is never resident in fp32 as a whole.
  memory Weights(const std::string& key, const Md& user_md, const float* user_data, const Md& want,
                 const Tensor* view = nullptr);
  // The same for int8 weights: the reorder multiplies by `scales` (oneDNN output scales with `mask`, e.g. one
  // scale per output channel). The cache keys on `key` and `want`: one key must always come with one scaling.
  memory QuantizedWeights(const std::string& key, const Md& user_md, const float* user_data, const Md& want,
                          const std::vector<float>& scales, int mask, const Tensor* view = nullptr);

  // Floats derived from the model once and kept for every plan (int8 weight scales, rescaled biases): the first
  // call with `key` stores make()'s result; every call returns the stored vector (stable address).
  const std::vector<float>& Derived(const std::string& key, const std::function<std::vector<float>()>& make);

  // The layout of the first weights prepared for `key` (other than `exclude`, when given), so that later plans
  // can share them; nullopt when there are none.
  std::optional<Md> PreferredWeights(const std::string& key, const Md* exclude = nullptr);

  // Counts one compiled plan with the primitives and memories it created.
  void CountPlan(int64_t primitives, int64_t memories);

  BackendCounters counters();

 private:
  struct WeightEntry {
    std::string key;
    Md md;
    memory mem;
  };

  const std::shared_ptr<const Graph> graph_;
  const BackendOptions options_;
  const dnnl::engine engine_;
  const std::vector<LoweredOp> ops_;
  std::mutex mu_;
  // How a reorder scales its output: oneDNN output scales with `mask` (none when `scales` is null).
  struct Scaling {
    const std::vector<float>* scales = nullptr;
    int mask = 0;
  };
  // The cached entry for (key, want), or else reorders the user's weights into a new one. Needs mu_ held.
  memory PrepareLocked(const std::string& key, const Md& user_md, const float* user_data, const Md& want,
                       Scaling scaling, const Tensor* view);

  std::vector<WeightEntry> weights_;  // a few dozen entries: linear search
  std::map<std::string, std::vector<float>> derived_;
  BackendCounters counters_;
};

}  // namespace cnnserve::dnnl_internal

#endif  // CNNSERVE_ENGINE_BACKEND_DNNL_DNNL_MODEL_STATE_H_
