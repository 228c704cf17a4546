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

// Activation sizes count what a forward pass keeps per image in fp32: the input, and the output of every layer
// that writes a new tensor (Conv, the pools, Gemm/MatMul, LRN, BatchNormalization, Add, Softmax), each once.
// Relu runs in place and Flatten, Reshape, Identity and Dropout are views, so their outputs are not counted again.
struct LayerStats {
  std::string name;         // the ONNX node's name as Netron shows it ("<op>_<index>" when the node has none)
  std::string output_name;  // the ONNX tensor the node writes (also accepted where a layer is named)
  std::string op;
  Dims output_dims;     // per image: batch dimension removed
  int64_t params = 0;   // elements of the constant inputs the layer reads (total_params sums these, as PyTorch
                        // counts each module's parameters even where the exporter stored equal values once)
  int64_t macs = 0;     // multiply-accumulates per image (Conv, Gemm, MatMul)
  // Receptive field on the input image (height, width) of one output element; 0 when it is the whole input
  // (after Flatten/Gemm/GlobalAveragePool).
  int64_t receptive_h = 1;
  int64_t receptive_w = 1;
  bool global_receptive_field = false;
  int64_t activation_values = 0;  // per image; 0 when the output is not counted (see above)
};

struct GraphStats {
  std::string name;
  Dims input_dims;  // per image
  std::vector<LayerStats> layers;
  int64_t total_params = 0;
  int64_t total_macs = 0;
  int64_t weight_bytes = 0;     // of the distinct constants (a constant shared by two layers is stored once)
  int64_t input_values = 0;     // per image
  int64_t total_activation_values = 0;  // input_values + the layers' activation_values, per image
  int64_t total_activation_bytes = 0;   // fp32
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
