#include "server/kserve/kserve_metadata.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "inference/model_config.pb.h"

namespace cnnserve {
namespace {

ServableInfo Info() {
  ServableInfo info;
  info.name = "lenet5_fashion";
  info.version = 2;
  info.platform = "onnx";
  info.item_input_dims = {1, 32, 32};
  info.num_classes = 10;
  info.labels = {"T-shirt/top", "Trouser"};
  info.max_batch_size = 64;
  info.input_name = "input";
  info.output_name = "logits";
  info.config.set_name("lenet5_fashion");
  info.config.mutable_dynamic_batching()->set_max_queue_delay_us(500);
  info.config.mutable_dynamic_batching()->add_preferred_batch_size(8);
  info.config.mutable_dynamic_batching()->add_preferred_batch_size(32);
  info.config.mutable_dynamic_batching()->set_max_queue_size(100);
  info.config.mutable_instance_group()->set_count(2);
  return info;
}

TEST(KServeMetadataTest, ExtensionsAreTheImplementedOnes) {
  std::vector<std::string> extensions = KServeExtensions();
  std::sort(extensions.begin(), extensions.end());
  EXPECT_EQ(extensions,
            (std::vector<std::string>{"classification", "model_configuration", "model_repository", "statistics"}));
}

TEST(KServeMetadataTest, ModelMetadata) {
  inference::ModelMetadataResponse response;
  FillModelMetadata(Info(), {1, 2}, &response);
  EXPECT_EQ(response.name(), "lenet5_fashion");
  EXPECT_EQ(response.platform(), "onnx");
  ASSERT_EQ(response.versions_size(), 2);
  EXPECT_EQ(response.versions(1), "2");
  ASSERT_EQ(response.inputs_size(), 1);
  EXPECT_EQ(response.inputs(0).name(), "input");
  EXPECT_EQ(response.inputs(0).datatype(), "FP32");
  EXPECT_EQ(std::vector<int64_t>(response.inputs(0).shape().begin(), response.inputs(0).shape().end()),
            (std::vector<int64_t>{-1, 1, 32, 32}));
  ASSERT_EQ(response.outputs_size(), 1);
  EXPECT_EQ(response.outputs(0).name(), "logits");
  EXPECT_EQ(response.outputs(0).datatype(), "FP32");
  EXPECT_EQ(std::vector<int64_t>(response.outputs(0).shape().begin(), response.outputs(0).shape().end()),
            (std::vector<int64_t>{-1, 10}));
}

TEST(KServeMetadataTest, ModelConfigHasWhatPerfAnalyzerReads) {
  inference::ModelConfig config;
  FillModelConfig(Info(), &config);
  EXPECT_EQ(config.name(), "lenet5_fashion");
  EXPECT_EQ(config.platform(), "onnx");
  EXPECT_EQ(config.max_batch_size(), 64);
  ASSERT_EQ(config.input_size(), 1);
  EXPECT_EQ(config.input(0).name(), "input");
  EXPECT_EQ(config.input(0).data_type(), inference::TYPE_FP32);
  EXPECT_EQ(config.input(0).format(), inference::ModelInput::FORMAT_NCHW);
  EXPECT_EQ(std::vector<int64_t>(config.input(0).dims().begin(), config.input(0).dims().end()),
            (std::vector<int64_t>{1, 32, 32}));
  ASSERT_EQ(config.output_size(), 1);
  EXPECT_EQ(config.output(0).name(), "logits");
  EXPECT_EQ(config.output(0).data_type(), inference::TYPE_FP32);
  ASSERT_EQ(config.output(0).dims_size(), 1);
  EXPECT_EQ(config.output(0).dims(0), 10);
  EXPECT_EQ(config.output(0).label_filename(), "labels.txt");
  ASSERT_EQ(config.instance_group_size(), 1);
  EXPECT_EQ(config.instance_group(0).count(), 2);
  EXPECT_EQ(config.instance_group(0).kind(), inference::ModelInstanceGroup::KIND_CPU);
  ASSERT_TRUE(config.has_dynamic_batching());
  EXPECT_EQ(config.dynamic_batching().max_queue_delay_microseconds(), 500u);
  ASSERT_EQ(config.dynamic_batching().preferred_batch_size_size(), 2);
  EXPECT_EQ(config.dynamic_batching().preferred_batch_size(1), 32);
  EXPECT_EQ(config.dynamic_batching().default_queue_policy().max_queue_size(), 100u);
}

TEST(KServeMetadataTest, ModelConfigDefaults) {
  ServableInfo info = Info();
  info.labels.clear();
  info.max_batch_size = 0;
  info.config.Clear();
  inference::ModelConfig config;
  FillModelConfig(info, &config);
  EXPECT_EQ(config.max_batch_size(), 1);  // every input has a batch dimension
  EXPECT_EQ(config.output(0).label_filename(), "");
  EXPECT_EQ(config.instance_group(0).count(), 1);
  EXPECT_FALSE(config.has_dynamic_batching());
}

TEST(KServeMetadataTest, ModelStatistics) {
  ServableStats stats;
  stats.name = "lenet5_fashion";
  stats.version = 1;
  stats.last_inference_ms = 1'700'000'000'123;
  stats.inference_count = 12;
  stats.execution_count = 4;
  stats.success = {5, 5000};
  stats.fail = {1, 10};
  stats.queue = {6, 600};
  stats.compute_input = {4, 40};
  stats.compute_infer = {4, 4000};
  stats.compute_output = {4, 4};
  ServableStats::BatchStat batch;
  batch.batch_size = 3;
  batch.compute_infer = {4, 4000};
  stats.batch_stats.push_back(batch);

  inference::ModelStatistics out;
  FillModelStatistics(stats, &out);
  EXPECT_EQ(out.name(), "lenet5_fashion");
  EXPECT_EQ(out.version(), "1");
  EXPECT_EQ(out.last_inference(), 1'700'000'000'123u);
  EXPECT_EQ(out.inference_count(), 12u);
  EXPECT_EQ(out.execution_count(), 4u);
  EXPECT_EQ(out.inference_stats().success().count(), 5u);
  EXPECT_EQ(out.inference_stats().success().ns(), 5000u);
  EXPECT_EQ(out.inference_stats().fail().count(), 1u);
  EXPECT_EQ(out.inference_stats().queue().ns(), 600u);
  EXPECT_EQ(out.inference_stats().compute_infer().count(), 4u);
  ASSERT_EQ(out.batch_stats_size(), 1);
  EXPECT_EQ(out.batch_stats(0).batch_size(), 3u);
  EXPECT_EQ(out.batch_stats(0).compute_infer().ns(), 4000u);
}

}  // namespace
}  // namespace cnnserve
