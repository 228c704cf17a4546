// The op registry: names, arity and that every OpDef is complete.
#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "engine/ops/op.h"

namespace cnnserve {
namespace {

constexpr OpType kAllOps[] = {
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

TEST(RegistryTest, EveryOpHasACompleteDefinition) {
  for (OpType type : kAllOps) {
    const OpDef& def = GetOpDef(type);
    SCOPED_TRACE(std::string(OpTypeName(type)));
    EXPECT_EQ(def.type, type);
    EXPECT_GE(def.min_inputs, 1);
    EXPECT_LE(def.min_inputs, def.max_inputs);
    EXPECT_GE(def.num_outputs, 1);
    EXPECT_NE(def.infer, nullptr);
    EXPECT_NE(def.reference, nullptr);
  }
}

TEST(RegistryTest, NamesRoundTrip) {
  for (OpType type : kAllOps) {
    const std::optional<OpType> back = OpTypeFromName(OpTypeName(type));
    ASSERT_TRUE(back.has_value()) << OpTypeName(type);
    EXPECT_EQ(*back, type);
  }
}

TEST(RegistryTest, OnnxSpellings) {
  EXPECT_EQ(OpTypeName(OpType::kLrn), "LRN");
  EXPECT_EQ(OpTypeName(OpType::kBatchNormalization), "BatchNormalization");
  EXPECT_EQ(OpTypeName(OpType::kGlobalAveragePool), "GlobalAveragePool");
  EXPECT_EQ(OpTypeFromName("MatMul"), OpType::kMatMul);
  EXPECT_EQ(OpTypeFromName("Lrn"), std::nullopt);  // case-sensitive, like ONNX
  EXPECT_EQ(OpTypeFromName("ConvTranspose"), std::nullopt);
  EXPECT_EQ(OpTypeFromName(""), std::nullopt);
}

TEST(RegistryTest, Arity) {
  EXPECT_EQ(GetOpDef(OpType::kConv).min_inputs, 2);
  EXPECT_EQ(GetOpDef(OpType::kConv).max_inputs, 3);
  EXPECT_EQ(GetOpDef(OpType::kGemm).max_inputs, 3);
  EXPECT_EQ(GetOpDef(OpType::kBatchNormalization).min_inputs, 5);
  EXPECT_EQ(GetOpDef(OpType::kDropout).max_inputs, 3);
  EXPECT_EQ(GetOpDef(OpType::kDropout).num_outputs, 2);
  EXPECT_EQ(GetOpDef(OpType::kReshape).max_inputs, 1);
}

}  // namespace
}  // namespace cnnserve
