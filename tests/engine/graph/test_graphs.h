// Small graphs built in code for the graph tests.
#ifndef CNNSERVE_TESTS_ENGINE_GRAPH_TEST_GRAPHS_H_
#define CNNSERVE_TESTS_ENGINE_GRAPH_TEST_GRAPHS_H_

#include <memory>
#include <random>
#include <string>

#include "engine/graph/graph.h"

namespace cnnserve::testing {

inline std::shared_ptr<const Tensor> RandomConstant(Dims dims, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  Tensor t(std::move(dims));
  for (int64_t i = 0; i < t.size(); ++i) t[i] = dist(rng);
  return std::make_shared<const Tensor>(std::move(t));
}

inline Node MakeNode(std::string name, OpType type, std::vector<std::string> inputs, std::string output,
                     OpAttrs attrs = {}) {
  Node n;
  n.name = std::move(name);
  n.type = type;
  n.inputs = std::move(inputs);
  n.outputs = {std::move(output)};
  n.attrs = std::move(attrs);
  return n;
}

inline ConvAttrs Conv3x3() {
  ConvAttrs a;
  a.kernel_shape = {3, 3};
  a.pads = {1, 1, 1, 1};
  return a;
}

// input [N,3,8,8] -> conv 3x3 (4 ch) -> relu -> maxpool 2/2 -> flatten -> gemm (10)
inline GraphDef TinyCnn() {
  GraphDef def;
  def.name = "tiny";
  def.input = "x";
  def.input_dims = {-1, 3, 8, 8};
  def.output = "y";
  PoolAttrs pool;
  pool.kernel_shape = {2, 2};
  pool.strides = {2, 2};
  GemmAttrs gemm;
  gemm.trans_b = true;
  def.nodes.push_back(MakeNode("conv", OpType::kConv, {"x", "w", "b"}, "c", Conv3x3()));
  def.nodes.push_back(MakeNode("relu", OpType::kRelu, {"c"}, "r"));
  def.nodes.push_back(MakeNode("pool", OpType::kMaxPool, {"r"}, "p", pool));
  def.nodes.push_back(MakeNode("flat", OpType::kFlatten, {"p"}, "f", FlattenAttrs{}));
  def.nodes.push_back(MakeNode("fc", OpType::kGemm, {"f", "fw", "fb"}, "y", gemm));
  def.constants["w"] = RandomConstant({4, 3, 3, 3}, 1);
  def.constants["b"] = RandomConstant({4}, 2);
  def.constants["fw"] = RandomConstant({10, 64}, 3);
  def.constants["fb"] = RandomConstant({10}, 4);
  return def;
}

}  // namespace cnnserve::testing

#endif  // CNNSERVE_TESTS_ENGINE_GRAPH_TEST_GRAPHS_H_
