// The response cache on a real server: a model with `response_cache { enable: true }` answers a repeated request
// (same PNG bytes) from the cache with the same classes and scores, whatever top_k asks; KServe statistics and
// /metrics count the hits and misses; a reload starts afresh (no answer of the old version is served); a model
// without the setting, and a server started with --cache-size-mb 0, never cache.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "cnnserve/v1/classifier.grpc.pb.h"
#include "inference/grpc_service.grpc.pb.h"
#include "tests/integration/test_env.h"

namespace cnnserve::integration {
namespace {

namespace fs = std::filesystem;
constexpr char kCached[] = "lenet5_cached";

// A repository with the default LeNet-5 (no cache) and a copy of it named kCached with the cache enabled.
void WriteRepository(const fs::path& root) {
  fs::copy(DefaultRepository() / kModel, root / kModel, fs::copy_options::recursive);
  fs::copy(DefaultRepository() / kModel, root / kCached, fs::copy_options::recursive);
  std::string config = ReadFileBytes(root / kCached / "config.pbtxt");
  const std::string name = std::string("name: \"") + kModel + "\"";
  const size_t at = config.find(name);
  ASSERT_NE(at, std::string::npos);
  config.replace(at, name.size(), std::string("name: \"") + kCached + "\"");
  WriteFileBytes(root / kCached / "config.pbtxt", config + "\nresponse_cache { enable: true }\n");
}

inference::InferStatistics Statistics(inference::GRPCInferenceService::Stub& stub, const std::string& model) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  inference::ModelStatisticsRequest request;
  request.set_name(model);
  inference::ModelStatisticsResponse response;
  const grpc::Status status = stub.ModelStatistics(&context, request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  if (response.model_stats_size() != 1) return {};
  return response.model_stats(0).inference_stats();
}

v1::ClassifyResponse ClassifyOk(v1::Classifier::Stub& stub, const std::string& model,
                                const std::vector<const LabeledImage*>& images, int top_k) {
  v1::ClassifyRequest request = ImageRequest(images, top_k);
  request.set_model(model);
  request.set_include_timings(true);
  v1::ClassifyResponse response;
  const grpc::Status status = Classify(stub, request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return response;
}

void ExpectSameClasses(const v1::ClassifyResponse& got, const v1::ClassifyResponse& want, int compare) {
  ASSERT_EQ(got.results_size(), want.results_size());
  for (int i = 0; i < want.results_size(); ++i) {
    ASSERT_GE(got.results(i).classes_size(), compare);
    ASSERT_GE(want.results(i).classes_size(), compare);
    for (int c = 0; c < compare; ++c) {
      EXPECT_EQ(got.results(i).classes(c).index(), want.results(i).classes(c).index());
      EXPECT_EQ(got.results(i).classes(c).score(), want.results(i).classes(c).score());  // the same floats
      EXPECT_EQ(got.results(i).classes(c).probability(), want.results(i).classes(c).probability());
    }
  }
}

TEST(ResponseCacheTest, RepeatedRequestsAreAnsweredFromTheCacheUntilTheModelIsReloaded) {
  TempDir repo;
  WriteRepository(repo.path());
  auto server = ServerProcess::Start({"--model-repository", repo.path().string(), "--model-control-mode",
                                      "explicit", "--cache-size-mb", "8"});
  ASSERT_NE(server, nullptr);
  EXPECT_NE(server->Log().find("model lenet5_cached version 1: READY"), std::string::npos);
  EXPECT_NE(server->Log().find(", response cache;"), std::string::npos) << server->Log();
  auto stub = server->NewStub();
  auto kserve = inference::GRPCInferenceService::NewStub(server->NewChannel());
  const std::vector<LabeledImage> images = LoadImages(".png", 4);
  ASSERT_EQ(images.size(), 4u);
  const std::vector<const LabeledImage*> batch = {&images[0], &images[1], &images[2], &images[3]};

  const v1::ClassifyResponse first = ClassifyOk(*stub, kCached, batch, 3);
  const v1::ClassifyResponse again = ClassifyOk(*stub, kCached, batch, 3);
  const v1::ClassifyResponse more = ClassifyOk(*stub, kCached, batch, 10);  // top_k is applied after the cache
  ExpectSameClasses(again, first, 3);
  ExpectSameClasses(more, first, 3);
  EXPECT_EQ(more.results(0).classes_size(), 10);
  EXPECT_EQ(again.timings().decode_us(), 0);  // nothing decoded or ran
  EXPECT_GT(first.timings().decode_us(), 0);
  const v1::ClassifyResponse one = ClassifyOk(*stub, kCached, {&images[0]}, 3);  // another request: a miss
  inference::InferStatistics stats = Statistics(*kserve, kCached);
  EXPECT_EQ(stats.cache_hit().count(), 2u);
  EXPECT_EQ(stats.cache_miss().count(), 2u);
  EXPECT_EQ(stats.success().count(), 4u);

  // The same requests to the model without the setting all run.
  ClassifyOk(*stub, kModel, batch, 3);
  ClassifyOk(*stub, kModel, batch, 3);
  stats = Statistics(*kserve, kModel);
  EXPECT_EQ(stats.cache_hit().count(), 0u);
  EXPECT_EQ(stats.cache_miss().count(), 0u);
  EXPECT_EQ(stats.success().count(), 2u);

  // A reload is a new version of the model: the first request after it computes again.
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    inference::RepositoryModelLoadRequest request;
    request.set_model_name(kCached);
    inference::RepositoryModelLoadResponse response;
    ASSERT_TRUE(kserve->RepositoryModelLoad(&context, request, &response).ok());
  }
  const v1::ClassifyResponse reloaded = ClassifyOk(*stub, kCached, batch, 3);
  EXPECT_GT(reloaded.timings().decode_us(), 0);
  ExpectSameClasses(reloaded, first, 3);
  ClassifyOk(*stub, kCached, batch, 3);
  stats = Statistics(*kserve, kCached);
  EXPECT_EQ(stats.cache_miss().count(), 1u);
  EXPECT_EQ(stats.cache_hit().count(), 1u);
}

TEST(ResponseCacheTest, CacheSizeZeroTurnsCachingOffWithAWarning) {
  TempDir repo;
  WriteRepository(repo.path());
  auto server = ServerProcess::Start({"--model-repository", repo.path().string(), "--cache-size-mb", "0"});
  ASSERT_NE(server, nullptr);
  EXPECT_NE(server->Log().find("response_cache is enabled but --cache-size-mb is 0"), std::string::npos)
      << server->Log();
  auto stub = server->NewStub();
  auto kserve = inference::GRPCInferenceService::NewStub(server->NewChannel());
  const std::vector<LabeledImage> images = LoadImages(".png", 1);
  ASSERT_EQ(images.size(), 1u);
  ClassifyOk(*stub, kCached, {&images[0]}, 1);
  ClassifyOk(*stub, kCached, {&images[0]}, 1);
  const inference::InferStatistics stats = Statistics(*kserve, kCached);
  EXPECT_EQ(stats.cache_hit().count(), 0u);
  EXPECT_EQ(stats.success().count(), 2u);
}

}  // namespace
}  // namespace cnnserve::integration
