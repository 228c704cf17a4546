#include "engine/graph/graph.h"

#include <deque>
#include <set>

namespace cnnserve {
namespace {

std::string NodeLabel(const Node& node) {
  return "node \"" + node.name + "\" (" + std::string(OpTypeName(node.type)) + ")";
}

// Runs shape inference over `nodes` (topologically sorted) starting from `input_dims`. When `canonicalise` is
// set, the nodes' attributes are updated in place; otherwise copies are used.
Status InferAll(std::vector<Node>& nodes, const std::map<std::string, std::shared_ptr<const Tensor>>& constants,
                const std::string& input, const Dims& input_dims, bool canonicalise,
                std::unordered_map<std::string, Dims>* dims) {
  dims->clear();
  (*dims)[input] = input_dims;
  for (Node& original : nodes) {
    Node copy;
    Node& node = canonicalise ? original : (copy = original);
    const OpDef& def = GetOpDef(node.type);
    std::vector<std::optional<Dims>> in;
    in.reserve(node.inputs.size());
    for (const std::string& name : node.inputs) {
      if (name.empty()) {
        in.emplace_back(std::nullopt);
      } else if (auto c = constants.find(name); c != constants.end()) {
        in.emplace_back(c->second->dims());
      } else {
        in.emplace_back(dims->at(name));
      }
    }
    std::vector<Dims> out;
    Status s = def.infer(node, in, &out);
    if (!s.ok()) return s.WithContext(NodeLabel(node));
    if (out.size() != node.outputs.size()) {
      return InternalError(NodeLabel(node) + ": shape inference returned " + std::to_string(out.size()) +
                           " outputs for " + std::to_string(node.outputs.size()));
    }
    for (size_t i = 0; i < out.size(); ++i) {
      Status v = ValidateDims(out[i]);
      if (!v.ok()) return v.WithContext(NodeLabel(node) + " output \"" + node.outputs[i] + "\"");
      (*dims)[node.outputs[i]] = std::move(out[i]);
    }
  }
  return OkStatus();
}

// Checks the graph's input and constants; returns the input dims with a dynamic batch (<= 0) set to 1.
StatusOr<Dims> CheckInputAndConstants(const GraphDef& def) {
  if (def.input.empty()) return InvalidArgumentError("graph has no input");
  if (def.output.empty()) return InvalidArgumentError("graph has no output");
  if (def.input_dims.empty()) return InvalidArgumentError("graph input \"" + def.input + "\" has rank 0");
  if (def.constants.count(def.input)) {
    return InvalidArgumentError("graph input \"" + def.input + "\" is also a constant");
  }
  Dims input_dims = def.input_dims;
  if (input_dims[0] <= 0) input_dims[0] = 1;
  CNN_RETURN_IF_ERROR(ValidateDims(input_dims).WithContext("graph input \"" + def.input + "\""));
  for (const auto& [name, tensor] : def.constants) {
    if (tensor == nullptr || (tensor->size() > 0 && tensor->data() == nullptr)) {
      return InvalidArgumentError("constant \"" + name + "\" has no data");
    }
  }
  return input_dims;
}

// Names unnamed nodes, checks input and output counts and that every value is defined once (the input, a
// constant or exactly one node output); returns the index of the node producing each node output.
StatusOr<std::unordered_map<std::string, size_t>> IndexProducers(GraphDef& def) {
  std::unordered_map<std::string, size_t> producer;
  std::set<std::string> node_names;
  for (size_t i = 0; i < def.nodes.size(); ++i) {
    Node& node = def.nodes[i];
    if (node.name.empty()) node.name = std::string(OpTypeName(node.type)) + "_" + std::to_string(i);
    if (!node_names.insert(node.name).second) {
      return InvalidArgumentError("two nodes are named \"" + node.name + "\"");
    }
    const OpDef& op = GetOpDef(node.type);
    const int n_in = static_cast<int>(node.inputs.size());
    if (n_in < op.min_inputs || n_in > op.max_inputs) {
      return InvalidArgumentError(NodeLabel(node) + ": has " + std::to_string(n_in) + " inputs, expected " +
                                  std::to_string(op.min_inputs) + " to " + std::to_string(op.max_inputs));
    }
    if (node.outputs.empty() || static_cast<int>(node.outputs.size()) > op.num_outputs) {
      return InvalidArgumentError(NodeLabel(node) + ": has " + std::to_string(node.outputs.size()) +
                                  " outputs, expected 1 to " + std::to_string(op.num_outputs));
    }
    for (const std::string& out : node.outputs) {
      if (out.empty()) return InvalidArgumentError(NodeLabel(node) + ": has an unnamed output");
      if (out == def.input || def.constants.count(out) || !producer.emplace(out, i).second) {
        return InvalidArgumentError(NodeLabel(node) + ": output \"" + out + "\" is defined more than once");
      }
    }
  }
  return producer;
}

// Checks that every non-empty node input and the graph output are defined, and that required inputs are set.
Status CheckInputsDefined(const GraphDef& def, const std::unordered_map<std::string, size_t>& producer) {
  for (const Node& node : def.nodes) {
    for (size_t k = 0; k < node.inputs.size(); ++k) {
      const std::string& in = node.inputs[k];
      if (in.empty()) {
        if (static_cast<int>(k) < GetOpDef(node.type).min_inputs) {
          return InvalidArgumentError(NodeLabel(node) + ": required input " + std::to_string(k) + " is empty");
        }
        continue;
      }
      if (in != def.input && !def.constants.count(in) && !producer.count(in)) {
        return InvalidArgumentError(NodeLabel(node) + ": input \"" + in +
                                    "\" is not defined by any node, "
                                    "constant or the graph input");
      }
    }
  }
  if (def.output != def.input && !producer.count(def.output)) {
    return InvalidArgumentError("graph output \"" + def.output + "\" is not produced by any node");
  }
  return OkStatus();
}

// Which nodes the graph output depends on.
std::vector<bool> NeededNodes(const GraphDef& def, const std::unordered_map<std::string, size_t>& producer) {
  std::vector<bool> needed(def.nodes.size(), false);
  std::deque<std::string> todo{def.output};
  while (!todo.empty()) {
    std::string v = todo.front();
    todo.pop_front();
    auto it = producer.find(v);
    if (it == producer.end() || needed[it->second]) continue;
    needed[it->second] = true;
    for (const std::string& in : def.nodes[it->second].inputs) {
      if (!in.empty()) todo.push_back(in);
    }
  }
  return needed;
}

// The needed nodes' indices sorted topologically (Kahn, stable in definition order); INVALID_ARGUMENT on a cycle.
StatusOr<std::vector<size_t>> TopologicalOrder(const GraphDef& def,
                                               const std::unordered_map<std::string, size_t>& producer,
                                               const std::vector<bool>& needed) {
  std::vector<int> pending(def.nodes.size(), 0);
  std::unordered_map<std::string, std::vector<size_t>> readers;
  for (size_t i = 0; i < def.nodes.size(); ++i) {
    if (!needed[i]) continue;
    for (const std::string& in : def.nodes[i].inputs) {
      if (!in.empty() && producer.count(in)) {
        ++pending[i];
        readers[in].push_back(i);
      }
    }
  }
  std::vector<size_t> order;
  std::set<size_t> ready;
  for (size_t i = 0; i < def.nodes.size(); ++i) {
    if (needed[i] && pending[i] == 0) ready.insert(i);
  }
  while (!ready.empty()) {
    size_t i = *ready.begin();
    ready.erase(ready.begin());
    order.push_back(i);
    for (const std::string& out : def.nodes[i].outputs) {
      for (size_t r : readers[out]) {
        if (--pending[r] == 0) ready.insert(r);
      }
    }
  }
  size_t needed_count = 0;
  for (bool b : needed) needed_count += b;
  if (order.size() != needed_count) return InvalidArgumentError("graph \"" + def.name + "\" has a cycle");
  return order;
}

}  // namespace

StatusOr<std::shared_ptr<const Graph>> Graph::Create(GraphDef def) {
  CNN_ASSIGN_OR_RETURN(Dims input_dims, CheckInputAndConstants(def));
  CNN_ASSIGN_OR_RETURN(const auto producer, IndexProducers(def));
  CNN_RETURN_IF_ERROR(CheckInputsDefined(def, producer));
  // Keep only the nodes the output depends on, in topological order.
  CNN_ASSIGN_OR_RETURN(const std::vector<size_t> order,
                       TopologicalOrder(def, producer, NeededNodes(def, producer)));

  auto graph = std::shared_ptr<Graph>(new Graph());
  graph->name_ = def.name;
  graph->input_ = def.input;
  graph->output_ = def.output;
  graph->input_dims_ = input_dims;
  graph->dynamic_batch_ = def.input_dims[0] <= 0;
  graph->nodes_.reserve(order.size());
  for (size_t i : order) graph->nodes_.push_back(std::move(def.nodes[i]));
  // Drop constants no node reads.
  std::set<std::string> read;
  for (const Node& node : graph->nodes_) {
    for (const std::string& in : node.inputs) read.insert(in);
  }
  for (auto& [name, tensor] : def.constants) {
    if (read.count(name)) graph->constants_.emplace(name, std::move(tensor));
  }
  CNN_RETURN_IF_ERROR(InferAll(graph->nodes_, graph->constants_, graph->input_, graph->input_dims_,
                               /*canonicalise=*/true, &graph->value_dims_));
  for (size_t i = 0; i < graph->nodes_.size(); ++i) {
    for (const std::string& out : graph->nodes_[i].outputs) graph->producer_index_[out] = i;
    for (const std::string& in : graph->nodes_[i].inputs) {
      if (!in.empty()) ++graph->consumer_count_[in];
    }
  }
  ++graph->consumer_count_[graph->output_];
  return std::shared_ptr<const Graph>(std::move(graph));
}

const Tensor* Graph::constant(const std::string& name) const {
  auto it = constants_.find(name);
  return it == constants_.end() ? nullptr : it->second.get();
}

StatusOr<std::unordered_map<std::string, Dims>> Graph::InferShapes(int64_t batch) const {
  if (batch <= 0) return InvalidArgumentError("batch size must be positive, got " + std::to_string(batch));
  if (batch == input_dims_[0]) return value_dims_;
  Dims in = input_dims_;
  in[0] = batch;
  CNN_RETURN_IF_ERROR(ValidateDims(in).WithContext("graph input \"" + input_ + "\""));
  std::vector<Node> nodes = nodes_;
  std::unordered_map<std::string, Dims> dims;
  Status s = InferAll(nodes, constants_, input_, in, /*canonicalise=*/false, &dims);
  if (!s.ok()) return s.WithContext("at batch size " + std::to_string(batch));
  const Dims& out = dims.at(output_);
  if (out.empty() || out[0] != batch) {
    return InvalidArgumentError("graph \"" + name_ + "\" does not keep the batch dimension: at batch " +
                                std::to_string(batch) + " its output is [" + DimsToString(out) + "]");
  }
  return dims;
}

int64_t Graph::num_constant_elements() const {
  int64_t n = 0;
  for (const auto& [name, t] : constants_) n += t->size();
  return n;
}

const Node* Graph::producer(const std::string& value) const {
  auto it = producer_index_.find(value);
  return it == producer_index_.end() ? nullptr : &nodes_[it->second];
}

int Graph::consumers(const std::string& value) const {
  auto it = consumer_count_.find(value);
  return it == consumer_count_.end() ? 0 : it->second;
}

}  // namespace cnnserve
