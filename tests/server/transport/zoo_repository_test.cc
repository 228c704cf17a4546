// models/repository/add_zoo_models.sh end to end: add AlexNet from `make zoo` to a temporary repository, serve it
// with InferenceService, and compare with the PyTorch reference outputs the zoo export wrote. Skipped when the zoo
// has not been exported.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <string>
#include <vector>

#include "engine/tensor/npy.h"
#include "server/service/inference_service.h"
#include "server/native/native_metadata.h"
#include "server/native/native_request.h"
#include "tests/models/repository/test_repository.h"

namespace cnnserve {
namespace {

namespace fs = std::filesystem;
using ::cnnserve::testing::SourceDir;
using ::cnnserve::testing::TempDir;

fs::path ZooDir() {
  if (const char* dir = std::getenv("CNNSERVE_ZOO_DIR"); dir != nullptr && *dir != '\0') return dir;
#ifdef CNNSERVE_ZOO_DEFAULT_DIR
  return CNNSERVE_ZOO_DEFAULT_DIR;
#else
  return fs::path(std::getenv("HOME") != nullptr ? std::getenv("HOME") : "/") / ".cache/cnnserve/zoo";
#endif
}

Status ClassifySync(InferenceService& service, const v1::ClassifyRequest& request,
                    v1::ClassifyResponse* response) {
  std::promise<Status> promise;
  std::future<Status> future = promise.get_future();
  ClassifyNative(service, request, response, 0, nullptr, [&promise](Status status) { promise.set_value(status); });
  if (future.wait_for(std::chrono::seconds(120)) != std::future_status::ready) return InternalError("no answer");
  return future.get();
}

TEST(ZooRepositoryTest, AlexNetServedFromTheScriptMatchesPyTorch) {
  const fs::path zoo = ZooDir();
  for (const char* file :
       {"alexnet.onnx", "alexnet.json", "alexnet.labels.txt", "alexnet.b3.input.npy", "alexnet.b3.output.npy"}) {
    if (!fs::exists(zoo / file)) GTEST_SKIP() << zoo / file << " is missing: run make zoo";
  }
  TempDir repo;
  const std::string command = (SourceDir() / "models/repository/add_zoo_models.sh").string() + " --zoo-dir '" +
                              zoo.string() + "' '" + repo.path().string() + "' alexnet > /dev/null";
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  ASSERT_TRUE(fs::is_symlink(repo.path() / "alexnet/1/model.onnx"));

  InferenceServiceOptions options;
  options.model_repository = repo.path().string();
  StatusOr<std::unique_ptr<InferenceService>> service = InferenceService::Create(options);
  ASSERT_TRUE(service.ok()) << service.status().ToString();
  ASSERT_EQ((*service)->ReadyModels(), (std::vector<std::string>{"alexnet"}));

  v1::DescribeModelRequest describe;
  describe.set_model("alexnet");
  v1::DescribeModelResponse description;
  ASSERT_TRUE(DescribeModelNative(**service, describe, &description).ok());
  EXPECT_EQ(description.summary().num_classes(), 1000);
  EXPECT_EQ(description.config().preprocess().resize_shorter_side(), 256);
  EXPECT_EQ(
      std::vector<int64_t>(description.summary().input_shape().begin(), description.summary().input_shape().end()),
      (std::vector<int64_t>{3, 227, 227}));

  // The reference batch of three as one raw [3, 3, 227, 227] tensor.
  StatusOr<Tensor> input = ReadNpy((zoo / "alexnet.b3.input.npy").string());
  StatusOr<Tensor> expected = ReadNpy((zoo / "alexnet.b3.output.npy").string());
  ASSERT_TRUE(input.ok() && expected.ok());
  v1::ClassifyRequest request;
  request.set_model("alexnet");
  request.set_top_k(5);
  v1::RawTensor* tensor = request.add_inputs()->mutable_tensor();
  for (int64_t d : input->dims()) tensor->add_shape(d);
  tensor->set_data(std::string(reinterpret_cast<const char*>(input->data()), input->bytes()));
  v1::ClassifyResponse response;
  ASSERT_TRUE(ClassifySync(**service, request, &response).ok());
  ASSERT_EQ(response.results_size(), 3);
  float max_abs = 0;
  for (int64_t i = 0; i < expected->size(); ++i) max_abs = std::max(max_abs, std::abs((*expected)[i]));
  for (int n = 0; n < 3; ++n) {
    const float* row = expected->data() + n * 1000;
    for (const v1::Class& c : response.results(n).classes()) {
      EXPECT_NEAR(c.score(), row[c.index()], 1e-4f * max_abs + 1e-5f) << "image " << n << " class " << c.index();
    }
    EXPECT_FALSE(response.results(n).classes(0).label().empty());
  }

  // A colour JPEG of another size goes through the RGB / shorter-side-crop preprocessing.
  cv::Mat image(300, 400, CV_8UC3, cv::Scalar(30, 120, 200));
  cv::rectangle(image, cv::Rect(100, 50, 150, 120), cv::Scalar(250, 250, 10), -1);
  std::vector<uint8_t> jpeg;
  ASSERT_TRUE(cv::imencode(".jpg", image, jpeg));
  v1::ClassifyRequest jpeg_request;
  jpeg_request.set_model("alexnet");
  jpeg_request.add_inputs()->set_image(std::string(jpeg.begin(), jpeg.end()));
  v1::ClassifyResponse jpeg_response;
  const Status status = ClassifySync(**service, jpeg_request, &jpeg_response);
  ASSERT_TRUE(status.ok()) << status.ToString();
  ASSERT_EQ(jpeg_response.results_size(), 1);
  EXPECT_EQ(jpeg_response.results(0).classes_size(), 5);
  EXPECT_TRUE((*service)->Shutdown(SteadyNowMicros() + 10'000'000).ok());
}

}  // namespace
}  // namespace cnnserve
