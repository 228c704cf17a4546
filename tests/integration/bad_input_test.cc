// The catalogue of bad requests against a real cnnserve: each gets its exact status code, and the server still
// serves a good request right after it. Also the broken-repository start-up.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "tests/integration/test_env.h"

namespace cnnserve::integration {
namespace {

constexpr int kMaxImagesPerRequest = 8;
constexpr int kMaxReceiveMessageMiB = 1;

uint32_t Crc32(const std::string& bytes) {
  uint32_t crc = 0xFFFFFFFFu;
  for (const unsigned char b : bytes) {
    crc ^= b;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

std::string BigEndian32(uint32_t v) {
  return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
                     static_cast<char>(v)};
}

std::string PngChunk(const std::string& type, const std::string& data) {
  return BigEndian32(static_cast<uint32_t>(data.size())) + type + data + BigEndian32(Crc32(type + data));
}

// A well-formed PNG container (valid CRCs) whose header declares width x height pixels (8-bit gray unless told
// otherwise); the image data is a stub (a decoder that trusted the header would allocate the pixels).
std::string PngDeclaring(uint32_t width, uint32_t height, char bit_depth = 8, char color_type = 0) {
  const std::string ihdr =
      BigEndian32(width) + BigEndian32(height) + std::string{bit_depth, color_type, '\0', '\0', '\0'};
  const std::string idat("\x78\x9c\x03\x00\x00\x00\x00\x01", 8);  // zlib of nothing
  return std::string("\x89PNG\r\n\x1a\n", 8) + PngChunk("IHDR", ihdr) + PngChunk("IDAT", idat) +
         PngChunk("IEND", "");
}

// A 1x1 GIF89a.
std::string Gif() {
  return std::string(
      "GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff\x21\xf9\x04\x01\x00\x00\x00\x00\x2c\x00\x00"
      "\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00\x3b",
      43);
}

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string bytes(n, '\0');
  for (char& c : bytes) c = static_cast<char>(rng() & 0xFF);
  return bytes;
}

v1::ClassifyRequest OneInput(const std::function<void(v1::Input*)>& fill) {
  v1::ClassifyRequest request;
  request.set_model(kModel);
  fill(request.add_inputs());
  return request;
}

v1::ClassifyRequest Tensor(std::vector<int64_t> shape, size_t bytes) {
  return OneInput([&](v1::Input* in) {
    for (int64_t d : shape) in->mutable_tensor()->add_shape(d);
    in->mutable_tensor()->set_data(std::string(bytes, '\0'));
  });
}

struct BadCase {
  std::string name;
  v1::ClassifyRequest request;
  grpc::StatusCode code;
  int expect_classes = 0;  // for OK cases: classes per result
};

class BadInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = ServerProcess::Start({"--model-repository", DefaultRepository().string(), "--max-images-per-request",
                                    std::to_string(kMaxImagesPerRequest), "--max-receive-message-mb",
                                    std::to_string(kMaxReceiveMessageMiB)});
    ASSERT_NE(server_, nullptr);
    stub_ = server_->NewStub();
    png_ = LoadImages(".png", 10);
    jpg_ = LoadImages(".jpg", 1);
  }

  void ExpectStillServing(const std::string& after) {
    v1::ClassifyResponse response;
    const grpc::Status status = Classify(*stub_, ImageRequest({&png_[0]}), &response);
    EXPECT_TRUE(status.ok()) << "after " << after << ": " << status.error_message();
    EXPECT_EQ(HealthStatus(server_->address()), "SERVING") << "after " << after;
  }

  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<v1::Classifier::Stub> stub_;
  std::vector<LabeledImage> png_;
  std::vector<LabeledImage> jpg_;
};

TEST_F(BadInputTest, EachBadRequestGetsItsCodeAndTheServerKeepsServing) {
  const std::string& png = png_[0].bytes;
  const std::string& jpg = jpg_[0].bytes;
  std::vector<BadCase> cases;
  auto image = [](std::string bytes) {
    return OneInput([bytes = std::move(bytes)](v1::Input* in) { in->set_image(bytes); });
  };
  cases.push_back({"empty image bytes", image(""), grpc::StatusCode::INVALID_ARGUMENT});
  cases.push_back({"truncated JPEG", image(jpg.substr(0, jpg.size() / 2)), grpc::StatusCode::INVALID_ARGUMENT});
  cases.push_back({"truncated PNG", image(png.substr(0, png.size() / 2)), grpc::StatusCode::INVALID_ARGUMENT});
  cases.push_back(
      {"PNG declaring 30000x30000", image(PngDeclaring(30000, 30000)), grpc::StatusCode::INVALID_ARGUMENT});
  // Under the pixel cap, but 555 MB to decode (the decode budget refuses it before any decoder runs).
  cases.push_back({"PNG declaring 6300x6300 16-bit RGBA", image(PngDeclaring(6300, 6300, 16, 6)),
                   grpc::StatusCode::INVALID_ARGUMENT});
  cases.push_back({"GIF", image(Gif()), grpc::StatusCode::INVALID_ARGUMENT});
  cases.push_back({"random bytes", image(RandomBytes(4096, 1)), grpc::StatusCode::INVALID_ARGUMENT});
  cases.push_back(
      {"input with neither image nor tensor", OneInput([](v1::Input*) {}), grpc::StatusCode::INVALID_ARGUMENT});
  cases.push_back(
      {"tensor of the wrong shape", Tensor({3, 32, 32}, 3 * 32 * 32 * 4), grpc::StatusCode::INVALID_ARGUMENT});
  cases.push_back({"tensor of the wrong rank", Tensor({32, 32}, 32 * 32 * 4), grpc::StatusCode::INVALID_ARGUMENT});
  cases.push_back({"tensor with the wrong byte count", Tensor({1, 32, 32}, 32 * 32 * 4 - 4),
                   grpc::StatusCode::INVALID_ARGUMENT});
  cases.push_back({"tensor of the right shape", Tensor({1, 32, 32}, 32 * 32 * 4), grpc::StatusCode::OK, 5});
  v1::ClassifyRequest nan_tensor = Tensor({1, 32, 32}, 32 * 32 * 4);
  nan_tensor.mutable_inputs(0)->mutable_tensor()->mutable_data()->replace(40, 4, std::string("\x00\x00\xc0\x7f", 4));
  cases.push_back({"tensor holding a NaN", nan_tensor, grpc::StatusCode::INVALID_ARGUMENT});

  v1::ClassifyRequest unknown_model = ImageRequest({&png_[0]});
  unknown_model.set_model("no_such_model");
  cases.push_back({"unknown model", unknown_model, grpc::StatusCode::NOT_FOUND});
  v1::ClassifyRequest unknown_version = ImageRequest({&png_[0]});
  unknown_version.set_version(99);
  cases.push_back({"unknown version", unknown_version, grpc::StatusCode::NOT_FOUND});
  v1::ClassifyRequest pinned_version = ImageRequest({&png_[0]});
  pinned_version.set_version(1);
  cases.push_back({"existing version pinned", pinned_version, grpc::StatusCode::OK, 5});

  cases.push_back({"top_k 0 (default 5)", ImageRequest({&png_[0]}, 0), grpc::StatusCode::OK, 5});
  cases.push_back({"top_k 3", ImageRequest({&png_[0]}, 3), grpc::StatusCode::OK, 3});
  cases.push_back({"top_k 1000 (clamped)", ImageRequest({&png_[0]}, 1000), grpc::StatusCode::OK, kNumClasses});
  cases.push_back({"top_k -1", ImageRequest({&png_[0]}, -1), grpc::StatusCode::INVALID_ARGUMENT});

  v1::ClassifyRequest no_inputs;
  no_inputs.set_model(kModel);
  cases.push_back({"no inputs", no_inputs, grpc::StatusCode::INVALID_ARGUMENT});
  std::vector<const LabeledImage*> at_limit;
  for (int i = 0; i < kMaxImagesPerRequest; ++i) at_limit.push_back(&png_[i]);
  cases.push_back({"as many images as allowed", ImageRequest(at_limit), grpc::StatusCode::OK, 5});
  std::vector<const LabeledImage*> over_limit = at_limit;
  over_limit.push_back(&png_[kMaxImagesPerRequest]);
  cases.push_back({"more images than allowed", ImageRequest(over_limit), grpc::StatusCode::INVALID_ARGUMENT});
  cases.push_back({"message over the size limit", image(RandomBytes((kMaxReceiveMessageMiB << 20) + 1024, 2)),
                   grpc::StatusCode::RESOURCE_EXHAUSTED});

  for (const BadCase& c : cases) {
    SCOPED_TRACE(c.name);
    v1::ClassifyResponse response;
    const grpc::Status status = Classify(*stub_, c.request, &response);
    EXPECT_EQ(status.error_code(), c.code) << c.name << ": " << status.error_message();
    if (status.ok()) {
      ASSERT_EQ(response.results_size(), c.request.inputs_size());
      for (const v1::Classification& r : response.results()) EXPECT_EQ(r.classes_size(), c.expect_classes);
    } else {
      EXPECT_FALSE(status.error_message().empty()) << c.name;
      std::printf("%-40s -> %d %s\n", c.name.c_str(), static_cast<int>(status.error_code()),
                  status.error_message().c_str());
    }
    ExpectStillServing(c.name);
  }

  // A deadline that has passed.
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() - std::chrono::milliseconds(1));
  v1::ClassifyResponse response;
  EXPECT_EQ(stub_->Classify(&context, ImageRequest({&png_[0]}), &response).error_code(),
            grpc::StatusCode::DEADLINE_EXCEEDED);
  ExpectStillServing("an expired deadline");
}

// A repository with a good model, a model whose config.pbtxt does not parse and one whose model.onnx is corrupt:
// the server starts, serves the good model and reports the broken ones in ListModels.
TEST(BrokenRepositoryTest, ServesTheGoodModelAndReportsTheBrokenOnes) {
  TempDir repo;
  const std::filesystem::path good = DefaultRepository() / kModel;
  std::filesystem::copy(good, repo.path() / kModel, std::filesystem::copy_options::recursive);

  const std::filesystem::path broken_config = repo.path() / "broken_config";
  std::filesystem::copy(good, broken_config, std::filesystem::copy_options::recursive);
  WriteFileBytes(broken_config / "config.pbtxt", "name: \"broken_config\"\nmax_batch_size: [[[ oops\n");

  const std::filesystem::path corrupt_onnx = repo.path() / "corrupt_onnx";
  std::filesystem::copy(good, corrupt_onnx, std::filesystem::copy_options::recursive);
  std::string config = ReadFileBytes(corrupt_onnx / "config.pbtxt");
  const std::string name_line = "name: \"lenet5_fashion\"";
  ASSERT_NE(config.find(name_line), std::string::npos);
  config.replace(config.find(name_line), name_line.size(), "name: \"corrupt_onnx\"");
  WriteFileBytes(corrupt_onnx / "config.pbtxt", config);
  WriteFileBytes(corrupt_onnx / "1" / "model.onnx", RandomBytes(5000, 3));

  // Strict readiness (the default) keeps a server with broken models NOT_SERVING; this test needs it SERVING.
  auto server = ServerProcess::Start({"--model-repository", repo.path().string(), "--strict-readiness", "false"});
  ASSERT_NE(server, nullptr);
  auto stub = server->NewStub();

  grpc::ClientContext context;
  v1::ListModelsResponse list;
  ASSERT_TRUE(stub->ListModels(&context, {}, &list).ok());
  std::map<std::string, const v1::ModelSummary*> by_name;
  for (const v1::ModelSummary& m : list.models()) by_name[m.name()] = &m;
  ASSERT_TRUE(by_name.count(kModel));
  ASSERT_TRUE(by_name.count("broken_config")) << list.DebugString();
  ASSERT_TRUE(by_name.count("corrupt_onnx")) << list.DebugString();
  EXPECT_EQ(by_name[kModel]->versions(0).state(), "READY");
  for (const char* broken : {"broken_config", "corrupt_onnx"}) {
    const v1::ModelSummary& m = *by_name[broken];
    bool reported = false;
    for (const v1::ModelVersionState& v : m.versions()) {
      EXPECT_NE(v.state(), "READY") << broken;
      reported = reported || (v.state() == "UNAVAILABLE" && !v.reason().empty());
    }
    EXPECT_TRUE(reported) << broken << " is not reported UNAVAILABLE with a reason:\n" << m.DebugString();
  }
  const std::string log = server->Log();
  EXPECT_NE(log.find("config.pbtxt"), std::string::npos) << "the log should name the broken file:\n" << log;
  EXPECT_NE(log.find("model.onnx"), std::string::npos) << log;

  const std::vector<LabeledImage> png = LoadImages(".png", 1);
  v1::ClassifyResponse response;
  EXPECT_TRUE(Classify(*stub, ImageRequest({&png[0]}), &response).ok());
  for (const char* broken : {"broken_config", "corrupt_onnx"}) {
    v1::ClassifyRequest request = ImageRequest({&png[0]});
    request.set_model(broken);
    const grpc::Status status = Classify(*stub, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << broken << ": " << status.error_message();
  }
  EXPECT_EQ(HealthStatus(server->address()), "SERVING");
}

}  // namespace
}  // namespace cnnserve::integration
