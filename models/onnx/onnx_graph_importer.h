// Internal to the ONNX importer (not part of its API): converts one parsed ModelProto into a GraphDef.
//
// GraphImporter checks the model (IR version, one default-domain opset in [kMinOnnxOpset, kMaxOnnxOpset]),
// indexes initializers and bound inputs, imports the one runtime input and the one output, converts each node in
// order and finally turns the constants that nodes read into tensors. Its methods live in two files:
//  - onnx_graph_importer.cc: the graph walk, constants and Constant nodes;
//  - onnx_op_converters.cc: one converter per op family (what each op's attributes and inputs become) and the
//    table from ONNX op name to converter.
// Errors carry no file name (ImportOnnxFile adds it); node errors name the node and its op (NodeContext::Error).
//
// Ownership: borrows the model, the options and `external`, which must outlive the importer; Import() moves the
// tensor data out of the model (the model is not usable afterwards). Thread-safety: one thread, one Import().
#ifndef CNNSERVE_MODELS_ONNX_ONNX_GRAPH_IMPORTER_H_
#define CNNSERVE_MODELS_ONNX_ONNX_GRAPH_IMPORTER_H_

#include <onnx/onnx_pb.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "engine/common/status.h"
#include "engine/graph/graph.h"
#include "models/onnx/onnx_importer.h"
#include "models/onnx/onnx_node_context.h"
#include "models/onnx/onnx_tensor.h"

namespace cnnserve::onnx_import {

class GraphImporter {
 public:
  // `external` (may be null): raw data of initializers kept in the mapped file (see StripInitializerData).
  GraphImporter(onnx::ModelProto* model, const OnnxImportOptions& options,
                const ExternalRawData* external = nullptr)
      : model_(*model), graph_(*model->mutable_graph()), options_(options), external_(external) {}

  StatusOr<GraphDef> Import();

 private:
  // Fills `node->attrs` from the node's attributes and checks its inputs and outputs.
  using Converter = Status (GraphImporter::*)(NodeContext& ctx, Node* node);
  struct ConverterEntry {
    OpType type;
    Converter convert;
  };

  // Where a constant value comes from. Exactly one member is set.
  struct ConstantSource {
    onnx::TensorProto* proto = nullptr;  // an initializer or a Constant node's value
    const std::shared_ptr<const Tensor>* bound = nullptr;
    const std::vector<int64_t>* bound_int64 = nullptr;
  };

  // --- the graph walk (onnx_graph_importer.cc) ---
  Status CheckModel();
  // Indexes initializers and bound inputs and the set of values that some node or the graph output reads.
  Status IndexValues();
  Status CheckBinding(const std::unordered_map<std::string, const onnx::ValueInfoProto*>& inputs,
                      const std::string& name, const Dims& dims, int32_t data_type) const;
  bool IsBound(const std::string& name) const;
  // The graph's name, its one runtime input and its one output; marks inputs, initializers and bindings defined.
  Status ImportInputAndOutput();
  // The runtime input: the one graph input that is neither an initializer nor bound; a FLOAT tensor of known dims
  // except dimension 0.
  Status ImportInput();
  // The one graph output, a FLOAT tensor.
  Status ImportOutput();
  // A name for the node that is unique in the graph: the ONNX name, or "<op>_<index>" when it has none.
  std::string UniqueNodeName(const onnx::NodeProto& proto, int index);
  Status ImportNode(int index, onnx::NodeProto* proto);
  // An Identity over a constant (torch's exporter writes one per de-duplicated initializer, e.g. the zero biases
  // of several layers) adds no node: its readers read the constant itself, so the constant belongs to the layers
  // that use it. True when `proto` was folded so.
  bool FoldConstantIdentity(const onnx::NodeProto& proto);
  // A Constant node defines a constant value; it adds no node to the graph.
  Status ImportConstantNode(NodeContext& ctx, onnx::NodeProto* proto);
  // The constant behind value `name`, or nothing (a runtime value).
  std::optional<ConstantSource> FindConstant(const std::string& name);
  // Converts the constants that nodes read as inputs (and the graph output if it is one) into float tensors.
  Status AddConstants();

  // --- the converters (onnx_op_converters.cc) ---
  // The converter of ONNX op `op_type`; nullptr when the engine has no such op.
  static const ConverterEntry* FindConverter(std::string_view op_type);
  static Status CheckInputCount(const NodeContext& ctx, const Node& node, size_t min, size_t max);
  // Outputs from `first` on must be absent; with `allow_unread`, an output that nothing reads is dropped too.
  Status CheckExtraOutputs(const NodeContext& ctx, int first, bool allow_unread) const;
  // The INT64 vector held by constant input `index` of the node.
  StatusOr<std::vector<int64_t>> ConstantInt64Input(const NodeContext& ctx, const Node& node, size_t index,
                                                    const std::string& role);
  // Each converter reads every attribute the op has at the model's opset.
  Status ConvertUnary(NodeContext& ctx, Node* node);
  Status ConvertBinary(NodeContext& ctx, Node* node);
  Status ConvertConv(NodeContext& ctx, Node* node);
  Status GetPoolCommon(NodeContext& ctx, PoolAttrs* attrs);
  Status ConvertMaxPool(NodeContext& ctx, Node* node);
  Status ConvertAveragePool(NodeContext& ctx, Node* node);
  Status ConvertLrn(NodeContext& ctx, Node* node);
  Status ConvertGemm(NodeContext& ctx, Node* node);
  Status ConvertFlatten(NodeContext& ctx, Node* node);
  Status ConvertReshape(NodeContext& ctx, Node* node);
  Status ConvertDropout(NodeContext& ctx, Node* node);
  Status ConvertSoftmax(NodeContext& ctx, Node* node);
  Status ConvertBatchNorm(NodeContext& ctx, Node* node);

  onnx::ModelProto& model_;
  onnx::GraphProto& graph_;
  const OnnxImportOptions& options_;
  const ExternalRawData* external_;  // not owned; may be null
  int64_t opset_ = 0;
  GraphDef def_;
  std::unordered_map<std::string, onnx::TensorProto*> initializers_;
  std::unordered_map<std::string, onnx::TensorProto> constant_outputs_;
  std::unordered_map<std::string, std::string> constant_aliases_;  // output of a folded Identity -> constant
  std::unordered_set<std::string> read_;     // values read by some node or the graph output
  std::unordered_set<std::string> defined_;  // values defined so far (SSA check)
  std::unordered_set<std::string> node_names_;
};

}  // namespace cnnserve::onnx_import

#endif  // CNNSERVE_MODELS_ONNX_ONNX_GRAPH_IMPORTER_H_
