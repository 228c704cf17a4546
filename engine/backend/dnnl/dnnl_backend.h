// The oneDNN (2.6) CPU backend.
//
// Compile-once, run-many: weights are reordered into the layout oneDNN's kernels prefer once per model and
// shared by every Plan; activations stay in blocked layouts between layers; Conv+Relu and Gemm+Relu are fused
// through post-ops; every primitive uses forward_inference. A Plan owns its primitives and activation buffers,
// so Run creates and allocates nothing. No oneDNN type appears in this header.
// Private parts, one idea a file: dnnl_lower (graph -> fused op list), dnnl_model_state (what plans share: the
// weights cache), dnnl_plan_builder + dnnl_emit_* (compiling one plan, per op family), dnnl_arena (activation
// buffer sharing), dnnl_plan (the run path), dnnl_util (oneDNN helpers); dnnl_backend_internal.h for introspection.
// Thread-safety: as Backend/Plan (engine/backend/backend.h).
#ifndef CNNSERVE_ENGINE_BACKEND_DNNL_DNNL_BACKEND_H_
#define CNNSERVE_ENGINE_BACKEND_DNNL_DNNL_BACKEND_H_

#include <memory>
#include <string>

#include "engine/backend/backend.h"
#include "engine/graph/graph.h"

namespace cnnserve {

// `graph` should already be OptimizeForInference'd (the backend also copes with unoptimised graphs).
// UNIMPLEMENTED when an op/attribute combination has no oneDNN mapping (the message names node and attribute).
StatusOr<std::unique_ptr<Backend>> CreateDnnlBackend(std::shared_ptr<const Graph> graph,
                                                     const BackendOptions& options);

// The ISA oneDNN dispatches to on this machine, e.g. "avx512_core_bf16" (for start-up logs).
std::string DnnlIsaName();

}  // namespace cnnserve

#endif  // CNNSERVE_ENGINE_BACKEND_DNNL_DNNL_BACKEND_H_
