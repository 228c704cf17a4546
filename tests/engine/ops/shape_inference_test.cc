// Table tests for OpDef::infer: output dims, canonicalised attributes, idempotence and error codes/messages.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <variant>
#include <vector>

#include "engine/ops/op.h"
#include "tests/engine/ops/op_test_util.h"

namespace cnnserve {
namespace {

using ::cnnserve::testing::InferOne;
using ::cnnserve::testing::MakeNode;
using ::testing::HasSubstr;

constexpr StatusCode kOk = StatusCode::kOk;
constexpr StatusCode kInvalid = StatusCode::kInvalidArgument;
constexpr StatusCode kUnimplemented = StatusCode::kUnimplemented;

auto Tie(const std::monostate&) { return std::tuple<>(); }
auto Tie(const ConvAttrs& a) {
  return std::tie(a.group, a.kernel_shape, a.strides, a.pads, a.dilations, a.auto_pad);
}
auto Tie(const PoolAttrs& a) {
  return std::tie(a.kernel_shape, a.strides, a.pads, a.dilations, a.ceil_mode, a.count_include_pad, a.auto_pad);
}
auto Tie(const LrnAttrs& a) { return std::tie(a.size, a.alpha, a.beta, a.bias); }
auto Tie(const GemmAttrs& a) { return std::tie(a.alpha, a.beta, a.trans_a, a.trans_b); }
auto Tie(const FlattenAttrs& a) { return std::tie(a.axis); }
auto Tie(const ReshapeAttrs& a) { return std::tie(a.shape, a.allow_zero); }
auto Tie(const SoftmaxAttrs& a) { return std::tie(a.axis, a.coerce_2d); }
auto Tie(const BatchNormAttrs& a) { return std::tie(a.epsilon); }

bool SameAttrs(const OpAttrs& a, const OpAttrs& b) {
  if (a.index() != b.index()) return false;
  return std::visit(
      [&b](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        return Tie(x) == Tie(std::get<T>(b));
      },
      a);
}

struct InferCase {
  std::string name;
  OpType type;
  OpAttrs attrs;
  std::vector<std::optional<Dims>> inputs;
  Dims want;  // expected output dims when `code` is OK
  StatusCode code = kOk;
  std::string message = "";  // expected substring of the error message
};

// One case per line or two reads better than one field per line.
// clang-format off
std::vector<InferCase> Cases() {
  using D = Dims;
  const auto none = std::nullopt;
  return {
      // ---- Conv ----
      {"alexnet_conv1", OpType::kConv, ConvAttrs{.strides = {4, 4}}, {D{1, 3, 227, 227}, D{96, 3, 11, 11}},
       D{1, 96, 55, 55}},
      {"alexnet_conv1_bias_batch8", OpType::kConv, ConvAttrs{.strides = {4, 4}},
       {D{8, 3, 227, 227}, D{96, 3, 11, 11}, D{96}}, D{8, 96, 55, 55}},
      {"alexnet_conv2_grouped", OpType::kConv, ConvAttrs{.group = 2, .pads = {2, 2, 2, 2}},
       {D{1, 96, 27, 27}, D{256, 48, 5, 5}, D{256}}, D{1, 256, 27, 27}},
      {"zfnet_conv1", OpType::kConv, ConvAttrs{.strides = {2, 2}, .pads = {1, 1, 1, 1}},
       {D{1, 3, 224, 224}, D{96, 3, 7, 7}}, D{1, 96, 110, 110}},
      {"vgg_conv3x3_pad1", OpType::kConv, ConvAttrs{.pads = {1, 1, 1, 1}}, {D{1, 64, 224, 224}, D{64, 64, 3, 3}},
       D{1, 64, 224, 224}},
      {"depthwise", OpType::kConv, ConvAttrs{.group = 8, .pads = {1, 1, 1, 1}}, {D{1, 8, 5, 5}, D{8, 1, 3, 3}},
       D{1, 8, 5, 5}},
      {"asymmetric_pads_strides", OpType::kConv, ConvAttrs{.strides = {2, 2}, .pads = {1, 0, 1, 0}},
       {D{1, 1, 7, 5}, D{1, 1, 3, 3}}, D{1, 1, 4, 2}},
      {"asymmetric_pads_begin_end", OpType::kConv, ConvAttrs{.pads = {0, 0, 2, 1}}, {D{1, 1, 5, 5}, D{1, 1, 3, 3}},
       D{1, 1, 5, 4}},
      {"auto_pad_same_lower_stride2", OpType::kConv, ConvAttrs{.strides = {2, 2}, .auto_pad = AutoPad::kSameLower},
       {D{1, 1, 5, 5}, D{1, 1, 3, 3}}, D{1, 1, 3, 3}},
      {"auto_pad_same_upper", OpType::kConv, ConvAttrs{.auto_pad = AutoPad::kSameUpper},
       {D{1, 1, 4, 4}, D{2, 1, 2, 2}}, D{1, 2, 4, 4}},
      {"auto_pad_valid", OpType::kConv, ConvAttrs{.strides = {2, 2}, .auto_pad = AutoPad::kValid},
       {D{1, 1, 5, 6}, D{1, 1, 3, 3}}, D{1, 1, 2, 2}},
      {"auto_pad_same_with_zero_pads", OpType::kConv,
       ConvAttrs{.pads = {0, 0, 0, 0}, .auto_pad = AutoPad::kSameUpper}, {D{1, 1, 5, 5}, D{1, 1, 3, 3}},
       D{1, 1, 5, 5}},
      {"dilation", OpType::kConv, ConvAttrs{.dilations = {2, 2}}, {D{1, 1, 7, 7}, D{1, 1, 3, 3}}, D{1, 1, 3, 3}},
      {"conv1d", OpType::kConv, ConvAttrs{}, {D{1, 2, 10}, D{4, 2, 3}}, D{1, 4, 8}},
      {"conv3d", OpType::kConv, ConvAttrs{.pads = {1, 1, 1, 1, 1, 1}}, {D{1, 2, 4, 4, 4}, D{3, 2, 3, 3, 3}},
       D{1, 3, 4, 4, 4}},
      {"kernel_shape_matches_w", OpType::kConv, ConvAttrs{.kernel_shape = {3, 3}}, {D{1, 1, 5, 5}, D{1, 1, 3, 3}},
       D{1, 1, 3, 3}},
      {"conv_default_attrs_monostate", OpType::kConv, std::monostate{}, {D{1, 1, 5, 5}, D{1, 1, 3, 3}},
       D{1, 1, 3, 3}},
      {"group_does_not_divide_c", OpType::kConv, ConvAttrs{.group = 3}, {D{1, 64, 8, 8}, D{63, 21, 3, 3}}, {},
       kInvalid, "attribute 'group'=3 does not divide input channels 64"},
      {"group_does_not_divide_m", OpType::kConv, ConvAttrs{.group = 2}, {D{1, 4, 8, 8}, D{3, 2, 3, 3}}, {},
       kInvalid, "attribute 'group'=2 does not divide output channels 3"},
      {"group_zero", OpType::kConv, ConvAttrs{.group = 0}, {D{1, 4, 8, 8}, D{4, 4, 3, 3}}, {}, kInvalid,
       "attribute 'group'=0 must be positive"},
      {"channel_mismatch", OpType::kConv, ConvAttrs{}, {D{1, 3, 227, 227}, D{96, 4, 11, 11}}, {}, kInvalid,
       "input 'W' [96x4x11x11] has 4 input channels per group (dim 1) but input 'X' [1x3x227x227] has 3"},
      {"grouped_channel_mismatch", OpType::kConv, ConvAttrs{.group = 2}, {D{1, 96, 27, 27}, D{256, 96, 5, 5}}, {},
       kInvalid, "has 96 input channels per group"},
      {"w_rank_mismatch", OpType::kConv, ConvAttrs{}, {D{1, 3, 8, 8}, D{4, 3, 3}}, {}, kInvalid,
       "input 'W' has shape [4x3x3] of rank 3; expected the rank of input 'X'"},
      {"x_rank_too_small", OpType::kConv, ConvAttrs{}, {D{3, 8}, D{4, 3}}, {}, kInvalid,
       "input 'X' has shape [3x8] of rank 2"},
      {"x_4_spatial_axes", OpType::kConv, ConvAttrs{}, {D{1, 1, 2, 2, 2, 2}, D{1, 1, 1, 1, 1, 1}}, {},
       kUnimplemented, "at most 3 spatial axes"},
      {"stride_zero", OpType::kConv, ConvAttrs{.strides = {0, 1}}, {D{1, 1, 5, 5}, D{1, 1, 3, 3}}, {}, kInvalid,
       "attribute 'strides'=[0, 1] has value 0"},
      {"stride_negative", OpType::kConv, ConvAttrs{.strides = {2, -1}}, {D{1, 1, 5, 5}, D{1, 1, 3, 3}}, {},
       kInvalid, "attribute 'strides'=[2, -1] has value -1"},
      {"strides_wrong_length", OpType::kConv, ConvAttrs{.strides = {2}}, {D{1, 1, 5, 5}, D{1, 1, 3, 3}}, {},
       kInvalid, "attribute 'strides'=[2] has 1 entries, expected 2"},
      {"dilation_zero", OpType::kConv, ConvAttrs{.dilations = {1, 0}}, {D{1, 1, 5, 5}, D{1, 1, 3, 3}}, {},
       kInvalid, "attribute 'dilations'=[1, 0] has value 0"},
      {"pads_wrong_length", OpType::kConv, ConvAttrs{.pads = {1, 1}}, {D{1, 1, 5, 5}, D{1, 1, 3, 3}}, {}, kInvalid,
       "attribute 'pads'=[1, 1] has 2 entries, expected 4"},
      {"pad_negative", OpType::kConv, ConvAttrs{.pads = {0, -1, 0, 0}}, {D{1, 1, 5, 5}, D{1, 1, 3, 3}}, {},
       kInvalid, "attribute 'pads'=[0, -1, 0, 0] has value -1"},
      {"pad_huge", OpType::kConv, ConvAttrs{.pads = {0, 0, 0, int64_t{1} << 40}}, {D{1, 1, 5, 5}, D{1, 1, 3, 3}},
       {}, kInvalid, "attribute 'pads'"},
      {"kernel_larger_than_padded_input", OpType::kConv, ConvAttrs{.pads = {1, 0, 0, 0}},
       {D{1, 1, 5, 5}, D{1, 1, 7, 3}}, {}, kInvalid,
       "kernel extent 7 (kernel 7, dilation 1) on spatial axis 0 exceeds the padded input extent 6"},
      {"dilated_kernel_larger_than_input", OpType::kConv, ConvAttrs{.dilations = {3, 3}},
       {D{1, 1, 5, 5}, D{1, 1, 3, 3}}, {}, kInvalid, "kernel extent 7 (kernel 3, dilation 3)"},
      {"valid_kernel_larger_than_input", OpType::kConv, ConvAttrs{.auto_pad = AutoPad::kValid},
       {D{1, 1, 2, 5}, D{1, 1, 3, 3}}, {}, kInvalid, "(attribute 'auto_pad'=VALID)"},
      {"kernel_shape_mismatch", OpType::kConv, ConvAttrs{.kernel_shape = {5, 5}}, {D{1, 1, 8, 8}, D{1, 1, 3, 3}},
       {}, kInvalid, "attribute 'kernel_shape'=[5, 5] does not match the spatial dims of input 'W' [1x1x3x3]"},
      {"bias_wrong_size", OpType::kConv, ConvAttrs{}, {D{1, 1, 5, 5}, D{4, 1, 3, 3}, D{3}}, {}, kInvalid,
       "input 'B' has shape [3]; expected [4]"},
      {"bias_wrong_rank", OpType::kConv, ConvAttrs{}, {D{1, 1, 5, 5}, D{4, 1, 3, 3}, D{1, 4}}, {}, kInvalid,
       "input 'B' has shape [1x4]"},
      {"auto_pad_and_pads", OpType::kConv, ConvAttrs{.pads = {1, 1, 1, 1}, .auto_pad = AutoPad::kSameUpper},
       {D{1, 1, 5, 5}, D{1, 1, 3, 3}}, {}, kInvalid, "must not be given together with attribute 'auto_pad'"},
      {"missing_w", OpType::kConv, ConvAttrs{}, {D{1, 1, 5, 5}, none}, {}, kInvalid,
       "required input 'W' is missing"},
      {"too_many_inputs", OpType::kConv, ConvAttrs{}, {D{1, 1, 5, 5}, D{1, 1, 3, 3}, D{1}, D{1}}, {}, kInvalid,
       "has 4 inputs, expected 2..3"},
      {"too_few_inputs", OpType::kConv, ConvAttrs{}, {D{1, 1, 5, 5}}, {}, kInvalid, "has 1 inputs, expected 2..3"},
      {"zero_dim_input", OpType::kConv, ConvAttrs{}, {D{1, 0, 5, 5}, D{1, 1, 3, 3}}, {}, kInvalid,
       "input 'X': dimension 1 of shape [1x0x5x5] is 0"},
      {"wrong_attr_type", OpType::kConv, PoolAttrs{}, {D{1, 1, 5, 5}, D{1, 1, 3, 3}}, {}, kInvalid,
       "node attributes have the wrong type for op Conv"},

      // ---- MaxPool / AveragePool ----
      {"alexnet_pool1", OpType::kMaxPool, PoolAttrs{.kernel_shape = {3, 3}, .strides = {2, 2}}, {D{1, 96, 55, 55}},
       D{1, 96, 27, 27}},
      {"alexnet_pool5", OpType::kMaxPool, PoolAttrs{.kernel_shape = {3, 3}, .strides = {2, 2}},
       {D{1, 256, 13, 13}}, D{1, 256, 6, 6}},
      {"vgg_pool", OpType::kMaxPool, PoolAttrs{.kernel_shape = {2, 2}, .strides = {2, 2}}, {D{2, 64, 224, 224}},
       D{2, 64, 112, 112}},
      {"lenet_avgpool", OpType::kAveragePool, PoolAttrs{.kernel_shape = {2, 2}, .strides = {2, 2}},
       {D{1, 6, 28, 28}}, D{1, 6, 14, 14}},
      {"floor_mode", OpType::kMaxPool, PoolAttrs{.kernel_shape = {3, 3}, .strides = {2, 2}}, {D{1, 1, 4, 4}},
       D{1, 1, 1, 1}},
      {"ceil_mode", OpType::kMaxPool, PoolAttrs{.kernel_shape = {3, 3}, .strides = {2, 2}, .ceil_mode = true},
       {D{1, 1, 4, 4}}, D{1, 1, 2, 2}},
      {"ceil_mode_avg_pads", OpType::kAveragePool,
       PoolAttrs{.kernel_shape = {3, 3}, .strides = {2, 2}, .pads = {1, 1, 1, 1}, .ceil_mode = true},
       {D{1, 1, 6, 6}}, D{1, 1, 4, 4}},
      // The ceil rounding would give 2, but the second window would start in the right padding.
      {"ceil_last_window_starts_on_pad", OpType::kAveragePool,
       PoolAttrs{.kernel_shape = {3, 3}, .strides = {3, 3}, .pads = {1, 1, 1, 1}, .ceil_mode = true},
       {D{1, 3, 2, 2}}, D{1, 3, 1, 1}},
      {"ceil_drops_window_in_right_pad_1d", OpType::kMaxPool,
       PoolAttrs{.kernel_shape = {2}, .strides = {2}, .pads = {1, 1}, .ceil_mode = true}, {D{1, 1, 5}},
       D{1, 1, 3}},
      {"ceil_keeps_window_starting_in_input", OpType::kMaxPool,
       PoolAttrs{.kernel_shape = {2}, .strides = {2}, .ceil_mode = true}, {D{1, 1, 5}}, D{1, 1, 3}},
      {"pool_asymmetric_pads", OpType::kMaxPool, PoolAttrs{.kernel_shape = {3, 3}, .pads = {0, 1, 2, 0}},
       {D{1, 1, 5, 5}}, D{1, 1, 5, 4}},
      {"pool_same_upper_precomputed", OpType::kAveragePool,
       PoolAttrs{.kernel_shape = {3, 3}, .strides = {2, 2}, .auto_pad = AutoPad::kSameUpper}, {D{1, 1, 5, 5}},
       D{1, 1, 3, 3}},
      {"pool_same_lower", OpType::kMaxPool, PoolAttrs{.kernel_shape = {2, 2}, .auto_pad = AutoPad::kSameLower},
       {D{1, 3, 32, 32}}, D{1, 3, 32, 32}},
      {"pool_valid_with_ceil", OpType::kMaxPool,
       PoolAttrs{.kernel_shape = {2}, .strides = {2}, .ceil_mode = true, .auto_pad = AutoPad::kValid},
       {D{1, 1, 5}}, D{1, 1, 2}},
      {"pool_same_upper_with_ceil", OpType::kMaxPool,
       PoolAttrs{.kernel_shape = {3}, .strides = {2}, .ceil_mode = true, .auto_pad = AutoPad::kSameUpper},
       {D{1, 1, 6}}, D{1, 1, 3}},
      {"maxpool_dilations", OpType::kMaxPool, PoolAttrs{.kernel_shape = {2, 2}, .dilations = {2, 2}},
       {D{1, 1, 4, 4}}, D{1, 1, 2, 2}},
      {"maxpool_1d", OpType::kMaxPool, PoolAttrs{.kernel_shape = {2}}, {D{1, 3, 32}}, D{1, 3, 31}},
      {"avgpool_3d", OpType::kAveragePool, PoolAttrs{.kernel_shape = {2, 2, 2}}, {D{1, 3, 8, 8, 8}},
       D{1, 3, 7, 7, 7}},
      {"avgpool_dilations_of_one", OpType::kAveragePool, PoolAttrs{.kernel_shape = {2, 2}, .dilations = {1, 1}},
       {D{1, 1, 4, 4}}, D{1, 1, 3, 3}},
      {"pool_missing_kernel_shape", OpType::kMaxPool, PoolAttrs{}, {D{1, 1, 4, 4}}, {}, kInvalid,
       "attribute 'kernel_shape' is required"},
      {"pool_kernel_shape_wrong_rank", OpType::kMaxPool, PoolAttrs{.kernel_shape = {3}}, {D{1, 1, 4, 4}}, {},
       kInvalid, "attribute 'kernel_shape'=[3] has 1 entries, expected 2"},
      {"pool_kernel_zero", OpType::kMaxPool, PoolAttrs{.kernel_shape = {3, 0}}, {D{1, 1, 4, 4}}, {}, kInvalid,
       "attribute 'kernel_shape'=[3, 0] has value 0"},
      {"pool_stride_zero", OpType::kAveragePool, PoolAttrs{.kernel_shape = {2, 2}, .strides = {0, 0}},
       {D{1, 1, 4, 4}}, {}, kInvalid, "attribute 'strides'=[0, 0] has value 0"},
      {"pool_pad_not_smaller_than_kernel", OpType::kMaxPool,
       PoolAttrs{.kernel_shape = {3, 3}, .pads = {3, 0, 0, 0}}, {D{1, 1, 4, 4}}, {}, kInvalid,
       "pooling pads must be smaller than the kernel extent 3"},
      {"pool_pads_wrong_length", OpType::kMaxPool, PoolAttrs{.kernel_shape = {3, 3}, .pads = {1, 1, 1}},
       {D{1, 1, 4, 4}}, {}, kInvalid, "attribute 'pads'=[1, 1, 1] has 3 entries, expected 4"},
      {"pool_kernel_larger_than_input", OpType::kMaxPool, PoolAttrs{.kernel_shape = {5, 5}}, {D{1, 1, 4, 4}}, {},
       kInvalid, "kernel extent 5 (kernel 5, dilation 1) on spatial axis 0 exceeds the padded input extent 4"},
      {"avgpool_dilations_unsupported", OpType::kAveragePool,
       PoolAttrs{.kernel_shape = {2, 2}, .dilations = {2, 2}}, {D{1, 1, 4, 4}}, {}, kUnimplemented,
       "attribute 'dilations'=[2, 2] is not supported for AveragePool"},
      {"pool_rank2", OpType::kMaxPool, PoolAttrs{.kernel_shape = {2}}, {D{1, 4}}, {}, kInvalid,
       "input 'X' has shape [1x4] of rank 2"},
      {"pool_wrong_attr_type", OpType::kAveragePool, ConvAttrs{}, {D{1, 1, 4, 4}}, {}, kInvalid,
       "wrong type for op AveragePool"},

      // ---- GlobalAveragePool ----
      {"global_avg_pool", OpType::kGlobalAveragePool, std::monostate{}, {D{2, 512, 7, 7}}, D{2, 512, 1, 1}},
      {"global_avg_pool_1d", OpType::kGlobalAveragePool, std::monostate{}, {D{1, 3, 9}}, D{1, 3, 1}},
      {"global_avg_pool_rank2", OpType::kGlobalAveragePool, std::monostate{}, {D{1, 3}}, {}, kInvalid,
       "input 'X' has shape [1x3] of rank 2"},

      // ---- LRN ----
      {"lrn", OpType::kLrn, LrnAttrs{.size = 5, .alpha = 1e-4f, .beta = 0.75f, .bias = 2.0f}, {D{1, 96, 55, 55}},
       D{1, 96, 55, 55}},
      {"lrn_size_zero", OpType::kLrn, LrnAttrs{.size = 0}, {D{1, 3, 4, 4}}, {}, kInvalid,
       "attribute 'size'=0 must be positive"},
      {"lrn_size_unset", OpType::kLrn, std::monostate{}, {D{1, 3, 4, 4}}, {}, kInvalid, "attribute 'size'=0"},
      {"lrn_rank1", OpType::kLrn, LrnAttrs{.size = 3}, {D{5}}, {}, kInvalid, "input 'X' has shape [5] of rank 1"},

      // ---- Gemm ----
      {"alexnet_fc6", OpType::kGemm, GemmAttrs{.trans_b = true}, {D{1, 9216}, D{4096, 9216}, D{4096}}, D{1, 4096}},
      {"gemm_trans_a", OpType::kGemm, GemmAttrs{.trans_a = true}, {D{6, 3}, D{6, 4}, D{1, 4}}, D{3, 4}},
      {"gemm_matrix_bias", OpType::kGemm, GemmAttrs{}, {D{3, 6}, D{6, 4}, D{3, 4}}, D{3, 4}},
      {"gemm_column_bias", OpType::kGemm, GemmAttrs{}, {D{3, 6}, D{6, 4}, D{3, 1}}, D{3, 4}},
      {"gemm_scalar_bias", OpType::kGemm, GemmAttrs{}, {D{2, 3}, D{3, 4}, D{}}, D{2, 4}},
      {"gemm_no_bias", OpType::kGemm, GemmAttrs{}, {D{2, 10}, D{10, 3}}, D{2, 3}},
      {"gemm_absent_bias", OpType::kGemm, GemmAttrs{}, {D{2, 10}, D{10, 3}, none}, D{2, 3}},
      {"gemm_k_mismatch", OpType::kGemm, GemmAttrs{}, {D{1, 9216}, D{4096, 9216}}, {}, kInvalid,
       "inner dimensions differ: input 'A' [1x9216] (attribute 'transA'=0) has K=9216 but input 'B' "
       "[4096x9216] (attribute 'transB'=0) has K=4096"},
      {"gemm_bias_not_broadcastable", OpType::kGemm, GemmAttrs{}, {D{3, 6}, D{6, 4}, D{3}}, {}, kInvalid,
       "input 'C' has shape [3] which does not broadcast to the output [3x4]"},
      {"gemm_bias_rank3", OpType::kGemm, GemmAttrs{}, {D{3, 6}, D{6, 4}, D{1, 3, 4}}, {}, kInvalid,
       "input 'C' has shape [1x3x4]"},
      {"gemm_a_rank3", OpType::kGemm, GemmAttrs{}, {D{1, 3, 6}, D{6, 4}}, {}, kInvalid,
       "input 'A' has shape [1x3x6] of rank 3; expected rank 2"},

      // ---- MatMul ----
      {"matmul_2d", OpType::kMatMul, std::monostate{}, {D{3, 4}, D{4, 5}}, D{3, 5}},
      {"matmul_batched", OpType::kMatMul, std::monostate{}, {D{2, 3, 4}, D{2, 4, 5}}, D{2, 3, 5}},
      {"matmul_batch_broadcast", OpType::kMatMul, std::monostate{}, {D{2, 1, 3, 4}, D{5, 4, 6}}, D{2, 5, 3, 6}},
      {"matmul_1d_a", OpType::kMatMul, std::monostate{}, {D{4}, D{2, 4, 3}}, D{2, 3}},
      {"matmul_1d_b", OpType::kMatMul, std::monostate{}, {D{2, 3, 4}, D{4}}, D{2, 3}},
      {"matmul_1d_both", OpType::kMatMul, std::monostate{}, {D{4}, D{4}}, D{}},
      {"matmul_k_mismatch", OpType::kMatMul, std::monostate{}, {D{3, 4}, D{5, 6}}, {}, kInvalid,
       "inner dimensions differ: input 'A' [3x4] has K=4 but input 'B' [5x6] has K=5"},
      {"matmul_batch_mismatch", OpType::kMatMul, std::monostate{}, {D{2, 3, 4}, D{3, 4, 5}}, {}, kInvalid,
       "do not broadcast"},
      {"matmul_scalar", OpType::kMatMul, std::monostate{}, {D{}, D{3}}, {}, kInvalid, "input 'A' is a scalar"},

      // ---- Add ----
      {"add_same", OpType::kAdd, std::monostate{}, {D{3, 4, 5}, D{3, 4, 5}}, D{3, 4, 5}},
      {"add_bcast_vector", OpType::kAdd, std::monostate{}, {D{3, 4, 5}, D{5}}, D{3, 4, 5}},
      {"add_bcast_both", OpType::kAdd, std::monostate{}, {D{2, 1}, D{1, 3}}, D{2, 3}},
      {"add_scalar", OpType::kAdd, std::monostate{}, {D{}, D{2, 2}}, D{2, 2}},
      {"add_mismatch", OpType::kAdd, std::monostate{}, {D{2, 3}, D{4}}, {}, kInvalid,
       "input 'A' [2x3] and input 'B' [4] do not broadcast (output axis 1: 3 vs 4)"},
      {"add_rank9", OpType::kAdd, std::monostate{}, {D(9, 1), D{1}}, {}, kUnimplemented, "ranks above 8"},

      // ---- Flatten ----
      {"flatten_default", OpType::kFlatten, FlattenAttrs{}, {D{1, 256, 6, 6}}, D{1, 9216}},
      {"flatten_axis0", OpType::kFlatten, FlattenAttrs{.axis = 0}, {D{2, 3, 4, 5}}, D{1, 120}},
      {"flatten_axis_rank", OpType::kFlatten, FlattenAttrs{.axis = 4}, {D{2, 3, 4, 5}}, D{120, 1}},
      {"flatten_negative", OpType::kFlatten, FlattenAttrs{.axis = -1}, {D{2, 3, 4, 5}}, D{24, 5}},
      {"flatten_negative_rank", OpType::kFlatten, FlattenAttrs{.axis = -4}, {D{2, 3, 4, 5}}, D{1, 120}},
      {"flatten_axis_too_big", OpType::kFlatten, FlattenAttrs{.axis = 5}, {D{2, 3, 4, 5}}, {}, kInvalid,
       "attribute 'axis'=5 is out of range [-4, 4] for input rank 4"},
      {"flatten_axis_too_small", OpType::kFlatten, FlattenAttrs{.axis = -5}, {D{2, 3, 4, 5}}, {}, kInvalid,
       "attribute 'axis'=-5 is out of range"},

      // ---- Reshape ----
      {"reshape_copy_and_infer", OpType::kReshape, ReshapeAttrs{.shape = {0, -1}}, {D{4, 256, 6, 6}}, D{4, 9216}},
      {"reshape_explicit", OpType::kReshape, ReshapeAttrs{.shape = {4, 2, 3}}, {D{2, 3, 4}}, D{4, 2, 3}},
      {"reshape_zero_and_negative", OpType::kReshape, ReshapeAttrs{.shape = {2, 0, 1, -1}}, {D{2, 3, 4}},
       D{2, 3, 1, 4}},
      {"reshape_one_dim", OpType::kReshape, ReshapeAttrs{.shape = {-1}}, {D{2, 3, 4}}, D{24}},
      {"reshape_two_minus_one", OpType::kReshape, ReshapeAttrs{.shape = {-1, -1}}, {D{2, 3}}, {}, kInvalid,
       "attribute 'shape'=[-1, -1] has more than one -1"},
      {"reshape_count_mismatch", OpType::kReshape, ReshapeAttrs{.shape = {5, 4}}, {D{2, 3, 4}}, {}, kInvalid,
       "attribute 'shape'=[5, 4] has 20 elements but input 'data' [2x3x4] has 24"},
      {"reshape_count_too_big", OpType::kReshape, ReshapeAttrs{.shape = {5, 5}}, {D{2, 3, 4}}, {}, kInvalid,
       "attribute 'shape'=[5, 5] has more elements than the 24 of input 'data' [2x3x4]"},
      {"reshape_not_multiple", OpType::kReshape, ReshapeAttrs{.shape = {5, -1}}, {D{2, 3, 4}}, {}, kInvalid,
       "is not a multiple of 5"},
      {"reshape_too_many_elements", OpType::kReshape, ReshapeAttrs{.shape = {1 << 20, 1 << 20, -1}}, {D{2, 3, 4}},
       {}, kInvalid, "has more elements than the 24"},
      {"reshape_zero_beyond_rank", OpType::kReshape, ReshapeAttrs{.shape = {24, 1, 0}}, {D{24}}, {}, kInvalid,
       "has 0 at index 2 but input 'data' [24] has rank 1"},
      {"reshape_negative_entry", OpType::kReshape, ReshapeAttrs{.shape = {-2, 12}}, {D{2, 3, 4}}, {}, kInvalid,
       "has invalid entry -2"},
      {"reshape_allow_zero", OpType::kReshape, ReshapeAttrs{.shape = {0, 24}, .allow_zero = true}, {D{1, 24}}, {},
       kUnimplemented, "empty tensors are not supported"},

      // ---- Dropout, Identity, Relu ----
      {"dropout", OpType::kDropout, std::monostate{}, {D{3, 4, 5}}, D{3, 4, 5}},
      {"dropout_with_ratio", OpType::kDropout, std::monostate{}, {D{3, 4, 5}, D{}}, D{3, 4, 5}},
      {"dropout_ratio_not_scalar", OpType::kDropout, std::monostate{}, {D{3, 4, 5}, D{2}}, {}, kInvalid,
       "input 'ratio' has shape [2]; expected a scalar"},
      {"identity", OpType::kIdentity, std::monostate{}, {D{1, 1, 2, 2}}, D{1, 1, 2, 2}},
      {"relu", OpType::kRelu, std::monostate{}, {D{1, 96, 55, 55}}, D{1, 96, 55, 55}},
      {"relu_two_inputs", OpType::kRelu, std::monostate{}, {D{2}, D{2}}, {}, kInvalid, "has 2 inputs, expected 1"},

      // ---- Softmax ----
      {"softmax_default_axis", OpType::kSoftmax, SoftmaxAttrs{}, {D{1, 1000}}, D{1, 1000}},
      {"softmax_axis0", OpType::kSoftmax, SoftmaxAttrs{.axis = 0}, {D{3, 4, 5}}, D{3, 4, 5}},
      {"softmax_coerce_2d", OpType::kSoftmax, SoftmaxAttrs{.axis = 1, .coerce_2d = true}, {D{3, 4, 5}},
       D{3, 4, 5}},
      {"softmax_axis_out_of_range", OpType::kSoftmax, SoftmaxAttrs{.axis = 3}, {D{3, 4, 5}}, {}, kInvalid,
       "attribute 'axis'=3 is out of range [-3, 2] for input rank 3"},
      {"softmax_scalar", OpType::kSoftmax, SoftmaxAttrs{}, {D{}}, {}, kInvalid, "is a scalar"},

      // ---- BatchNormalization ----
      {"batch_norm", OpType::kBatchNormalization, BatchNormAttrs{}, {D{2, 3, 4, 5}, D{3}, D{3}, D{3}, D{3}},
       D{2, 3, 4, 5}},
      {"batch_norm_bad_scale", OpType::kBatchNormalization, BatchNormAttrs{},
       {D{2, 3, 4, 5}, D{4}, D{3}, D{3}, D{3}}, {}, kInvalid,
       "input 'scale' has shape [4]; expected [3] (channels of input 'X' [2x3x4x5])"},
      {"batch_norm_bad_var", OpType::kBatchNormalization, BatchNormAttrs{},
       {D{2, 3, 4, 5}, D{3}, D{3}, D{3}, D{1, 3}}, {}, kInvalid, "input 'input_var' has shape [1x3]"},
      {"batch_norm_negative_epsilon", OpType::kBatchNormalization, BatchNormAttrs{.epsilon = -1.0f},
       {D{2, 3}, D{3}, D{3}, D{3}, D{3}}, {}, kInvalid, "attribute 'epsilon'"},
      {"batch_norm_missing_mean", OpType::kBatchNormalization, BatchNormAttrs{}, {D{2, 3}, D{3}, D{3}, none, D{3}},
       {}, kInvalid, "required input 'input_mean' is missing"},
  };
}
// clang-format on

TEST(ShapeInferenceTest, Table) {
  for (const InferCase& c : Cases()) {
    SCOPED_TRACE(c.name);
    Node node = MakeNode(c.type, c.attrs, static_cast<int>(c.inputs.size()));
    StatusOr<Dims> got = InferOne(node, c.inputs);
    if (c.code != kOk) {
      ASSERT_FALSE(got.ok()) << "expected " << StatusCodeName(c.code) << ", got dims "
                             << DimsToString(got.value());
      EXPECT_EQ(got.status().code(), c.code) << got.status().ToString();
      EXPECT_THAT(got.status().message(), HasSubstr(c.message));
      continue;
    }
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(*got, c.want) << "got " << DimsToString(*got) << ", want " << DimsToString(c.want);

    // Idempotent: inference on the canonicalised node changes nothing and gives the same dims.
    Node again = node;
    StatusOr<Dims> got_again = InferOne(again, c.inputs);
    ASSERT_TRUE(got_again.ok()) << got_again.status().ToString();
    EXPECT_EQ(*got_again, *got);
    EXPECT_TRUE(SameAttrs(again.attrs, node.attrs)) << "attributes changed on the second run";
  }
}

// Canonicalisation details that other components rely on.
TEST(ShapeInferenceTest, ConvFillsDefaults) {
  Node node = MakeNode(OpType::kConv, ConvAttrs{.strides = {4, 4}}, 2);
  ASSERT_TRUE(InferOne(node, {Dims{1, 3, 227, 227}, Dims{96, 3, 11, 11}}).ok());
  const auto& a = std::get<ConvAttrs>(node.attrs);
  EXPECT_EQ(a.kernel_shape, (std::vector<int64_t>{11, 11}));
  EXPECT_EQ(a.strides, (std::vector<int64_t>{4, 4}));
  EXPECT_EQ(a.dilations, (std::vector<int64_t>{1, 1}));
  EXPECT_EQ(a.pads, (std::vector<int64_t>{0, 0, 0, 0}));
  EXPECT_EQ(a.auto_pad, AutoPad::kNotSet);
  EXPECT_EQ(a.group, 1);
}

TEST(ShapeInferenceTest, ConvMonostateBecomesConvAttrs) {
  Node node = MakeNode(OpType::kConv, std::monostate{}, 2);
  ASSERT_TRUE(InferOne(node, {Dims{1, 1, 5, 5}, Dims{1, 1, 3, 3}}).ok());
  ASSERT_TRUE(std::holds_alternative<ConvAttrs>(node.attrs));
  EXPECT_EQ(std::get<ConvAttrs>(node.attrs).kernel_shape, (std::vector<int64_t>{3, 3}));
}

struct AutoPadCase {
  AutoPad auto_pad;
  Dims x;
  std::vector<int64_t> kernel;
  std::vector<int64_t> strides;
  std::vector<int64_t> want_pads;
  Dims want;
};

TEST(ShapeInferenceTest, ConvAutoPadResolvesIntoPads) {
  const std::vector<AutoPadCase> cases = {
      // ONNX test_conv_with_autopad_same: 5x5, 3x3/2 SAME_LOWER -> 3x3, total pad 2 per axis.
      {AutoPad::kSameLower, {1, 1, 5, 5}, {3, 3}, {2, 2}, {1, 1, 1, 1}, {1, 1, 3, 3}},
      // Odd total padding: the extra element goes to the end (UPPER) or the beginning (LOWER).
      {AutoPad::kSameUpper, {1, 1, 4, 4}, {2, 2}, {1, 1}, {0, 0, 1, 1}, {1, 1, 4, 4}},
      {AutoPad::kSameLower, {1, 1, 4, 4}, {2, 2}, {1, 1}, {1, 1, 0, 0}, {1, 1, 4, 4}},
      // 224 / 2 with a 7x7 kernel: out 112, total (111 * 2 + 7 - 224) = 5 -> 2 + 3.
      {AutoPad::kSameUpper, {1, 3, 224, 224}, {7, 7}, {2, 2}, {2, 2, 3, 3}, {1, 1, 112, 112}},
      {AutoPad::kSameLower, {1, 3, 224, 224}, {7, 7}, {2, 2}, {3, 3, 2, 2}, {1, 1, 112, 112}},
      // Kernel smaller than stride: no padding needed.
      {AutoPad::kSameUpper, {1, 1, 5, 6}, {1, 1}, {3, 3}, {0, 0, 0, 0}, {1, 1, 2, 2}},
      {AutoPad::kValid, {1, 1, 7, 8}, {3, 3}, {2, 2}, {0, 0, 0, 0}, {1, 1, 3, 3}},
  };
  for (const AutoPadCase& c : cases) {
    SCOPED_TRACE(DimsToString(c.x) + " auto_pad " + std::to_string(static_cast<int>(c.auto_pad)));
    Dims w = {c.want[1], c.x[1], c.kernel[0], c.kernel[1]};
    Node node = MakeNode(OpType::kConv, ConvAttrs{.strides = c.strides, .auto_pad = c.auto_pad}, 2);
    StatusOr<Dims> got = InferOne(node, {c.x, w});
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(*got, c.want);
    const auto& a = std::get<ConvAttrs>(node.attrs);
    EXPECT_EQ(a.pads, c.want_pads);
    EXPECT_EQ(a.auto_pad, AutoPad::kNotSet);
  }
}

TEST(ShapeInferenceTest, PoolAutoPadClearsCeilMode) {
  Node node =
      MakeNode(OpType::kMaxPool,
               PoolAttrs{.kernel_shape = {2}, .strides = {2}, .ceil_mode = true, .auto_pad = AutoPad::kValid}, 1);
  StatusOr<Dims> got = InferOne(node, {Dims{1, 1, 5}});
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, (Dims{1, 1, 2}));
  const auto& a = std::get<PoolAttrs>(node.attrs);
  EXPECT_FALSE(a.ceil_mode);
  EXPECT_EQ(a.auto_pad, AutoPad::kNotSet);
  EXPECT_EQ(a.pads, (std::vector<int64_t>{0, 0}));
  EXPECT_EQ(a.dilations, (std::vector<int64_t>{1}));
}

TEST(ShapeInferenceTest, PoolKeepsCeilModeWithExplicitPads) {
  Node node =
      MakeNode(OpType::kMaxPool, PoolAttrs{.kernel_shape = {3, 3}, .strides = {2, 2}, .ceil_mode = true}, 1);
  ASSERT_TRUE(InferOne(node, {Dims{1, 1, 4, 4}}).ok());
  const auto& a = std::get<PoolAttrs>(node.attrs);
  EXPECT_TRUE(a.ceil_mode);
  EXPECT_EQ(a.pads, (std::vector<int64_t>{0, 0, 0, 0}));
  EXPECT_EQ(a.strides, (std::vector<int64_t>{2, 2}));
}

TEST(ShapeInferenceTest, AxesAreNormalised) {
  Node flatten = MakeNode(OpType::kFlatten, FlattenAttrs{.axis = -3}, 1);
  ASSERT_TRUE(InferOne(flatten, {Dims{2, 3, 4, 5}}).ok());
  EXPECT_EQ(std::get<FlattenAttrs>(flatten.attrs).axis, 1);

  Node softmax = MakeNode(OpType::kSoftmax, SoftmaxAttrs{}, 1);
  ASSERT_TRUE(InferOne(softmax, {Dims{2, 3, 4}}).ok());
  EXPECT_EQ(std::get<SoftmaxAttrs>(softmax.attrs).axis, 2);
}

TEST(ShapeInferenceTest, ReshapeKeepsShapeAttributeForOtherBatches) {
  Node node = MakeNode(OpType::kReshape, ReshapeAttrs{.shape = {0, -1}}, 1);
  StatusOr<Dims> batch1 = InferOne(node, {Dims{1, 256, 6, 6}});
  ASSERT_TRUE(batch1.ok());
  EXPECT_EQ(*batch1, (Dims{1, 9216}));
  EXPECT_EQ(std::get<ReshapeAttrs>(node.attrs).shape, (std::vector<int64_t>{0, -1}));
  StatusOr<Dims> batch8 = InferOne(node, {Dims{8, 256, 6, 6}});
  ASSERT_TRUE(batch8.ok());
  EXPECT_EQ(*batch8, (Dims{8, 9216}));
}

TEST(ShapeInferenceTest, DropoutMaskOutputIsUnimplemented) {
  Node node = MakeNode(OpType::kDropout, std::monostate{}, 1);
  node.outputs = {"y", "mask"};
  std::vector<Dims> outputs;
  Status s = GetOpDef(OpType::kDropout).infer(node, {Dims{3, 4}}, &outputs);
  EXPECT_EQ(s.code(), StatusCode::kUnimplemented) << s.ToString();
  EXPECT_THAT(s.message(), HasSubstr("mask output not supported"));

  // An absent (empty-named) mask output is fine.
  node.outputs = {"y", ""};
  s = GetOpDef(OpType::kDropout).infer(node, {Dims{3, 4}}, &outputs);
  EXPECT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(outputs.size(), 1u);
  EXPECT_EQ(outputs[0], (Dims{3, 4}));
}

TEST(ShapeInferenceTest, MaxPoolIndicesOutputIsUnimplemented) {
  Node node = MakeNode(OpType::kMaxPool, PoolAttrs{.kernel_shape = {2, 2}}, 1);
  node.outputs = {"y", "indices"};
  std::vector<Dims> outputs;
  Status s = GetOpDef(OpType::kMaxPool).infer(node, {Dims{1, 1, 4, 4}}, &outputs);
  EXPECT_EQ(s.code(), StatusCode::kUnimplemented) << s.ToString();
  EXPECT_THAT(s.message(), HasSubstr("'Indices'"));
}

TEST(ShapeInferenceTest, ExtraOutputIsRejected) {
  Node node = MakeNode(OpType::kRelu, std::monostate{}, 1);
  node.outputs = {"y", "z"};
  std::vector<Dims> outputs;
  Status s = GetOpDef(OpType::kRelu).infer(node, {Dims{3}}, &outputs);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("has 2 outputs"));
}

}  // namespace
}  // namespace cnnserve
