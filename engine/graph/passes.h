// Inference-time graph rewrites, run before a backend compiles a graph.
//
//  - BatchNormalization whose input is produced by a Conv read by nothing else is folded into the Conv's weights
//    and bias (w' = w * s / sqrt(var + eps), b' = (b - mean) * s / sqrt(var + eps) + shift).
//  - Identity and Dropout are removed (their consumers read the producer's value directly).
// The result computes the same function (up to float rounding). Thread-safety: pure functions.
#ifndef CNNSERVE_ENGINE_GRAPH_PASSES_H_
#define CNNSERVE_ENGINE_GRAPH_PASSES_H_

#include <memory>

#include "engine/common/status.h"
#include "engine/graph/graph.h"

namespace cnnserve {

StatusOr<std::shared_ptr<const Graph>> OptimizeForInference(const Graph& graph);

// `graph`'s definition, e.g. to rewrite it. Nodes are copied; constant buffers are shared, not copied.
GraphDef CopyGraphDef(const Graph& graph);

}  // namespace cnnserve

#endif  // CNNSERVE_ENGINE_GRAPH_PASSES_H_
