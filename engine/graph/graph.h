// Graph: an immutable, validated DAG of ops with one input and one output, plus its constant tensors (weights).
//
// Graph::Create checks names (every input defined exactly once, no cycles), sorts the nodes topologically,
// canonicalises attributes and infers every value's dims, so a bad graph is rejected before any backend sees it.
// Dimension 0 of the input is the batch; InferShapes(batch) re-derives the dims for another batch size.
// Thread-safety: immutable after Create; share it as std::shared_ptr<const Graph> between threads.
#ifndef CNNSERVE_ENGINE_GRAPH_GRAPH_H_
#define CNNSERVE_ENGINE_GRAPH_GRAPH_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/common/status.h"
#include "engine/ops/op.h"
#include "engine/tensor/tensor.h"

namespace cnnserve {

// Everything needed to build a Graph. Nodes may be in any order.
struct GraphDef {
  std::string name;
  std::string input;    // name of the single runtime input value
  Dims input_dims;      // rank >= 1; input_dims[0] is the batch (<= 0 means dynamic; 1 is used for checking)
  std::string output;   // name of the single output value
  std::vector<Node> nodes;
  // Weights and other constant inputs, by value name. Shared so that rewritten graphs (passes) and backends
  // reuse the same buffers instead of copying hundreds of megabytes.
  std::map<std::string, std::shared_ptr<const Tensor>> constants;
};

class Graph {
 public:
  // Validates and builds the graph. Errors (INVALID_ARGUMENT, UNIMPLEMENTED) name the node, its op and the
  // offending input/attribute.
  static StatusOr<std::shared_ptr<const Graph>> Create(GraphDef def);

  const std::string& name() const { return name_; }
  const std::string& input_name() const { return input_; }
  const std::string& output_name() const { return output_; }
  // Input dims with the batch set to batch() (1 when the batch is dynamic).
  const Dims& input_dims() const { return input_dims_; }
  bool dynamic_batch() const { return dynamic_batch_; }
  // Nodes in topological order, attributes canonicalised.
  const std::vector<Node>& nodes() const { return nodes_; }
  const std::map<std::string, std::shared_ptr<const Tensor>>& constants() const { return constants_; }
  // nullptr when `name` is not a constant.
  const Tensor* constant(const std::string& name) const;
  bool is_constant(const std::string& name) const { return constants_.count(name) != 0; }

  // Dims of every non-constant value at input_dims()[0].
  const std::unordered_map<std::string, Dims>& value_dims() const { return value_dims_; }
  const Dims& dims(const std::string& value) const { return value_dims_.at(value); }
  const Dims& output_dims() const { return value_dims_.at(output_); }

  // Dims of every non-constant value for `batch` (> 0). Dimension 0 of the input is always treated as the batch,
  // even when the file gives it a fixed size (as servers do with implicit batching). Fails when the graph does
  // not carry the batch through to dimension 0 of the output, e.g. a Reshape that hard-codes it.
  StatusOr<std::unordered_map<std::string, Dims>> InferShapes(int64_t batch) const;

  // Total number of constant elements and their bytes (weights as stored).
  int64_t num_constant_elements() const;

  // The node that produces `value`, or nullptr (graph input or constant).
  const Node* producer(const std::string& value) const;
  // How many node inputs read `value` (plus one if it is the graph output).
  int consumers(const std::string& value) const;

 private:
  Graph() = default;

  std::string name_;
  std::string input_;
  std::string output_;
  Dims input_dims_;
  bool dynamic_batch_ = false;
  std::vector<Node> nodes_;
  std::map<std::string, std::shared_ptr<const Tensor>> constants_;
  std::unordered_map<std::string, Dims> value_dims_;
  std::unordered_map<std::string, size_t> producer_index_;
  std::unordered_map<std::string, int> consumer_count_;
};

}  // namespace cnnserve

#endif  // CNNSERVE_ENGINE_GRAPH_GRAPH_H_
