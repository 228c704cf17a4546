// The reference backend: runs a Graph node by node with the naive kernels of engine/ops. Slow and obviously
// correct; it is the oracle that the oneDNN backend is tested against.
// Thread-safety: as Backend/Plan (engine/backend/backend.h).
#ifndef CNNSERVE_ENGINE_BACKEND_REFERENCE_REFERENCE_BACKEND_H_
#define CNNSERVE_ENGINE_BACKEND_REFERENCE_REFERENCE_BACKEND_H_

#include <memory>

#include "engine/backend/backend.h"
#include "engine/graph/graph.h"

namespace cnnserve {

// Shares ownership of `graph`. Never fails for a valid Graph except on an unsupported batch size.
StatusOr<std::unique_ptr<Backend>> CreateReferenceBackend(std::shared_ptr<const Graph> graph);

}  // namespace cnnserve

#endif  // CNNSERVE_ENGINE_BACKEND_REFERENCE_REFERENCE_BACKEND_H_
