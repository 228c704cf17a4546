// Conformance: runs shape inference and the reference kernels on the ONNX backend node tests
// (onnx/backend/test/data/node/<test>/test_data_set_0/{input,output}_N.pb) and compares with ONNX's expected
// outputs. The node attributes are restated here as engine attributes (the engine does not read ONNX files);
// the tensors are read from the TensorProto files with a minimal protobuf wire-format reader.
//
// Data directory: $CNNSERVE_ONNX_NODE_TEST_DIR, else the Debian python3-onnx copy. Skipped when absent.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "engine/ops/op.h"
#include "tests/engine/ops/op_test_util.h"

namespace cnnserve {
namespace {

namespace fs = std::filesystem;

constexpr char kDefaultNodeTestDir[] = "/usr/lib/python3/dist-packages/onnx/backend/test/data/node";
constexpr int kOnnxFloat = 1;
constexpr int kOnnxInt64 = 7;

// ---- A minimal reader of the protobuf wire format, enough for onnx.TensorProto ----

class WireReader {
 public:
  explicit WireReader(std::string_view data) : data_(data) {}
  bool done() const { return pos_ >= data_.size(); }

  bool ReadVarint(uint64_t* value) {
    *value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= data_.size()) return false;
      const auto byte = static_cast<uint8_t>(data_[pos_++]);
      *value |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) return true;
    }
    return false;
  }
  bool ReadFixed(size_t bytes, std::string_view* out) {
    if (data_.size() - pos_ < bytes) return false;
    *out = data_.substr(pos_, bytes);
    pos_ += bytes;
    return true;
  }
  bool ReadLengthDelimited(std::string_view* out) {
    uint64_t length = 0;
    return ReadVarint(&length) && length <= data_.size() - pos_ && ReadFixed(static_cast<size_t>(length), out);
  }
  bool Skip(uint64_t wire_type) {
    uint64_t ignored = 0;
    std::string_view bytes;
    switch (wire_type) {
      case 0:
        return ReadVarint(&ignored);
      case 1:
        return ReadFixed(8, &bytes);
      case 2:
        return ReadLengthDelimited(&bytes);
      case 5:
        return ReadFixed(4, &bytes);
      default:
        return false;
    }
  }

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

struct OnnxTensor {
  Dims dims;
  int data_type = 0;
  std::vector<float> floats;
  std::vector<int64_t> int64s;
};

// Appends the varints of `packed` (or the single varint of a non-packed field) to `out`.
bool ReadInt64s(WireReader& reader, uint64_t wire_type, std::vector<int64_t>* out) {
  uint64_t v = 0;
  if (wire_type == 0) {
    if (!reader.ReadVarint(&v)) return false;
    out->push_back(static_cast<int64_t>(v));
    return true;
  }
  std::string_view packed;
  if (wire_type != 2 || !reader.ReadLengthDelimited(&packed)) return false;
  WireReader inner(packed);
  while (!inner.done()) {
    if (!inner.ReadVarint(&v)) return false;
    out->push_back(static_cast<int64_t>(v));
  }
  return true;
}

void AppendFloats(std::string_view bytes, std::vector<float>* out) {
  for (size_t i = 0; i + 4 <= bytes.size(); i += 4) {
    float f;
    std::memcpy(&f, bytes.data() + i, 4);  // little-endian, as on x86-64 and aarch64
    out->push_back(f);
  }
}

std::optional<OnnxTensor> ReadTensorProto(const fs::path& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return std::nullopt;
  const std::string data((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  WireReader reader(data);
  OnnxTensor t;
  std::string_view raw;
  while (!reader.done()) {
    uint64_t tag = 0;
    if (!reader.ReadVarint(&tag)) return std::nullopt;
    const uint64_t field = tag >> 3;
    const uint64_t wire_type = tag & 7;
    bool ok = true;
    if (field == 1) {  // dims
      ok = ReadInt64s(reader, wire_type, &t.dims);
    } else if (field == 2 && wire_type == 0) {  // data_type
      uint64_t v = 0;
      ok = reader.ReadVarint(&v);
      t.data_type = static_cast<int>(v);
    } else if (field == 4 && wire_type == 2) {  // float_data, packed
      std::string_view packed;
      ok = reader.ReadLengthDelimited(&packed);
      AppendFloats(packed, &t.floats);
    } else if (field == 4 && wire_type == 5) {  // float_data, one value
      std::string_view one;
      ok = reader.ReadFixed(4, &one);
      AppendFloats(one, &t.floats);
    } else if (field == 7) {  // int64_data
      ok = ReadInt64s(reader, wire_type, &t.int64s);
    } else if (field == 9 && wire_type == 2) {  // raw_data
      ok = reader.ReadLengthDelimited(&raw);
    } else {
      ok = reader.Skip(wire_type);
    }
    if (!ok) return std::nullopt;
  }
  if (!raw.empty()) {
    if (t.data_type == kOnnxFloat) {
      AppendFloats(raw, &t.floats);
    } else if (t.data_type == kOnnxInt64) {
      for (size_t i = 0; i + 8 <= raw.size(); i += 8) {
        int64_t v;
        std::memcpy(&v, raw.data() + i, 8);
        t.int64s.push_back(v);
      }
    }
  }
  return t;
}

// ---- The cases ----

// How the ONNX test's inputs map onto the engine node.
enum class ExtraInput {
  kNone,          // every input_N.pb is a node input
  kReshapeShape,  // input_1 is Reshape's constant shape, moved into ReshapeAttrs::shape
};

struct NodeCase {
  const char* name;  // directory under the node test dir
  OpType type;
  OpAttrs attrs;
  ExtraInput extra = ExtraInput::kNone;
};

std::vector<NodeCase> Cases() {
  using P = PoolAttrs;
  using C = ConvAttrs;
  return {
      {"test_add", OpType::kAdd, {}},
      {"test_add_bcast", OpType::kAdd, {}},
      {"test_averagepool_1d_default", OpType::kAveragePool, P{.kernel_shape = {2}}},
      {"test_averagepool_2d_ceil", OpType::kAveragePool,
       P{.kernel_shape = {3, 3}, .strides = {2, 2}, .ceil_mode = true}},
      {"test_averagepool_2d_default", OpType::kAveragePool, P{.kernel_shape = {2, 2}}},
      {"test_averagepool_2d_pads", OpType::kAveragePool, P{.kernel_shape = {3, 3}, .pads = {2, 2, 2, 2}}},
      {"test_averagepool_2d_pads_count_include_pad", OpType::kAveragePool,
       P{.kernel_shape = {3, 3}, .pads = {2, 2, 2, 2}, .count_include_pad = true}},
      {"test_averagepool_2d_precomputed_pads", OpType::kAveragePool,
       P{.kernel_shape = {5, 5}, .pads = {2, 2, 2, 2}}},
      {"test_averagepool_2d_precomputed_pads_count_include_pad", OpType::kAveragePool,
       P{.kernel_shape = {5, 5}, .pads = {2, 2, 2, 2}, .count_include_pad = true}},
      {"test_averagepool_2d_precomputed_same_upper", OpType::kAveragePool,
       P{.kernel_shape = {3, 3}, .strides = {2, 2}, .auto_pad = AutoPad::kSameUpper}},
      {"test_averagepool_2d_precomputed_strides", OpType::kAveragePool,
       P{.kernel_shape = {2, 2}, .strides = {2, 2}}},
      {"test_averagepool_2d_same_lower", OpType::kAveragePool,
       P{.kernel_shape = {2, 2}, .auto_pad = AutoPad::kSameLower}},
      {"test_averagepool_2d_same_upper", OpType::kAveragePool,
       P{.kernel_shape = {2, 2}, .auto_pad = AutoPad::kSameUpper}},
      {"test_averagepool_2d_strides", OpType::kAveragePool, P{.kernel_shape = {5, 5}, .strides = {3, 3}}},
      {"test_averagepool_3d_default", OpType::kAveragePool, P{.kernel_shape = {2, 2, 2}}},
      {"test_basic_conv_with_padding", OpType::kConv, C{.kernel_shape = {3, 3}, .pads = {1, 1, 1, 1}}},
      {"test_basic_conv_without_padding", OpType::kConv, C{.kernel_shape = {3, 3}, .pads = {0, 0, 0, 0}}},
      {"test_conv_with_autopad_same", OpType::kConv,
       C{.kernel_shape = {3, 3}, .strides = {2, 2}, .auto_pad = AutoPad::kSameLower}},
      {"test_conv_with_strides_and_asymmetric_padding", OpType::kConv,
       C{.kernel_shape = {3, 3}, .strides = {2, 2}, .pads = {1, 0, 1, 0}}},
      {"test_conv_with_strides_no_padding", OpType::kConv,
       C{.kernel_shape = {3, 3}, .strides = {2, 2}, .pads = {0, 0, 0, 0}}},
      {"test_conv_with_strides_padding", OpType::kConv,
       C{.kernel_shape = {3, 3}, .strides = {2, 2}, .pads = {1, 1, 1, 1}}},
      {"test_batchnorm_epsilon", OpType::kBatchNormalization, BatchNormAttrs{.epsilon = 0.01f}},
      {"test_batchnorm_example", OpType::kBatchNormalization, BatchNormAttrs{}},
      {"test_dropout_default", OpType::kDropout, {}},
      {"test_dropout_default_ratio", OpType::kDropout, {}},
      {"test_dropout_default_old", OpType::kDropout, {}},
      {"test_dropout_random_old", OpType::kDropout, {}},
      {"test_flatten_axis0", OpType::kFlatten, FlattenAttrs{.axis = 0}},
      {"test_flatten_axis1", OpType::kFlatten, FlattenAttrs{.axis = 1}},
      {"test_flatten_axis2", OpType::kFlatten, FlattenAttrs{.axis = 2}},
      {"test_flatten_axis3", OpType::kFlatten, FlattenAttrs{.axis = 3}},
      {"test_flatten_default_axis", OpType::kFlatten, FlattenAttrs{}},
      {"test_flatten_negative_axis1", OpType::kFlatten, FlattenAttrs{.axis = -1}},
      {"test_flatten_negative_axis2", OpType::kFlatten, FlattenAttrs{.axis = -2}},
      {"test_flatten_negative_axis3", OpType::kFlatten, FlattenAttrs{.axis = -3}},
      {"test_flatten_negative_axis4", OpType::kFlatten, FlattenAttrs{.axis = -4}},
      {"test_gemm_all_attributes", OpType::kGemm,
       GemmAttrs{.alpha = 0.25f, .beta = 0.35f, .trans_a = true, .trans_b = true}},
      {"test_gemm_alpha", OpType::kGemm, GemmAttrs{.alpha = 0.5f}},
      {"test_gemm_beta", OpType::kGemm, GemmAttrs{.beta = 0.5f}},
      {"test_gemm_default_matrix_bias", OpType::kGemm, GemmAttrs{}},
      {"test_gemm_default_no_bias", OpType::kGemm, GemmAttrs{}},
      {"test_gemm_default_scalar_bias", OpType::kGemm, GemmAttrs{}},
      {"test_gemm_default_single_elem_vector_bias", OpType::kGemm, GemmAttrs{}},
      {"test_gemm_default_vector_bias", OpType::kGemm, GemmAttrs{}},
      {"test_gemm_default_zero_bias", OpType::kGemm, GemmAttrs{}},
      {"test_gemm_transposeA", OpType::kGemm, GemmAttrs{.trans_a = true}},
      {"test_gemm_transposeB", OpType::kGemm, GemmAttrs{.trans_b = true}},
      {"test_globalaveragepool", OpType::kGlobalAveragePool, {}},
      {"test_globalaveragepool_precomputed", OpType::kGlobalAveragePool, {}},
      {"test_identity", OpType::kIdentity, {}},
      {"test_lrn", OpType::kLrn, LrnAttrs{.size = 3, .alpha = 0.0002f, .beta = 0.5f, .bias = 2.0f}},
      {"test_lrn_default", OpType::kLrn, LrnAttrs{.size = 3}},
      {"test_matmul_2d", OpType::kMatMul, {}},
      {"test_matmul_3d", OpType::kMatMul, {}},
      {"test_matmul_4d", OpType::kMatMul, {}},
      {"test_maxpool_1d_default", OpType::kMaxPool, P{.kernel_shape = {2}}},
      {"test_maxpool_2d_ceil", OpType::kMaxPool, P{.kernel_shape = {3, 3}, .strides = {2, 2}, .ceil_mode = true}},
      {"test_maxpool_2d_default", OpType::kMaxPool, P{.kernel_shape = {2, 2}}},
      {"test_maxpool_2d_dilations", OpType::kMaxPool,
       P{.kernel_shape = {2, 2}, .strides = {1, 1}, .dilations = {2, 2}}},
      {"test_maxpool_2d_pads", OpType::kMaxPool, P{.kernel_shape = {3, 3}, .pads = {2, 2, 2, 2}}},
      {"test_maxpool_2d_precomputed_pads", OpType::kMaxPool, P{.kernel_shape = {5, 5}, .pads = {2, 2, 2, 2}}},
      {"test_maxpool_2d_precomputed_same_upper", OpType::kMaxPool,
       P{.kernel_shape = {3, 3}, .strides = {2, 2}, .auto_pad = AutoPad::kSameUpper}},
      {"test_maxpool_2d_precomputed_strides", OpType::kMaxPool, P{.kernel_shape = {2, 2}, .strides = {2, 2}}},
      {"test_maxpool_2d_same_lower", OpType::kMaxPool, P{.kernel_shape = {2, 2}, .auto_pad = AutoPad::kSameLower}},
      {"test_maxpool_2d_same_upper", OpType::kMaxPool, P{.kernel_shape = {2, 2}, .auto_pad = AutoPad::kSameUpper}},
      {"test_maxpool_2d_strides", OpType::kMaxPool, P{.kernel_shape = {5, 5}, .strides = {3, 3}}},
      {"test_maxpool_3d_default", OpType::kMaxPool, P{.kernel_shape = {2, 2, 2}}},
      {"test_relu", OpType::kRelu, {}},
      {"test_reshape_extended_dims", OpType::kReshape, ReshapeAttrs{}, ExtraInput::kReshapeShape},
      {"test_reshape_negative_dim", OpType::kReshape, ReshapeAttrs{}, ExtraInput::kReshapeShape},
      {"test_reshape_negative_extended_dims", OpType::kReshape, ReshapeAttrs{}, ExtraInput::kReshapeShape},
      {"test_reshape_one_dim", OpType::kReshape, ReshapeAttrs{}, ExtraInput::kReshapeShape},
      {"test_reshape_reduced_dims", OpType::kReshape, ReshapeAttrs{}, ExtraInput::kReshapeShape},
      {"test_reshape_reordered_all_dims", OpType::kReshape, ReshapeAttrs{}, ExtraInput::kReshapeShape},
      {"test_reshape_reordered_last_dims", OpType::kReshape, ReshapeAttrs{}, ExtraInput::kReshapeShape},
      {"test_reshape_zero_and_negative_dim", OpType::kReshape, ReshapeAttrs{}, ExtraInput::kReshapeShape},
      {"test_reshape_zero_dim", OpType::kReshape, ReshapeAttrs{}, ExtraInput::kReshapeShape},
      {"test_softmax_axis_0", OpType::kSoftmax, SoftmaxAttrs{.axis = 0}},
      {"test_softmax_axis_1", OpType::kSoftmax, SoftmaxAttrs{.axis = 1}},
      {"test_softmax_axis_2", OpType::kSoftmax, SoftmaxAttrs{.axis = 2}},
      {"test_softmax_default_axis", OpType::kSoftmax, SoftmaxAttrs{}},
      {"test_softmax_example", OpType::kSoftmax, SoftmaxAttrs{}},
      {"test_softmax_large_number", OpType::kSoftmax, SoftmaxAttrs{}},
      {"test_softmax_negative_axis", OpType::kSoftmax, SoftmaxAttrs{.axis = -1}},
  };
}

// gtest prints a failing parameter with this instead of its bytes.
void PrintTo(const NodeCase& c, std::ostream* os) { *os << c.name; }

fs::path NodeTestDir() {
  const char* env = std::getenv("CNNSERVE_ONNX_NODE_TEST_DIR");
  return env != nullptr && *env != '\0' ? fs::path(env) : fs::path(kDefaultNodeTestDir);
}

class OnnxNodeTest : public ::testing::TestWithParam<NodeCase> {};

TEST_P(OnnxNodeTest, MatchesOnnxExpectedOutput) {
  const NodeCase& c = GetParam();
  const fs::path data_set = NodeTestDir() / c.name / "test_data_set_0";
  if (!fs::exists(data_set)) GTEST_SKIP() << "no ONNX node test data at " << data_set;

  std::vector<OnnxTensor> inputs;
  for (int i = 0;; ++i) {
    const fs::path path = data_set / ("input_" + std::to_string(i) + ".pb");
    if (!fs::exists(path)) break;
    std::optional<OnnxTensor> t = ReadTensorProto(path);
    ASSERT_TRUE(t.has_value()) << "cannot parse " << path;
    inputs.push_back(std::move(*t));
  }
  std::optional<OnnxTensor> expected = ReadTensorProto(data_set / "output_0.pb");
  ASSERT_TRUE(expected.has_value()) << "cannot parse output_0.pb";
  ASSERT_EQ(expected->data_type, kOnnxFloat);

  OpAttrs attrs = c.attrs;
  if (c.extra == ExtraInput::kReshapeShape) {
    ASSERT_EQ(inputs.size(), 2u);
    ASSERT_EQ(inputs[1].data_type, kOnnxInt64);
    std::get<ReshapeAttrs>(attrs).shape = inputs[1].int64s;
    inputs.pop_back();
  }
  std::vector<Tensor> tensors;
  for (const OnnxTensor& t : inputs) {
    ASSERT_EQ(t.data_type, kOnnxFloat);
    StatusOr<Tensor> tensor = Tensor::FromVector(t.dims, t.floats);
    ASSERT_TRUE(tensor.ok()) << tensor.status().ToString();
    tensors.push_back(std::move(tensor).value());
  }
  std::vector<const Tensor*> pointers;
  for (const Tensor& t : tensors) pointers.push_back(&t);

  Node node = testing::MakeNode(c.type, attrs, static_cast<int>(pointers.size()));
  StatusOr<Tensor> y = testing::RunOp(node, pointers);
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  ASSERT_EQ(y->dims(), expected->dims) << "got " << DimsToString(y->dims()) << ", ONNX expects "
                                       << DimsToString(expected->dims);
  ASSERT_EQ(static_cast<size_t>(y->size()), expected->floats.size());
  int mismatches = 0;
  for (int64_t i = 0; i < y->size() && mismatches < 10; ++i) {
    const float want = expected->floats[i];
    const float got = (*y)[i];
    if (std::fabs(got - want) > 1e-5f + 1e-4f * std::fabs(want)) {
      ADD_FAILURE() << "element " << i << ": got " << got << ", ONNX expects " << want;
      ++mismatches;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Node, OnnxNodeTest, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<NodeCase>& info) {
                           return std::string(info.param.name);
                         });

}  // namespace
}  // namespace cnnserve
