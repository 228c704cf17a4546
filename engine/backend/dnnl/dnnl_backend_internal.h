// Introspection of the oneDNN backend, for tests, benchmarks and diagnostics (not a serving API).
//
// Lets a test check that plans of one backend share reordered weights, that Run creates nothing, and which
// layouts and kernels oneDNN picked for each layer. No oneDNN type appears here.
// Thread-safety: the functions read atomics and immutable plan data; safe to call while other threads compile.
#ifndef CNNSERVE_ENGINE_BACKEND_DNNL_DNNL_BACKEND_INTERNAL_H_
#define CNNSERVE_ENGINE_BACKEND_DNNL_DNNL_BACKEND_INTERNAL_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engine/backend/backend.h"
#include "engine/common/status.h"

namespace cnnserve::dnnl_internal {

// Counters of one backend (all plans compiled from it).
struct BackendCounters {
  int64_t weight_preparations = 0;  // weight tensors prepared for a primitive layout (cache misses)
  int64_t weight_reorders = 0;      // of those, how many needed a reorder (the rest use the graph's buffer)
  int64_t weight_cache_hits = 0;    // lookups answered by an already prepared weight tensor
  int64_t weight_bytes_copied = 0;  // bytes the backend holds for reordered weights (the rest are the graph's)
  int64_t plans_compiled = 0;
  int64_t primitives_created = 0;  // every oneDNN primitive a Compile created (reorders included)
  int64_t memories_created = 0;    // every oneDNN memory object a Compile created
};

// INVALID_ARGUMENT when `backend` was not made by CreateDnnlBackend.
StatusOr<BackendCounters> GetBackendCounters(const Backend& backend);

// One primitive of a plan, in execution order.
struct StepInfo {
  std::string node;     // graph node(s) it computes, fused ones joined with '+'; reorders say what they feed
  std::string kind;     // oneDNN primitive kind: "convolution", "reorder", "pooling_v2", ...
  std::string impl;     // oneDNN implementation, e.g. "jit:avx512_core", "brgemm:avx512_core", "ref:any"
  std::string src;      // layouts in oneDNN's letter notation ("abcd" = plain NCHW, "aBcd16b" = nChw16c)
  std::string weights;  // "" when the primitive has no weights
  std::string dst;
  // Data types of the same operands: "f32", "bf16" ("" where there is none).
  std::string src_type;
  std::string weights_type;
  std::string dst_type;
  const void* weights_data = nullptr;  // the weights buffer bound to this step (shared across plans)
  size_t weights_bytes = 0;            // its size in its layout and data type
};

struct PlanInfo {
  std::vector<StepInfo> steps;
  size_t activation_bytes = 0;  // arena for activations after lifetime-based buffer sharing
  size_t scratchpad_bytes = 0;  // the one scratchpad shared by all steps
};

// INVALID_ARGUMENT when `plan` was not compiled by a oneDNN backend.
StatusOr<PlanInfo> DescribePlan(const Plan& plan);

// WinogradPolicy::kHeuristic takes Winograd for an eligible convolution when minibatch x output pixels reaches
// this (chosen with bench/engine_micro: below it, Winograd loses to direct).
inline constexpr int64_t kWinogradMinPixels = 16;

// Bytes of the distinct weight buffers of `info`'s steps, by data type ("f32", "bf16").
std::map<std::string, size_t> WeightBytesByType(const PlanInfo& info);

// A multi-line table of `info` (one step per line), for logs.
std::string FormatPlanInfo(const PlanInfo& info);

}  // namespace cnnserve::dnnl_internal

#endif  // CNNSERVE_ENGINE_BACKEND_DNNL_DNNL_BACKEND_INTERNAL_H_
