// Model and Session: the engine's public entry point ("compile once, run many").
//
// A Model is an immutable, shared, loaded network: the graph as imported (for inspection), its inference-optimised
// form and a backend holding the prepared weights. A Session is one thread's handle for running it: it owns one
// compiled Plan per batch size it has seen (compiled on first use or ahead of time by Prepare), so steady-state
// runs allocate nothing.
// Thread-safety: Model is thread-safe (share std::shared_ptr<const Model>). A Session is used by one thread at a
// time; create one per worker thread.
#ifndef CNNSERVE_ENGINE_RUNTIME_MODEL_H_
#define CNNSERVE_ENGINE_RUNTIME_MODEL_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/backend/backend.h"
#include "engine/common/status.h"
#include "engine/graph/graph.h"
#include "engine/tensor/tensor.h"

namespace cnnserve {

struct ModelOptions {
  std::string backend = "dnnl";  // "dnnl" or "reference"
  int num_threads = 0;           // threads inside one run (0: all cores)
  // Winograd for eligible 3x3 convolutions (see BackendOptions). On by default at this level: it is the faster
  // algorithm for VGG's convolutions (bench/RESULTS.md, "Engine vs ONNX Runtime and PyTorch") and matches PyTorch
  // within the parity tolerance with a wide margin; it costs memory (transformed weights, per plan size class:
  // bench/RESULTS.md, "Memory"). Turn it off for the smallest footprint.
  bool allow_winograd = true;
  // Which eligible convolutions get Winograd (see BackendOptions).
  WinogradPolicy winograd_policy = WinogradPolicy::kHeuristic;
  int64_t fc_blocked_weights_min_batch = 8;  // see BackendOptions
  bool optimize = true;                      // run OptimizeForInference before compiling
  // The data type of the compiled layers (see Precision). kBf16 and kInt8 need the "dnnl" backend.
  Precision precision = Precision::kFp32;
  // kInt8: the calibrated activation ranges (engine/runtime/calibration.h); required for kInt8.
  std::shared_ptr<const TensorRanges> ranges = nullptr;
};

class Session;

class Model : public std::enable_shared_from_this<Model> {
 public:
  // Takes shared ownership of `graph`. INVALID_ARGUMENT for an unknown backend name; the backend's errors for
  // graphs it cannot run.
  static StatusOr<std::shared_ptr<const Model>> Create(std::shared_ptr<const Graph> graph,
                                                       const ModelOptions& options);

  // The graph as given to Create (unoptimised: every layer as imported).
  const Graph& graph() const { return *graph_; }
  std::shared_ptr<const Graph> shared_graph() const { return graph_; }
  const ModelOptions& options() const { return options_; }
  // Per-image dims (batch removed) of the input and output.
  const Dims& item_input_dims() const { return item_input_dims_; }
  const Dims& item_output_dims() const { return item_output_dims_; }
  int64_t item_input_size() const { return NumElements(item_input_dims_); }
  int64_t item_output_size() const { return NumElements(item_output_dims_); }

  std::unique_ptr<Session> NewSession() const;

  // A Model computing only up to `layer` (engine/graph/truncate.h: a node or tensor name of graph(), as imported),
  // compiled with the same options; its output is that layer's activations. The weights it needs are prepared
  // again for it (nothing is shared with this Model but the constant buffers). INVALID_ARGUMENT for a name that
  // is not a layer of graph(); the backend's errors otherwise.
  StatusOr<std::shared_ptr<const Model>> UpToLayer(const std::string& layer) const;

 private:
  friend class Session;
  Model() = default;
  StatusOr<std::unique_ptr<Plan>> Compile(int64_t batch) const;

  ModelOptions options_;
  std::shared_ptr<const Graph> graph_;
  std::shared_ptr<const Graph> optimized_;
  std::unique_ptr<Backend> backend_;  // Compile is thread-safe
  Dims item_input_dims_;
  Dims item_output_dims_;
};

class Session {
 public:
  explicit Session(std::shared_ptr<const Model> model) : model_(std::move(model)) {}

  const Model& model() const { return *model_; }
  // Compiles the plan for `batch` now (warm-up), so that the first Run at that size does not pay for it.
  Status Prepare(int64_t batch);
  // Runs `batch` images: `src` holds batch * item_input_size() floats (NCHW), `dst` receives
  // batch * item_output_size() floats. Caller owns both. Blocks.
  Status Run(const float* src, int64_t batch, float* dst);
  // Convenience: input dims must be [batch, item_input_dims...].
  StatusOr<Tensor> Run(const Tensor& input);

 private:
  StatusOr<Plan*> PlanFor(int64_t batch);

  std::shared_ptr<const Model> model_;
  std::map<int64_t, std::unique_ptr<Plan>> plans_;
};

}  // namespace cnnserve

#endif  // CNNSERVE_ENGINE_RUNTIME_MODEL_H_
