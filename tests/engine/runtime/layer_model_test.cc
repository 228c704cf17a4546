// Model::UpToLayer (engine/graph/truncate.h): the activations of intermediate layers of the trained Fashion-MNIST
// models equal ONNX Runtime's for the same ONNX file with that tensor as its output (data/, written by
// make_layer_fixtures.py), on both backends, within the parity tolerance of tests/models/onnx/onnx_node_test.cc;
// names of Identity/Dropout nodes that passes remove resolve to the values they copy; unknown names are errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "engine/graph/truncate.h"
#include "engine/runtime/model.h"
#include "engine/tensor/npy.h"
#include "models/onnx/onnx_importer.h"
#include "tests/engine/graph/test_graphs.h"

namespace cnnserve {
namespace {

constexpr double kRelTolerance = 1e-4;
constexpr double kAbsTolerance = 1e-5;

std::string SourceDir() {
  const char* dir = std::getenv("CNNSERVE_SOURCE_DIR");
  return dir ? dir : ".";
}

void ExpectNear(const Tensor& got, const Tensor& expected, const std::string& what) {
  ASSERT_EQ(DimsToString(got.dims()), DimsToString(expected.dims())) << what;
  double max_expected = 0, max_diff = 0;
  for (int64_t i = 0; i < expected.size(); ++i) {
    max_expected = std::max(max_expected, std::fabs(static_cast<double>(expected[i])));
    max_diff = std::max(max_diff, std::fabs(static_cast<double>(got[i]) - expected[i]));
  }
  EXPECT_GT(max_expected, 0.0) << what << ": the oracle is all zeros";
  EXPECT_LE(max_diff, kRelTolerance * max_expected + kAbsTolerance) << what;
}

struct LayerCase {
  std::string model;
  std::vector<std::string> layers;
};

class LayerParityTest : public ::testing::TestWithParam<std::string> {};

TEST_P(LayerParityTest, MatchesOnnxRuntime) {
  const std::vector<LayerCase> cases = {
      {"lenet5_fashion", {"conv1", "relu1", "pool1", "relu2", "flatten", "fc1", "relu4"}},
      {"vgg_fashion", {"conv1_1", "relu2_2", "pool3", "relu_fc1"}},
      {"alexnet_fashion", {"norm1", "relu5", "relu7"}},
  };
  const std::string data = SourceDir() + "/tests/engine/runtime/data/";
  ModelOptions options;
  options.backend = GetParam();
  options.num_threads = 1;
  for (const LayerCase& c : cases) {
    auto graph = LoadOnnxGraph(SourceDir() + "/models/repository/" + c.model + "/1/model.onnx");
    ASSERT_TRUE(graph.ok()) << graph.status().ToString();
    auto model = Model::Create(*graph, options);
    ASSERT_TRUE(model.ok()) << model.status().ToString();
    auto input = ReadNpy(data + c.model + ".input.npy");
    ASSERT_TRUE(input.ok()) << input.status().ToString();
    for (const std::string& layer : c.layers) {
      const std::string what = c.model + " " + layer + " (" + options.backend + ")";
      auto expected = ReadNpy(data + c.model + "." + layer + ".npy");
      ASSERT_TRUE(expected.ok()) << expected.status().ToString();
      auto layer_model = (*model)->UpToLayer(layer);
      ASSERT_TRUE(layer_model.ok()) << what << ": " << layer_model.status().ToString();
      EXPECT_LT((*layer_model)->graph().nodes().size(), (*model)->graph().nodes().size()) << what;
      auto got = (*layer_model)->NewSession()->Run(*input);
      ASSERT_TRUE(got.ok()) << what << ": " << got.status().ToString();
      ExpectNear(*got, *expected, what);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, LayerParityTest, ::testing::Values("reference", "dnnl"));

// TinyCnn with Dropout and Identity after the ReLU: conv -> relu (r) -> Dropout (d) -> Identity (i) -> pool ...
GraphDef TinyCnnWithCopies() {
  GraphDef def = testing::TinyCnn();
  def.nodes.push_back(testing::MakeNode("drop", OpType::kDropout, {"r"}, "d"));
  def.nodes.push_back(testing::MakeNode("id", OpType::kIdentity, {"d"}, "i"));
  for (Node& node : def.nodes) {
    if (node.name == "pool") node.inputs[0] = "i";
  }
  return def;
}

TEST(LayerModelTest, RemovedCopiesResolveToTheValueTheyCarry) {
  auto graph = Graph::Create(TinyCnnWithCopies());
  ASSERT_TRUE(graph.ok()) << graph.status().ToString();
  for (const char* backend : {"reference", "dnnl"}) {
    ModelOptions options;
    options.backend = backend;
    options.num_threads = 1;
    auto model = Model::Create(*graph, options);
    ASSERT_TRUE(model.ok()) << model.status().ToString();
    Tensor input = testing::RandomConstant({3, 3, 8, 8}, 7)->Clone();
    auto relu = (*model)->UpToLayer("relu");
    ASSERT_TRUE(relu.ok()) << relu.status().ToString();
    auto want = (*relu)->NewSession()->Run(input);
    ASSERT_TRUE(want.ok()) << want.status().ToString();
    int negatives = 0;
    for (int64_t i = 0; i < want->size(); ++i) negatives += (*want)[i] < 0;
    EXPECT_EQ(negatives, 0) << "the ReLU (fused into the conv by dnnl) is applied";
    auto conv = (*model)->UpToLayer("c");
    ASSERT_TRUE(conv.ok()) << conv.status().ToString();
    auto pre = (*conv)->NewSession()->Run(input);
    ASSERT_TRUE(pre.ok());
    negatives = 0;
    for (int64_t i = 0; i < pre->size(); ++i) negatives += (*pre)[i] < 0;
    EXPECT_GT(negatives, 0) << "the conv's own output is before the ReLU";
    for (const char* name : {"drop", "d", "id", "i"}) {
      EXPECT_EQ(*ResolveLayer(**graph, name), "r") << name;
      auto m = (*model)->UpToLayer(name);
      ASSERT_TRUE(m.ok()) << name << ": " << m.status().ToString();
      EXPECT_EQ((*m)->graph().output_name(), "r");
      auto got = (*m)->NewSession()->Run(input);
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      ExpectNear(*got, *want, std::string(backend) + " " + name);
    }
  }
}

TEST(LayerModelTest, UnknownNamesAreInvalidArgument) {
  auto graph = Graph::Create(testing::TinyCnn());
  ASSERT_TRUE(graph.ok());
  ModelOptions options;
  options.backend = "reference";
  auto model = Model::Create(*graph, options);
  ASSERT_TRUE(model.ok());
  for (const char* name : {"nope", "", "x", "w"}) {
    auto m = (*model)->UpToLayer(name);
    ASSERT_FALSE(m.ok()) << name;
    EXPECT_EQ(m.status().code(), StatusCode::kInvalidArgument) << name;
    EXPECT_NE(m.status().message().find("\"" + std::string(name) + "\""), std::string::npos)
        << m.status().ToString();
    EXPECT_NE(m.status().message().find("DescribeModel"), std::string::npos) << m.status().ToString();
  }
  // The full output is a layer too: the same model.
  auto last = (*model)->UpToLayer("fc");
  ASSERT_TRUE(last.ok()) << last.status().ToString();
  EXPECT_EQ((*last)->graph().nodes().size(), (*model)->graph().nodes().size());
}

}  // namespace
}  // namespace cnnserve
