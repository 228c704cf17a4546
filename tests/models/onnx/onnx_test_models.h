// Test support for the ONNX importer tests: builds ONNX models with the ONNX protobuf API (ModelBuilder,
// SmallCnn), attribute and tensor protos, and small helpers for files and expected errors.
#ifndef CNNSERVE_TESTS_MODELS_ONNX_ONNX_TEST_MODELS_H_
#define CNNSERVE_TESTS_MODELS_ONNX_ONNX_TEST_MODELS_H_

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "engine/graph/graph.h"
#include "models/onnx/onnx_importer.h"

namespace cnnserve::onnx_test {

onnx::AttributeProto IntAttr(const std::string& name, int64_t v);
onnx::AttributeProto FloatAttr(const std::string& name, float v);
onnx::AttributeProto IntsAttr(const std::string& name, std::initializer_list<int64_t> v);
onnx::AttributeProto StringAttr(const std::string& name, const std::string& v);
// A FLOAT tensor of `dims` holding a fixed pattern, in raw_data or in float_data.
onnx::TensorProto FloatTensorProto(const std::string& name, const Dims& dims, bool raw);
// A rank-1 INT64 tensor in int64_data.
onnx::TensorProto Int64TensorProto(const std::string& name, const std::vector<int64_t>& values);
// Declares `info` a tensor of `elem_type`; a dim that starts with a digit is a value, any other a symbol.
void SetTensorType(onnx::ValueInfoProto* info, const std::string& name, int32_t elem_type,
                   std::initializer_list<std::string> dims);

// Builds a ModelProto (IR version 8, one default-domain opset import) step by step.
class ModelBuilder {
 public:
  explicit ModelBuilder(int64_t opset = 13);

  ModelBuilder& Input(const std::string& name, std::initializer_list<std::string> dims,
                      int32_t elem_type = onnx::TensorProto::FLOAT);
  ModelBuilder& Output(const std::string& name);
  ModelBuilder& Weight(const std::string& name, const Dims& dims, bool raw = true);
  ModelBuilder& Initializer(const onnx::TensorProto& t);
  onnx::NodeProto* Node(const std::string& op, std::initializer_list<std::string> inputs,
                        std::initializer_list<std::string> outputs, const std::string& name = "",
                        std::initializer_list<onnx::AttributeProto> attrs = {});

  onnx::GraphProto* graph() { return model_.mutable_graph(); }
  onnx::ModelProto& model() { return model_; }
  std::string Bytes() const { return model_.SerializeAsString(); }

  StatusOr<GraphDef> Import(const OnnxImportOptions& options = {}) const;

 private:
  onnx::ModelProto model_;
};

// A small CNN: Conv(4, 3x3 p1) -> Relu -> MaxPool 2/2 -> Flatten -> Gemm(10) -> Softmax, input Nx3x8x8.
ModelBuilder SmallCnn(bool raw = true);

// The node named `name`, or nullptr.
const Node* FindNode(const GraphDef& def, const std::string& name);

// Expects `result` to fail with `code` and a message containing `text`.
template <typename T>
void ExpectError(const StatusOr<T>& result, StatusCode code, const std::string& text) {
  ASSERT_FALSE(result.ok()) << "expected an error containing: " << text;
  EXPECT_EQ(result.status().code(), code) << result.status().ToString();
  EXPECT_THAT(result.status().message(), ::testing::HasSubstr(text));
}

// A path in the temp directory unique to this process.
std::string TempPath(const std::string& name);
void WriteFile(const std::string& path, const std::string& bytes);

}  // namespace cnnserve::onnx_test

#endif  // CNNSERVE_TESTS_MODELS_ONNX_ONNX_TEST_MODELS_H_
