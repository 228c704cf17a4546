// Helpers for the op tests: build a node, run shape inference, run a reference kernel on tensors.
#ifndef CNNSERVE_TESTS_ENGINE_OPS_OP_TEST_UTIL_H_
#define CNNSERVE_TESTS_ENGINE_OPS_OP_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "engine/common/status.h"
#include "engine/ops/op.h"
#include "engine/tensor/tensor.h"

namespace cnnserve::testing {

// A node of `type` with inputs "in0".."in{n-1}" and the single output "out".
inline Node MakeNode(OpType type, OpAttrs attrs, int num_inputs) {
  Node node;
  node.name = "node";
  node.type = type;
  for (int i = 0; i < num_inputs; ++i) node.inputs.push_back("in" + std::to_string(i));
  node.outputs = {"out"};
  node.attrs = std::move(attrs);
  return node;
}

// Runs GetOpDef(node.type).infer and returns the single output's dims.
inline StatusOr<Dims> InferOne(Node& node, const std::vector<std::optional<Dims>>& inputs) {
  std::vector<Dims> outputs;
  CNN_RETURN_IF_ERROR(GetOpDef(node.type).infer(node, inputs, &outputs));
  if (outputs.size() != 1) return InternalError("infer produced " + std::to_string(outputs.size()) + " outputs");
  return outputs[0];
}

// Runs infer on the inputs' dims (nullptr: absent input), allocates the output and runs the reference kernel.
inline StatusOr<Tensor> RunOp(Node& node, const std::vector<const Tensor*>& inputs) {
  std::vector<std::optional<Dims>> dims;
  for (const Tensor* t : inputs) dims.push_back(t == nullptr ? std::nullopt : std::optional<Dims>(t->dims()));
  CNN_ASSIGN_OR_RETURN(Dims out_dims, InferOne(node, dims));
  Tensor out(out_dims);
  KernelArgs args{node, inputs, {&out}};
  CNN_RETURN_IF_ERROR(GetOpDef(node.type).reference(args));
  return out;
}

inline Tensor MakeTensor(Dims dims, const std::vector<float>& values) {
  StatusOr<Tensor> t = Tensor::FromVector(dims, values);
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  if (!t.ok()) return Tensor(Dims{1});
  return std::move(t).value();
}

inline std::vector<float> Values(const Tensor& t) { return std::vector<float>(t.data(), t.data() + t.size()); }

}  // namespace cnnserve::testing

#endif  // CNNSERVE_TESTS_ENGINE_OPS_OP_TEST_UTIL_H_
