#include "engine/graph/truncate.h"

#include "engine/common/strings.h"
#include "engine/graph/passes.h"

namespace cnnserve {
namespace {

Status UnknownLayer(const Graph& graph, const std::string& layer, const std::string& why) {
  return InvalidArgumentError("layer " + Quoted(layer) + " " + why + " in graph " + Quoted(graph.name()) +
                              ": name a node or the tensor it outputs, as DescribeModel or `cnnbench inspect` "
                              "list them");
}

bool IsCopy(const Node& node) {
  return (node.type == OpType::kIdentity || node.type == OpType::kDropout) && !node.inputs.empty() &&
         !node.outputs.empty();
}

}  // namespace

StatusOr<std::string> ResolveLayer(const Graph& graph, const std::string& layer) {
  if (layer.empty()) return UnknownLayer(graph, layer, "is empty");
  std::string value;
  if (graph.value_dims().count(layer) != 0) {
    value = layer;
  } else {
    for (const Node& node : graph.nodes()) {
      if (node.name == layer) {
        value = node.outputs[0];
        break;
      }
    }
  }
  if (value.empty()) {
    return UnknownLayer(graph, layer, graph.is_constant(layer) ? "is a constant (a weight)" : "is not known");
  }
  // Identity and Dropout (the first output: the data, not the mask) carry their input's values.
  for (const Node* p = graph.producer(value); p != nullptr && IsCopy(*p) && p->outputs[0] == value;
       p = graph.producer(value)) {
    const std::string& src = p->inputs[0];
    if (src == graph.input_name() || graph.is_constant(src)) break;
    value = src;
  }
  if (value == graph.input_name()) return UnknownLayer(graph, layer, "is the model's input, not a layer");
  return value;
}

StatusOr<std::shared_ptr<const Graph>> TruncateGraph(const Graph& graph, const std::string& layer) {
  CNN_ASSIGN_OR_RETURN(std::string value, ResolveLayer(graph, layer));
  GraphDef def = CopyGraphDef(graph);
  def.output = std::move(value);
  return Graph::Create(std::move(def));  // keeps only the nodes the new output needs
}

}  // namespace cnnserve
