// Robustness of the ONNX importer: truncated and corrupted models, through the bytes path and the file path
// (which takes large weights straight from the mapped file), fail with a status and never crash.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "engine/graph/graph.h"
#include "models/onnx/onnx_importer.h"
#include "tests/models/onnx/onnx_test_models.h"

namespace cnnserve {
namespace {

using onnx_test::SmallCnn;
using onnx_test::TempPath;
using onnx_test::WriteFile;

// ---- Robustness: truncated and corrupted models never crash the importer ----

// Imports `bytes`; when that works, also builds the Graph. Either may fail, neither may crash. An import error
// has one of the importer's documented codes and starts with the name the bytes were given.
void ImportAndBuild(const std::string& bytes) {
  auto def = ImportOnnxBytes(bytes, "fuzz.onnx");
  if (!def.ok()) {
    const StatusCode code = def.status().code();
    EXPECT_TRUE(code == StatusCode::kInvalidArgument || code == StatusCode::kUnimplemented ||
                code == StatusCode::kDataLoss)
        << def.status().ToString();
    EXPECT_EQ(def.status().message().rfind("fuzz.onnx", 0), 0u) << def.status().ToString();
    return;
  }
  auto graph = Graph::Create(std::move(*def));
  if (!graph.ok()) {
    EXPECT_FALSE(graph.status().message().empty());
  }
}

std::vector<std::string> FuzzSeeds() {
  std::vector<std::string> seeds = {SmallCnn(true).Bytes(), SmallCnn(false).Bytes()};
  // A model from ONNX's own test data too, when installed.
  const char* kTestModel = "/usr/include/onnx/backend/test/data/node/test_conv_with_strides_padding/model.onnx";
  std::ifstream in(kTestModel, std::ios::binary);
  if (in) seeds.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return seeds;
}

TEST(OnnxImporterRobustnessTest, TruncatedModelsFailCleanly) {
  for (const std::string& seed : FuzzSeeds()) {
    int failures = 0;
    for (size_t cut = 0; cut < seed.size(); ++cut) {
      auto def = ImportOnnxBytes(seed.substr(0, cut), "truncated.onnx");
      if (!def.ok()) {
        ++failures;
        continue;
      }
      ImportAndBuild(seed.substr(0, cut));
    }
    // A cut inside any nested message cannot parse; only a cut on a top-level field boundary can.
    EXPECT_GT(failures, static_cast<int>(seed.size()) * 9 / 10);
  }
}

TEST(OnnxImporterRobustnessTest, CorruptedModelsNeverCrash) {
  std::mt19937 rng(12345);
  for (const std::string& seed : FuzzSeeds()) {
    std::uniform_int_distribution<size_t> position(0, seed.size() - 1);
    std::uniform_int_distribution<int> byte(0, 255);
    std::uniform_int_distribution<int> flips(1, 8);
    for (int iteration = 0; iteration < 20000; ++iteration) {
      std::string bytes = seed;
      const int n = flips(rng);
      for (int k = 0; k < n; ++k) {
        const size_t at = position(rng);
        // Mix single-bit flips (plausible corruption) with arbitrary bytes.
        if (k % 2 == 0) {
          bytes[at] = static_cast<char>(bytes[at] ^ (1 << (byte(rng) % 8)));
        } else {
          bytes[at] = static_cast<char>(byte(rng));
        }
      }
      ImportAndBuild(bytes);
    }
  }
}

// Files go through a different path from bytes: large FLOAT weights are copied straight from the mapped file
// (ImportOnnxFile strips them from the proto before parsing). Both paths must agree and both must fail cleanly.
TEST(OnnxImporterRobustnessTest, FilePathMatchesBytesPathAndFailsCleanly) {
  const char* source_dir = std::getenv("CNNSERVE_SOURCE_DIR");
  ASSERT_NE(source_dir, nullptr) << "CNNSERVE_SOURCE_DIR is set by CTest";
  // A real model whose FC weights (48,120 floats) are large enough to be taken from the mapped file.
  const std::string model = std::string(source_dir) + "/models/repository/lenet5_fashion/1/model.onnx";
  std::ifstream in(model, std::ios::binary);
  ASSERT_TRUE(in) << model;
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto from_file = ImportOnnxFile(model);
  auto from_bytes = ImportOnnxBytes(bytes, "lenet5_fashion");
  ASSERT_TRUE(from_file.ok()) << from_file.status().ToString();
  ASSERT_TRUE(from_bytes.ok()) << from_bytes.status().ToString();
  ASSERT_EQ(from_file->constants.size(), from_bytes->constants.size());
  for (const auto& [name, tensor] : from_bytes->constants) {
    const Tensor& other = *from_file->constants.at(name);
    ASSERT_EQ(tensor->dims(), other.dims()) << name;
    for (int64_t i = 0; i < tensor->size(); ++i) ASSERT_EQ((*tensor)[i], other[i]) << name << "[" << i << "]";
  }

  const std::string path = TempPath("corrupt_file.onnx");
  std::mt19937 rng(7);
  int failures = 0;
  for (int iteration = 0; iteration < 400; ++iteration) {
    std::string damaged = bytes;
    if (iteration % 2 == 0) {
      damaged.resize(std::uniform_int_distribution<size_t>(0, bytes.size() - 1)(rng));
    } else {
      for (int k = 0; k < 1 + iteration % 8; ++k) {
        damaged[std::uniform_int_distribution<size_t>(0, bytes.size() - 1)(rng)] =
            static_cast<char>(std::uniform_int_distribution<int>(0, 255)(rng));
      }
    }
    WriteFile(path, damaged);
    auto def = ImportOnnxFile(path);
    if (!def.ok()) {
      ++failures;
      continue;
    }
    (void)Graph::Create(std::move(*def));
  }
  EXPECT_GT(failures, 100);  // every truncation but those on a top-level field boundary fails
}

}  // namespace
}  // namespace cnnserve
