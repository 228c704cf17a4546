#include "tests/models/onnx/onnx_test_models.h"

#include <unistd.h>

#include <cctype>
#include <filesystem>
#include <fstream>

namespace cnnserve::onnx_test {

onnx::AttributeProto IntAttr(const std::string& name, int64_t v) {
  onnx::AttributeProto a;
  a.set_name(name);
  a.set_type(onnx::AttributeProto::INT);
  a.set_i(v);
  return a;
}

onnx::AttributeProto FloatAttr(const std::string& name, float v) {
  onnx::AttributeProto a;
  a.set_name(name);
  a.set_type(onnx::AttributeProto::FLOAT);
  a.set_f(v);
  return a;
}

onnx::AttributeProto IntsAttr(const std::string& name, std::initializer_list<int64_t> v) {
  onnx::AttributeProto a;
  a.set_name(name);
  a.set_type(onnx::AttributeProto::INTS);
  for (int64_t x : v) a.add_ints(x);
  return a;
}

onnx::AttributeProto StringAttr(const std::string& name, const std::string& v) {
  onnx::AttributeProto a;
  a.set_name(name);
  a.set_type(onnx::AttributeProto::STRING);
  a.set_s(v);
  return a;
}

onnx::TensorProto FloatTensorProto(const std::string& name, const Dims& dims, bool raw) {
  onnx::TensorProto t;
  t.set_name(name);
  t.set_data_type(onnx::TensorProto::FLOAT);
  for (int64_t d : dims) t.add_dims(d);
  const int64_t n = NumElements(dims);
  std::vector<float> values(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) values[i] = 0.01f * static_cast<float>((i * 7) % 23) - 0.1f;
  if (raw) {
    t.set_raw_data(std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float)));
  } else {
    for (float v : values) t.add_float_data(v);
  }
  return t;
}

onnx::TensorProto Int64TensorProto(const std::string& name, const std::vector<int64_t>& values) {
  onnx::TensorProto t;
  t.set_name(name);
  t.set_data_type(onnx::TensorProto::INT64);
  t.add_dims(static_cast<int64_t>(values.size()));
  for (int64_t v : values) t.add_int64_data(v);
  return t;
}

void SetTensorType(onnx::ValueInfoProto* info, const std::string& name, int32_t elem_type,
                   std::initializer_list<std::string> dims) {
  info->set_name(name);
  onnx::TypeProto::Tensor* type = info->mutable_type()->mutable_tensor_type();
  type->set_elem_type(elem_type);
  onnx::TensorShapeProto* shape = type->mutable_shape();
  for (const std::string& d : dims) {
    if (!d.empty() && std::isdigit(static_cast<unsigned char>(d[0]))) {
      shape->add_dim()->set_dim_value(std::stoll(d));
    } else {
      shape->add_dim()->set_dim_param(d);
    }
  }
}

ModelBuilder::ModelBuilder(int64_t opset) {
  model_.set_ir_version(8);
  model_.set_producer_name("onnx_importer_test");
  onnx::OperatorSetIdProto* id = model_.add_opset_import();
  id->set_domain("");
  id->set_version(opset);
  model_.mutable_graph()->set_name("test_graph");
}

ModelBuilder& ModelBuilder::Input(const std::string& name, std::initializer_list<std::string> dims,
                                  int32_t elem_type) {
  SetTensorType(graph()->add_input(), name, elem_type, dims);
  return *this;
}

ModelBuilder& ModelBuilder::Output(const std::string& name) {
  onnx::ValueInfoProto* info = graph()->add_output();
  info->set_name(name);
  info->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  return *this;
}

ModelBuilder& ModelBuilder::Weight(const std::string& name, const Dims& dims, bool raw) {
  *graph()->add_initializer() = FloatTensorProto(name, dims, raw);
  return *this;
}

ModelBuilder& ModelBuilder::Initializer(const onnx::TensorProto& t) {
  *graph()->add_initializer() = t;
  return *this;
}

onnx::NodeProto* ModelBuilder::Node(const std::string& op, std::initializer_list<std::string> inputs,
                                    std::initializer_list<std::string> outputs, const std::string& name,
                                    std::initializer_list<onnx::AttributeProto> attrs) {
  onnx::NodeProto* node = graph()->add_node();
  node->set_op_type(op);
  node->set_name(name);
  for (const std::string& i : inputs) node->add_input(i);
  for (const std::string& o : outputs) node->add_output(o);
  for (const onnx::AttributeProto& a : attrs) *node->add_attribute() = a;
  return node;
}

StatusOr<GraphDef> ModelBuilder::Import(const OnnxImportOptions& options) const {
  return ImportOnnxBytes(Bytes(), "test.onnx", options);
}

ModelBuilder SmallCnn(bool raw) {
  ModelBuilder b;
  b.Input("x", {"N", "3", "8", "8"}).Output("y");
  b.Weight("conv_w", {4, 3, 3, 3}, raw).Weight("conv_b", {4}, raw);
  b.Weight("fc_w", {10, 64}, raw).Weight("fc_b", {10}, raw);
  b.Node("Conv", {"x", "conv_w", "conv_b"}, {"c"}, "conv1",
         {IntsAttr("kernel_shape", {3, 3}), IntsAttr("pads", {1, 1, 1, 1}), IntsAttr("strides", {1, 1}),
          IntsAttr("dilations", {1, 1}), IntAttr("group", 1)});
  b.Node("Relu", {"c"}, {"r"}, "relu1");
  b.Node("MaxPool", {"r"}, {"p"}, "pool1", {IntsAttr("kernel_shape", {2, 2}), IntsAttr("strides", {2, 2})});
  b.Node("Flatten", {"p"}, {"f"}, "flatten", {IntAttr("axis", 1)});
  b.Node("Gemm", {"f", "fc_w", "fc_b"}, {"g"}, "fc", {IntAttr("transB", 1), FloatAttr("alpha", 1.0f)});
  b.Node("Softmax", {"g"}, {"y"}, "prob", {IntAttr("axis", 1)});
  return b;
}

const Node* FindNode(const GraphDef& def, const std::string& name) {
  for (const Node& node : def.nodes) {
    if (node.name == name) return &node;
  }
  return nullptr;
}

std::string TempPath(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("onnx_importer_test_" + std::to_string(getpid()) + "_" + name))
      .string();
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace cnnserve::onnx_test
