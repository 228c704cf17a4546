// Per-layer statistics of a Graph, as in a textbook table: output shape, parameters, multiply-adds and
// receptive field, plus totals. Used by `cnnbench inspect` and the server's DescribeModel.
// Thread-safety: pure functions of an immutable Graph.
#ifndef CNNSERVE_ENGINE_GRAPH_INSPECT_H_
#define CNNSERVE_ENGINE_GRAPH_INSPECT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "engine/graph/graph.h"

namespace cnnserve {

struct LayerStats {
  std::string name;
  std::string op;
  Dims output_dims;     // per image: batch dimension removed
  int64_t params = 0;   // elements of the constant inputs the layer reads
  int64_t macs = 0;     // multiply-accumulates per image (Conv, Gemm, MatMul)
  // Receptive field on the input image (height, width) of one output element; 0 when it is the whole input
  // (after Flatten/Gemm/GlobalAveragePool).
  int64_t receptive_h = 1;
  int64_t receptive_w = 1;
  bool global_receptive_field = false;
};

struct GraphStats {
  std::string name;
  Dims input_dims;  // per image
  std::vector<LayerStats> layers;
  int64_t total_params = 0;
  int64_t total_macs = 0;
  int64_t weight_bytes = 0;
};

GraphStats ComputeGraphStats(const Graph& graph);
// A fixed-width text table with a totals footer.
std::string FormatStatsTable(const GraphStats& stats);
// One JSON object: {"model":..., "input":[...], "layers":[{...}], "total_params":..., ...}.
std::string FormatStatsJson(const GraphStats& stats);
// "CxHxW" for rank-4 dims without the batch, otherwise "AxB".
std::string ShapeLabel(const Dims& per_image);

}  // namespace cnnserve

#endif  // CNNSERVE_ENGINE_GRAPH_INSPECT_H_
