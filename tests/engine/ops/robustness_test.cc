// Robustness: random input dims and attributes (mostly nonsense) into every op's shape inference. Inference must
// return a status rather than crash; whatever it accepts must be idempotent and must run through the reference
// kernel without error (run this binary under CNNSERVE_SANITIZE=ON to also catch out-of-bounds accesses).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "engine/ops/op.h"
#include "tests/engine/ops/op_test_util.h"

namespace cnnserve {
namespace {

constexpr int kIterationsPerOp = 3000;
constexpr int64_t kMaxElements = 20000;  // keeps the kernels fast

class RandomCase {
 public:
  explicit RandomCase(uint32_t seed) : rng_(seed) {}

  int64_t Int(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng_); }
  bool Coin(double p = 0.5) { return std::bernoulli_distribution(p)(rng_); }
  std::vector<int64_t> List(int64_t max_len, int64_t lo, int64_t hi) {
    std::vector<int64_t> v(Int(0, max_len));
    for (int64_t& x : v) x = Int(lo, hi);
    return v;
  }
  Dims RandomDims() {
    Dims d(Int(0, 5));
    for (int64_t& x : d) x = Int(1, 6);
    return d;
  }
  AutoPad RandomAutoPad() {
    const AutoPad all[] = {AutoPad::kNotSet, AutoPad::kSameUpper, AutoPad::kSameLower, AutoPad::kValid};
    return Coin(0.6) ? AutoPad::kNotSet : all[Int(0, 3)];
  }

  // Half of the window attribute lists have the right length for `spatial` axes and plausible values; the
  // rest are arbitrary.
  std::vector<int64_t> WindowList(size_t spatial, size_t per_axis, int64_t lo, int64_t hi, bool plausible) {
    if (!plausible) return List(3 * static_cast<int64_t>(per_axis), lo - 2, hi);
    if (Coin(0.3)) return {};
    std::vector<int64_t> v(spatial * per_axis);
    for (int64_t& x : v) x = Int(lo, hi);
    return v;
  }

  OpAttrs Attrs(OpType type, const std::optional<Dims>& x) {
    const size_t spatial = x.has_value() && x->size() > 2 ? x->size() - 2 : 1;
    const bool plausible = Coin();
    switch (type) {
      case OpType::kConv: {
        ConvAttrs a;
        a.group = plausible ? (Coin(0.7) ? 1 : Int(1, 3)) : Int(-1, 3);
        if (Coin(0.2)) a.kernel_shape = WindowList(spatial, 1, 1, 3, plausible);
        a.strides = WindowList(spatial, 1, 1, 3, plausible);
        a.pads = WindowList(spatial, 2, 0, 2, plausible);
        a.dilations = WindowList(spatial, 1, 1, 2, plausible);
        a.auto_pad = RandomAutoPad();
        return a;
      }
      case OpType::kMaxPool:
      case OpType::kAveragePool: {
        PoolAttrs a;
        a.kernel_shape = plausible ? WindowList(spatial, 1, 1, 4, true) : List(3, -1, 4);
        if (a.kernel_shape.empty()) a.kernel_shape.assign(spatial, 2);
        a.strides = WindowList(spatial, 1, 1, 3, plausible);
        a.pads = WindowList(spatial, 2, 0, 2, plausible);
        a.dilations = WindowList(spatial, 1, 1, type == OpType::kMaxPool ? 2 : 1, plausible);
        a.ceil_mode = Coin();
        a.count_include_pad = Coin();
        a.auto_pad = RandomAutoPad();
        return a;
      }
      case OpType::kLrn:
        return LrnAttrs{.size = Int(-1, 6), .alpha = 1e-3f, .beta = 0.75f, .bias = Coin() ? 1.0f : 2.0f};
      case OpType::kGemm:
        return GemmAttrs{.alpha = 0.5f, .beta = 2.0f, .trans_a = Coin(), .trans_b = Coin()};
      case OpType::kFlatten:
        return FlattenAttrs{.axis = Int(-6, 6)};
      case OpType::kReshape:
        return ReshapeAttrs{.shape = List(5, -2, 8), .allow_zero = Coin(0.1)};
      case OpType::kSoftmax:
        return SoftmaxAttrs{.axis = Int(-6, 6), .coerce_2d = Coin()};
      case OpType::kBatchNormalization:
        return BatchNormAttrs{.epsilon = Coin(0.9) ? 1e-5f : -1.0f};
      default:
        return std::monostate{};
    }
  }

  // Input dims, biased towards shapes that fit together so that some cases get past the first check.
  std::vector<std::optional<Dims>> Inputs(const OpDef& def) {
    const int count = static_cast<int>(Int(def.min_inputs - 1, def.max_inputs + 1));
    std::vector<std::optional<Dims>> inputs;
    Dims first = RandomDims();
    if ((def.type == OpType::kConv || def.type == OpType::kMaxPool || def.type == OpType::kAveragePool) &&
        Coin(0.7)) {
      first = Dims(Int(3, 5));  // N x C x 1..3 spatial axes
      for (size_t j = 0; j < first.size(); ++j) first[j] = j < 2 ? Int(1, 4) : Int(1, 7);
    }
    for (int i = 0; i < count; ++i) {
      if (Coin(0.05)) {
        inputs.push_back(std::nullopt);
        continue;
      }
      Dims d = i == 0 ? first : RandomDims();
      if (i > 0 && Coin(0.6)) {
        d = first;  // same shape as X (Add, MatMul)
        if (def.type == OpType::kConv && d.size() >= 2) {
          d[0] = Int(1, 4) * (Coin() ? 1 : d[1]);  // W: M x C/group x k... (M a multiple of C sometimes)
          if (Coin(0.3)) d[1] = 1;                 // depthwise-like when group == C
          for (size_t j = 2; j < d.size(); ++j) d[j] = Int(1, 3);
        }
        if (def.type == OpType::kGemm && d.size() == 2 && Coin()) std::swap(d[0], d[1]);
        if (def.type == OpType::kBatchNormalization || (def.type == OpType::kConv && i == 2)) {
          d = Dims{first.size() >= 2 ? first[1] : 1};
        }
        if (def.type == OpType::kDropout) d = Dims{};
      }
      inputs.push_back(d);
    }
    return inputs;
  }

  std::mt19937& rng() { return rng_; }

 private:
  std::mt19937 rng_;
};

TEST(RobustnessTest, RandomNodesNeverCrashAndAcceptedOnesRun) {
  const OpType all_ops[] = {
      OpType::kConv,
      OpType::kRelu,
      OpType::kMaxPool,
      OpType::kAveragePool,
      OpType::kGlobalAveragePool,
      OpType::kLrn,
      OpType::kGemm,
      OpType::kMatMul,
      OpType::kAdd,
      OpType::kFlatten,
      OpType::kReshape,
      OpType::kDropout,
      OpType::kSoftmax,
      OpType::kBatchNormalization,
      OpType::kIdentity,
  };
  for (OpType type : all_ops) {
    const OpDef& def = GetOpDef(type);
    RandomCase random(static_cast<uint32_t>(type) * 7919u + 1u);
    int accepted = 0;
    for (int iteration = 0; iteration < kIterationsPerOp; ++iteration) {
      const std::vector<std::optional<Dims>> inputs = random.Inputs(def);
      Node node = testing::MakeNode(type, random.Attrs(type, inputs.empty() ? std::nullopt : inputs[0]),
                                    static_cast<int>(inputs.size()));
      std::vector<Dims> outputs;
      const Status status = def.infer(node, inputs, &outputs);
      if (!status.ok()) {
        ASSERT_TRUE(status.code() == StatusCode::kInvalidArgument || status.code() == StatusCode::kUnimplemented)
            << OpTypeName(type) << ": " << status.ToString();
        ASSERT_FALSE(status.message().empty());
        continue;
      }
      SCOPED_TRACE(std::string(OpTypeName(type)) + " iteration " + std::to_string(iteration));
      ASSERT_EQ(outputs.size(), 1u);

      Node again = node;
      std::vector<Dims> outputs_again;
      ASSERT_TRUE(def.infer(again, inputs, &outputs_again).ok());
      ASSERT_EQ(outputs_again, outputs);

      bool too_big = NumElements(outputs[0]) > kMaxElements;
      for (const auto& d : inputs) too_big = too_big || (d.has_value() && NumElements(*d) > kMaxElements);
      if (too_big) continue;
      ++accepted;

      std::vector<Tensor> tensors;
      tensors.reserve(inputs.size());
      std::vector<const Tensor*> pointers;
      std::uniform_real_distribution<float> value(-2.0f, 2.0f);
      for (const auto& d : inputs) {
        if (!d.has_value()) {
          pointers.push_back(nullptr);
          continue;
        }
        Tensor t(*d);
        for (int64_t i = 0; i < t.size(); ++i) t[i] = value(random.rng());
        // Variances and training_mode flags must be meaningful: keep them positive / zero.
        if (type == OpType::kBatchNormalization && pointers.size() == 4) {
          for (int64_t i = 0; i < t.size(); ++i) t[i] = 1.0f + t[i] * t[i];
        }
        if (type == OpType::kDropout && pointers.size() == 2) t[0] = 0.0f;
        tensors.push_back(std::move(t));
        pointers.push_back(&tensors.back());
      }
      Tensor y(outputs[0]);
      const Status run = def.reference(KernelArgs{node, pointers, {&y}});
      ASSERT_TRUE(run.ok()) << run.ToString();
      for (int64_t i = 0; i < y.size(); ++i) {
        ASSERT_FALSE(std::isnan(y[i])) << "NaN at element " << i;
      }
    }
    // The generator must exercise the kernels, not only the error paths.
    EXPECT_GT(accepted, 20) << OpTypeName(type) << " (" << accepted << " accepted)";
  }
}

}  // namespace
}  // namespace cnnserve
