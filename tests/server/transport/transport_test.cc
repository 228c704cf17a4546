// Transport tests against an in-process GrpcServer on 127.0.0.1 (ephemeral port) and a fake InferenceService
// that completes requests on its own threads, in an order the test controls. They check what the transport adds:
// status mapping, deadline conversion, stream ordering and its in-flight bound, health, reflection, the message
// size limit and the shutdown sequence. The real InferenceService is exercised by tests/integration.
#include <arpa/inet.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "cnnserve/v1/classifier.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "server/service/inference_service.h"
#include "server/transport/classifier_service.h"
#include "server/transport/grpc_server.h"
#include "server/transport/grpc_status.h"

namespace cnnserve {
namespace {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;
using std::chrono::milliseconds;

constexpr auto kCallTimeout = std::chrono::seconds(20);

// A servable that only carries an info: the fake service below answers with one class labelled "label of ID".
class LabelServable final : public Servable {
 public:
  explicit LabelServable(std::string label) {
    info_.name = "fake";
    info_.num_classes = 1;
    info_.labels = {std::move(label)};
  }
  const ServableInfo& info() const override { return info_; }
  void Run(std::shared_ptr<const RunRequest>, RunResult*, std::function<void(Status)> done) override {
    done(InternalError("LabelServable does not run"));
  }
  ServableStats Stats() const override { return {}; }
  Status Shutdown(int64_t) override { return OkStatus(); }

 private:
  ServableInfo info_;
};

// A fake that answers on a thread of its own, or when the test says so. The model name selects the outcome:
// "error:N" fails with StatusCode N; "hold" waits until Release() or Shutdown() (in the order the test picks, so
// that completion order needs no timing); anything else succeeds at once. Success is one class labelled
// "label of " + the request id.
class FakeInferenceService final : public InferenceService {
 public:
  ~FakeInferenceService() override {
    (void)Shutdown(SteadyNowMicros());
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }

  void Infer(InferRequest request, std::shared_ptr<InferOutcome> outcome,
             std::function<void(Status)> done) override {
    last_deadline_us_ = request.deadline_us;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++calls_;
      held_cv_.notify_all();
    }
    if (shut_down_) return done(UnavailableError("shutting down"));
    const std::string& model = request.model;
    if (model.rfind("error:", 0) == 0) {
      return done(Status(static_cast<StatusCode>(std::stoi(model.substr(6))), "fake error for " + model));
    }
    const int now = ++in_flight_;
    int high = max_in_flight_.load();
    while (now > high && !max_in_flight_.compare_exchange_weak(high, now)) {
    }
    outcome->request_id = request.request_id;
    outcome->servable = std::make_shared<LabelServable>("label of " + request.request_id);
    auto finish = [this, outcome, model, done = std::move(done)](Status status) {
      if (status.ok()) {
        RunResult& result = outcome->result;
        result.model = model;
        result.num_classes = 1;
        result.num_items = 1;
        result.scores = {1.0f};
        result.probabilities = {1.0f};
      }
      --in_flight_;
      done(std::move(status));
    };
    if (model == "hold") {
      std::lock_guard<std::mutex> lock(mu_);
      held_.push_back(std::move(finish));
      held_cv_.notify_all();
      return;
    }
    std::lock_guard<std::mutex> lock(mu_);
    threads_.emplace_back([cancelled = std::move(request.cancelled), finish = std::move(finish)]() mutable {
      finish(cancelled && cancelled() ? CancelledError("cancelled") : OkStatus());
    });
  }

  std::vector<ModelSummary> Models() const override {
    ModelSummary fake;
    fake.name = "fake";
    return {fake};
  }
  StatusOr<ModelDescription> Describe(const std::string& name, int64_t) const override {
    if (name != "fake") return NotFoundError("model '" + name + "' not found");
    ModelDescription description;
    description.summary.name = "fake";
    return description;
  }
  bool Ready() const override { return ready_ && !shut_down_; }
  std::vector<std::string> ReadyModels() const override { return {"fake"}; }
  // The transport's native service uses only Infer, Models, Describe and the readiness calls.
  StatusOr<std::shared_ptr<Servable>> Find(const std::string& name, int64_t) const override {
    return NotFoundError("model \"" + name + "\" not found");
  }
  std::vector<VersionRow> Index() const override { return {{"fake", 1, "READY", ""}}; }
  StatusOr<std::vector<ServableStats>> Statistics(const std::string&, int64_t) const override {
    return std::vector<ServableStats>{};
  }
  Status LoadModel(const std::string& name) override { return NotFoundError(name); }
  Status UnloadModel(const std::string& name) override { return NotFoundError(name); }
  const InferenceServiceOptions& options() const override { return options_; }

  InferenceServiceOptions options_;

  // Finishes the held requests with OK (or the given status), after blocking until `shutdown_gate_` opens.
  Status Shutdown(int64_t /*drain_deadline_us*/) override {
    shut_down_ = true;
    shutdown_started_ = true;
    {
      std::unique_lock<std::mutex> lock(mu_);
      gate_cv_.wait(lock, [this] { return gate_open_; });
    }
    Release();
    std::vector<std::thread> threads;
    {
      std::lock_guard<std::mutex> lock(mu_);
      threads.swap(threads_);
    }
    for (std::thread& t : threads) t.join();
    return OkStatus();
  }

  // Finishes every held request with OK, oldest first (or newest first); returns how many.
  size_t Release(bool newest_first = false) {
    std::deque<std::function<void(Status)>> held;
    {
      std::lock_guard<std::mutex> lock(mu_);
      held.swap(held_);
    }
    if (newest_first) std::reverse(held.begin(), held.end());
    for (auto& finish : held) finish(OkStatus());
    return held.size();
  }
  bool WaitForHeld(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    return held_cv_.wait_for(lock, kCallTimeout, [&] { return held_.size() >= n; });
  }
  // Waits until Infer has been called `n` times in all.
  bool WaitForCalls(int64_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    return held_cv_.wait_for(lock, kCallTimeout, [&] { return calls_ >= n; });
  }
  void CloseShutdownGate() {
    std::lock_guard<std::mutex> lock(mu_);
    gate_open_ = false;
  }
  void OpenShutdownGate() {
    std::lock_guard<std::mutex> lock(mu_);
    gate_open_ = true;
    gate_cv_.notify_all();
  }

  std::atomic<bool> ready_{true};
  std::atomic<bool> shut_down_{false};
  std::atomic<bool> shutdown_started_{false};
  std::atomic<int> in_flight_{0};
  std::atomic<int> max_in_flight_{0};
  std::atomic<int64_t> last_deadline_us_{-1};

 private:
  std::mutex mu_;
  std::condition_variable held_cv_;  // a request was held, or Infer was called
  int64_t calls_ = 0;                // guarded by mu_
  std::condition_variable gate_cv_;
  bool gate_open_ = true;
  bool stopping_ = false;
  std::deque<std::function<void(Status)>> held_;
  std::vector<std::thread> threads_;
};

class TransportTest : public ::testing::Test {
 protected:
  void StartServer(GrpcServerOptions options = {}) {
    options.address = "127.0.0.1:0";
    auto server = GrpcServer::Create(options, &fake_);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server).value();
    ASSERT_GT(server_->port(), 0);
    ASSERT_EQ(server_->address(), "127.0.0.1:" + std::to_string(server_->port()));
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    channel_ = grpc::CreateCustomChannel(server_->address(), grpc::InsecureChannelCredentials(), args);
    stub_ = v1::Classifier::NewStub(channel_);
    health_ = grpc::health::v1::Health::NewStub(channel_);
  }

  void TearDown() override {
    fake_.OpenShutdownGate();
    if (server_) (void)server_->Shutdown(SteadyNowMicros() + 5'000'000);
  }

  static void SetDeadline(grpc::ClientContext* context) {
    context->set_deadline(std::chrono::system_clock::now() + kCallTimeout);
  }

  HealthCheckResponse::ServingStatus Health(const std::string& service, grpc::Status* status = nullptr) {
    grpc::ClientContext context;
    SetDeadline(&context);
    HealthCheckRequest request;
    request.set_service(service);
    HealthCheckResponse response;
    const grpc::Status s = health_->Check(&context, request, &response);
    if (status != nullptr) *status = s;
    return s.ok() ? response.status() : HealthCheckResponse::UNKNOWN;
  }

  FakeInferenceService fake_;  // outlives server_ (declared first, destroyed last)
  std::unique_ptr<GrpcServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Classifier::Stub> stub_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

TEST(GrpcStatusTest, EveryCodeMapsToTheSameNumberWithTheMessage) {
  EXPECT_TRUE(ToGrpcStatus(OkStatus()).ok());
  for (int code = 1; code <= 16; ++code) {
    const grpc::Status mapped = ToGrpcStatus(Status(static_cast<StatusCode>(code), "field x: limit 3"));
    EXPECT_EQ(static_cast<int>(mapped.error_code()), code);
    EXPECT_EQ(mapped.error_message(), "field x: limit 3");
  }
  EXPECT_EQ(ToGrpcStatus(InvalidArgumentError("bad")).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(ToGrpcStatus(UnavailableError("full")).error_code(), grpc::StatusCode::UNAVAILABLE);
  const grpc::Status odd = ToGrpcStatus(Status(static_cast<StatusCode>(99), "odd"));
  EXPECT_EQ(odd.error_code(), grpc::StatusCode::UNKNOWN);
  EXPECT_NE(odd.error_message().find("99"), std::string::npos);
}

TEST(DeadlineTest, ConvertsToTheSteadyClock) {
  using std::chrono::system_clock;
  EXPECT_EQ(DeadlineToSteadyMicros(system_clock::time_point::max()), 0);
  const int64_t before = SteadyNowMicros();
  const int64_t in_two_s = DeadlineToSteadyMicros(system_clock::now() + std::chrono::seconds(2));
  const int64_t after = SteadyNowMicros();
  EXPECT_GE(in_two_s, before + 1'900'000);
  EXPECT_LE(in_two_s, after + 2'000'000);
  const int64_t past = DeadlineToSteadyMicros(system_clock::now() - std::chrono::seconds(1));
  EXPECT_GT(past, 0);
  EXPECT_LE(past, SteadyNowMicros());
  EXPECT_EQ(DeadlineToSteadyMicros(system_clock::now() + std::chrono::hours(24 * 365 * 20)), 0);
}

TEST_F(TransportTest, CreateRejectsBadOptions) {
  GrpcServerOptions options;
  options.address = "no-port";
  EXPECT_EQ(GrpcServer::Create(options, &fake_).status().code(), StatusCode::kInvalidArgument);
  options.address = "127.0.0.1:0";
  options.max_receive_message_bytes = 0;
  EXPECT_EQ(GrpcServer::Create(options, &fake_).status().code(), StatusCode::kInvalidArgument);
  options.max_receive_message_bytes = 1 << 20;
  EXPECT_EQ(GrpcServer::Create(options, nullptr).status().code(), StatusCode::kInvalidArgument);
  // A port held by a socket of our own (without SO_REUSEPORT): the bind fails, and the InferenceService is left
  // alone.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  options.address = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  EXPECT_EQ(GrpcServer::Create(options, &fake_).status().code(), StatusCode::kUnavailable);
  EXPECT_FALSE(fake_.shutdown_started_);
  close(fd);
}

TEST_F(TransportTest, ASecondServerCannotBindAPortInUse) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  GrpcServerOptions options;
  options.address = server_->address();
  EXPECT_EQ(GrpcServer::Create(options, &fake_).status().code(), StatusCode::kUnavailable);
  EXPECT_FALSE(fake_.shutdown_started_);
  // The first server still answers.
  EXPECT_EQ(Health(""), HealthCheckResponse::NOT_SERVING);
}

TEST_F(TransportTest, UnaryClassifyPassesTheDeadlineAndMapsStatus) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  v1::ClassifyRequest request;
  request.set_model("m");
  request.set_request_id("7");
  v1::ClassifyResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  const int64_t before = SteadyNowMicros();
  ASSERT_TRUE(stub_->Classify(&context, request, &response).ok());
  EXPECT_EQ(response.request_id(), "7");
  EXPECT_EQ(response.results(0).classes(0).label(), "label of 7");
  EXPECT_GT(fake_.last_deadline_us_.load(), before + 8'000'000);
  // Not tighter: the deadline travels as a gRPC timeout (rounded up) and is converted between the system and the
  // steady clock at both ends; on this VM the two drifted apart by 100.4 ms during one CI run.
  EXPECT_LE(fake_.last_deadline_us_.load(), before + 11'000'000);

  for (const int code : {3, 4, 5, 8, 13, 14}) {
    grpc::ClientContext error_context;
    request.set_model("error:" + std::to_string(code));
    const grpc::Status status = stub_->Classify(&error_context, request, &response);
    EXPECT_EQ(static_cast<int>(status.error_code()), code);
    EXPECT_EQ(status.error_message(), "fake error for error:" + std::to_string(code));
  }
  grpc::ClientContext no_deadline;
  request.set_model("m");
  ASSERT_TRUE(stub_->Classify(&no_deadline, request, &response).ok());
  EXPECT_EQ(fake_.last_deadline_us_.load(), 0);
}

TEST_F(TransportTest, ListAndDescribe) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  grpc::ClientContext list_context;
  v1::ListModelsResponse list;
  ASSERT_TRUE(stub_->ListModels(&list_context, {}, &list).ok());
  ASSERT_EQ(list.models_size(), 1);
  EXPECT_EQ(list.models(0).name(), "fake");
  grpc::ClientContext describe_context;
  v1::DescribeModelRequest describe;
  describe.set_model("nope");
  v1::DescribeModelResponse description;
  EXPECT_EQ(stub_->DescribeModel(&describe_context, describe, &description).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

// Requests complete newest first, window after window; responses must come back in request order, with exactly
// max_in_flight_per_stream requests of the stream running at once (the stream fills its window before any
// answer is released).
TEST_F(TransportTest, StreamAnswersInRequestOrderWithBoundedInFlight) {
  constexpr int kInFlight = 6;
  constexpr int kRequests = 120;
  GrpcServerOptions options;
  options.classifier.max_in_flight_per_stream = kInFlight;
  ASSERT_NO_FATAL_FAILURE(StartServer(options));
  grpc::ClientContext context;
  SetDeadline(&context);
  auto stream = stub_->ClassifyStream(&context);
  std::thread writer([&] {
    for (int i = 0; i < kRequests; ++i) {
      v1::ClassifyRequest request;
      request.set_model("hold");
      request.set_request_id(std::to_string(i));
      if (!stream->Write(request)) break;
    }
    stream->WritesDone();
  });
  std::thread releaser([&] {
    for (int released = 0; released < kRequests;) {
      if (!fake_.WaitForHeld(static_cast<size_t>(std::min(kInFlight, kRequests - released)))) return;
      released += static_cast<int>(fake_.Release(/*newest_first=*/true));
    }
  });
  v1::ClassifyResponse response;
  int received = 0;
  while (stream->Read(&response)) {
    EXPECT_EQ(response.request_id(), std::to_string(received));
    ++received;
  }
  writer.join();
  releaser.join();
  const grpc::Status status = stream->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(received, kRequests);
  EXPECT_EQ(fake_.max_in_flight_.load(), kInFlight);
}

// The first failing request (in request order) ends the stream with its status after the earlier responses.
TEST_F(TransportTest, StreamEndsWithTheFirstFailure) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  grpc::ClientContext context;
  SetDeadline(&context);
  auto stream = stub_->ClassifyStream(&context);
  for (int i = 0; i < 10; ++i) {
    v1::ClassifyRequest request;
    request.set_model(i == 4 ? "error:5" : i < 4 ? "hold" : "m");
    request.set_request_id(std::to_string(i));
    ASSERT_TRUE(stream->Write(request));
  }
  // The earlier requests finish after the failing one: they are released once it has been answered.
  ASSERT_TRUE(fake_.WaitForHeld(4));
  ASSERT_TRUE(fake_.WaitForCalls(5));
  fake_.Release(/*newest_first=*/true);
  // The client keeps its side open: the server must end the stream anyway.
  v1::ClassifyResponse response;
  int received = 0;
  while (stream->Read(&response)) {
    EXPECT_EQ(response.request_id(), std::to_string(received));
    ++received;
  }
  const grpc::Status status = stream->Finish();
  EXPECT_EQ(received, 4);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(status.error_message(), "fake error for error:5");
}

TEST_F(TransportTest, EmptyStreamFinishesOk) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  grpc::ClientContext context;
  SetDeadline(&context);
  auto stream = stub_->ClassifyStream(&context);
  ASSERT_TRUE(stream->WritesDone());
  v1::ClassifyResponse response;
  EXPECT_FALSE(stream->Read(&response));
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(TransportTest, CancelledStreamReturnsWhenItsRequestsDo) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  auto context = std::make_unique<grpc::ClientContext>();
  auto stream = stub_->ClassifyStream(context.get());
  for (int i = 0; i < 3; ++i) {
    v1::ClassifyRequest request;
    request.set_model("hold");
    ASSERT_TRUE(stream->Write(request));
  }
  ASSERT_TRUE(fake_.WaitForHeld(3));
  context->TryCancel();
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
  fake_.Release();  // the reactor lives until these are answered
  // Still serving.
  grpc::ClientContext again;
  v1::ListModelsResponse list;
  EXPECT_TRUE(stub_->ListModels(&again, {}, &list).ok());
}

TEST_F(TransportTest, MessagesOverTheLimitGetResourceExhausted) {
  GrpcServerOptions options;
  options.max_receive_message_bytes = 64 << 10;
  ASSERT_NO_FATAL_FAILURE(StartServer(options));
  v1::ClassifyRequest request;
  request.set_model("m");
  request.add_inputs()->set_image(std::string(100 << 10, 'x'));
  v1::ClassifyResponse response;
  grpc::ClientContext context;
  SetDeadline(&context);
  const grpc::Status status = stub_->Classify(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  request.mutable_inputs(0)->set_image(std::string(32 << 10, 'x'));
  grpc::ClientContext small;
  SetDeadline(&small);
  EXPECT_TRUE(stub_->Classify(&small, request, &response).ok());
}

TEST_F(TransportTest, HealthFollowsReadinessAndShutdown) {
  fake_.ready_ = false;
  ASSERT_NO_FATAL_FAILURE(StartServer());
  EXPECT_EQ(Health(""), HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(Health(kClassifierServiceName), HealthCheckResponse::NOT_SERVING);
  fake_.ready_ = true;
  EXPECT_TRUE(server_->UpdateHealth());
  EXPECT_EQ(Health(""), HealthCheckResponse::SERVING);
  EXPECT_EQ(Health(kClassifierServiceName), HealthCheckResponse::SERVING);
  grpc::Status status;
  Health("no.such.Service", &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);

  // A request admitted before shutdown is answered OK; while the service drains, health is NOT_SERVING and new
  // requests are refused.
  v1::ClassifyRequest held;
  held.set_model("hold");
  v1::ClassifyResponse held_response;
  grpc::ClientContext held_context;
  SetDeadline(&held_context);
  std::promise<grpc::Status> held_status;
  stub_->async()->Classify(&held_context, &held, &held_response,
                           [&](grpc::Status s) { held_status.set_value(std::move(s)); });
  ASSERT_TRUE(fake_.WaitForHeld(1));

  fake_.CloseShutdownGate();
  std::thread shutdown([&] { (void)server_->Shutdown(SteadyNowMicros() + 10'000'000); });
  while (!fake_.shutdown_started_) std::this_thread::sleep_for(milliseconds(1));
  EXPECT_EQ(Health(""), HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(Health(kClassifierServiceName), HealthCheckResponse::NOT_SERVING);
  EXPECT_FALSE(server_->UpdateHealth());
  EXPECT_EQ(Health(""), HealthCheckResponse::NOT_SERVING);
  v1::ClassifyRequest late;
  late.set_model("m");
  v1::ClassifyResponse late_response;
  grpc::ClientContext late_context;
  SetDeadline(&late_context);
  EXPECT_EQ(stub_->Classify(&late_context, late, &late_response).error_code(), grpc::StatusCode::UNAVAILABLE);
  fake_.OpenShutdownGate();
  shutdown.join();
  auto future = held_status.get_future();
  ASSERT_EQ(future.wait_for(kCallTimeout), std::future_status::ready);
  EXPECT_TRUE(future.get().ok());
}

// A health Watch sees SERVING, then NOT_SERVING at shutdown; an open Watch does not hold the shutdown up until
// the drain deadline.
TEST_F(TransportTest, WatchSeesNotServingAndDoesNotDelayShutdown) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  ASSERT_TRUE(server_->UpdateHealth());
  grpc::ClientContext context;
  SetDeadline(&context);
  HealthCheckRequest request;
  auto watch = health_->Watch(&context, request);
  HealthCheckResponse update;
  ASSERT_TRUE(watch->Read(&update));
  EXPECT_EQ(update.status(), HealthCheckResponse::SERVING);
  // A drain deadline far beyond anything the shutdown needs: reaching it means the Watch held the shutdown up.
  const int64_t drain_deadline_us = SteadyNowMicros() + 60'000'000;
  std::thread shutdown([&] { (void)server_->Shutdown(drain_deadline_us); });
  ASSERT_TRUE(watch->Read(&update));
  EXPECT_EQ(update.status(), HealthCheckResponse::NOT_SERVING);
  shutdown.join();
  EXPECT_LT(SteadyNowMicros(), drain_deadline_us);
  while (watch->Read(&update)) {
  }
  (void)watch->Finish();
}

// Server reflection answers list_services (ServerReflectionRequest field 7) with our services. The reflection
// protos are not installed, so the request is encoded by hand and the reply searched for the names.
class ReflectionCall final : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  explicit ReflectionCall(const std::string& request_bytes) {
    grpc::Slice slice(request_bytes);
    request_ = grpc::ByteBuffer(&slice, 1);
  }
  void Start() {
    StartWrite(&request_);
    StartRead(&response_);
    StartWritesDone();
    StartCall();
  }
  void OnReadDone(bool ok) override {
    if (ok) {
      std::vector<grpc::Slice> slices;
      (void)response_.Dump(&slices);
      for (const grpc::Slice& s : slices) reply_.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
  }
  void OnDone(const grpc::Status& status) override {
    std::lock_guard<std::mutex> lock(mu_);
    status_ = status;
    done_ = true;
    cv_.notify_all();
  }
  grpc::Status Await() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return done_; });
    return status_;
  }
  const std::string& reply() const { return reply_; }

 private:
  grpc::ByteBuffer request_;
  grpc::ByteBuffer response_;
  std::string reply_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  grpc::Status status_;
};

TEST_F(TransportTest, ReflectionListsTheServices) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  grpc::GenericStub stub(channel_);
  grpc::ClientContext context;
  SetDeadline(&context);
  const std::string list_services("\x3a\x00", 2);  // field 7 (list_services), length 0
  ReflectionCall call(list_services);
  stub.PrepareBidiStreamingCall(&context, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                                grpc::StubOptions(), &call);
  call.Start();
  const grpc::Status status = call.Await();
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_NE(call.reply().find("cnnserve.v1.Classifier"), std::string::npos);
  EXPECT_NE(call.reply().find("grpc.health.v1.Health"), std::string::npos);
}

// Bytes that do not parse as the method's message get INVALID_ARGUMENT naming the message type, on every method of
// both services, unary and streaming (gRPC's own answer would be UNIMPLEMENTED with no message).
TEST_F(TransportTest, RequestBytesThatDoNotParseAreInvalidArgument) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  grpc::GenericStub stub(channel_);
  const std::string garbage("\x0a\x64\x01\x02\xff\xff\xff", 7);  // field 1, 100 bytes announced, 5 present
  for (const auto& [method, type] :
       {std::pair{"/cnnserve.v1.Classifier/Classify", "cnnserve.v1.ClassifyRequest"},
        std::pair{"/cnnserve.v1.Classifier/ListModels", "cnnserve.v1.ListModelsRequest"},
        std::pair{"/cnnserve.v1.Classifier/DescribeModel", "cnnserve.v1.DescribeModelRequest"},
        std::pair{"/cnnserve.v1.Classifier/Explain", "cnnserve.v1.ExplainRequest"},
        std::pair{"/cnnserve.v1.Classifier/Embed", "cnnserve.v1.EmbedRequest"},
        std::pair{"/inference.GRPCInferenceService/ModelInfer", "inference.ModelInferRequest"},
        std::pair{"/inference.GRPCInferenceService/ServerLive", "inference.ServerLiveRequest"},
        std::pair{"/inference.GRPCInferenceService/ServerReady", "inference.ServerReadyRequest"},
        std::pair{"/inference.GRPCInferenceService/ModelReady", "inference.ModelReadyRequest"},
        std::pair{"/inference.GRPCInferenceService/ServerMetadata", "inference.ServerMetadataRequest"},
        std::pair{"/inference.GRPCInferenceService/ModelMetadata", "inference.ModelMetadataRequest"},
        std::pair{"/inference.GRPCInferenceService/ModelConfig", "inference.ModelConfigRequest"},
        std::pair{"/inference.GRPCInferenceService/ModelStatistics", "inference.ModelStatisticsRequest"},
        std::pair{"/inference.GRPCInferenceService/RepositoryIndex", "inference.RepositoryIndexRequest"},
        std::pair{"/inference.GRPCInferenceService/RepositoryModelLoad", "inference.RepositoryModelLoadRequest"},
        std::pair{"/inference.GRPCInferenceService/RepositoryModelUnload",
                  "inference.RepositoryModelUnloadRequest"}}) {
    SCOPED_TRACE(method);
    grpc::ClientContext context;
    SetDeadline(&context);
    grpc::Slice slice(garbage);
    const grpc::ByteBuffer request(&slice, 1);
    grpc::ByteBuffer response;
    std::promise<grpc::Status> done;
    stub.UnaryCall(&context, method, grpc::StubOptions(), &request, &response,
                   [&done](grpc::Status status) { done.set_value(std::move(status)); });
    const grpc::Status status = done.get_future().get();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    EXPECT_EQ(status.error_message(), "the request (7 bytes) does not parse as " + std::string(type));
  }
  {  // The native stream ends with the request's status.
    grpc::ClientContext context;
    SetDeadline(&context);
    ReflectionCall call(garbage);
    stub.PrepareBidiStreamingCall(&context, "/cnnserve.v1.Classifier/ClassifyStream", grpc::StubOptions(), &call);
    call.Start();
    const grpc::Status status = call.Await();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    EXPECT_NE(status.error_message().find("does not parse as cnnserve.v1.ClassifyRequest"), std::string::npos)
        << status.error_message();
  }
  {  // KServe's stream answers the request with an error message and goes on.
    grpc::ClientContext context;
    SetDeadline(&context);
    ReflectionCall call(garbage);
    stub.PrepareBidiStreamingCall(&context, "/inference.GRPCInferenceService/ModelStreamInfer", grpc::StubOptions(),
                                  &call);
    call.Start();
    const grpc::Status status = call.Await();
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_NE(call.reply().find("INVALID_ARGUMENT: the request (7 bytes) does not parse as inference.ModelInferRequest"),
              std::string::npos)
        << call.reply();
  }
  // The server still serves well-formed requests.
  grpc::ClientContext context;
  SetDeadline(&context);
  v1::ListModelsResponse models;
  EXPECT_TRUE(stub_->ListModels(&context, v1::ListModelsRequest(), &models).ok());
}

}  // namespace
}  // namespace cnnserve
