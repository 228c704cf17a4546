// Reference kernels on small tensors whose results were worked out by hand (the arithmetic is in the comments).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <optional>
#include <vector>

#include "engine/ops/op.h"
#include "tests/engine/ops/op_test_util.h"

namespace cnnserve {
namespace {

using ::cnnserve::testing::MakeNode;
using ::cnnserve::testing::MakeTensor;
using ::cnnserve::testing::RunOp;
using ::cnnserve::testing::Values;
using ::testing::ElementsAreArray;
using ::testing::FloatNear;
using ::testing::HasSubstr;
using ::testing::Pointwise;

constexpr float kTolerance = 1e-5f;

// Runs `node` on `inputs` and checks dims and values.
void ExpectRun(Node node, const std::vector<const Tensor*>& inputs, const Dims& want_dims,
               const std::vector<float>& want) {
  StatusOr<Tensor> y = RunOp(node, inputs);
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_EQ(y->dims(), want_dims) << DimsToString(y->dims());
  EXPECT_THAT(Values(*y), Pointwise(FloatNear(kTolerance), want));
}

std::vector<float> Iota(int n, float start = 1.0f) {
  std::vector<float> v(n);
  for (int i = 0; i < n; ++i) v[i] = start + static_cast<float>(i);
  return v;
}

// ---- Conv ----

TEST(ConvReferenceTest, Sobel3x3WithPadding) {
  // X = 1..16 as 4x4, horizontal Sobel kernel, pads 1. E.g. y[0][0]: the window covers x[0..1][0..1] with
  // weights w[1..2][1..2] = (0, -2; 0, -1): -2*2 - 1*6 = -10. y[0][3]: w[1][0]*x[0][2] + w[2][0]*x[1][2] =
  // 2*3 + 1*7 = 13. Interior: (x[i][j] - x[i][j+2]) = -2 per row, weighted 1, 2, 1 -> -8.
  Tensor x = MakeTensor({1, 1, 4, 4}, Iota(16));
  Tensor w = MakeTensor({1, 1, 3, 3}, {1, 0, -1, 2, 0, -2, 1, 0, -1});
  ExpectRun(MakeNode(OpType::kConv, ConvAttrs{.pads = {1, 1, 1, 1}}, 2), {&x, &w}, {1, 1, 4, 4},
            {-10, -6, -6, 13,  //
             -24, -8, -8, 28,  //
             -40, -8, -8, 44,  //
             -38, -6, -6, 41});
}

TEST(ConvReferenceTest, Stride2WithBias) {
  // 2x2 ones kernel, stride 2: sums of the four 2x2 blocks of 1..16, plus bias 1.
  Tensor x = MakeTensor({1, 1, 4, 4}, Iota(16));
  Tensor w = MakeTensor({1, 1, 2, 2}, {1, 1, 1, 1});
  Tensor b = MakeTensor({1}, {1});
  ExpectRun(MakeNode(OpType::kConv, ConvAttrs{.strides = {2, 2}}, 3), {&x, &w, &b}, {1, 1, 2, 2},
            {1 + 2 + 5 + 6 + 1, 3 + 4 + 7 + 8 + 1, 9 + 10 + 13 + 14 + 1, 11 + 12 + 15 + 16 + 1});
}

TEST(ConvReferenceTest, GroupsUseTheirOwnInputChannels) {
  // Two groups, two output channels each, 1x1 kernels [1, 2 | 3, 4]: outputs 0, 1 read channel 0 and outputs
  // 2, 3 read channel 1.
  Tensor x = MakeTensor({1, 2, 2, 2}, {1, 2, 3, 4, 10, 20, 30, 40});
  Tensor w = MakeTensor({4, 1, 1, 1}, {1, 2, 3, 4});
  ExpectRun(MakeNode(OpType::kConv, ConvAttrs{.group = 2}, 2), {&x, &w}, {1, 4, 2, 2},
            {1, 2, 3, 4, 2, 4, 6, 8, 30, 60, 90, 120, 40, 80, 120, 160});
}

TEST(ConvReferenceTest, SumsOverInputChannelsAndBatches) {
  // W = [10, 100] over two input channels: n0 = 1*10 + 2*100, n1 = 3*10 + 4*100.
  Tensor x = MakeTensor({2, 2, 1, 1}, {1, 2, 3, 4});
  Tensor w = MakeTensor({1, 2, 1, 1}, {10, 100});
  ExpectRun(MakeNode(OpType::kConv, ConvAttrs{}, 2), {&x, &w}, {2, 1, 1, 1}, {210, 430});
}

TEST(ConvReferenceTest, DilationWithAsymmetricPads1d) {
  // X = [1..5], W = [1, 10], dilation 2 (taps t and t+2), pads begin 1 / end 0: 4 outputs starting at -1..2.
  // o0: pad*1 + x1*10 = 20; o1: x0 + 10*x2 = 31; o2: x1 + 10*x3 = 42; o3: x2 + 10*x4 = 53.
  Tensor x = MakeTensor({1, 1, 5}, Iota(5));
  Tensor w = MakeTensor({1, 1, 2}, {1, 10});
  ExpectRun(MakeNode(OpType::kConv, ConvAttrs{.pads = {1, 0}, .dilations = {2}}, 2), {&x, &w}, {1, 1, 4},
            {20, 31, 42, 53});
}

TEST(ConvReferenceTest, SameUpperAndSameLowerPadDifferentSides) {
  // X = [1, 2, 3], W = [1, 10]: SAME needs one pad element. UPPER pads the end: [1+20, 2+30, 3+0];
  // LOWER pads the beginning: [0+10, 1+20, 2+30].
  Tensor x = MakeTensor({1, 1, 1, 3}, {1, 2, 3});
  Tensor w = MakeTensor({1, 1, 1, 2}, {1, 10});
  ExpectRun(MakeNode(OpType::kConv, ConvAttrs{.auto_pad = AutoPad::kSameUpper}, 2), {&x, &w}, {1, 1, 1, 3},
            {21, 32, 3});
  ExpectRun(MakeNode(OpType::kConv, ConvAttrs{.auto_pad = AutoPad::kSameLower}, 2), {&x, &w}, {1, 1, 1, 3},
            {10, 21, 32});
}

TEST(ConvReferenceTest, Conv3dSumsTheCube) {
  // 2x2x2 ones kernel over 1..8: 36.
  Tensor x = MakeTensor({1, 1, 2, 2, 2}, Iota(8));
  Tensor w = MakeTensor({1, 1, 2, 2, 2}, std::vector<float>(8, 1.0f));
  ExpectRun(MakeNode(OpType::kConv, ConvAttrs{}, 2), {&x, &w}, {1, 1, 1, 1, 1}, {36});
}

TEST(ConvReferenceTest, KernelRejectsNonCanonicalAttributes) {
  // Calling the kernel without shape inference (pads not filled in) fails cleanly instead of reading garbage.
  Tensor x = MakeTensor({1, 1, 3, 3}, Iota(9));
  Tensor w = MakeTensor({1, 1, 3, 3}, Iota(9));
  Tensor y(Dims{1, 1, 1, 1});
  Node node = MakeNode(OpType::kConv, ConvAttrs{}, 2);
  Status s = GetOpDef(OpType::kConv).reference(KernelArgs{node, {&x, &w}, {&y}});
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
}

// ---- Relu ----

TEST(ReluReferenceTest, ClampsNegatives) {
  Tensor x = MakeTensor({2, 2}, {-1.0f, 0.0f, 2.5f, -0.5f});
  ExpectRun(MakeNode(OpType::kRelu, std::monostate{}, 1), {&x}, {2, 2}, {0, 0, 2.5f, 0});
}

// ---- MaxPool ----

TEST(MaxPoolReferenceTest, Dilations) {
  // ONNX test_maxpool_2d_dilations: taps (i, j), (i, j+2), (i+2, j), (i+2, j+2) of 1..16.
  Tensor x = MakeTensor({1, 1, 4, 4}, Iota(16));
  ExpectRun(MakeNode(OpType::kMaxPool, PoolAttrs{.kernel_shape = {2, 2}, .dilations = {2, 2}}, 1), {&x},
            {1, 1, 2, 2}, {11, 12, 15, 16});
}

TEST(MaxPoolReferenceTest, PaddingIsIgnoredNotZero) {
  // All inputs negative: a zero pad would win if it were counted.
  Tensor x = MakeTensor({1, 1, 2, 2}, {-1, -2, -3, -4});
  ExpectRun(MakeNode(OpType::kMaxPool, PoolAttrs{.kernel_shape = {2, 2}, .pads = {1, 1, 1, 1}}, 1), {&x},
            {1, 1, 3, 3}, {-1, -1, -2, -1, -1, -2, -3, -3, -4});
}

TEST(MaxPoolReferenceTest, CeilMode) {
  // ONNX test_maxpool_2d_ceil: 4x4, 3x3/2 ceil -> windows at 0 and 2, the second one clipped.
  Tensor x = MakeTensor({1, 1, 4, 4}, Iota(16));
  ExpectRun(MakeNode(OpType::kMaxPool, PoolAttrs{.kernel_shape = {3, 3}, .strides = {2, 2}, .ceil_mode = true}, 1),
            {&x}, {1, 1, 2, 2}, {11, 12, 15, 16});
}

TEST(MaxPoolReferenceTest, ChannelsAndBatchesAreIndependent) {
  Tensor x = MakeTensor({2, 2, 1, 2}, {1, 5, -1, -7, 3, 2, 8, 9});
  ExpectRun(MakeNode(OpType::kMaxPool, PoolAttrs{.kernel_shape = {1, 2}}, 1), {&x}, {2, 2, 1, 1}, {5, -1, 3, 9});
}

// ---- AveragePool ----

TEST(AveragePoolReferenceTest, PadsExcludedFromCount) {
  // X = 1..9 as 3x3, 2x2 windows, stride 1, pads 1: each window averages only the inputs it covers.
  // Corner (0,0) covers x00 = 1; (0,1) covers 1, 2 -> 1.5; centre (1,1) covers 1, 2, 4, 5 -> 3.
  Tensor x = MakeTensor({1, 1, 3, 3}, Iota(9));
  ExpectRun(MakeNode(OpType::kAveragePool, PoolAttrs{.kernel_shape = {2, 2}, .pads = {1, 1, 1, 1}}, 1), {&x},
            {1, 1, 4, 4},
            {1, 1.5f, 2.5f, 3,  //
             2.5f, 3, 4, 4.5f,  //
             5.5f, 6, 7, 7.5f,  //
             7, 7.5f, 8.5f, 9});
}

TEST(AveragePoolReferenceTest, PadsIncludedInCount) {
  // Same windows, every sum divided by 4. Sums: 1 3 5 3 / 5 12 16 9 / 11 24 28 15 / 7 15 17 9.
  Tensor x = MakeTensor({1, 1, 3, 3}, Iota(9));
  ExpectRun(MakeNode(OpType::kAveragePool,
                     PoolAttrs{.kernel_shape = {2, 2}, .pads = {1, 1, 1, 1}, .count_include_pad = true}, 1),
            {&x}, {1, 1, 4, 4},
            {0.25f, 0.75f, 1.25f, 0.75f,  //
             1.25f, 3, 4, 2.25f,          //
             2.75f, 6, 7, 3.75f,          //
             1.75f, 3.75f, 4.25f, 2.25f});
}

TEST(AveragePoolReferenceTest, CeilModeOverhangIsNeverCounted) {
  // [1..5], kernel 2, stride 2, ceil: the third window covers only x4 = 5 -> 5 with or without
  // count_include_pad (there is no explicit padding to include).
  Tensor x = MakeTensor({1, 1, 5}, Iota(5));
  for (bool include : {false, true}) {
    SCOPED_TRACE(include);
    ExpectRun(
        MakeNode(OpType::kAveragePool,
                 PoolAttrs{.kernel_shape = {2}, .strides = {2}, .ceil_mode = true, .count_include_pad = include},
                 1),
        {&x}, {1, 1, 3}, {1.5f, 3.5f, 5});
  }
}

TEST(AveragePoolReferenceTest, CeilModeWithPadsCountsOnlyExplicitPads) {
  // [1, 2, 3, 4], kernel 3, stride 2, pads 1/1, ceil -> 3 windows starting at -1, 1, 3.
  // Window -1: {pad, 1, 2}; window 1: {2, 3, 4}; window 3: {4, pad, overhang}.
  // Including pads: 3/3, 9/3, 4/2 (the overhang at 5 is beyond pad_end). Excluding: 3/2, 9/3, 4/1.
  Tensor x = MakeTensor({1, 1, 4}, {1, 2, 3, 4});
  const PoolAttrs base{.kernel_shape = {3}, .strides = {2}, .pads = {1, 1}, .ceil_mode = true};
  PoolAttrs include = base;
  include.count_include_pad = true;
  ExpectRun(MakeNode(OpType::kAveragePool, include, 1), {&x}, {1, 1, 3}, {1, 3, 2});
  ExpectRun(MakeNode(OpType::kAveragePool, base, 1), {&x}, {1, 1, 3}, {1.5f, 3, 4});
}

TEST(AveragePoolReferenceTest, CeilLastWindowStartingOnPadIsDropped) {
  // The inputs of ONNX test_averagepool_2d_ceil_last_window_starts_on_pad (channel 0): 2x2, kernel 3, stride 3,
  // pads 1, ceil -> a single window from -1 to 1 that covers the whole input. Excluding pads: sum / 4;
  // including pads: sum / 9 (ONNX's expected 0.1511; PyTorch gives the same two values).
  Tensor x = MakeTensor({1, 1, 2, 2}, {0.8580f, 0.0786f, 0.2692f, 0.1537f});
  const float sum = 0.8580f + 0.0786f + 0.2692f + 0.1537f;
  const PoolAttrs exclude{.kernel_shape = {3, 3}, .strides = {3, 3}, .pads = {1, 1, 1, 1}, .ceil_mode = true};
  PoolAttrs include = exclude;
  include.count_include_pad = true;
  ExpectRun(MakeNode(OpType::kAveragePool, exclude, 1), {&x}, {1, 1, 1, 1}, {sum / 4});
  ExpectRun(MakeNode(OpType::kAveragePool, include, 1), {&x}, {1, 1, 1, 1}, {sum / 9});
}

TEST(AveragePoolReferenceTest, SameUpperPrecomputed) {
  // ONNX test_averagepool_2d_precomputed_same_upper: 5x5, 3x3/2, pads resolved to 1 on every side.
  // (0,0): (1+2+6+7)/4 = 4; (1,1): (7+8+9+12+13+14+17+18+19)/9 = 13.
  Tensor x = MakeTensor({1, 1, 5, 5}, Iota(25));
  ExpectRun(MakeNode(OpType::kAveragePool,
                     PoolAttrs{.kernel_shape = {3, 3}, .strides = {2, 2}, .auto_pad = AutoPad::kSameUpper}, 1),
            {&x}, {1, 1, 3, 3}, {4, 5.5f, 7, 11.5f, 13, 14.5f, 19, 20.5f, 22});
}

// ---- GlobalAveragePool ----

TEST(GlobalAveragePoolReferenceTest, MeanPerChannel) {
  Tensor x = MakeTensor({1, 2, 2, 2}, {1, 2, 3, 4, 10, 20, 30, 41});
  ExpectRun(MakeNode(OpType::kGlobalAveragePool, std::monostate{}, 1), {&x}, {1, 2, 1, 1}, {2.5f, 25.25f});
}

// ---- LRN ----

TEST(LrnReferenceTest, SizeThreeByHand) {
  // X = [1, 2, 3] over channels; alpha / size = 1, beta = 1, bias = 1.
  // c0 sums c0..c1: 1 + 4 = 5 -> 1/6; c1 sums c0..c2: 14 -> 2/15; c2 sums c1..c2: 13 -> 3/14.
  Tensor x = MakeTensor({1, 3, 1, 1}, {1, 2, 3});
  ExpectRun(MakeNode(OpType::kLrn, LrnAttrs{.size = 3, .alpha = 3.0f, .beta = 1.0f, .bias = 1.0f}, 1), {&x},
            {1, 3, 1, 1}, {1.0f / 6, 2.0f / 15, 3.0f / 14});
}

TEST(LrnReferenceTest, EvenSizeLooksAhead) {
  // size 2: window c - floor(1/2) .. c + ceil(1/2) = c .. c+1. Sums: 1+4 = 5, 4+9 = 13, 9.
  // alpha / size = 1, beta 0.5, bias 1: y = x / sqrt(1 + sum).
  Tensor x = MakeTensor({1, 3, 1, 1}, {1, 2, 3});
  ExpectRun(MakeNode(OpType::kLrn, LrnAttrs{.size = 2, .alpha = 2.0f, .beta = 0.5f, .bias = 1.0f}, 1), {&x},
            {1, 3, 1, 1}, {1.0f / std::sqrt(6.0f), 2.0f / std::sqrt(14.0f), 3.0f / std::sqrt(10.0f)});
}

TEST(LrnReferenceTest, SpatialPositionsAreIndependent) {
  // Two channels [1, 2] and [3, 4] at two positions; size 3 covers both channels everywhere.
  // Position 0: 1 + 9 = 10 -> 1/11, 3/11; position 1: 4 + 16 = 20 -> 2/21, 4/21.
  Tensor x = MakeTensor({1, 2, 1, 2}, {1, 2, 3, 4});
  ExpectRun(MakeNode(OpType::kLrn, LrnAttrs{.size = 3, .alpha = 3.0f, .beta = 1.0f, .bias = 1.0f}, 1), {&x},
            {1, 2, 1, 2}, {1.0f / 11, 2.0f / 21, 3.0f / 11, 4.0f / 21});
}

TEST(LrnReferenceTest, AlexNetParameters) {
  // size 5, alpha 1e-4, beta 0.75, k 2 on a single channel of 10: (2 + 1e-4 / 5 * 100) ^ 0.75.
  Tensor x = MakeTensor({1, 1, 1, 1}, {10});
  ExpectRun(MakeNode(OpType::kLrn, LrnAttrs{.size = 5, .alpha = 1e-4f, .beta = 0.75f, .bias = 2.0f}, 1), {&x},
            {1, 1, 1, 1}, {10.0f / std::pow(2.002f, 0.75f)});
}

// ---- Gemm ----

TEST(GemmReferenceTest, AlphaBetaRowBias) {
  // A = [[1,2,3],[4,5,6]], B = [[1,0],[0,1],[1,1]] -> AB = [[4,5],[10,11]]; 2*AB + 0.5*[1,2].
  Tensor a = MakeTensor({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor b = MakeTensor({3, 2}, {1, 0, 0, 1, 1, 1});
  Tensor c = MakeTensor({2}, {1, 2});
  ExpectRun(MakeNode(OpType::kGemm, GemmAttrs{.alpha = 2.0f, .beta = 0.5f}, 3), {&a, &b, &c}, {2, 2},
            {8.5f, 11, 20.5f, 23});
}

TEST(GemmReferenceTest, TransposedOperandsAndColumnBias) {
  // The same product with A and B stored transposed; C = [[100],[200]] broadcasts along rows.
  Tensor at = MakeTensor({3, 2}, {1, 4, 2, 5, 3, 6});
  Tensor bt = MakeTensor({2, 3}, {1, 0, 1, 0, 1, 1});
  Tensor c = MakeTensor({2, 1}, {100, 200});
  ExpectRun(MakeNode(OpType::kGemm, GemmAttrs{.trans_a = true, .trans_b = true}, 3), {&at, &bt, &c}, {2, 2},
            {104, 105, 210, 211});
}

TEST(GemmReferenceTest, ScalarBiasAndNoBias) {
  Tensor a = MakeTensor({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor b = MakeTensor({3, 2}, {1, 0, 0, 1, 1, 1});
  Tensor c = MakeTensor({}, {7});
  ExpectRun(MakeNode(OpType::kGemm, GemmAttrs{}, 3), {&a, &b, &c}, {2, 2}, {11, 12, 17, 18});
  ExpectRun(MakeNode(OpType::kGemm, GemmAttrs{}, 2), {&a, &b}, {2, 2}, {4, 5, 10, 11});
  ExpectRun(MakeNode(OpType::kGemm, GemmAttrs{}, 3), {&a, &b, nullptr}, {2, 2}, {4, 5, 10, 11});
}

// ---- MatMul ----

TEST(MatMulReferenceTest, BatchBroadcast) {
  // One 2x2 matrix times three 2x1 columns [1,0], [0,1], [1,1]: columns 0, 1 and their sum.
  Tensor a = MakeTensor({1, 2, 2}, {1, 2, 3, 4});
  Tensor b = MakeTensor({3, 2, 1}, {1, 0, 0, 1, 1, 1});
  ExpectRun(MakeNode(OpType::kMatMul, std::monostate{}, 2), {&a, &b}, {3, 2, 1}, {1, 3, 2, 4, 3, 7});
}

TEST(MatMulReferenceTest, BatchedTimesMatrix) {
  // [[1,2]] and [[3,4]] times [[10],[100]].
  Tensor a = MakeTensor({2, 1, 2}, {1, 2, 3, 4});
  Tensor b = MakeTensor({2, 1}, {10, 100});
  ExpectRun(MakeNode(OpType::kMatMul, std::monostate{}, 2), {&a, &b}, {2, 1, 1}, {210, 430});
}

TEST(MatMulReferenceTest, OneDimensionalOperands) {
  Tensor v2 = MakeTensor({2}, {1, 2});
  Tensor m23 = MakeTensor({2, 3}, {1, 2, 3, 4, 5, 6});
  ExpectRun(MakeNode(OpType::kMatMul, std::monostate{}, 2), {&v2, &m23}, {3}, {9, 12, 15});
  Tensor v3 = MakeTensor({3}, {1, 0, -1});
  ExpectRun(MakeNode(OpType::kMatMul, std::monostate{}, 2), {&m23, &v3}, {2}, {-2, -2});
  Tensor w3 = MakeTensor({3}, {4, 5, 6});
  Tensor u3 = MakeTensor({3}, {1, 2, 3});
  ExpectRun(MakeNode(OpType::kMatMul, std::monostate{}, 2), {&u3, &w3}, {}, {32});
}

// ---- Add ----

TEST(AddReferenceTest, Broadcasting) {
  Tensor col = MakeTensor({2, 1}, {1, 2});
  Tensor row = MakeTensor({1, 3}, {10, 20, 30});
  ExpectRun(MakeNode(OpType::kAdd, std::monostate{}, 2), {&col, &row}, {2, 3}, {11, 21, 31, 12, 22, 32});
  Tensor m = MakeTensor({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor v = MakeTensor({3}, {100, 200, 300});
  ExpectRun(MakeNode(OpType::kAdd, std::monostate{}, 2), {&m, &v}, {2, 3}, {101, 202, 303, 104, 205, 306});
  Tensor s = MakeTensor({}, {0.5f});
  ExpectRun(MakeNode(OpType::kAdd, std::monostate{}, 2), {&s, &m}, {2, 3}, {1.5f, 2.5f, 3.5f, 4.5f, 5.5f, 6.5f});
}

// ---- Flatten, Reshape, Identity, Dropout ----

TEST(ShapeOpsReferenceTest, CopyDataWithNewDims) {
  Tensor x = MakeTensor({2, 3, 2}, Iota(12));
  ExpectRun(MakeNode(OpType::kFlatten, FlattenAttrs{.axis = 2}, 1), {&x}, {6, 2}, Iota(12));
  ExpectRun(MakeNode(OpType::kReshape, ReshapeAttrs{.shape = {0, -1}}, 1), {&x}, {2, 6}, Iota(12));
  ExpectRun(MakeNode(OpType::kIdentity, std::monostate{}, 1), {&x}, {2, 3, 2}, Iota(12));
  ExpectRun(MakeNode(OpType::kDropout, std::monostate{}, 1), {&x}, {2, 3, 2}, Iota(12));
}

TEST(DropoutReferenceTest, RatioIsIgnoredAndTrainingModeRejected) {
  Tensor x = MakeTensor({3}, {1, 2, 3});
  Tensor ratio = MakeTensor({}, {0.5f});
  Tensor off = MakeTensor({}, {0});
  ExpectRun(MakeNode(OpType::kDropout, std::monostate{}, 3), {&x, &ratio, &off}, {3}, {1, 2, 3});
  Tensor on = MakeTensor({}, {1});
  Node node = MakeNode(OpType::kDropout, std::monostate{}, 3);
  StatusOr<Tensor> y = RunOp(node, {&x, &ratio, &on});
  EXPECT_EQ(y.status().code(), StatusCode::kUnimplemented);
  EXPECT_THAT(y.status().message(), HasSubstr("training_mode"));
}

// ---- Softmax ----

TEST(SoftmaxReferenceTest, LastAxis) {
  // softmax([1, 2, 3]) = e^(i - 3) / (e^-2 + e^-1 + 1); softmax of equal values is uniform.
  Tensor x = MakeTensor({2, 3}, {1, 2, 3, 5, 5, 5});
  ExpectRun(MakeNode(OpType::kSoftmax, SoftmaxAttrs{}, 1), {&x}, {2, 3},
            {0.09003057f, 0.24472847f, 0.66524096f, 1.0f / 3, 1.0f / 3, 1.0f / 3});
}

TEST(SoftmaxReferenceTest, FirstAxis) {
  Tensor x = MakeTensor({2, 2}, {0, 7, 0, 7});
  ExpectRun(MakeNode(OpType::kSoftmax, SoftmaxAttrs{.axis = 0}, 1), {&x}, {2, 2}, {0.5f, 0.5f, 0.5f, 0.5f});
}

TEST(SoftmaxReferenceTest, LargeNumbersAreStable) {
  Tensor x = MakeTensor({1, 4}, {1000, 1001, 1002, 1003});
  ExpectRun(MakeNode(OpType::kSoftmax, SoftmaxAttrs{}, 1), {&x}, {1, 4},
            {0.0320586f, 0.08714432f, 0.23688282f, 0.64391426f});
}

TEST(SoftmaxReferenceTest, Coerce2dNormalisesTheWholeTrailingBlock) {
  // X [1, 2, 2] = [[0, 0], [0, ln 3]].
  // coerce_2d at axis 1: one row of 4 values, exps [1, 1, 1, 3] / 6.
  // opset-13 axis 1: pairs along axis 1: (0, 0) -> 0.5, 0.5 and (0, ln 3) -> 0.25, 0.75.
  Tensor x = MakeTensor({1, 2, 2}, {0, 0, 0, std::log(3.0f)});
  ExpectRun(MakeNode(OpType::kSoftmax, SoftmaxAttrs{.axis = 1, .coerce_2d = true}, 1), {&x}, {1, 2, 2},
            {1.0f / 6, 1.0f / 6, 1.0f / 6, 0.5f});
  ExpectRun(MakeNode(OpType::kSoftmax, SoftmaxAttrs{.axis = 1}, 1), {&x}, {1, 2, 2}, {0.5f, 0.25f, 0.5f, 0.75f});
}

// ---- BatchNormalization ----

TEST(BatchNormReferenceTest, PerChannelAffine) {
  // c0: scale 2, B 0.5, mean 2, var 4 -> (x - 2) / 2 * 2 + 0.5: 1 -> -0.5, 3 -> 1.5.
  // c1: scale 1, B -1, mean 10, var 0.25 -> (x - 10) / 0.5 - 1: 10 -> -1, 20 -> 19.
  Tensor x = MakeTensor({1, 2, 1, 2}, {1, 3, 10, 20});
  Tensor scale = MakeTensor({2}, {2, 1});
  Tensor bias = MakeTensor({2}, {0.5f, -1});
  Tensor mean = MakeTensor({2}, {2, 10});
  Tensor var = MakeTensor({2}, {4, 0.25f});
  ExpectRun(MakeNode(OpType::kBatchNormalization, BatchNormAttrs{.epsilon = 0.0f}, 5),
            {&x, &scale, &bias, &mean, &var}, {1, 2, 1, 2}, {-0.5f, 1.5f, -1, 19});
  // epsilon is added to var under the square root: with var [3.25, 0.25] and epsilon 0.75, c0 sees 4 again
  // (same results) and c1 sees 1: (x - 10) - 1: 10 -> -1, 20 -> 9.
  Tensor var2 = MakeTensor({2}, {3.25f, 0.25f});
  ExpectRun(MakeNode(OpType::kBatchNormalization, BatchNormAttrs{.epsilon = 0.75f}, 5),
            {&x, &scale, &bias, &mean, &var2}, {1, 2, 1, 2}, {-0.5f, 1.5f, -1, 9});
}

}  // namespace
}  // namespace cnnserve
