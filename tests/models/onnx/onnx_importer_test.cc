// Tests of the ONNX importer on models built here with the ONNX protobuf API: what each op, attribute, opset,
// initializer, graph input and output becomes, and the precise error for what is not supported.
#include "models/onnx/onnx_importer.h"

#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <filesystem>
#include <string>
#include <vector>

#include "engine/graph/graph.h"
#include "tests/models/onnx/onnx_test_models.h"

namespace cnnserve {
namespace {

using onnx_test::ExpectError;
using onnx_test::FindNode;
using onnx_test::FloatAttr;
using onnx_test::FloatTensorProto;
using onnx_test::Int64TensorProto;
using onnx_test::IntAttr;
using onnx_test::IntsAttr;
using onnx_test::ModelBuilder;
using onnx_test::SmallCnn;
using onnx_test::StringAttr;
using onnx_test::TempPath;
using onnx_test::WriteFile;

// ---- The happy path ----

TEST(OnnxImporterTest, ImportsSmallCnn) {
  auto def = SmallCnn().Import();
  ASSERT_TRUE(def.ok()) << def.status().ToString();
  EXPECT_EQ(def->name, "test_graph");
  EXPECT_EQ(def->input, "x");
  EXPECT_EQ(def->input_dims, (Dims{-1, 3, 8, 8}));
  EXPECT_EQ(def->output, "y");
  ASSERT_EQ(def->nodes.size(), 6u);
  ASSERT_EQ(def->constants.size(), 4u);
  EXPECT_EQ(def->constants.at("conv_w")->dims(), (Dims{4, 3, 3, 3}));
  EXPECT_FLOAT_EQ((*def->constants.at("conv_w"))[1], 0.01f * 7 - 0.1f);

  const Node* conv = FindNode(*def, "conv1");
  ASSERT_NE(conv, nullptr);
  EXPECT_EQ(conv->type, OpType::kConv);
  EXPECT_EQ(conv->inputs, (std::vector<std::string>{"x", "conv_w", "conv_b"}));
  const auto& conv_attrs = std::get<ConvAttrs>(conv->attrs);
  EXPECT_EQ(conv_attrs.pads, (std::vector<int64_t>{1, 1, 1, 1}));
  EXPECT_EQ(conv_attrs.kernel_shape, (std::vector<int64_t>{3, 3}));
  EXPECT_EQ(conv_attrs.group, 1);
  EXPECT_EQ(conv_attrs.auto_pad, AutoPad::kNotSet);

  const auto& pool = std::get<PoolAttrs>(FindNode(*def, "pool1")->attrs);
  EXPECT_EQ(pool.kernel_shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(pool.strides, (std::vector<int64_t>{2, 2}));
  EXPECT_FALSE(pool.ceil_mode);

  const auto& gemm = std::get<GemmAttrs>(FindNode(*def, "fc")->attrs);
  EXPECT_TRUE(gemm.trans_b);
  EXPECT_FALSE(gemm.trans_a);

  const auto& softmax = std::get<SoftmaxAttrs>(FindNode(*def, "prob")->attrs);
  EXPECT_EQ(softmax.axis, 1);
  EXPECT_FALSE(softmax.coerce_2d);

  auto graph = Graph::Create(std::move(*def));
  ASSERT_TRUE(graph.ok()) << graph.status().ToString();
  EXPECT_TRUE((*graph)->dynamic_batch());
  EXPECT_EQ((*graph)->output_dims(), (Dims{1, 10}));
}

TEST(OnnxImporterTest, RawDataAndFloatDataGiveTheSameWeights) {
  auto raw = SmallCnn(/*raw=*/true).Import();
  auto typed = SmallCnn(/*raw=*/false).Import();
  ASSERT_TRUE(raw.ok()) << raw.status().ToString();
  ASSERT_TRUE(typed.ok()) << typed.status().ToString();
  for (const auto& [name, tensor] : raw->constants) {
    const Tensor& other = *typed->constants.at(name);
    ASSERT_EQ(tensor->dims(), other.dims()) << name;
    for (int64_t i = 0; i < tensor->size(); ++i) ASSERT_EQ((*tensor)[i], other[i]) << name << "[" << i << "]";
  }
}

TEST(OnnxImporterTest, ImportsFromFileAndLoadsGraph) {
  const std::string path = TempPath("small.onnx");
  WriteFile(path, SmallCnn().Bytes());
  auto def = ImportOnnxFile(path);
  ASSERT_TRUE(def.ok()) << def.status().ToString();
  EXPECT_EQ(def->nodes.size(), 6u);
  auto graph = LoadOnnxGraph(path);
  ASSERT_TRUE(graph.ok()) << graph.status().ToString();
  EXPECT_EQ((*graph)->nodes().size(), 6u);

  OnnxImportOptions small;
  small.max_file_bytes = 100;
  ExpectError(ImportOnnxFile(path, small), StatusCode::kResourceExhausted, "more than the limit of 100 bytes");
  std::remove(path.c_str());
}

TEST(OnnxImporterTest, FileErrors) {
  ExpectError(ImportOnnxFile(TempPath("missing.onnx")), StatusCode::kNotFound, "missing.onnx");
  ExpectError(ImportOnnxFile(std::filesystem::temp_directory_path().string()), StatusCode::kInvalidArgument,
              "not a regular file");
  const std::string empty = TempPath("empty.onnx");
  WriteFile(empty, "");
  ExpectError(ImportOnnxFile(empty), StatusCode::kInvalidArgument, "is not a valid ONNX model");
  std::remove(empty.c_str());
}

TEST(OnnxImporterTest, GarbageIsNotAValidModel) {
  ExpectError(ImportOnnxBytes("this is not a protobuf \xff\xff\xff", "junk.onnx"), StatusCode::kInvalidArgument,
              "junk.onnx is not a valid ONNX model");
  ExpectError(ImportOnnxBytes("", "empty.onnx"), StatusCode::kInvalidArgument, "is not a valid ONNX model");
}

TEST(OnnxImporterTest, SynthesizesMissingNodeNamesAndKeepsThemUnique) {
  ModelBuilder b;
  b.Input("x", {"1", "4"}).Output("y");
  b.Node("Relu", {"x"}, {"a"});
  b.Node("Relu", {"a"}, {"b"}, "same");
  b.Node("Identity", {"b"}, {"y"}, "same");
  auto def = b.Import();
  ASSERT_TRUE(def.ok()) << def.status().ToString();
  ASSERT_EQ(def->nodes.size(), 3u);
  EXPECT_EQ(def->nodes[0].name, "Relu_0");
  EXPECT_EQ(def->nodes[1].name, "same");
  EXPECT_NE(def->nodes[2].name, "same");
  EXPECT_TRUE(Graph::Create(std::move(*def)).ok());
}

// ---- Opsets, domains, ops, attributes ----

TEST(OnnxImporterTest, RejectsOpsetsOutsideTheSupportedRange) {
  for (int64_t opset : {1, 6, 18}) {
    ModelBuilder b(opset);
    b.Input("x", {"1", "4"}).Output("y");
    b.Node("Relu", {"x"}, {"y"}, "r");
    ExpectError(b.Import(), StatusCode::kUnimplemented, "opset " + std::to_string(opset) + " of the default");
  }
  for (int64_t opset : {7, 17}) {
    ModelBuilder b(opset);
    b.Input("x", {"1", "4"}).Output("y");
    b.Node("Relu", {"x"}, {"y"}, "r");
    EXPECT_TRUE(b.Import().ok()) << opset;
  }
}

TEST(OnnxImporterTest, RejectsNodesOfOtherDomains) {
  ModelBuilder b;
  onnx::OperatorSetIdProto* ms = b.model().add_opset_import();
  ms->set_domain("com.microsoft");
  ms->set_version(1);
  b.Input("x", {"1", "4"}).Output("y");
  b.Node("FusedGemm", {"x"}, {"y"}, "fused")->set_domain("com.microsoft");
  ExpectError(b.Import(), StatusCode::kUnimplemented, "node \"fused\" (FusedGemm): domain \"com.microsoft\"");
}

TEST(OnnxImporterTest, RejectsUnsupportedOpNamingNode) {
  ModelBuilder b;
  b.Input("x", {"1", "4"}).Output("y");
  b.Node("Sigmoid", {"x"}, {"y"}, "act");
  ExpectError(b.Import(), StatusCode::kUnimplemented, "node \"act\" (Sigmoid): op \"Sigmoid\" is not supported");
}

TEST(OnnxImporterTest, RejectsUnknownAttributeNamingNodeOpAndAttribute) {
  ModelBuilder b = SmallCnn();
  *b.graph()->mutable_node(0)->add_attribute() = IntAttr("foo", 3);
  ExpectError(b.Import(), StatusCode::kUnimplemented, "node \"conv1\" (Conv): attribute \"foo\" is not supported");
}

TEST(OnnxImporterTest, RejectsAttributeOfWrongType) {
  ModelBuilder b = SmallCnn();
  *b.graph()->mutable_node(0)->add_attribute() = FloatAttr("group", 1.0f);
  b.graph()->mutable_node(0)->mutable_attribute()->DeleteSubrange(4, 1);  // the INT "group"
  ExpectError(b.Import(), StatusCode::kInvalidArgument, "attribute \"group\" has type FLOAT, expected INT");
}

TEST(OnnxImporterTest, RejectsDuplicateAttribute) {
  ModelBuilder b = SmallCnn();
  *b.graph()->mutable_node(0)->add_attribute() = IntAttr("group", 1);
  ExpectError(b.Import(), StatusCode::kInvalidArgument, "attribute \"group\" is given twice");
}

TEST(OnnxImporterTest, MapsAutoPadAndRejectsUnknownValues) {
  const std::pair<const char*, AutoPad> cases[] = {{"NOTSET", AutoPad::kNotSet},
                                                   {"SAME_UPPER", AutoPad::kSameUpper},
                                                   {"SAME_LOWER", AutoPad::kSameLower},
                                                   {"VALID", AutoPad::kValid}};
  for (const auto& [text, value] : cases) {
    ModelBuilder b;
    b.Input("x", {"1", "1", "5", "5"}).Output("y");
    b.Node("AveragePool", {"x"}, {"y"}, "pool", {IntsAttr("kernel_shape", {3, 3}), StringAttr("auto_pad", text)});
    auto def = b.Import();
    ASSERT_TRUE(def.ok()) << def.status().ToString();
    EXPECT_EQ(std::get<PoolAttrs>(def->nodes[0].attrs).auto_pad, value) << text;
  }
  ModelBuilder b;
  b.Input("x", {"1", "1", "5", "5"}).Output("y");
  b.Node("MaxPool", {"x"}, {"y"}, "pool", {IntsAttr("kernel_shape", {3, 3}), StringAttr("auto_pad", "SAME")});
  ExpectError(b.Import(), StatusCode::kUnimplemented,
              "node \"pool\" (MaxPool): attribute \"auto_pad\" value \"SAME\"");
}

TEST(OnnxImporterTest, PoolAttributesDependOnOpset) {
  {
    ModelBuilder b(11);
    b.Input("x", {"1", "1", "5", "5"}).Output("y");
    b.Node("MaxPool", {"x"}, {"y"}, "pool",
           {IntsAttr("kernel_shape", {2, 2}), IntAttr("ceil_mode", 1), IntsAttr("dilations", {2, 2}),
            IntAttr("storage_order", 0)});
    auto def = b.Import();
    ASSERT_TRUE(def.ok()) << def.status().ToString();
    const auto& attrs = std::get<PoolAttrs>(def->nodes[0].attrs);
    EXPECT_TRUE(attrs.ceil_mode);
    EXPECT_EQ(attrs.dilations, (std::vector<int64_t>{2, 2}));
  }
  {
    ModelBuilder b(9);  // MaxPool-8: no ceil_mode yet
    b.Input("x", {"1", "1", "5", "5"}).Output("y");
    b.Node("MaxPool", {"x"}, {"y"}, "pool", {IntsAttr("kernel_shape", {2, 2}), IntAttr("ceil_mode", 1)});
    ExpectError(b.Import(), StatusCode::kUnimplemented, "attribute \"ceil_mode\" is not supported at opset 9");
  }
  {
    ModelBuilder b;
    b.Input("x", {"1", "1", "5", "5"}).Output("y");
    b.Node("AveragePool", {"x"}, {"y"}, "pool",
           {IntsAttr("kernel_shape", {2, 2}), IntAttr("count_include_pad", 2)});
    ExpectError(b.Import(), StatusCode::kInvalidArgument, "attribute \"count_include_pad\" must be 0 or 1");
  }
  {
    ModelBuilder b;
    b.Input("x", {"1", "1", "5", "5"}).Output("y");
    b.Node("AveragePool", {"x"}, {"y"}, "pool", {IntsAttr("strides", {2, 2})});
    ExpectError(b.Import(), StatusCode::kInvalidArgument, "attribute \"kernel_shape\" is required");
  }
}

TEST(OnnxImporterTest, MaxPoolIndicesOutputOnlyWhenUnread) {
  ModelBuilder b;
  b.Input("x", {"1", "1", "4", "4"}).Output("y");
  b.Node("MaxPool", {"x"}, {"y", "idx"}, "pool", {IntsAttr("kernel_shape", {2, 2})});
  auto def = b.Import();
  ASSERT_TRUE(def.ok()) << def.status().ToString();
  EXPECT_EQ(def->nodes[0].outputs, (std::vector<std::string>{"y"}));

  ModelBuilder c;
  c.Input("x", {"1", "1", "4", "4"}).Output("y");
  c.Node("MaxPool", {"x"}, {"p", "idx"}, "pool", {IntsAttr("kernel_shape", {2, 2})});
  c.Node("Add", {"p", "idx"}, {"y"}, "add");
  ExpectError(c.Import(), StatusCode::kUnimplemented,
              "node \"pool\" (MaxPool): output 1 (\"idx\") is not supported");
}

TEST(OnnxImporterTest, LrnAndGemmAttributes) {
  ModelBuilder b;
  b.Input("x", {"2", "8", "3", "3"}).Output("y");
  b.Node("LRN", {"x"}, {"y"}, "norm",
         {IntAttr("size", 5), FloatAttr("alpha", 2e-4f), FloatAttr("beta", 0.5f), FloatAttr("bias", 2.0f)});
  auto def = b.Import();
  ASSERT_TRUE(def.ok()) << def.status().ToString();
  const auto& lrn = std::get<LrnAttrs>(def->nodes[0].attrs);
  EXPECT_EQ(lrn.size, 5);
  EXPECT_FLOAT_EQ(lrn.alpha, 2e-4f);
  EXPECT_FLOAT_EQ(lrn.beta, 0.5f);
  EXPECT_FLOAT_EQ(lrn.bias, 2.0f);

  ModelBuilder c;
  c.Input("x", {"2", "8", "3", "3"}).Output("y");
  c.Node("LRN", {"x"}, {"y"}, "norm", {FloatAttr("alpha", 2e-4f)});
  ExpectError(c.Import(), StatusCode::kInvalidArgument, "attribute \"size\" is required");

  ModelBuilder g;
  g.Input("a", {"3", "4"}).Output("y").Weight("b", {5, 4});
  g.Node("Gemm", {"a", "b"}, {"y"}, "fc",
         {FloatAttr("alpha", 0.5f), FloatAttr("beta", 2.0f), IntAttr("transA", 0), IntAttr("transB", 1)});
  auto gdef = g.Import();
  ASSERT_TRUE(gdef.ok()) << gdef.status().ToString();
  const auto& gemm = std::get<GemmAttrs>(gdef->nodes[0].attrs);
  EXPECT_FLOAT_EQ(gemm.alpha, 0.5f);
  EXPECT_FLOAT_EQ(gemm.beta, 2.0f);
  EXPECT_TRUE(gemm.trans_b);
  EXPECT_EQ(gdef->nodes[0].inputs.size(), 2u);
}

TEST(OnnxImporterTest, SoftmaxAxisDefaultsDependOnOpset) {
  for (int64_t opset : {11, 13}) {
    ModelBuilder b(opset);
    b.Input("x", {"2", "3", "4"}).Output("y");
    b.Node("Softmax", {"x"}, {"y"}, "sm");
    auto def = b.Import();
    ASSERT_TRUE(def.ok()) << def.status().ToString();
    const auto& attrs = std::get<SoftmaxAttrs>(def->nodes[0].attrs);
    EXPECT_EQ(attrs.coerce_2d, opset < 13) << opset;
    EXPECT_EQ(attrs.axis, opset < 13 ? 1 : -1) << opset;
  }
}

TEST(OnnxImporterTest, ReshapeShapeFromInitializerOrConstantNode) {
  {
    ModelBuilder b;
    b.Input("x", {"N", "2", "3"}).Output("y").Initializer(Int64TensorProto("shape", {0, -1}));
    b.Node("Reshape", {"x", "shape"}, {"y"}, "reshape");
    auto def = b.Import();
    ASSERT_TRUE(def.ok()) << def.status().ToString();
    EXPECT_EQ(def->nodes[0].inputs, (std::vector<std::string>{"x"}));
    EXPECT_EQ(std::get<ReshapeAttrs>(def->nodes[0].attrs).shape, (std::vector<int64_t>{0, -1}));
    EXPECT_TRUE(def->constants.empty());  // the shape is an attribute now, not a constant input
  }
  {
    ModelBuilder b(14);  // allowzero exists from Reshape-14
    b.Input("x", {"N", "2", "3"}).Output("y");
    onnx::AttributeProto value;
    value.set_name("value");
    value.set_type(onnx::AttributeProto::TENSOR);
    *value.mutable_t() = Int64TensorProto("", {-1, 6});
    b.Node("Constant", {}, {"shape"}, "shape_const", {value});
    b.Node("Reshape", {"x", "shape"}, {"y"}, "reshape", {IntAttr("allowzero", 0)});
    auto def = b.Import();
    ASSERT_TRUE(def.ok()) << def.status().ToString();
    ASSERT_EQ(def->nodes.size(), 1u);
    EXPECT_EQ(std::get<ReshapeAttrs>(def->nodes[0].attrs).shape, (std::vector<int64_t>{-1, 6}));
  }
  {
    ModelBuilder b;
    b.Input("x", {"N", "2", "3"}).Output("y").Input("shape", {"2"}, onnx::TensorProto::INT64);
    b.Node("Reshape", {"x", "shape"}, {"y"}, "reshape");
    ExpectError(b.Import(), StatusCode::kUnimplemented, "exactly one runtime input");
    OnnxImportOptions options;
    options.bind_int64_inputs["shape"] = {-1, 3};
    auto def = b.Import(options);
    ASSERT_TRUE(def.ok()) << def.status().ToString();
    EXPECT_EQ(std::get<ReshapeAttrs>(def->nodes[0].attrs).shape, (std::vector<int64_t>{-1, 3}));
  }
  {
    ModelBuilder b;
    b.Input("x", {"N", "2", "3"}).Output("y").Weight("shape", {2});  // FLOAT, not INT64
    b.Node("Reshape", {"x", "shape"}, {"y"}, "reshape");
    ExpectError(b.Import(), StatusCode::kInvalidArgument,
                "node \"reshape\" (Reshape): input 1 (shape, \"shape\")");
  }
  {
    ModelBuilder b;
    b.Input("x", {"N", "2", "3"}).Output("y");
    b.Node("Relu", {"x"}, {"s"}, "relu");
    b.Node("Reshape", {"x", "s"}, {"y"}, "reshape");
    ExpectError(b.Import(), StatusCode::kUnimplemented, "must be a constant");
  }
}

TEST(OnnxImporterTest, ConstantNodeFloatValuesBecomeConstants) {
  ModelBuilder b;
  b.Input("x", {"N", "3"}).Output("y");
  onnx::AttributeProto value;
  value.set_name("value");
  value.set_type(onnx::AttributeProto::TENSOR);
  *value.mutable_t() = FloatTensorProto("", {3}, /*raw=*/true);
  b.Node("Constant", {}, {"bias"}, "", {value});
  b.Node("Add", {"x", "bias"}, {"y"}, "add");
  auto def = b.Import();
  ASSERT_TRUE(def.ok()) << def.status().ToString();
  ASSERT_EQ(def->nodes.size(), 1u);
  ASSERT_EQ(def->constants.count("bias"), 1u);
  EXPECT_EQ(def->constants.at("bias")->dims(), (Dims{3}));

  ModelBuilder c;
  c.Input("x", {"N", "3"}).Output("y");
  c.Node("Constant", {}, {"s"}, "str", {StringAttr("value_string", "hello")});
  c.Node("Add", {"x", "s"}, {"y"}, "add");
  ExpectError(c.Import(), StatusCode::kUnimplemented, "node \"str\" (Constant): attribute \"value_string\"");
}

// torch.onnx.export stores equal initializers once and gives each further reader an Identity over the kept one
// (VGG's zero biases): the Identity is no layer, and the reader reads the initializer itself.
TEST(OnnxImporterTest, IdentityOverAConstantIsFoldedIntoItsReaders) {
  ModelBuilder b;
  b.Input("x", {"N", "4"}).Output("y");
  b.Weight("fc1.w", {4, 4}).Weight("fc1.b", {4}).Weight("fc2.w", {4, 4});
  b.Node("Identity", {"fc1.b"}, {"fc2.b"}, "Identity_0");
  b.Node("Identity", {"fc2.b"}, {"fc3.b"}, "Identity_1");  // an Identity of an Identity
  b.Node("Gemm", {"x", "fc1.w", "fc1.b"}, {"h"}, "fc1", {IntAttr("transB", 1)});
  b.Node("Gemm", {"h", "fc2.w", "fc3.b"}, {"y"}, "fc2", {IntAttr("transB", 1)});
  auto def = b.Import();
  ASSERT_TRUE(def.ok()) << def.status().ToString();
  ASSERT_EQ(def->nodes.size(), 2u);
  EXPECT_EQ(def->nodes[0].name, "fc1");
  ASSERT_EQ(def->nodes[1].inputs.size(), 3u);
  EXPECT_EQ(def->nodes[1].inputs[2], "fc1.b");
  EXPECT_EQ(def->constants.count("fc2.b"), 0u);

  // An Identity over a runtime value stays a node (the graph passes remove it later).
  ModelBuilder c;
  c.Input("x", {"N", "4"}).Output("y");
  c.Node("Identity", {"x"}, {"y"}, "id");
  auto kept = c.Import();
  ASSERT_TRUE(kept.ok()) << kept.status().ToString();
  EXPECT_EQ(kept->nodes.size(), 1u);
}

TEST(OnnxImporterTest, DropoutInferenceOnly) {
  {
    ModelBuilder b(13);
    b.Input("x", {"N", "4"}).Output("y");
    onnx::TensorProto ratio = FloatTensorProto("ratio", {}, true);
    onnx::TensorProto training;
    training.set_name("training");
    training.set_data_type(onnx::TensorProto::BOOL);
    training.add_int32_data(0);
    b.Initializer(ratio).Initializer(training);
    b.Node("Dropout", {"x", "ratio", "training"}, {"y", "mask"}, "drop", {IntAttr("seed", 3)});
    auto def = b.Import();
    ASSERT_TRUE(def.ok()) << def.status().ToString();
    EXPECT_EQ(def->nodes[0].type, OpType::kDropout);
    EXPECT_EQ(def->nodes[0].inputs, (std::vector<std::string>{"x"}));
    EXPECT_EQ(def->nodes[0].outputs, (std::vector<std::string>{"y"}));
    EXPECT_TRUE(def->constants.empty());
  }
  {
    ModelBuilder b(13);
    b.Input("x", {"N", "4"}).Output("y");
    onnx::TensorProto training;
    training.set_name("training");
    training.set_data_type(onnx::TensorProto::BOOL);
    training.add_int32_data(1);
    b.Initializer(training);
    b.Node("Dropout", {"x", "", "training"}, {"y"}, "drop");
    ExpectError(b.Import(), StatusCode::kUnimplemented, "node \"drop\" (Dropout): input 2 (training_mode");
  }
  {
    ModelBuilder b(13);
    b.Input("x", {"N", "4"}).Output("y");
    b.Node("Dropout", {"x"}, {"d", "mask"}, "drop");
    b.Node("Add", {"d", "mask"}, {"y"}, "add");
    ExpectError(b.Import(), StatusCode::kUnimplemented, "node \"drop\" (Dropout): output 1 (\"mask\")");
  }
  {
    ModelBuilder b(10);  // Dropout-10: ratio is an attribute
    b.Input("x", {"N", "4"}).Output("y");
    b.Node("Dropout", {"x"}, {"y"}, "drop", {FloatAttr("ratio", 0.3f)});
    EXPECT_TRUE(b.Import().ok());
  }
}

TEST(OnnxImporterTest, BatchNormalizationInferenceOnly) {
  auto make = [](int64_t opset) {
    ModelBuilder b(opset);
    b.Input("x", {"N", "3", "4", "4"}).Output("y");
    b.Weight("s", {3}).Weight("b", {3}).Weight("m", {3}).Weight("v", {3});
    return b;
  };
  {
    ModelBuilder b = make(15);
    b.Node("BatchNormalization", {"x", "s", "b", "m", "v"}, {"y"}, "bn",
           {FloatAttr("epsilon", 1e-3f), FloatAttr("momentum", 0.99f), IntAttr("training_mode", 0)});
    auto def = b.Import();
    ASSERT_TRUE(def.ok()) << def.status().ToString();
    EXPECT_FLOAT_EQ(std::get<BatchNormAttrs>(def->nodes[0].attrs).epsilon, 1e-3f);
    EXPECT_EQ(def->constants.size(), 4u);
  }
  {
    ModelBuilder b = make(15);
    b.Node("BatchNormalization", {"x", "s", "b", "m", "v"}, {"y"}, "bn", {IntAttr("training_mode", 1)});
    ExpectError(b.Import(), StatusCode::kUnimplemented,
                "node \"bn\" (BatchNormalization): attribute \"training_mode\"");
  }
  {
    ModelBuilder b = make(15);
    b.Node("BatchNormalization", {"x", "s", "b", "m", "v"}, {"y", "running_mean", "running_var"}, "bn");
    ExpectError(b.Import(), StatusCode::kUnimplemented, "output 1 (\"running_mean\") is not supported");
  }
  {
    ModelBuilder b = make(7);
    b.Node("BatchNormalization", {"x", "s", "b", "m", "v"}, {"y"}, "bn", {IntAttr("spatial", 0)});
    ExpectError(b.Import(), StatusCode::kUnimplemented, "attribute \"spatial\" value 0");
  }
  {
    ModelBuilder b = make(9);  // spatial was removed in BatchNormalization-9
    b.Node("BatchNormalization", {"x", "s", "b", "m", "v"}, {"y"}, "bn", {IntAttr("spatial", 1)});
    ExpectError(b.Import(), StatusCode::kUnimplemented, "attribute \"spatial\" is not supported at opset 9");
  }
}

// ---- Initializers ----

TEST(OnnxImporterTest, RejectsExternalData) {
  ModelBuilder b = SmallCnn();
  onnx::TensorProto* w = b.graph()->mutable_initializer(0);
  w->clear_raw_data();
  w->set_data_location(onnx::TensorProto::EXTERNAL);
  onnx::StringStringEntryProto* location = w->add_external_data();
  location->set_key("location");
  location->set_value("weights.bin");
  ExpectError(b.Import(), StatusCode::kUnimplemented, "initializer \"conv_w\" uses external data");
}

TEST(OnnxImporterTest, RejectsWeightSizeMismatch) {
  {
    ModelBuilder b = SmallCnn();
    b.graph()->mutable_initializer(0)->mutable_raw_data()->resize(100);
    ExpectError(b.Import(), StatusCode::kDataLoss, "initializer \"conv_w\": raw_data holds 100 bytes");
  }
  {
    ModelBuilder b = SmallCnn(/*raw=*/false);
    b.graph()->mutable_initializer(1)->add_float_data(1.0f);
    ExpectError(b.Import(), StatusCode::kDataLoss, "initializer \"conv_b\": float_data holds 5 values");
  }
  {
    ModelBuilder b = SmallCnn();
    b.graph()->mutable_initializer(1)->set_dims(0, -4);
    ExpectError(b.Import(), StatusCode::kInvalidArgument, "negative dimension");
  }
  {
    ModelBuilder b = SmallCnn();
    onnx::TensorProto* w = b.graph()->mutable_initializer(0);
    w->clear_dims();
    for (int i = 0; i < 4; ++i) w->add_dims(int64_t{1} << 20);  // 2^80 elements: must not overflow
    ExpectError(b.Import(), StatusCode::kInvalidArgument, "too many elements");
  }
}

TEST(OnnxImporterTest, RejectsNonFloatWeightsNamingThem) {
  ModelBuilder b = SmallCnn();
  onnx::TensorProto* w = b.graph()->mutable_initializer(0);
  w->set_data_type(onnx::TensorProto::DOUBLE);
  w->mutable_raw_data()->append(w->raw_data());
  ExpectError(b.Import(), StatusCode::kUnimplemented, "initializer \"conv_w\" has element type DOUBLE");
}

TEST(OnnxImporterTest, RejectsSparseInitializers) {
  ModelBuilder b = SmallCnn();
  onnx::SparseTensorProto* sparse = b.graph()->add_sparse_initializer();
  *sparse->mutable_values() = FloatTensorProto("sp", {1}, true);
  ExpectError(b.Import(), StatusCode::kUnimplemented, "sparse initializer \"sp\"");
}

// ---- Graph inputs and outputs ----

TEST(OnnxImporterTest, InputDims) {
  {
    ModelBuilder b;
    b.Input("x", {"0", "4"}).Output("y");
    b.Node("Relu", {"x"}, {"y"}, "r");
    auto def = b.Import();
    ASSERT_TRUE(def.ok()) << def.status().ToString();
    EXPECT_LE(def->input_dims[0], 0);  // dynamic batch
  }
  {
    ModelBuilder b;
    b.Input("x", {"2", "4"}).Output("y");
    b.Node("Relu", {"x"}, {"y"}, "r");
    auto def = b.Import();
    ASSERT_TRUE(def.ok()) << def.status().ToString();
    EXPECT_EQ(def->input_dims, (Dims{2, 4}));
  }
  {
    ModelBuilder b;
    b.Input("x", {"N", "3", "height", "width"}).Output("y");
    b.Node("Relu", {"x"}, {"y"}, "r");
    ExpectError(b.Import(), StatusCode::kUnimplemented,
                "graph input \"x\": dimension 2 is symbolic (\"height\"); only dimension 0");
  }
  {
    ModelBuilder b;
    b.Input("x", {"N", "3"}, onnx::TensorProto::UINT8).Output("y");
    b.Node("Relu", {"x"}, {"y"}, "r");
    ExpectError(b.Import(), StatusCode::kUnimplemented, "graph input \"x\" has element type UINT8");
  }
  {
    ModelBuilder b;
    b.Input("x", {}).Output("y");
    b.Node("Relu", {"x"}, {"y"}, "r");
    ExpectError(b.Import(), StatusCode::kUnimplemented, "is a scalar");
  }
}

TEST(OnnxImporterTest, BindInputsTurnsGraphInputsIntoConstants) {
  ModelBuilder b;
  b.Input("x", {"1", "1", "5", "5"}).Input("W", {"1", "1", "3", "3"}).Output("y");
  b.Node("Conv", {"x", "W"}, {"y"}, "conv", {IntsAttr("kernel_shape", {3, 3})});
  ExpectError(b.Import(), StatusCode::kUnimplemented, "it has 2: \"x\", \"W\"");

  OnnxImportOptions options;
  options.bind_inputs["W"] = std::make_shared<const Tensor>(Dims{1, 1, 3, 3});
  auto def = b.Import(options);
  ASSERT_TRUE(def.ok()) << def.status().ToString();
  EXPECT_EQ(def->input, "x");
  ASSERT_EQ(def->constants.count("W"), 1u);
  EXPECT_EQ(def->constants.at("W").get(), options.bind_inputs.at("W").get());  // shared, not copied

  OnnxImportOptions wrong_dims;
  wrong_dims.bind_inputs["W"] = std::make_shared<const Tensor>(Dims{1, 1, 2, 2});
  ExpectError(b.Import(wrong_dims), StatusCode::kInvalidArgument, "cannot bind \"W\": the input has dims");

  OnnxImportOptions unknown;
  unknown.bind_inputs["B"] = std::make_shared<const Tensor>(Dims{1});
  ExpectError(b.Import(unknown), StatusCode::kInvalidArgument, "cannot bind \"B\": not a graph input");
}

TEST(OnnxImporterTest, ExactlyOneOutput) {
  ModelBuilder b;
  b.Input("x", {"1", "4"}).Output("y").Output("z");
  b.Node("Relu", {"x"}, {"y"}, "r");
  b.Node("Relu", {"x"}, {"z"}, "s");
  ExpectError(b.Import(), StatusCode::kUnimplemented, "exactly one output, it has 2");
}

TEST(OnnxImporterTest, RejectsValuesDefinedTwice) {
  ModelBuilder b;
  b.Input("x", {"1", "4"}).Output("y");
  b.Node("Relu", {"x"}, {"y"}, "r");
  b.Node("Relu", {"x"}, {"y"}, "s");
  ExpectError(b.Import(), StatusCode::kInvalidArgument, "node \"s\" (Relu): output \"y\" is already defined");
}

// ---- Tensor files ----

TEST(OnnxImporterTest, ReadsTensorFiles) {
  const std::string path = TempPath("tensor.pb");
  WriteFile(path, FloatTensorProto("t", {2, 3}, true).SerializeAsString());
  auto tensor = ReadOnnxTensorFile(path);
  ASSERT_TRUE(tensor.ok()) << tensor.status().ToString();
  EXPECT_EQ(tensor->dims(), (Dims{2, 3}));
  EXPECT_FLOAT_EQ((*tensor)[1], 0.01f * 7 - 0.1f);

  WriteFile(path, FloatTensorProto("s", {}, false).SerializeAsString());
  auto scalar = ReadOnnxTensorFile(path);
  ASSERT_TRUE(scalar.ok()) << scalar.status().ToString();
  EXPECT_TRUE(scalar->dims().empty());
  EXPECT_EQ(scalar->size(), 1);

  WriteFile(path, Int64TensorProto("shape", {2, -1}).SerializeAsString());
  ExpectError(ReadOnnxTensorFile(path), StatusCode::kUnimplemented, "tensor \"shape\" has element type INT64");
  auto ints = ReadOnnxInt64TensorFile(path);
  ASSERT_TRUE(ints.ok()) << ints.status().ToString();
  EXPECT_EQ(*ints, (std::vector<int64_t>{2, -1}));

  WriteFile(path, "\x0a\xff");
  ExpectError(ReadOnnxTensorFile(path), StatusCode::kInvalidArgument, "is not a valid ONNX TensorProto");
  std::remove(path.c_str());
}

}  // namespace
}  // namespace cnnserve
