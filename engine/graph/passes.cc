#include "engine/graph/passes.h"

#include <cmath>
#include <unordered_map>

namespace cnnserve {
namespace {

// Number of node inputs (plus the graph output) that read `value`.
int CountReaders(const GraphDef& def, const std::string& value) {
  int n = value == def.output ? 1 : 0;
  for (const Node& node : def.nodes) {
    for (const std::string& in : node.inputs) n += in == value;
  }
  return n;
}

void RenameInputs(GraphDef& def, const std::string& from, const std::string& to) {
  for (Node& node : def.nodes) {
    for (std::string& in : node.inputs) {
      if (in == from) in = to;
    }
  }
}

// A name not yet used by any constant.
std::string FreshConstantName(const GraphDef& def, const std::string& base) {
  std::string name = base;
  for (int i = 1; def.constants.count(name); ++i) name = base + "_" + std::to_string(i);
  return name;
}

// Removes Identity and Dropout nodes by pointing their readers at their input.
void RemoveIdentities(GraphDef& def) {
  for (size_t i = 0; i < def.nodes.size();) {
    const Node& node = def.nodes[i];
    const bool identity = node.type == OpType::kIdentity || node.type == OpType::kDropout;
    if (!identity || node.outputs.size() != 1 || node.inputs.empty()) {
      ++i;
      continue;
    }
    const std::string src = node.inputs[0];
    const std::string dst = node.outputs[0];
    if (dst == def.output) {
      if (src == def.input || def.constants.count(src)) {
        ++i;  // the graph would have no node left to produce its output
        continue;
      }
      def.output = src;
    }
    def.nodes.erase(def.nodes.begin() + static_cast<std::ptrdiff_t>(i));
    RenameInputs(def, dst, src);
  }
}

// Folds BatchNormalization into the Conv that feeds it.
void FoldBatchNorm(GraphDef& def) {
  std::unordered_map<std::string, size_t> producer;
  for (size_t i = 0; i < def.nodes.size(); ++i) {
    for (const std::string& out : def.nodes[i].outputs) producer[out] = i;
  }
  std::vector<bool> erase(def.nodes.size(), false);
  for (size_t b = 0; b < def.nodes.size(); ++b) {
    Node& bn = def.nodes[b];
    if (bn.type != OpType::kBatchNormalization || bn.inputs.size() != 5 || bn.outputs.size() != 1) continue;
    auto p = producer.find(bn.inputs[0]);
    if (p == producer.end()) continue;
    Node& conv = def.nodes[p->second];
    if (conv.type != OpType::kConv || conv.outputs.size() != 1 || CountReaders(def, conv.outputs[0]) != 1) continue;
    auto find_const = [&](const std::string& n) -> const Tensor* {
      auto it = def.constants.find(n);
      return it == def.constants.end() ? nullptr : it->second.get();
    };
    const Tensor* w = find_const(conv.inputs[1]);
    const Tensor* bias = conv.inputs.size() > 2 && !conv.inputs[2].empty() ? find_const(conv.inputs[2]) : nullptr;
    const bool has_bias_input = conv.inputs.size() > 2 && !conv.inputs[2].empty();
    const Tensor* scale = find_const(bn.inputs[1]);
    const Tensor* shift = find_const(bn.inputs[2]);
    const Tensor* mean = find_const(bn.inputs[3]);
    const Tensor* var = find_const(bn.inputs[4]);
    if (!w || (has_bias_input && !bias) || !scale || !shift || !mean || !var || w->rank() < 1) continue;
    const int64_t oc = w->dims()[0];
    if (scale->size() != oc || shift->size() != oc || mean->size() != oc || var->size() != oc ||
        (bias && bias->size() != oc)) {
      continue;
    }
    const float eps = std::get<BatchNormAttrs>(bn.attrs).epsilon;
    Tensor new_w = w->Clone();
    Tensor new_b(Dims{oc});
    const int64_t per_oc = w->size() / oc;
    for (int64_t o = 0; o < oc; ++o) {
      const double k = static_cast<double>((*scale)[o]) / std::sqrt(static_cast<double>((*var)[o]) + eps);
      for (int64_t j = 0; j < per_oc; ++j) new_w[o * per_oc + j] = static_cast<float>((*w)[o * per_oc + j] * k);
      const double b0 = bias ? (*bias)[o] : 0.0;
      new_b[o] = static_cast<float>((b0 - (*mean)[o]) * k + (*shift)[o]);
    }
    const std::string w_name = FreshConstantName(def, conv.name + ".folded_weight");
    def.constants.emplace(w_name, std::make_shared<const Tensor>(std::move(new_w)));
    const std::string b_name = FreshConstantName(def, conv.name + ".folded_bias");
    def.constants.emplace(b_name, std::make_shared<const Tensor>(std::move(new_b)));
    conv.inputs.resize(3);
    conv.inputs[1] = w_name;
    conv.inputs[2] = b_name;
    conv.outputs[0] = bn.outputs[0];
    erase[b] = true;
  }
  std::vector<Node> kept;
  for (size_t i = 0; i < def.nodes.size(); ++i) {
    if (!erase[i]) kept.push_back(std::move(def.nodes[i]));
  }
  def.nodes = std::move(kept);
}

// MatMul(A, const B[K,N]) followed by Add(const bias[N] or [1,N]) with nothing else reading the product becomes
// Gemm(A, B, bias): an inner product for the backends.
void FuseMatMulAdd(GraphDef& def, const Graph& graph) {
  std::unordered_map<std::string, size_t> producer;
  for (size_t i = 0; i < def.nodes.size(); ++i) {
    for (const std::string& out : def.nodes[i].outputs) producer[out] = i;
  }
  std::vector<bool> erase(def.nodes.size(), false);
  for (size_t a = 0; a < def.nodes.size(); ++a) {
    Node& add = def.nodes[a];
    if (add.type != OpType::kAdd || add.inputs.size() != 2) continue;
    for (int side = 0; side < 2; ++side) {
      const std::string& prod = add.inputs[side];
      const std::string& bias_name = add.inputs[1 - side];
      auto p = producer.find(prod);
      auto bias = def.constants.find(bias_name);
      if (p == producer.end() || bias == def.constants.end() || erase[p->second]) continue;
      Node& mm = def.nodes[p->second];
      if (mm.type != OpType::kMatMul || CountReaders(def, prod) != 1) continue;
      auto b = def.constants.find(mm.inputs[1]);
      auto a_dims = graph.value_dims().find(mm.inputs[0]);
      if (b == def.constants.end() || b->second->rank() != 2 || a_dims == graph.value_dims().end() ||
          a_dims->second.size() != 2) {
        continue;
      }
      const int64_t n = b->second->dims()[1];
      const Dims& bd = bias->second->dims();
      const bool vector_bias = (bd.size() == 1 && bd[0] == n) || (bd.size() == 2 && bd[0] == 1 && bd[1] == n);
      if (!vector_bias) continue;
      Node gemm;
      gemm.name = mm.name;
      gemm.type = OpType::kGemm;
      gemm.inputs = {mm.inputs[0], mm.inputs[1], bias_name};
      gemm.outputs = {add.outputs[0]};
      gemm.attrs = GemmAttrs{};
      mm = std::move(gemm);
      erase[a] = true;
      break;
    }
  }
  std::vector<Node> kept;
  for (size_t i = 0; i < def.nodes.size(); ++i) {
    if (!erase[i]) kept.push_back(std::move(def.nodes[i]));
  }
  def.nodes = std::move(kept);
}

}  // namespace

GraphDef CopyGraphDef(const Graph& graph) {
  GraphDef def;
  def.name = graph.name();
  def.input = graph.input_name();
  def.input_dims = graph.input_dims();
  if (graph.dynamic_batch()) def.input_dims[0] = -1;
  def.output = graph.output_name();
  def.nodes = graph.nodes();
  def.constants = graph.constants();  // shares the buffers
  return def;
}

StatusOr<std::shared_ptr<const Graph>> OptimizeForInference(const Graph& graph) {
  GraphDef def = CopyGraphDef(graph);
  RemoveIdentities(def);
  FoldBatchNorm(def);
  FuseMatMulAdd(def, graph);
  return Graph::Create(std::move(def));
}

}  // namespace cnnserve
