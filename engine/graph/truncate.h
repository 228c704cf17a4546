// Computing up to a named layer: the graph truncated to one of its values, for feature maps and embeddings.
//
// A layer is named as the graph was imported (before OptimizeForInference fuses or removes nodes): either the name
// of a value a node produces (an ONNX tensor name) or the name of a node (its first output). A value produced by
// Identity or Dropout resolves to the value those copy, so a name that inference passes remove still works; a
// ReLU that the dnnl backend fuses into the convolution before it is simply the truncated graph's output.
// Thread-safety: pure functions over an immutable Graph.
#ifndef CNNSERVE_ENGINE_GRAPH_TRUNCATE_H_
#define CNNSERVE_ENGINE_GRAPH_TRUNCATE_H_

#include <memory>
#include <string>

#include "engine/common/status.h"
#include "engine/graph/graph.h"

namespace cnnserve {

// The value that `layer` names in `graph` (see above). INVALID_ARGUMENT, naming `layer` and where to find the
// names, when it names no node and no value, names the graph input or a constant (a weight).
StatusOr<std::string> ResolveLayer(const Graph& graph, const std::string& layer);

// `graph` with `layer`'s value (ResolveLayer) as its only output and every node that value does not need removed;
// validated by Graph::Create (batch kept in dimension 0, dims inferred). Constants are shared, not copied.
StatusOr<std::shared_ptr<const Graph>> TruncateGraph(const Graph& graph, const std::string& layer);

}  // namespace cnnserve

#endif  // CNNSERVE_ENGINE_GRAPH_TRUNCATE_H_
