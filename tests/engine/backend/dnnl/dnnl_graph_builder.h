// Graphs built in code, seeded random data and output comparison, for the oneDNN backend tests and for
// bench/engine_micro. No GoogleTest here, so that a benchmark program can use it.
#ifndef CNNSERVE_TESTS_ENGINE_BACKEND_DNNL_DNNL_GRAPH_BUILDER_H_
#define CNNSERVE_TESTS_ENGINE_BACKEND_DNNL_DNNL_GRAPH_BUILDER_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "engine/graph/graph.h"

namespace cnnserve::dnnl_test {

inline std::shared_ptr<const Tensor> RandomTensor(Dims dims, std::mt19937& rng, float scale = 1.0f) {
  std::uniform_real_distribution<float> dist(-scale, scale);
  Tensor t(std::move(dims));
  for (int64_t i = 0; i < t.size(); ++i) t[i] = dist(rng);
  return std::make_shared<const Tensor>(std::move(t));
}

inline std::vector<float> RandomVector(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

// Builds a GraphDef node by node. Values are named v0, v1, ...; constants c0, c1, ...
class GraphBuilder {
 public:
  // `input_dims[0] <= 0` makes the batch dynamic.
  explicit GraphBuilder(Dims input_dims, uint32_t seed = 1) : rng_(seed) {
    def_.name = "test";
    def_.input = "x";
    def_.input_dims = std::move(input_dims);
  }

  const std::string& input() const { return def_.input; }
  std::mt19937& rng() { return rng_; }

  // A random constant, uniform in [-scale, scale].
  std::string Const(Dims dims, float scale = 1.0f) {
    const std::string name = "c" + std::to_string(num_constants_++);
    def_.constants[name] = RandomTensor(std::move(dims), rng_, scale);
    return name;
  }
  std::string ConstValues(Dims dims, const std::vector<float>& values) {
    const std::string name = "c" + std::to_string(num_constants_++);
    def_.constants[name] =
        std::make_shared<const Tensor>(std::move(Tensor::FromVector(std::move(dims), values)).value());
    return name;
  }

  std::string Op(OpType type, std::vector<std::string> inputs, OpAttrs attrs = {}) {
    const int id = num_values_++;
    Node node;
    node.name = "n" + std::to_string(id) + "_" + std::string(OpTypeName(type));
    node.type = type;
    node.inputs = std::move(inputs);
    node.outputs = {"v" + std::to_string(id)};
    node.attrs = std::move(attrs);
    def_.nodes.push_back(std::move(node));
    return def_.nodes.back().outputs[0];
  }

  // Conv with random weights (fan-in scaled) and optional bias.
  std::string Conv(const std::string& x, int64_t in_channels, int64_t out_channels, ConvAttrs attrs,
                   bool bias = true) {
    Dims w = {out_channels, in_channels / attrs.group};
    int64_t fan_in = in_channels / attrs.group;
    for (int64_t k : attrs.kernel_shape) {
      w.push_back(k);
      fan_in *= k;
    }
    const std::string weights = Const(w, 1.0f / std::sqrt(static_cast<float>(fan_in)));
    std::vector<std::string> inputs = {x, weights};
    if (bias) inputs.push_back(Const({out_channels}, 0.5f));
    return Op(OpType::kConv, inputs, attrs);
  }

  StatusOr<std::shared_ptr<const Graph>> Build(const std::string& output) {
    def_.output = output;
    return Graph::Create(std::move(def_));
  }

 private:
  GraphDef def_;
  std::mt19937 rng_;
  int num_constants_ = 0;
  int num_values_ = 0;
};

inline ConvAttrs MakeConv(std::vector<int64_t> kernel, std::vector<int64_t> strides = {},
                          std::vector<int64_t> pads = {}, std::vector<int64_t> dilations = {}, int64_t group = 1) {
  ConvAttrs a;
  a.kernel_shape = std::move(kernel);
  a.strides = std::move(strides);
  a.pads = std::move(pads);
  a.dilations = std::move(dilations);
  a.group = group;
  return a;
}

inline PoolAttrs MakePool(std::vector<int64_t> kernel, std::vector<int64_t> strides = {},
                          std::vector<int64_t> pads = {}) {
  PoolAttrs a;
  a.kernel_shape = std::move(kernel);
  a.strides = std::move(strides);
  a.pads = std::move(pads);
  return a;
}

struct Comparison {
  double max_abs_diff = 0;
  double max_abs_ref = 0;
  bool within_tolerance() const { return max_abs_diff <= 1e-4 * max_abs_ref + 1e-5; }
};

inline Comparison Compare(const float* got, const float* want, int64_t n) {
  Comparison c;
  for (int64_t i = 0; i < n; ++i) {
    const double diff = std::isfinite(got[i]) ? std::fabs(static_cast<double>(got[i]) - want[i]) : 1e30;
    c.max_abs_diff = std::max(c.max_abs_diff, diff);
    c.max_abs_ref = std::max(c.max_abs_ref, std::fabs(static_cast<double>(want[i])));
  }
  return c;
}

}  // namespace cnnserve::dnnl_test

#endif  // CNNSERVE_TESTS_ENGINE_BACKEND_DNNL_DNNL_GRAPH_BUILDER_H_
