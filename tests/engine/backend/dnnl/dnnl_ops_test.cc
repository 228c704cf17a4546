// Every op of the oneDNN backend against the reference backend, over randomized shapes and attributes.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "engine/backend/dnnl/dnnl_backend.h"
#include "engine/graph/passes.h"
#include "tests/engine/backend/dnnl/dnnl_test_util.h"

namespace cnnserve::dnnl_test {
namespace {

int64_t Uniform(std::mt19937& rng, int64_t lo, int64_t hi) {
  return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
}

template <typename T>
T Pick(std::mt19937& rng, const std::vector<T>& values) {
  return values[static_cast<size_t>(Uniform(rng, 0, static_cast<int64_t>(values.size()) - 1))];
}

std::string Join(const std::vector<int64_t>& v) {
  std::string s;
  for (int64_t x : v) s += (s.empty() ? "" : ",") + std::to_string(x);
  return "[" + s + "]";
}

const std::vector<int64_t> kBatches = {1, 3, 8};

TEST(DnnlOpsTest, ConvRandomized) {
  std::mt19937 rng(42);
  for (int trial = 0; trial < 150; ++trial) {
    int64_t group = Pick<int64_t>(rng, {1, 1, 1, 2, 3, 4, 0});
    const bool depthwise = group == 0;
    const int64_t cpg = depthwise ? 1 : Pick<int64_t>(rng, {1, 2, 3, 5, 8, 16, 32});
    const int64_t opg = depthwise ? Uniform(rng, 1, 2) : Pick<int64_t>(rng, {1, 3, 4, 7, 16, 24});
    if (depthwise) group = Pick<int64_t>(rng, {8, 16, 19});
    const int64_t in_c = group * cpg;
    const int64_t out_c = group * opg;
    std::vector<int64_t> kernel = {Uniform(rng, 1, 5), Uniform(rng, 1, 5)};
    std::vector<int64_t> strides = {Uniform(rng, 1, 3), Uniform(rng, 1, 3)};
    std::vector<int64_t> dilations = {Pick<int64_t>(rng, {1, 1, 2, 3}), Pick<int64_t>(rng, {1, 1, 2})};
    std::vector<int64_t> pads(4);
    Dims input = {-1, in_c, 0, 0};
    for (int i = 0; i < 2; ++i) {
      const int64_t extent = (kernel[i] - 1) * dilations[i] + 1;
      pads[i] = Uniform(rng, 0, extent - 1);
      pads[2 + i] = Uniform(rng, 0, extent - 1);
      input[2 + i] = std::max<int64_t>(1, extent - pads[i] - pads[2 + i]) + Uniform(rng, 0, 13);
    }
    const bool bias = Uniform(rng, 0, 1) == 1;
    const bool relu = Uniform(rng, 0, 1) == 1;
    SCOPED_TRACE("trial " + std::to_string(trial) + ": in " + Join(input) + " out_c " + std::to_string(out_c) +
                 " group " + std::to_string(group) + " kernel " + Join(kernel) + " strides " + Join(strides) +
                 " dilations " + Join(dilations) + " pads " + Join(pads) + (bias ? " bias" : "") +
                 (relu ? " relu" : ""));
    GraphBuilder b(input, trial);
    std::string y = b.Conv(b.input(), in_c, out_c, MakeConv(kernel, strides, pads, dilations, group), bias);
    if (relu) y = b.Op(OpType::kRelu, {y});
    auto graph = b.Build(y);
    ASSERT_TRUE(graph.ok()) << graph.status().ToString();
    ExpectMatchesReference(*graph, {Pick<int64_t>(rng, kBatches)});
  }
}

TEST(DnnlOpsTest, ConvChainsInBlockedLayout) {
  // conv -> relu -> conv (1x1) -> conv (grouped, strided) with channel counts that are and are not multiples of
  // the SIMD block, so blocked layouts (with and without channel padding) flow between primitives.
  for (int64_t channels : {16, 20, 64}) {
    SCOPED_TRACE("channels " + std::to_string(channels));
    GraphBuilder b({-1, 3, 23, 19}, channels);
    std::string y = b.Conv(b.input(), 3, channels, MakeConv({3, 3}, {1, 1}, {1, 1, 1, 1}));
    y = b.Op(OpType::kRelu, {y});
    y = b.Conv(y, channels, channels, MakeConv({1, 1}));
    y = b.Conv(y, channels, 2 * channels, MakeConv({3, 3}, {2, 2}, {0, 1, 1, 0}, {}, 4));
    auto graph = b.Build(y);
    ASSERT_TRUE(graph.ok()) << graph.status().ToString();
    ExpectMatchesReference(*graph, kBatches);
  }
}

TEST(DnnlOpsTest, Conv1dAnd3d) {
  {
    GraphBuilder b({-1, 5, 17});
    const std::string y = b.Conv(b.input(), 5, 16, MakeConv({3}, {2}, {1, 2}, {2}));
    auto graph = b.Build(y);
    ASSERT_TRUE(graph.ok()) << graph.status().ToString();
    ExpectMatchesReference(*graph, {1, 3});
  }
  {
    GraphBuilder b({-1, 4, 7, 8, 9});
    const std::string y = b.Conv(b.input(), 4, 16, MakeConv({3, 1, 2}, {1, 2, 1}, {1, 0, 1, 0, 0, 1}));
    auto graph = b.Build(y);
    ASSERT_TRUE(graph.ok()) << graph.status().ToString();
    ExpectMatchesReference(*graph, {1, 3});
  }
}

TEST(DnnlOpsTest, ConvAddReluFusion) {
  // Conv without bias + constant per-channel Add ([C,1,1] and scalar) + Relu.
  for (bool scalar : {false, true}) {
    GraphBuilder b({-1, 8, 12, 12});
    std::string y = b.Conv(b.input(), 8, 32, MakeConv({3, 3}, {}, {1, 1, 1, 1}), /*bias=*/scalar);
    y = b.Op(OpType::kAdd, {scalar ? b.Const({1}) : b.Const({32, 1, 1}), y});
    y = b.Op(OpType::kRelu, {y});
    auto graph = b.Build(y);
    ASSERT_TRUE(graph.ok()) << graph.status().ToString();
    ExpectMatchesReference(*graph, kBatches);
  }
}

struct PoolCase {
  OpType type;
  Dims input;
  PoolAttrs attrs;
  bool after_conv;  // blocked source layout
};

TEST(DnnlOpsTest, PoolRandomized) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 150; ++trial) {
    const OpType type = Uniform(rng, 0, 1) == 0 ? OpType::kMaxPool : OpType::kAveragePool;
    PoolAttrs attrs;
    attrs.kernel_shape = {Uniform(rng, 1, 4), Uniform(rng, 1, 4)};
    attrs.strides = {Uniform(rng, 1, 3), Uniform(rng, 1, 3)};
    attrs.dilations = {1, 1};
    if (type == OpType::kMaxPool) attrs.dilations = {Pick<int64_t>(rng, {1, 1, 2}), Pick<int64_t>(rng, {1, 2, 3})};
    attrs.pads.resize(4);
    attrs.ceil_mode = Uniform(rng, 0, 1) == 1;
    attrs.count_include_pad = type == OpType::kAveragePool && Uniform(rng, 0, 1) == 1;
    const bool after_conv = Uniform(rng, 0, 1) == 1;
    const int64_t channels = after_conv ? Pick<int64_t>(rng, {16, 24, 32}) : Pick<int64_t>(rng, {1, 3, 16});
    Dims input = {-1, after_conv ? 3 : channels, 0, 0};
    for (int i = 0; i < 2; ++i) {
      const int64_t extent = (attrs.kernel_shape[i] - 1) * attrs.dilations[i] + 1;
      attrs.pads[i] = Uniform(rng, 0, extent - 1);
      attrs.pads[2 + i] = Uniform(rng, 0, extent - 1);
      input[2 + i] = std::max<int64_t>(1, extent - attrs.pads[i] - attrs.pads[2 + i]) + Uniform(rng, 0, 12);
    }
    SCOPED_TRACE("trial " + std::to_string(trial) + ": " + std::string(OpTypeName(type)) + " in " + Join(input) +
                 " kernel " + Join(attrs.kernel_shape) + " strides " + Join(attrs.strides) + " dilations " +
                 Join(attrs.dilations) + " pads " + Join(attrs.pads) + (attrs.ceil_mode ? " ceil" : "") +
                 (attrs.count_include_pad ? " include_pad" : "") + (after_conv ? " after conv" : ""));
    GraphBuilder b(input, trial);
    std::string x = b.input();
    if (after_conv) x = b.Conv(x, 3, channels, MakeConv({1, 1}));
    const std::string y = b.Op(type, {x}, attrs);
    auto graph = b.Build(y);
    ASSERT_TRUE(graph.ok()) << graph.status().ToString();
    ExpectMatchesReference(*graph, {Pick<int64_t>(rng, kBatches)});
  }
}

TEST(DnnlOpsTest, CeilModeAveragePoolIncludePadOverhang) {
  // 6 wide, kernel 3, stride 2, pad 1/1, ceil: the last window hangs past the right pad.
  for (bool include_pad : {false, true}) {
    for (bool after_conv : {false, true}) {
      GraphBuilder b({-1, 3, 6, 7});
      std::string x = b.input();
      if (after_conv) x = b.Conv(x, 3, 16, MakeConv({1, 1}));
      PoolAttrs attrs = MakePool({3, 3}, {2, 2}, {1, 1, 1, 1});
      attrs.ceil_mode = true;
      attrs.count_include_pad = include_pad;
      const std::string y = b.Op(OpType::kAveragePool, {x}, attrs);
      auto graph = b.Build(y);
      ASSERT_TRUE(graph.ok()) << graph.status().ToString();
      ExpectMatchesReference(*graph, kBatches);
    }
  }
}

TEST(DnnlOpsTest, GlobalAveragePool) {
  for (int64_t channels : {3, 16, 40}) {
    GraphBuilder b({-1, 3, 9, 13});
    std::string x = b.input();
    if (channels != 3) x = b.Conv(x, 3, channels, MakeConv({3, 3}));
    const std::string y = b.Op(OpType::kGlobalAveragePool, {x});
    auto graph = b.Build(y);
    ASSERT_TRUE(graph.ok()) << graph.status().ToString();
    ExpectMatchesReference(*graph, kBatches);
  }
}

TEST(DnnlOpsTest, LrnRandomized) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 40; ++trial) {
    LrnAttrs attrs;
    attrs.size = Uniform(rng, 1, 7);
    attrs.alpha = Pick<float>(rng, {1e-4f, 1e-3f, 0.5f});
    attrs.beta = Pick<float>(rng, {0.75f, 0.5f, 1.0f});
    attrs.bias = Pick<float>(rng, {1.0f, 2.0f, 0.5f});
    const int mode = static_cast<int>(Uniform(rng, 0, 2));  // 0: plain input, 1: after conv, 2: rank 2
    SCOPED_TRACE("trial " + std::to_string(trial) + " size " + std::to_string(attrs.size) + " alpha " +
                 std::to_string(attrs.alpha) + " beta " + std::to_string(attrs.beta) + " bias " +
                 std::to_string(attrs.bias) + " mode " + std::to_string(mode));
    GraphBuilder b(mode == 2 ? Dims{-1, 37} : Dims{-1, 5, 11, 9}, trial);
    std::string x = b.input();
    if (mode == 1) x = b.Conv(x, 5, Pick<int64_t>(rng, {16, 20, 32, 48}), MakeConv({3, 3}, {}, {1, 1, 1, 1}));
    const std::string y = b.Op(OpType::kLrn, {x}, attrs);
    auto graph = b.Build(y);
    ASSERT_TRUE(graph.ok()) << graph.status().ToString();
    ExpectMatchesReference(*graph, {Pick<int64_t>(rng, kBatches)});
  }
}

TEST(DnnlOpsTest, SoftmaxAxesAndCoerce2d) {
  const std::vector<Dims> shapes = {{-1, 10}, {-1, 4, 7}, {-1, 3, 5, 6}};
  for (const Dims& shape : shapes) {
    const int64_t rank = static_cast<int64_t>(shape.size());
    for (int64_t axis = -rank; axis < rank; ++axis) {
      for (bool coerce : {false, true}) {
        SCOPED_TRACE("shape " + Join(shape) + " axis " + std::to_string(axis) + (coerce ? " coerce_2d" : ""));
        GraphBuilder b(shape);
        SoftmaxAttrs attrs;
        attrs.axis = axis;
        attrs.coerce_2d = coerce;
        const std::string y = b.Op(OpType::kSoftmax, {b.input()}, attrs);
        auto graph = b.Build(y);
        ASSERT_TRUE(graph.ok()) << graph.status().ToString();
        ExpectMatchesReference(*graph, {1, 3});
      }
    }
  }
  // Softmax over channels of a blocked conv output.
  GraphBuilder b({-1, 3, 5, 5});
  SoftmaxAttrs attrs;
  attrs.axis = 1;
  const std::string y = b.Op(OpType::kSoftmax, {b.Conv(b.input(), 3, 16, MakeConv({3, 3}))}, attrs);
  auto graph = b.Build(y);
  ASSERT_TRUE(graph.ok()) << graph.status().ToString();
  ExpectMatchesReference(*graph, kBatches);
}

TEST(DnnlOpsTest, GemmAttributeCombinations) {
  const int64_t k = 19, n = 13;
  int seed = 0;
  for (bool trans_b : {false, true}) {
    for (float alpha : {1.0f, 0.5f}) {
      for (float beta : {1.0f, -2.0f}) {
        for (const Dims& c_dims : std::vector<Dims>{{}, {n}, {1, n}, {1}, {1, 1}}) {
          SCOPED_TRACE(std::string("trans_b ") + (trans_b ? "1" : "0") + " alpha " + std::to_string(alpha) +
                       " beta " + std::to_string(beta) + " C " + (c_dims.empty() ? "none" : Join(c_dims)));
          GraphBuilder b({-1, k}, ++seed);
          GemmAttrs attrs{alpha, beta, false, trans_b};
          std::vector<std::string> inputs = {b.input(), b.Const(trans_b ? Dims{n, k} : Dims{k, n})};
          if (!c_dims.empty()) inputs.push_back(b.Const(c_dims));
          const std::string y = b.Op(OpType::kGemm, inputs, attrs);
          auto graph = b.Build(y);
          ASSERT_TRUE(graph.ok()) << graph.status().ToString();
          ExpectMatchesReference(*graph, kBatches);
        }
      }
    }
  }
}

TEST(DnnlOpsTest, GemmMatMulPathCases) {
  const int64_t k = 11, n = 6;
  // C that varies along M (fixed batch 4), transA (fixed batch: A is [K, M]), runtime B and runtime C.
  for (bool trans_a : {false, true}) {
    for (bool trans_b : {false, true}) {
      for (const Dims& c_dims : std::vector<Dims>{{4, n}, {4, 1}, {n}}) {
        SCOPED_TRACE(std::string("trans_a ") + (trans_a ? "1" : "0") + " trans_b " + (trans_b ? "1" : "0") +
                     " C " + Join(c_dims));
        GraphBuilder b(trans_a ? Dims{k, 4} : Dims{4, k});
        GemmAttrs attrs{1.5f, 0.5f, trans_a, trans_b};
        const std::string y =
            b.Op(OpType::kGemm, {b.input(), b.Const(trans_b ? Dims{n, k} : Dims{k, n}), b.Const(c_dims)}, attrs);
        auto graph = b.Build(y);
        ASSERT_TRUE(graph.ok()) << graph.status().ToString();
        ExpectMatchesReference(*graph, {trans_a ? k : 4});
      }
    }
  }
  {
    // Runtime B: A * relu(A)^T (alpha 2) + C; then runtime C from another Gemm.
    GraphBuilder b({4, k});
    const std::string relu = b.Op(OpType::kRelu, {b.input()});
    const std::string gram = b.Op(OpType::kGemm, {b.input(), relu}, GemmAttrs{2.0f, 1.0f, false, true});
    const std::string p = b.Op(OpType::kGemm, {b.input(), b.Const({k, n})}, GemmAttrs{});
    const std::string y = b.Op(OpType::kGemm, {gram, b.Const({4, n}), p}, GemmAttrs{1.0f, 1.0f, true, false});
    auto graph = b.Build(y);
    ASSERT_TRUE(graph.ok()) << graph.status().ToString();
    ExpectMatchesReference(*graph, {4});
  }
}

TEST(DnnlOpsTest, FcFusedWithFlattenOfBlockedActivation) {
  // conv -> relu -> maxpool -> Flatten/Reshape -> Gemm (transB 0 and 1) / MatMul -> relu -> Gemm.
  for (int variant = 0; variant < 4; ++variant) {
    SCOPED_TRACE("variant " + std::to_string(variant));
    GraphBuilder b({-1, 3, 14, 14}, variant);
    std::string y = b.Conv(b.input(), 3, 32, MakeConv({3, 3}, {}, {1, 1, 1, 1}));
    y = b.Op(OpType::kRelu, {y});
    y = b.Op(OpType::kMaxPool, {y}, MakePool({2, 2}, {2, 2}));  // 32 x 7 x 7
    const int64_t k = 32 * 7 * 7;
    if (variant == 3) {
      ReshapeAttrs reshape;
      reshape.shape = {0, -1};
      y = b.Op(OpType::kReshape, {y}, reshape);
    } else {
      y = b.Op(OpType::kFlatten, {y}, FlattenAttrs{1});
    }
    if (variant == 2) {
      y = b.Op(OpType::kMatMul, {y, b.Const({k, 24}, 0.05f)});
      y = b.Op(OpType::kAdd, {y, b.Const({24})});
    } else {
      const bool trans_b = variant != 1;
      y = b.Op(OpType::kGemm, {y, b.Const(trans_b ? Dims{24, k} : Dims{k, 24}, 0.05f), b.Const({24})},
               GemmAttrs{1.0f, 1.0f, false, trans_b});
    }
    y = b.Op(OpType::kRelu, {y});
    y = b.Op(OpType::kGemm, {y, b.Const({10, 24}), b.Const({10})}, GemmAttrs{1.0f, 1.0f, false, true});
    auto graph = b.Build(y);
    ASSERT_TRUE(graph.ok()) << graph.status().ToString();
    ExpectMatchesReference(*graph, kBatches);
  }
}

TEST(DnnlOpsTest, MatMulShapes) {
  {
    // N-D A with constant 2-D B: an inner product over the leading dims, plus bias Add and Relu.
    GraphBuilder b({-1, 5, 12});
    std::string y = b.Op(OpType::kMatMul, {b.input(), b.Const({12, 7})});
    y = b.Op(OpType::kAdd, {y, b.Const({1, 7})});
    y = b.Op(OpType::kRelu, {y});
    auto graph = b.Build(y);
    ASSERT_TRUE(graph.ok()) << graph.status().ToString();
    ExpectMatchesReference(*graph, kBatches);
  }
  {
    // Constant 3-D B broadcast over the batch, and a constant 1-D B.
    GraphBuilder b({-1, 5, 12});
    std::string y = b.Op(OpType::kMatMul, {b.input(), b.Const({1, 12, 7})});
    y = b.Op(OpType::kMatMul, {y, b.Const({7})});
    auto graph = b.Build(y);
    ASSERT_TRUE(graph.ok()) << graph.status().ToString();
    ExpectMatchesReference(*graph, kBatches);
  }
  {
    // Two runtime operands: A [N,5,12] x reshape(A) [N,12,5].
    GraphBuilder b({-1, 5, 12});
    ReshapeAttrs reshape;
    reshape.shape = {0, 12, 5};
    const std::string r = b.Op(OpType::kReshape, {b.input()}, reshape);
    const std::string y = b.Op(OpType::kMatMul, {b.input(), r});
    auto graph = b.Build(y);
    ASSERT_TRUE(graph.ok()) << graph.status().ToString();
    ExpectMatchesReference(*graph, kBatches);
  }
}

TEST(DnnlOpsTest, AddVariants) {
  {
    // Blocked conv output + per-channel constant (not fusable: conv output has two readers).
    GraphBuilder b({-1, 3, 9, 9});
    const std::string c = b.Conv(b.input(), 3, 16, MakeConv({3, 3}));
    const std::string a = b.Op(OpType::kAdd, {c, b.Const({16, 1, 1})});
    const std::string y = b.Op(OpType::kAdd, {a, c});  // residual: value + value
    auto graph = b.Build(y);
    ASSERT_TRUE(graph.ok()) << graph.status().ToString();
    ExpectMatchesReference(*graph, kBatches);
  }
  {
    // Constant first, broadcasting along the last axes; and a full-shape constant; then relu.
    GraphBuilder b({-1, 4, 6, 5});
    std::string y = b.Op(OpType::kAdd, {b.Const({6, 5}), b.input()});
    y = b.Op(OpType::kAdd, {y, b.Const({1, 4, 6, 5})});
    y = b.Op(OpType::kRelu, {y});
    auto graph = b.Build(y);
    ASSERT_TRUE(graph.ok()) << graph.status().ToString();
    ExpectMatchesReference(*graph, kBatches);
  }
  {
    // Two branches in different layouts (blocked conv output + plain input).
    GraphBuilder b({-1, 16, 8, 8});
    const std::string c = b.Conv(b.input(), 16, 16, MakeConv({3, 3}, {}, {1, 1, 1, 1}));
    const std::string y = b.Op(OpType::kAdd, {b.input(), c});
    auto graph = b.Build(y);
    ASSERT_TRUE(graph.ok()) << graph.status().ToString();
    ExpectMatchesReference(*graph, kBatches);
  }
}

std::shared_ptr<const Graph> ConvBnGraph(int64_t channels) {
  GraphBuilder b({-1, 3, 10, 10}, static_cast<uint32_t>(channels));
  const std::string c = b.Conv(b.input(), 3, channels, MakeConv({3, 3}, {}, {1, 1, 1, 1}));
  std::vector<float> var = RandomVector(channels, 5);
  for (float& v : var) v = std::fabs(v) + 0.1f;
  BatchNormAttrs bn{1e-3f};
  std::string y =
      b.Op(OpType::kBatchNormalization,
           {c, b.Const({channels}), b.Const({channels}), b.Const({channels}), b.ConstValues({channels}, var)}, bn);
  y = b.Op(OpType::kRelu, {y});
  // A second BN directly on the (plain) input branch, added back.
  std::vector<float> var2 = RandomVector(3, 6);
  for (float& v : var2) v = std::fabs(v) + 0.1f;
  const std::string bn2 =
      b.Op(OpType::kBatchNormalization,
           {b.input(), b.Const({3}), b.Const({3}), b.Const({3}), b.ConstValues({3}, var2)}, bn);
  const std::string g = b.Op(OpType::kGlobalAveragePool, {bn2});
  const std::string gc = b.Conv(g, 3, channels, MakeConv({1, 1}));
  y = b.Op(OpType::kAdd, {y, gc});
  auto graph = b.Build(y);
  EXPECT_TRUE(graph.ok()) << graph.status().ToString();
  return graph.ok() ? *graph : nullptr;
}

TEST(DnnlOpsTest, StandaloneBatchNormalization) {
  for (int64_t channels : {8, 16, 21}) {
    auto graph = ConvBnGraph(channels);
    ASSERT_NE(graph, nullptr);
    ExpectMatchesReference(graph, kBatches);
    auto optimized = OptimizeForInference(*graph);
    ASSERT_TRUE(optimized.ok()) << optimized.status().ToString();
    ExpectMatchesReference(*optimized, kBatches);
  }
}

TEST(DnnlOpsTest, ViewsAndIdentities) {
  {
    // Flatten of a blocked conv output as the graph output (reorder to plain, then reinterpretation).
    GraphBuilder b({-1, 3, 6, 6});
    std::string y = b.Conv(b.input(), 3, 16, MakeConv({3, 3}));
    y = b.Op(OpType::kIdentity, {y});
    y = b.Op(OpType::kFlatten, {y}, FlattenAttrs{1});
    y = b.Op(OpType::kDropout, {y});
    auto graph = b.Build(y);
    ASSERT_TRUE(graph.ok()) << graph.status().ToString();
    ExpectMatchesReference(*graph, kBatches);
  }
  {
    // Identity of the input is the whole graph; Flatten at axis 2; Reshape then Softmax.
    for (int variant = 0; variant < 3; ++variant) {
      // Flatten at axis 2 folds the batch into dim 0: a static batch of 1.
      GraphBuilder b({variant == 1 ? 1 : -1, 4, 3, 5});
      std::string y = b.input();
      if (variant == 0) y = b.Op(OpType::kIdentity, {y});
      if (variant == 1) y = b.Op(OpType::kFlatten, {y}, FlattenAttrs{2});
      if (variant == 2) {
        ReshapeAttrs reshape;
        reshape.shape = {0, 12, -1};
        y = b.Op(OpType::kReshape, {y}, reshape);
        SoftmaxAttrs softmax;
        softmax.axis = 1;
        y = b.Op(OpType::kSoftmax, {y}, softmax);
      }
      auto graph = b.Build(y);
      ASSERT_TRUE(graph.ok()) << graph.status().ToString();
      ExpectMatchesReference(*graph, variant == 1 ? std::vector<int64_t>{1} : kBatches);
    }
  }
  {
    // One value read by a blocked consumer (conv) and a plain one (flatten + gemm), output in the middle.
    GraphBuilder b({-1, 3, 7, 7});
    const std::string c = b.Conv(b.input(), 3, 16, MakeConv({3, 3}));
    const std::string f = b.Op(OpType::kFlatten, {c}, FlattenAttrs{1});
    const std::string g = b.Op(OpType::kGemm, {f, b.Const({400, 5}, 0.05f)}, GemmAttrs{});
    const std::string c2 = b.Conv(c, 16, 5, MakeConv({5, 5}));
    const std::string f2 = b.Op(OpType::kFlatten, {c2}, FlattenAttrs{1});
    const std::string y = b.Op(OpType::kAdd, {g, f2});
    auto graph = b.Build(y);
    ASSERT_TRUE(graph.ok()) << graph.status().ToString();
    ExpectMatchesReference(*graph, kBatches);
  }
}

// A reduced AlexNet: every layer kind of the real one (strided 11x11 conv, LRN, overlapping pools, grouped convs,
// FC with dropout, softmax) at a size the reference backend runs quickly.
std::shared_ptr<const Graph> MiniAlexNet() {
  GraphBuilder b({-1, 3, 67, 67}, 2012);
  LrnAttrs lrn{5, 1e-4f, 0.75f, 2.0f};
  const PoolAttrs pool = MakePool({3, 3}, {2, 2});
  std::string y = b.Op(OpType::kRelu, {b.Conv(b.input(), 3, 32, MakeConv({11, 11}, {4, 4}, {2, 2, 2, 2}))});
  y = b.Op(OpType::kLrn, {b.Op(OpType::kMaxPool, {y}, pool)}, lrn);
  y = b.Op(OpType::kRelu, {b.Conv(y, 32, 64, MakeConv({5, 5}, {}, {2, 2, 2, 2}, {}, 2))});
  y = b.Op(OpType::kLrn, {b.Op(OpType::kMaxPool, {y}, pool)}, lrn);
  y = b.Op(OpType::kRelu, {b.Conv(y, 64, 96, MakeConv({3, 3}, {}, {1, 1, 1, 1}))});
  y = b.Op(OpType::kRelu, {b.Conv(y, 96, 96, MakeConv({3, 3}, {}, {1, 1, 1, 1}, {}, 2))});
  y = b.Op(OpType::kRelu, {b.Conv(y, 96, 64, MakeConv({3, 3}, {}, {1, 1, 1, 1}, {}, 2))});
  y = b.Op(OpType::kMaxPool, {y}, pool);
  y = b.Op(OpType::kFlatten, {y}, FlattenAttrs{1});
  y = b.Op(OpType::kDropout, {y});
  y = b.Op(OpType::kRelu, {b.Op(OpType::kGemm, {y, b.Const({128, 64}, 0.1f), b.Const({128}, 0.1f)},
                                GemmAttrs{1.0f, 1.0f, false, true})});
  y = b.Op(OpType::kDropout, {y});
  y = b.Op(OpType::kRelu, {b.Op(OpType::kGemm, {y, b.Const({128, 128}, 0.1f), b.Const({128}, 0.1f)},
                                GemmAttrs{1.0f, 1.0f, false, true})});
  y = b.Op(OpType::kGemm, {y, b.Const({10, 128}, 0.1f), b.Const({10}, 0.1f)}, GemmAttrs{1.0f, 1.0f, false, true});
  SoftmaxAttrs softmax;
  softmax.axis = 1;
  y = b.Op(OpType::kSoftmax, {y}, softmax);
  auto graph = b.Build(y);
  EXPECT_TRUE(graph.ok()) << graph.status().ToString();
  return graph.ok() ? *graph : nullptr;
}

TEST(DnnlOpsTest, MiniAlexNetUnoptimizedAndOptimized) {
  auto graph = MiniAlexNet();
  ASSERT_NE(graph, nullptr);
  ExpectMatchesReference(graph, kBatches);
  auto optimized = OptimizeForInference(*graph);
  ASSERT_TRUE(optimized.ok()) << optimized.status().ToString();
  ExpectMatchesReference(*optimized, kBatches);
  BackendOptions one_thread;
  one_thread.num_threads = 1;
  ExpectMatchesReference(*optimized, {3}, one_thread);
}

}  // namespace
}  // namespace cnnserve::dnnl_test
