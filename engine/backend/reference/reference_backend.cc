#include "engine/backend/reference/reference_backend.h"

#include <cstring>
#include <new>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/ops/op.h"

namespace cnnserve {
namespace {

std::string NodeLabel(const Node& node) {
  return "node \"" + node.name + "\" (" + std::string(OpTypeName(node.type)) + ")";
}

// A compiled plan: one tensor per non-constant value, and for every node its kernel arguments pointing at those
// tensors and at the graph's constants. Run only copies the input in, calls the kernels and copies the output.
class ReferencePlan : public Plan {
 public:
  static StatusOr<std::unique_ptr<Plan>> Create(std::shared_ptr<const Graph> graph, int64_t batch) {
    CNN_ASSIGN_OR_RETURN(auto dims, graph->InferShapes(batch));
    auto plan = std::unique_ptr<ReferencePlan>(new ReferencePlan(std::move(graph), batch));
    CNN_RETURN_IF_ERROR(plan->Allocate(dims));
    return std::unique_ptr<Plan>(std::move(plan));
  }

  int64_t batch() const override { return batch_; }
  const Dims& input_dims() const override { return input_->dims(); }
  const Dims& output_dims() const override { return output_->dims(); }

  Status Run(const float* src, float* dst) override {
    if (src == nullptr || dst == nullptr) return InvalidArgumentError("Run: src and dst must not be null");
    std::memcpy(input_->data(), src, input_->bytes());
    for (const KernelArgs& args : steps_) {
      Status s = GetOpDef(args.node.type).reference(args);
      if (!s.ok()) return s.WithContext(NodeLabel(args.node));
    }
    std::memcpy(dst, output_->data(), output_->bytes());
    return OkStatus();
  }

 private:
  ReferencePlan(std::shared_ptr<const Graph> graph, int64_t batch) : graph_(std::move(graph)), batch_(batch) {}

  Status Allocate(const std::unordered_map<std::string, Dims>& dims) {
    // Tensors live in an unordered_map: its nodes never move, so the pointers in steps_ stay valid.
    for (const auto& [name, value_dims] : dims) {
      CNN_RETURN_IF_ERROR(ValidateDims(value_dims).WithContext("value \"" + name + "\""));
      try {
        values_.emplace(name, Tensor(value_dims));
      } catch (const std::bad_alloc&) {
        return ResourceExhaustedError("cannot allocate value \"" + name + "\" [" + DimsToString(value_dims) +
                                      "] at batch " + std::to_string(batch_));
      }
    }
    CNN_ASSIGN_OR_RETURN(input_, Find(graph_->input_name()));
    CNN_ASSIGN_OR_RETURN(output_, Find(graph_->output_name()));
    steps_.reserve(graph_->nodes().size());
    for (const Node& node : graph_->nodes()) {
      std::vector<const Tensor*> inputs;
      inputs.reserve(node.inputs.size());
      for (const std::string& name : node.inputs) {
        if (name.empty()) {
          inputs.push_back(nullptr);  // absent optional input
        } else if (const Tensor* constant = graph_->constant(name); constant != nullptr) {
          inputs.push_back(constant);
        } else {
          CNN_ASSIGN_OR_RETURN(Tensor * value, Find(name));
          inputs.push_back(value);
        }
      }
      std::vector<Tensor*> outputs;
      outputs.reserve(node.outputs.size());
      for (const std::string& name : node.outputs) {
        CNN_ASSIGN_OR_RETURN(Tensor * value, Find(name));
        outputs.push_back(value);
      }
      steps_.push_back(KernelArgs{node, std::move(inputs), std::move(outputs)});
    }
    return OkStatus();
  }

  StatusOr<Tensor*> Find(const std::string& name) {
    auto it = values_.find(name);
    if (it == values_.end()) return InternalError("shape inference gave no dims for value \"" + name + "\"");
    return &it->second;
  }

  const std::shared_ptr<const Graph> graph_;  // owns the nodes and constants that steps_ points into
  const int64_t batch_;
  std::unordered_map<std::string, Tensor> values_;
  std::vector<KernelArgs> steps_;  // in the graph's topological order
  Tensor* input_ = nullptr;
  const Tensor* output_ = nullptr;
};

class ReferenceBackend : public Backend {
 public:
  explicit ReferenceBackend(std::shared_ptr<const Graph> graph) : graph_(std::move(graph)) {}

  std::string name() const override { return "reference"; }

  StatusOr<std::unique_ptr<Plan>> Compile(int64_t batch) override {
    if (batch <= 0) return InvalidArgumentError("batch size must be positive, got " + std::to_string(batch));
    return ReferencePlan::Create(graph_, batch);
  }

 private:
  const std::shared_ptr<const Graph> graph_;
};

}  // namespace

StatusOr<std::unique_ptr<Backend>> CreateReferenceBackend(std::shared_ptr<const Graph> graph) {
  if (graph == nullptr) return InvalidArgumentError("CreateReferenceBackend: graph is null");
  return std::unique_ptr<Backend>(new ReferenceBackend(std::move(graph)));
}

}  // namespace cnnserve
