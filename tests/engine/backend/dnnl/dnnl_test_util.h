// Helpers for the oneDNN backend tests: graphs built in code and parity checks against the reference backend.
#ifndef CNNSERVE_TESTS_ENGINE_BACKEND_DNNL_DNNL_TEST_UTIL_H_
#define CNNSERVE_TESTS_ENGINE_BACKEND_DNNL_DNNL_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "engine/backend/dnnl/dnnl_backend.h"
#include "engine/backend/reference/reference_backend.h"
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

// Runs `plan` on `input` and returns its output.
inline std::vector<float> RunPlan(Plan& plan, const std::vector<float>& input) {
  std::vector<float> output(static_cast<size_t>(NumElements(plan.output_dims())), std::nanf(""));
  const Status status = plan.Run(input.data(), output.data());
  EXPECT_TRUE(status.ok()) << status.ToString();
  return output;
}

// Compiles `graph` with the reference and the oneDNN backends at each batch size, runs both on the same random
// input and expects max|diff| <= 1e-4 * max|ref| + 1e-5. Returns the worst comparison.
inline Comparison ExpectMatchesReference(const std::shared_ptr<const Graph>& graph,
                                         const std::vector<int64_t>& batches,
                                         const BackendOptions& options = BackendOptions()) {
  Comparison worst;
  auto reference = CreateReferenceBackend(graph);
  EXPECT_TRUE(reference.ok()) << reference.status().ToString();
  auto dnnl = CreateDnnlBackend(graph, options);
  EXPECT_TRUE(dnnl.ok()) << dnnl.status().ToString();
  if (!reference.ok() || !dnnl.ok()) return worst;
  for (int64_t batch : batches) {
    SCOPED_TRACE("batch " + std::to_string(batch));
    auto ref_plan = (*reference)->Compile(batch);
    EXPECT_TRUE(ref_plan.ok()) << ref_plan.status().ToString();
    auto dnnl_plan = (*dnnl)->Compile(batch);
    EXPECT_TRUE(dnnl_plan.ok()) << dnnl_plan.status().ToString();
    if (!ref_plan.ok() || !dnnl_plan.ok()) continue;
    EXPECT_EQ((*dnnl_plan)->input_dims(), (*ref_plan)->input_dims());
    EXPECT_EQ((*dnnl_plan)->output_dims(), (*ref_plan)->output_dims());
    const std::vector<float> input =
        RandomVector(NumElements((*ref_plan)->input_dims()), static_cast<uint32_t>(1000 + batch));
    const std::vector<float> want = RunPlan(**ref_plan, input);
    // Twice: the second run checks that nothing depends on state left by the first.
    for (int run = 0; run < 2; ++run) {
      const std::vector<float> got = RunPlan(**dnnl_plan, input);
      const Comparison c = Compare(got.data(), want.data(), static_cast<int64_t>(want.size()));
      EXPECT_TRUE(c.within_tolerance())
          << "max|diff| " << c.max_abs_diff << " max|ref| " << c.max_abs_ref << " run " << run;
      if (c.max_abs_diff > worst.max_abs_diff) worst = c;
    }
  }
  return worst;
}

}  // namespace cnnserve::dnnl_test

#endif  // CNNSERVE_TESTS_ENGINE_BACKEND_DNNL_DNNL_TEST_UTIL_H_
