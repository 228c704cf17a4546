// OnnxImportOptions::map_weights: large initializers stored 4-byte aligned are views of the mapped file, the
// rest are copies; bf16 and int8 plans built from the views compute exactly what plans from copies compute and
// leave none of the file's pages resident (the weights are converted slice by slice, each slice dropped).
#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "engine/backend/dnnl/dnnl_backend.h"
#include "models/onnx/onnx_importer.h"
#include "tests/models/onnx/onnx_test_models.h"

namespace cnnserve {
namespace {

using onnx_test::FloatAttr;
using onnx_test::IntAttr;
using onnx_test::ModelBuilder;
using onnx_test::TempPath;
using onnx_test::WriteFile;

constexpr int64_t kOut = 1000;  // not a multiple of oneDNN's 64-row weight blocks: the last slice is partial
constexpr int64_t kIn = 4608;   // 18 MB of fp32 weights: more than one 16 MB slice

// y = x W^T + b (`trans_b`, W [out, in]) or y = x W + b (W [in, out]) with random weights; the raw data of W
// starts at an address that is `misalign` bytes past a 4-byte boundary of the file (the doc_string pads it).
std::string FcModelFile(const std::string& name, int misalign, bool trans_b = true) {
  ModelBuilder b;
  b.Input("x", {"N", std::to_string(kIn)});
  b.Output("y");
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> uniform(-0.05f, 0.05f);
  std::vector<float> w(static_cast<size_t>(kOut * kIn));
  for (float& v : w) v = uniform(rng);
  onnx::TensorProto weights;
  weights.set_name("w");
  weights.set_data_type(onnx::TensorProto::FLOAT);
  weights.add_dims(trans_b ? kOut : kIn);
  weights.add_dims(trans_b ? kIn : kOut);
  weights.set_raw_data(std::string(reinterpret_cast<const char*>(w.data()), w.size() * sizeof(float)));
  b.Initializer(weights);
  b.Weight("b", {kOut});
  b.Node("Gemm", {"x", "w", "b"}, {"y"}, "fc", {IntAttr("transB", trans_b ? 1 : 0), FloatAttr("alpha", 1.0f)});
  const std::string head = weights.raw_data().substr(0, 64);
  for (int pad = 0; pad < 8; ++pad) {
    b.model().set_doc_string(std::string(static_cast<size_t>(pad) + 1, ' '));
    const std::string bytes = b.Bytes();
    const size_t offset = bytes.find(head);
    if (offset != std::string::npos && static_cast<int>(offset % 4) == misalign) {
      const std::string path = TempPath(name);
      WriteFile(path, bytes);
      return path;
    }
  }
  ADD_FAILURE() << "could not place the weights " << misalign << " bytes past a 4-byte boundary";
  return "";
}

std::shared_ptr<const Graph> Load(const std::string& path, bool map_weights) {
  OnnxImportOptions options;
  options.map_weights = map_weights;
  StatusOr<std::shared_ptr<const Graph>> graph = LoadOnnxGraph(path, options);
  EXPECT_TRUE(graph.ok()) << graph.status().ToString();
  return graph.ok() ? *graph : nullptr;
}

// Resident bytes of the mapping that holds `address` (/proc/self/smaps), or -1.
int64_t ResidentBytesOfMapping(const void* address) {
  std::ifstream smaps("/proc/self/smaps");
  const auto target = reinterpret_cast<uintptr_t>(address);
  std::string line;
  bool inside = false;
  while (std::getline(smaps, line)) {
    uintptr_t begin = 0, end = 0;
    char dash = 0;
    std::istringstream head(line);
    if (head >> std::hex >> begin >> dash >> end && dash == '-') {
      inside = begin <= target && target < end;
      continue;
    }
    if (inside && line.rfind("Rss:", 0) == 0) return std::stoll(line.substr(4)) * 1024;
  }
  return -1;
}

std::vector<float> RunOnce(const std::shared_ptr<const Graph>& graph, Precision precision) {
  BackendOptions options;
  options.precision = precision;
  auto ranges = std::make_shared<TensorRanges>();
  (*ranges)["x"] = TensorRange{0.0f, 1.0f};  // u8 input: no compensation, so the weights can be sliced
  options.ranges = ranges;
  StatusOr<std::unique_ptr<Backend>> backend = CreateDnnlBackend(graph, options);
  EXPECT_TRUE(backend.ok()) << backend.status().ToString();
  if (!backend.ok()) return {};
  StatusOr<std::unique_ptr<Plan>> plan = (*backend)->Compile(2);
  EXPECT_TRUE(plan.ok()) << plan.status().ToString();
  if (!plan.ok()) return {};
  std::vector<float> x(static_cast<size_t>(2 * kIn));
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 97) / 97.0f;
  std::vector<float> y(static_cast<size_t>(2 * kOut));
  EXPECT_TRUE((*plan)->Run(x.data(), y.data()).ok());
  return y;
}

TEST(MappedWeightsTest, AlignedLargeInitializersAreViewsOfTheFileWithTheSameValues) {
  const std::string path = FcModelFile("mapped_aligned.onnx", 0);
  const auto mapped = Load(path, true);
  const auto copied = Load(path, false);
  ASSERT_NE(mapped, nullptr);
  ASSERT_NE(copied, nullptr);
  const Tensor* view = mapped->constant("w");
  ASSERT_NE(view, nullptr);
  EXPECT_TRUE(view->is_view());
  EXPECT_FALSE(copied->constant("w")->is_view());
  EXPECT_FALSE(mapped->constant("b")->is_view()) << "small tensors are copied";
  ASSERT_EQ(view->size(), copied->constant("w")->size());
  double sum = 0;
  for (int64_t i = 0; i < view->size(); ++i) {
    ASSERT_EQ((*view)[i], (*copied->constant("w"))[i]) << i;
    sum += (*view)[i];
  }
  EXPECT_NE(sum, 0.0);
  // Reading the view made its pages resident; ReleasePages drops them and the values stay.
  EXPECT_GT(ResidentBytesOfMapping(view->data()), kOut * kIn * 4 / 2);
  view->ReleasePages(0, view->size());
  EXPECT_LT(ResidentBytesOfMapping(view->data()), 64 << 10);
  EXPECT_EQ((*view)[view->size() - 1], (*copied->constant("w"))[view->size() - 1]);
}

TEST(MappedWeightsTest, MisalignedInitializersAreCopied) {
  const std::string path = FcModelFile("mapped_misaligned.onnx", 2);
  const auto mapped = Load(path, true);
  ASSERT_NE(mapped, nullptr);
  EXPECT_FALSE(mapped->constant("w")->is_view());
  const auto copied = Load(path, false);
  ASSERT_NE(copied, nullptr);
  EXPECT_EQ((*mapped->constant("w"))[12345], (*copied->constant("w"))[12345]);
}

// Both weight orders: the slices follow the file's rows (output channels of W [out, in], input rows of W [in,
// out]); int8 runs the FC as a matmul reading W transposed.
TEST(MappedWeightsTest, PlansFromViewsMatchPlansFromCopiesAndLeaveNoFilePagesResident) {
  for (bool trans_b : {true, false}) {
    SCOPED_TRACE(trans_b ? "W [out, in]" : "W [in, out]");
    const std::string path = FcModelFile(trans_b ? "mapped_plans.onnx" : "mapped_plans_kn.onnx", 0, trans_b);
    const auto mapped = Load(path, true);
    const auto copied = Load(path, false);
    ASSERT_NE(mapped, nullptr);
    ASSERT_NE(copied, nullptr);
    const Tensor* view = mapped->constant("w");
    ASSERT_TRUE(view->is_view());
    for (Precision precision : {Precision::kInt8, Precision::kBf16, Precision::kFp32}) {
      SCOPED_TRACE(PrecisionName(precision));
      const std::vector<float> from_view = RunOnce(mapped, precision);
      const std::vector<float> from_copy = RunOnce(copied, precision);
      ASSERT_EQ(from_view.size(), static_cast<size_t>(2 * kOut));
      EXPECT_EQ(from_view, from_copy);
      // The plan read every weight from the file; none of the 18 MB stays resident.
      EXPECT_LT(ResidentBytesOfMapping(view->data()), 1 << 20);
    }
  }
}

}  // namespace
}  // namespace cnnserve
