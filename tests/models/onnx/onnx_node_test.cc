// Runs ONNX's own backend tests (Debian's libonnx-testdata) through the importer and both backends. This is the
// project's one runner of ONNX's backend test data: it also checks the engine's shape inference and reference
// kernels against ONNX's expected outputs (the Reference backend runs exactly those), so every op and attribute
// form is checked from the ONNX file, as a served model would be.
//
// Every test directory under node/, pytorch-converted/, pytorch-operator/ and simple/ whose model uses only ops
// the engine implements (plus Constant) becomes one test per backend. Input 0 is the runtime input; inputs
// 1..n (weights, shapes, ratios that ONNX's node tests pass as graph inputs) are bound as constants. The
// reference backend runs the imported graph; the oneDNN backend runs it after OptimizeForInference. Outputs are
// compared with output_0 at max|diff| <= 1e-4 * max|expected| + 1e-5.
//
// Tests that are out of scope are listed in kOutOfScope with the reason and reported as skipped; the list is
// checked to name only tests that exist. Models of opset < 7 (the importer supports 7..17) are run with their
// opset import rewritten to 7 when every op they use is unchanged between their opset and 7 (kUnchangedSince);
// the unmodified file is checked to be rejected.
//
// CNNSERVE_ONNX_TEST_DATA overrides the test data directory. Missing or unreadable test data is a failure
// (OnnxNodeTestInventory), never a silent skip: tools/scripts/install_deps.sh installs libonnx-testdata.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "engine/backend/dnnl/dnnl_backend.h"
#include "engine/backend/reference/reference_backend.h"
#include "engine/graph/graph.h"
#include "engine/graph/passes.h"
#include "models/onnx/onnx_importer.h"

namespace cnnserve {
namespace {

namespace fs = std::filesystem;

constexpr char kDefaultDataDir[] = "/usr/include/onnx/backend/test/data";  // Debian's libonnx-testdata
constexpr char kDataPackage[] = "libonnx-testdata";
constexpr const char* kSuites[] = {"node", "pytorch-converted", "pytorch-operator", "simple"};

// Tolerance: max|diff| <= kRelTolerance * max|expected| + kAbsTolerance.
constexpr double kRelTolerance = 1e-4;
constexpr double kAbsTolerance = 1e-5;

// The ops a model may use to be considered (the engine's op set and Constant).
const std::set<std::string>& SupportedOps() {
  static const std::set<std::string> ops = {
      "Conv",    "Relu",    "MaxPool", "AveragePool", "GlobalAveragePool",  "LRN",      "Gemm",    "MatMul", "Add",
      "Flatten", "Reshape", "Dropout", "Softmax",     "BatchNormalization", "Identity", "Constant"};
  return ops;
}

// Ops whose definition (for the attributes the importer reads) is the same from the given opset through opset 7.
const std::map<std::string, int64_t>& UnchangedSince() {
  static const std::map<std::string, int64_t> ops = {
      {"Conv", 1},    {"MaxPool", 1}, {"AveragePool", 1}, {"GlobalAveragePool", 1},
      {"Softmax", 1}, {"Flatten", 1}, {"LRN", 1},         {"Identity", 1},
      {"MatMul", 1},  {"Relu", 6},    {"Reshape", 5},
  };
  return ops;
}

struct OutOfScope {
  const char* test;  // "<suite>/<test directory>"
  const char* reason;
};

// Keep this list honest and tight: every entry must name an existing test (checked below), and a test that
// starts to pass should leave the list.
constexpr OutOfScope kOutOfScope[] = {
    // Element types: the engine is float32 only.
    {"node/test_add_uint8", "uint8 tensors (the engine computes in float32 only)"},
    {"node/test_maxpool_2d_uint8", "uint8 tensors (the engine computes in float32 only)"},
    // Training.
    {"node/test_batchnorm_epsilon_training_mode", "training mode (training_mode=1, running-stat outputs)"},
    {"node/test_batchnorm_example_training_mode", "training mode (training_mode=1, running-stat outputs)"},
    // Second outputs.
    {"node/test_dropout_default_mask", "Dropout mask output (a second graph output)"},
    {"node/test_dropout_default_mask_ratio", "Dropout mask output (a second graph output)"},
    {"node/test_maxpool_with_argmax_2d_precomputed_pads", "MaxPool Indices output (a second graph output)"},
    {"node/test_maxpool_with_argmax_2d_precomputed_strides", "MaxPool Indices output (a second graph output)"},
    // Non-tensor types.
    {"node/test_identity_opt", "optional type input (only tensors are supported)"},
    {"node/test_identity_sequence", "sequence type input (only tensors are supported)"},
    {"node/test_training_dropout", "Dropout in training mode (training_mode input true)"},
    {"node/test_training_dropout_default", "Dropout in training mode (training_mode input true)"},
    {"node/test_training_dropout_zero_ratio", "Dropout in training mode (training_mode input true)"},
    {"node/test_training_dropout_default_mask", "Dropout in training mode, with the mask output"},
    {"node/test_training_dropout_mask", "Dropout in training mode, with the mask output"},
    {"node/test_training_dropout_zero_ratio_mask", "Dropout in training mode, with the mask output"},
    // Graph shape.
    {"node/test_constant", "no graph input (the model is a lone Constant; graphs need one runtime input)"},
    // Empty tensors.
    {"node/test_reshape_allowzero_reordered", "empty tensor (input dims 0x3x4; tensors need positive dims)"},
    // Old opsets whose ops changed in opset 7 (the importer supports opsets 7 to 17).
    {"pytorch-converted/test_BatchNorm1d_3d_input_eval",
     "opset 6 BatchNormalization has the is_test attribute, removed in opset 7"},
    {"pytorch-converted/test_BatchNorm2d_eval",
     "opset 6 BatchNormalization has the is_test attribute, removed in opset 7"},
    {"pytorch-converted/test_BatchNorm2d_momentum_eval",
     "opset 6 BatchNormalization has the is_test attribute, removed in opset 7"},
    {"pytorch-converted/test_BatchNorm3d_eval",
     "opset 6 BatchNormalization has the is_test attribute, removed in opset 7"},
    {"pytorch-converted/test_BatchNorm3d_momentum_eval",
     "opset 6 BatchNormalization has the is_test attribute, removed in opset 7"},
    {"pytorch-converted/test_Linear", "opset 6 Gemm has the broadcast attribute, removed in opset 7"},
    {"pytorch-operator/test_operator_addmm", "opset 6 Gemm has the broadcast attribute, removed in opset 7"},
    {"pytorch-operator/test_operator_mm", "opset 6 Gemm has the broadcast attribute, removed in opset 7"},
    {"pytorch-operator/test_operator_add_broadcast", "opset 6 Add (broadcast attribute) on DOUBLE tensors"},
    {"pytorch-operator/test_operator_add_size1_broadcast", "opset 6 Add (broadcast attribute) on DOUBLE tensors"},
    {"pytorch-operator/test_operator_add_size1_right_broadcast",
     "opset 6 Add (broadcast attribute) on DOUBLE tensors"},
    {"pytorch-operator/test_operator_add_size1_singleton_broadcast",
     "opset 6 Add (broadcast attribute) on DOUBLE tensors"},
    {"pytorch-operator/test_operator_addconstant", "opset 6 Add (broadcast attribute) on DOUBLE tensors"},
};

// Node tests that must be discovered and run (not out of scope): at least one per supported op, and every
// attribute form the engine's kernels implement.
// clang-format off
constexpr const char* kMustRun[] = {
    "node/test_add", "node/test_add_bcast",
    "node/test_averagepool_1d_default", "node/test_averagepool_2d_ceil", "node/test_averagepool_2d_default",
    "node/test_averagepool_2d_pads", "node/test_averagepool_2d_pads_count_include_pad",
    "node/test_averagepool_2d_precomputed_pads", "node/test_averagepool_2d_precomputed_pads_count_include_pad",
    "node/test_averagepool_2d_precomputed_same_upper", "node/test_averagepool_2d_precomputed_strides",
    "node/test_averagepool_2d_same_lower", "node/test_averagepool_2d_same_upper",
    "node/test_averagepool_2d_strides", "node/test_averagepool_3d_default",
    "node/test_basic_conv_with_padding", "node/test_basic_conv_without_padding", "node/test_conv_with_autopad_same",
    "node/test_conv_with_strides_and_asymmetric_padding", "node/test_conv_with_strides_no_padding",
    "node/test_conv_with_strides_padding",
    "node/test_batchnorm_epsilon", "node/test_batchnorm_example",
    "node/test_dropout_default", "node/test_dropout_default_ratio", "node/test_dropout_default_old",
    "node/test_dropout_random_old",
    "node/test_flatten_axis0", "node/test_flatten_axis1", "node/test_flatten_axis2", "node/test_flatten_axis3",
    "node/test_flatten_default_axis", "node/test_flatten_negative_axis1", "node/test_flatten_negative_axis2",
    "node/test_flatten_negative_axis3", "node/test_flatten_negative_axis4",
    "node/test_gemm_all_attributes", "node/test_gemm_alpha", "node/test_gemm_beta",
    "node/test_gemm_default_matrix_bias", "node/test_gemm_default_no_bias", "node/test_gemm_default_scalar_bias",
    "node/test_gemm_default_single_elem_vector_bias", "node/test_gemm_default_vector_bias",
    "node/test_gemm_default_zero_bias",
    "node/test_globalaveragepool", "node/test_globalaveragepool_precomputed",
    "node/test_identity",
    "node/test_lrn", "node/test_lrn_default",
    "node/test_matmul_2d", "node/test_matmul_3d", "node/test_matmul_4d",
    "node/test_maxpool_1d_default", "node/test_maxpool_2d_ceil", "node/test_maxpool_2d_default",
    "node/test_maxpool_2d_dilations", "node/test_maxpool_2d_pads", "node/test_maxpool_2d_precomputed_pads",
    "node/test_maxpool_2d_precomputed_same_upper", "node/test_maxpool_2d_precomputed_strides",
    "node/test_maxpool_2d_same_lower", "node/test_maxpool_2d_same_upper", "node/test_maxpool_2d_strides",
    "node/test_maxpool_3d_default",
    "node/test_relu",
    "node/test_reshape_extended_dims", "node/test_reshape_negative_dim", "node/test_reshape_negative_extended_dims",
    "node/test_reshape_one_dim", "node/test_reshape_reduced_dims", "node/test_reshape_reordered_all_dims",
    "node/test_reshape_reordered_last_dims", "node/test_reshape_zero_and_negative_dim",
    "node/test_reshape_zero_dim",
    "node/test_softmax_axis_0", "node/test_softmax_axis_1", "node/test_softmax_axis_2",
    "node/test_softmax_default_axis", "node/test_softmax_example", "node/test_softmax_large_number",
    "node/test_softmax_negative_axis"
};
// clang-format on

std::optional<std::string> OutOfScopeReason(const std::string& id) {
  for (const OutOfScope& entry : kOutOfScope) {
    if (id == entry.test) return std::string(entry.reason);
  }
  return std::nullopt;
}

std::string DataDir() {
  const char* env = std::getenv("CNNSERVE_ONNX_TEST_DATA");
  return env != nullptr && *env != '\0' ? env : kDefaultDataDir;
}

bool ReadModel(const fs::path& path, onnx::ModelProto* model) {
  std::ifstream in(path, std::ios::binary);
  return in && model->ParseFromIstream(&in);
}

int64_t DefaultOpset(const onnx::ModelProto& model) {
  for (const onnx::OperatorSetIdProto& id : model.opset_import()) {
    if (id.domain().empty() || id.domain() == "ai.onnx") return id.version();
  }
  return 0;
}

struct NodeTestCase {
  std::string id;         // "<suite>/<directory>", as in kOutOfScope
  std::string test_name;  // a valid gtest name
  fs::path dir;
  int64_t opset = 0;
  std::set<std::string> ops;
};

std::ostream& operator<<(std::ostream& os, const NodeTestCase& test) { return os << test.id; }

// What DiscoverTests found.
struct Discovery {
  std::vector<NodeTestCase> tests;      // test directories whose model uses only supported ops
  int all_count = 0;                    // test directories seen
  std::vector<std::string> missing;     // suite directories that do not exist
  std::vector<std::string> unreadable;  // model.onnx files that do not parse
};

Discovery DiscoverTests() {
  Discovery found;
  for (const char* suite : kSuites) {
    const fs::path root = fs::path(DataDir()) / suite;
    std::error_code ec;
    if (!fs::is_directory(root, ec)) {
      found.missing.push_back(root.string());
      continue;
    }
    std::vector<fs::path> dirs;
    for (const fs::directory_entry& entry : fs::directory_iterator(root, ec)) {
      if (entry.is_directory() && fs::exists(entry.path() / "model.onnx")) dirs.push_back(entry.path());
    }
    std::sort(dirs.begin(), dirs.end());
    for (const fs::path& dir : dirs) {
      ++found.all_count;
      onnx::ModelProto model;
      if (!ReadModel(dir / "model.onnx", &model)) {
        found.unreadable.push_back((dir / "model.onnx").string());
        continue;
      }
      NodeTestCase test;
      test.dir = dir;
      test.id = std::string(suite) + "/" + dir.filename().string();
      test.opset = DefaultOpset(model);
      bool supported = true;
      for (const onnx::NodeProto& node : model.graph().node()) {
        test.ops.insert(node.op_type());
        supported = supported && node.domain().empty() && SupportedOps().count(node.op_type()) != 0;
      }
      if (!supported) continue;
      std::string prefix = suite == std::string("node") ? "" : std::string(suite) + "_";
      std::replace(prefix.begin(), prefix.end(), '-', '_');
      test.test_name = prefix + dir.filename().string();
      found.tests.push_back(std::move(test));
    }
  }
  return found;
}

const std::vector<NodeTestCase>& AllTests() {
  static const std::vector<NodeTestCase> tests = DiscoverTests().tests;
  return tests;
}

enum class BackendKind { kReference, kDnnl };

// The model bytes to import: the file itself, or for opset < 7 the model with its opset rewritten to 7 when all
// its ops are unchanged since their opset. Fails the test otherwise.
std::optional<std::string> ModelBytesFor(const NodeTestCase& test) {
  onnx::ModelProto model;
  if (!ReadModel(test.dir / "model.onnx", &model)) {
    ADD_FAILURE() << "cannot parse " << test.dir / "model.onnx";
    return std::nullopt;
  }
  if (test.opset >= kMinOnnxOpset) return model.SerializeAsString();
  // The importer must reject the original model with a precise error.
  auto original = ImportOnnxFile((test.dir / "model.onnx").string());
  EXPECT_FALSE(original.ok());
  if (!original.ok()) {
    EXPECT_EQ(original.status().code(), StatusCode::kUnimplemented) << original.status().ToString();
    EXPECT_NE(original.status().message().find("opset " + std::to_string(test.opset)), std::string::npos)
        << original.status().ToString();
  }
  for (const std::string& op : test.ops) {
    auto it = UnchangedSince().find(op);
    if (it == UnchangedSince().end() || it->second > test.opset) {
      ADD_FAILURE() << test.id << ": opset " << test.opset << " model uses " << op
                    << ", which changed before opset 7; list the test in kOutOfScope";
      return std::nullopt;
    }
  }
  for (onnx::OperatorSetIdProto& id : *model.mutable_opset_import()) {
    if (id.domain().empty() || id.domain() == "ai.onnx") id.set_version(kMinOnnxOpset);
  }
  return model.SerializeAsString();
}

// Reads input_<k>.pb / output_0.pb of one data set.
struct DataSet {
  fs::path dir;
  std::vector<fs::path> inputs;
  fs::path output;
};

std::vector<DataSet> DataSets(const fs::path& test_dir) {
  std::vector<DataSet> sets;
  for (int n = 0;; ++n) {
    const fs::path dir = test_dir / ("test_data_set_" + std::to_string(n));
    if (!fs::is_directory(dir)) break;
    DataSet set;
    set.dir = dir;
    for (int k = 0; fs::exists(dir / ("input_" + std::to_string(k) + ".pb")); ++k) {
      set.inputs.push_back(dir / ("input_" + std::to_string(k) + ".pb"));
    }
    set.output = dir / "output_0.pb";
    sets.push_back(std::move(set));
  }
  return sets;
}

class OnnxNodeTest : public ::testing::TestWithParam<NodeTestCase> {
 protected:
  void Run(BackendKind kind);
};

void OnnxNodeTest::Run(BackendKind kind) {
  const NodeTestCase& test = GetParam();
  if (std::optional<std::string> reason = OutOfScopeReason(test.id)) GTEST_SKIP() << *reason;
  std::optional<std::string> bytes = ModelBytesFor(test);
  if (!bytes) return;
  onnx::ModelProto model;
  ASSERT_TRUE(model.ParseFromString(*bytes));
  // Graph inputs that are not initializers, in order: the data set's input_<k>.pb files match them.
  std::set<std::string> initializers;
  for (const onnx::TensorProto& init : model.graph().initializer()) initializers.insert(init.name());
  std::vector<const onnx::ValueInfoProto*> inputs;
  for (const onnx::ValueInfoProto& input : model.graph().input()) {
    if (initializers.count(input.name()) == 0) inputs.push_back(&input);
  }

  const std::vector<DataSet> sets = DataSets(test.dir);
  ASSERT_FALSE(sets.empty()) << "no test_data_set_* in " << test.dir;
  for (const DataSet& set : sets) {
    SCOPED_TRACE(set.dir.string());
    ASSERT_EQ(set.inputs.size(), inputs.size());
    OnnxImportOptions options;
    for (size_t k = 1; k < inputs.size(); ++k) {
      const std::string& name = inputs[k]->name();
      if (inputs[k]->type().tensor_type().elem_type() == onnx::TensorProto::INT64) {
        auto values = ReadOnnxInt64TensorFile(set.inputs[k].string());
        ASSERT_TRUE(values.ok()) << values.status().ToString();
        options.bind_int64_inputs[name] = *values;
      } else {
        auto tensor = ReadOnnxTensorFile(set.inputs[k].string());
        ASSERT_TRUE(tensor.ok()) << tensor.status().ToString();
        options.bind_inputs[name] = std::make_shared<const Tensor>(std::move(*tensor));
      }
    }
    auto def = ImportOnnxBytes(*bytes, test.id, options);
    ASSERT_TRUE(def.ok()) << def.status().ToString();
    auto graph = Graph::Create(std::move(*def));
    ASSERT_TRUE(graph.ok()) << graph.status().ToString();

    auto input = ReadOnnxTensorFile(set.inputs[0].string());
    ASSERT_TRUE(input.ok()) << input.status().ToString();
    auto expected = ReadOnnxTensorFile(set.output.string());
    ASSERT_TRUE(expected.ok()) << expected.status().ToString();

    StatusOr<std::unique_ptr<Backend>> backend = InternalError("no backend");
    if (kind == BackendKind::kReference) {
      backend = CreateReferenceBackend(*graph);
    } else {
      auto optimized = OptimizeForInference(**graph);
      ASSERT_TRUE(optimized.ok()) << optimized.status().ToString();
      backend = CreateDnnlBackend(*optimized, BackendOptions{});
    }
    ASSERT_TRUE(backend.ok()) << backend.status().ToString();
    ASSERT_GE(input->rank(), 1);
    auto plan = (*backend)->Compile(input->dims()[0]);
    ASSERT_TRUE(plan.ok()) << plan.status().ToString();
    ASSERT_EQ((*plan)->input_dims(), input->dims());
    ASSERT_EQ((*plan)->output_dims(), expected->dims());
    Tensor output(expected->dims());
    Status run = (*plan)->Run(input->data(), output.data());
    ASSERT_TRUE(run.ok()) << run.ToString();

    double max_expected = 0;
    double max_diff = 0;
    int64_t worst = 0;
    for (int64_t i = 0; i < expected->size(); ++i) {
      max_expected = std::max(max_expected, std::fabs(static_cast<double>((*expected)[i])));
      const double diff = std::fabs(static_cast<double>(output[i]) - static_cast<double>((*expected)[i]));
      if (!(diff <= max_diff)) {  // also catches NaN
        max_diff = std::isnan(diff) ? INFINITY : diff;
        worst = i;
      }
    }
    const double tolerance = kRelTolerance * max_expected + kAbsTolerance;
    EXPECT_LE(max_diff, tolerance) << "worst element " << worst << ": got " << output[worst] << ", expected "
                                   << (*expected)[worst] << " (max|expected| " << max_expected << ")";
  }
}

TEST_P(OnnxNodeTest, Reference) { Run(BackendKind::kReference); }
TEST_P(OnnxNodeTest, Dnnl) { Run(BackendKind::kDnnl); }

INSTANTIATE_TEST_SUITE_P(Onnx, OnnxNodeTest, ::testing::ValuesIn(AllTests()),
                         [](const ::testing::TestParamInfo<NodeTestCase>& info) { return info.param.test_name; });
// Without test data there are no cases; OnnxNodeTestInventory then fails and says why.
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(OnnxNodeTest);

TEST(OnnxNodeTestInventory, TestDataIsInstalledAndTheOutOfScopeListIsTight) {
  const Discovery found = DiscoverTests();
  for (const std::string& dir : found.missing) {
    ADD_FAILURE() << "ONNX backend test data is missing: " << dir << " is not a directory. Install the Debian "
                  << "package " << kDataPackage << " (tools/scripts/install_deps.sh does) or set "
                  << "CNNSERVE_ONNX_TEST_DATA to a copy of onnx/backend/test/data";
  }
  if (!found.missing.empty()) return;
  for (const std::string& path : found.unreadable) ADD_FAILURE() << "cannot parse " << path;
  std::set<std::string> ids;
  for (const NodeTestCase& test : found.tests) ids.insert(test.id);
  for (const OutOfScope& entry : kOutOfScope) {
    EXPECT_EQ(ids.count(entry.test), 1u)
        << entry.test << " is listed as out of scope but is not a discovered test";
  }
  // The op filter must find these and none may be out of scope.
  for (const char* name : kMustRun) {
    EXPECT_EQ(ids.count(name), 1u) << name << " is not discovered (its model uses an unsupported op?)";
    EXPECT_FALSE(OutOfScopeReason(name).has_value()) << name << " must run but is listed in kOutOfScope";
  }
  const int out_of_scope = static_cast<int>(std::size(kOutOfScope));
  std::cout << "ONNX test directories: " << found.all_count << "; using only supported ops: " << found.tests.size()
            << "; out of scope: " << out_of_scope << "; run: " << found.tests.size() - out_of_scope << "\n";
}

}  // namespace
}  // namespace cnnserve
