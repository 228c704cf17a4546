// The Fashion-MNIST test images written by the CTest fixture inference_fashion_testdata
// (models/zoo/train_fashion_mnist.py --write-test-images DIR --count 200): fashion_NNNNN.png / .jpg, labels.csv
// ("filename,label") and input.npy (float32 N x 1 x 32 x 32: the training pipeline's input for the PNGs).
// DIR is CNNSERVE_INFERENCE_TESTDATA_DIR from the environment, else the folder compiled in by
// tests/server/servables/CMakeLists.txt. Header-only.
#ifndef CNNSERVE_TESTS_SERVER_SERVABLES_FASHION_TESTDATA_H_
#define CNNSERVE_TESTS_SERVER_SERVABLES_FASHION_TESTDATA_H_

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "engine/tensor/npy.h"
#include "engine/tensor/tensor.h"
#include "tests/models/repository/test_repository.h"

namespace cnnserve::testing {

struct FashionImage {
  std::string name;   // fashion_00042.png
  std::string bytes;  // the file
  int label = -1;     // class index (line of labels.txt)
  int index = -1;     // NNNNN: the row of input.npy
};

inline std::filesystem::path FashionTestDataDir() {
  const char* dir = std::getenv("CNNSERVE_INFERENCE_TESTDATA_DIR");
  if (dir != nullptr) return dir;
#ifdef CNNSERVE_INFERENCE_TESTDATA_DEFAULT_DIR
  return CNNSERVE_INFERENCE_TESTDATA_DEFAULT_DIR;
#else
  ADD_FAILURE() << "CNNSERVE_INFERENCE_TESTDATA_DIR is not set";
  return {};
#endif
}

// The images of labels.csv with `extension` (".png" or ".jpg"), in file order.
inline std::vector<FashionImage> LoadFashionImages(const std::string& extension) {
  std::vector<FashionImage> images;
  const std::filesystem::path dir = FashionTestDataDir();
  std::ifstream csv(dir / "labels.csv");
  EXPECT_TRUE(csv.good()) << "cannot read " << dir / "labels.csv";
  std::string line;
  std::getline(csv, line);  // header
  while (std::getline(csv, line)) {
    const size_t comma = line.find(',');
    if (comma == std::string::npos) continue;
    FashionImage image;
    image.name = line.substr(0, comma);
    if (image.name.size() < extension.size() ||
        image.name.compare(image.name.size() - extension.size(), extension.size(), extension) != 0) {
      continue;
    }
    image.label = std::stoi(line.substr(comma + 1));
    image.index = std::stoi(image.name.substr(image.name.find('_') + 1));
    image.bytes = ReadFileBytes(dir / image.name);
    images.push_back(std::move(image));
  }
  return images;
}

inline Tensor LoadFashionInputNpy() {
  StatusOr<Tensor> input = ReadNpy((FashionTestDataDir() / "input.npy").string());
  EXPECT_TRUE(input.ok()) << input.status().ToString();
  return input.ok() ? *std::move(input) : Tensor();
}

}  // namespace cnnserve::testing

#endif  // CNNSERVE_TESTS_SERVER_SERVABLES_FASHION_TESTDATA_H_
