// Ensembles through a real cnnserve over gRPC: the default repository's fashion_ensemble (five trained members,
// three preprocessing configs) answers like the mean of its members asked one by one; every strategy serves;
// a slow member is given up after member_timeout_ms and the quorum rule decides (partial result, or UNAVAILABLE
// naming the member).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>

#include "tests/integration/test_env.h"

namespace cnnserve::integration {
namespace {

namespace fs = std::filesystem;

constexpr char kEnsemble[] = "fashion_ensemble";
constexpr int kImages = 64;

// Full probability rows of `model` for `images` (top_k = every class), by class index.
std::vector<std::vector<float>> Probabilities(v1::Classifier::Stub& stub, const std::string& model,
                                              const std::vector<const LabeledImage*>& images) {
  v1::ClassifyRequest request = ImageRequest(images, kNumClasses);
  request.set_model(model);
  v1::ClassifyResponse response;
  const grpc::Status status = Classify(stub, request, &response);
  EXPECT_TRUE(status.ok()) << model << ": " << status.error_message();
  std::vector<std::vector<float>> rows;
  for (const v1::Classification& result : response.results()) {
    std::vector<float> row(kNumClasses, -1.0f);
    for (const v1::Class& c : result.classes()) row[static_cast<size_t>(c.index())] = c.probability();
    rows.push_back(std::move(row));
  }
  return rows;
}

std::vector<std::string> Members(v1::Classifier::Stub& stub, const std::string& ensemble) {
  v1::DescribeModelRequest request;
  request.set_model(ensemble);
  v1::DescribeModelResponse response;
  grpc::ClientContext context;
  EXPECT_TRUE(stub.DescribeModel(&context, request, &response).ok());
  std::vector<std::string> members;
  for (const auto& m : response.config().ensemble().members()) members.push_back(m.model());
  return members;
}

TEST(EnsembleIntegrationTest, DefaultEnsembleIsTheMeanOfItsMembers) {
  std::unique_ptr<ServerProcess> server = ServerProcess::Start({"--model-repository", DefaultRepository().string()});
  ASSERT_NE(server, nullptr);
  std::unique_ptr<v1::Classifier::Stub> stub = server->NewStub();

  // Listed and described like a model, with its members and strategy.
  v1::ListModelsResponse list;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub->ListModels(&context, v1::ListModelsRequest(), &list).ok());
  }
  const v1::ModelSummary* summary = nullptr;
  for (const v1::ModelSummary& m : list.models()) {
    if (m.name() == kEnsemble) summary = &m;
  }
  ASSERT_NE(summary, nullptr);
  EXPECT_EQ(summary->platform(), "ensemble");
  ASSERT_EQ(summary->versions_size(), 1);
  EXPECT_EQ(summary->versions(0).state(), "READY") << summary->versions(0).reason();
  EXPECT_EQ(summary->num_classes(), kNumClasses);
  const std::vector<std::string> members = Members(*stub, kEnsemble);
  ASSERT_GE(members.size(), 5u);

  const std::vector<LabeledImage> images = LoadImages(".png", kImages);
  std::vector<const LabeledImage*> pointers;
  for (const LabeledImage& image : images) pointers.push_back(&image);
  std::map<std::string, std::vector<std::vector<float>>> member_rows;
  for (const std::string& m : members) member_rows[m] = Probabilities(*stub, m, pointers);

  v1::ClassifyRequest request = ImageRequest(pointers, 3);
  request.set_model(kEnsemble);
  request.set_include_member_results(true);
  v1::ClassifyResponse response;
  const grpc::Status status = Classify(*stub, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.model(), kEnsemble);
  EXPECT_EQ(response.members_total(), static_cast<int>(members.size()));
  EXPECT_EQ(response.members_answered(), static_cast<int>(members.size()));
  EXPECT_FALSE(response.partial());
  ASSERT_EQ(response.results_size(), kImages);
  int correct = 0;
  for (int i = 0; i < kImages; ++i) {
    const v1::Classification& result = response.results(i);
    ASSERT_EQ(result.classes_size(), 3);
    // SOFT_MEAN: the mean of the members' probabilities, each member asked alone.
    std::vector<float> mean(kNumClasses, 0.0f);
    for (const std::string& m : members) {
      for (int c = 0; c < kNumClasses; ++c) mean[c] += member_rows[m][i][c] / static_cast<float>(members.size());
    }
    const int best = static_cast<int>(std::max_element(mean.begin(), mean.end()) - mean.begin());
    EXPECT_EQ(result.classes(0).index(), best) << i;
    for (const v1::Class& c : result.classes()) EXPECT_NEAR(c.probability(), mean[c.index()], 2e-5f) << i;
    EXPECT_NEAR(result.margin(), result.classes(0).probability() - result.classes(1).probability(), 1e-6f);
    // Agreement: members whose own top-1 is the ensemble's.
    int agree = 0;
    ASSERT_EQ(result.members_size(), static_cast<int>(members.size()));
    for (int m = 0; m < result.members_size(); ++m) {
      const v1::MemberClassification& member = result.members(m);
      EXPECT_EQ(member.model(), members[static_cast<size_t>(m)]);
      EXPECT_TRUE(member.error().empty()) << member.error();
      ASSERT_EQ(member.classes_size(), 3);
      const std::vector<float>& row = member_rows[member.model()][i];
      const int member_best = static_cast<int>(std::max_element(row.begin(), row.end()) - row.begin());
      EXPECT_EQ(member.classes(0).index(), member_best);
      EXPECT_NEAR(member.classes(0).probability(), row[member_best], 2e-5f);
      agree += member_best == best;
    }
    EXPECT_NEAR(result.agreement(), static_cast<float>(agree) / static_cast<float>(members.size()), 1e-6f);
    correct += result.classes(0).index() == images[static_cast<size_t>(i)].label;
  }
  EXPECT_GE(correct, kImages * 85 / 100);

  // Without include_member_results: no member rows, same classes.
  request.set_include_member_results(false);
  v1::ClassifyResponse plain;
  ASSERT_TRUE(Classify(*stub, request, &plain).ok());
  EXPECT_EQ(plain.results(0).members_size(), 0);
  EXPECT_EQ(plain.results(0).classes(0).index(), response.results(0).classes(0).index());
  // Raw tensors must fit every member: the members' inputs differ (32x32 and 28x28), so a tensor is refused.
  v1::ClassifyRequest tensor_request;
  tensor_request.set_model(kEnsemble);
  v1::RawTensor* tensor = tensor_request.add_inputs()->mutable_tensor();
  for (int64_t d : {1, 32, 32}) tensor->add_shape(d);
  tensor->set_data(std::string(32 * 32 * sizeof(float), '\0'));
  v1::ClassifyResponse refused;
  const grpc::Status tensor_status = Classify(*stub, tensor_request, &refused);
  EXPECT_EQ(tensor_status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << tensor_status.error_message();
}

// A repository of its own: three copies of LeNet-5, one of which never runs a batch in time (it waits for a
// full batch of 64 for up to a minute), and ensembles over them.
class EnsembleQuorumTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : {"a", "b", "slow"}) {
      const fs::path dir = repo_.path() / name;
      fs::copy(DefaultRepository() / kModel, dir, fs::copy_options::recursive);
      std::string config = ReadFileBytes(dir / "config.pbtxt");
      config.replace(config.find(std::string("name: \"") + kModel + "\""), std::strlen(kModel) + 8,
                     std::string("name: \"") + name + "\"");
      if (std::string(name) == "slow") {
        config.replace(config.find("max_queue_delay_us: 500"), 23,
                       "max_queue_delay_us: 60000000 policy: FIXED_DELAY");
        config.replace(config.find("preferred_batch_size: [8, 32]"), 29, "preferred_batch_size: [64]");
      }
      WriteFileBytes(dir / "config.pbtxt", config);
    }
    AddEnsemble("quorum2", "SOFT_MEAN", 2);
    AddEnsemble("quorum3", "SOFT_MEAN", 3);
    for (const char* strategy :
         {"HARD_MAJORITY", "SOFT_MEAN", "WEIGHTED_SOFT", "GEOMETRIC_MEAN", "BORDA", "MAX_CONFIDENCE"}) {
      AddEnsemble(std::string("s_") + strategy, strategy, 2);
    }
    server_ = ServerProcess::Start({"--model-repository", repo_.path().string()});
    ASSERT_NE(server_, nullptr);
    stub_ = server_->NewStub();
  }

  void AddEnsemble(const std::string& name, const std::string& strategy, int quorum) {
    fs::create_directories(repo_.path() / name);
    WriteFileBytes(repo_.path() / name / "config.pbtxt",
                   "name: \"" + name + "\"\nplatform: \"ensemble\"\nmax_batch_size: 64\nensemble {\n" +
                       "  members { model: \"a\" weight: 2 }\n  members { model: \"b\" }\n" +
                       "  members { model: \"slow\" }\n  strategy: " + strategy +
                       "\n  quorum: " + std::to_string(quorum) + "\n  member_timeout_ms: 300\n}\n");
  }

  TempDir repo_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<v1::Classifier::Stub> stub_;
};

TEST_F(EnsembleQuorumTest, SlowMemberIsGivenUpAndTheQuorumDecides) {
  const std::vector<LabeledImage> images = LoadImages(".png", 4);
  std::vector<const LabeledImage*> pointers;
  for (const LabeledImage& image : images) pointers.push_back(&image);

  v1::ClassifyRequest request = ImageRequest(pointers);
  request.set_model("quorum2");
  request.set_include_member_results(true);
  v1::ClassifyResponse response;
  const grpc::Status ok = Classify(*stub_, request, &response);
  ASSERT_TRUE(ok.ok()) << ok.error_message();
  EXPECT_EQ(response.members_total(), 3);
  EXPECT_EQ(response.members_answered(), 2);
  EXPECT_TRUE(response.partial());
  ASSERT_EQ(response.results(0).members_size(), 3);
  EXPECT_NE(response.results(0).members(2).error().find("DEADLINE_EXCEEDED"), std::string::npos)
      << response.results(0).members(2).error();
  EXPECT_TRUE(response.results(0).members(0).error().empty());

  request.set_model("quorum3");
  const grpc::Status refused = Classify(*stub_, request, &response);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(refused.error_message().find("2 of 3 members answered (quorum 3)"), std::string::npos)
      << refused.error_message();
  EXPECT_NE(refused.error_message().find("\"slow\""), std::string::npos) << refused.error_message();

  // Every strategy serves, and with two identical members (a, b) they all agree with the members' top-1.
  v1::ClassifyRequest member_request = ImageRequest(pointers);
  member_request.set_model("a");
  v1::ClassifyResponse member;
  ASSERT_TRUE(Classify(*stub_, member_request, &member).ok());
  for (const char* strategy :
       {"HARD_MAJORITY", "SOFT_MEAN", "WEIGHTED_SOFT", "GEOMETRIC_MEAN", "BORDA", "MAX_CONFIDENCE"}) {
    SCOPED_TRACE(strategy);
    request.set_model(std::string("s_") + strategy);
    v1::ClassifyResponse r;
    const grpc::Status status = Classify(*stub_, request, &r);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(r.results_size(), 4);
    for (int i = 0; i < 4; ++i) {
      EXPECT_EQ(Top1(r.results(i)), Top1(member.results(i)));
      EXPECT_FLOAT_EQ(r.results(i).agreement(), 1.0f);
      float sum = 0.0f;
      for (const v1::Class& c : r.results(i).classes()) sum += c.probability();
      EXPECT_LE(sum, 1.0f + 1e-5f);
    }
  }
  // Still serving the plain members.
  ASSERT_TRUE(Classify(*stub_, member_request, &member).ok());
}

}  // namespace
}  // namespace cnnserve::integration
