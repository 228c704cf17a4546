// bare_grpc_server: the ceiling of what gRPC itself allows on this machine with cnnserve's messages and client.
//
//   build/bin/bare_grpc_server [--address 127.0.0.1:0] [--input-shape 1,32,32] [--classes 10] [--decode]
//
// Serves cnnserve.v1.Classifier with gRPC's callback API and nothing else: Classify parses the request (gRPC's
// protobuf codec) and answers at once with a fixed response of the same shape as the null model's (one
// Classification per image: per input, or per item of a batched tensor, whose shape has one more dimension than
// --input-shape; top_k classes, default 5, each index c with score 0 and probability 1/classes);
// DescribeModel answers the input shape (so that `cnnload --synthetic` can size its tensors). No model, no
// queue, no batcher, no decoding, no admission. Health (grpc.health.v1) is SERVING. Prints "bare_grpc_server
// listening on HOST:PORT" and runs until SIGTERM or SIGINT. For bench/bare_ceiling.py: the null model's
// requests/s against this one's, same client, same payloads (issue 17: goal >= 0.85).
//
// --decode: before answering, each input goes through the server's own image-input step on the gRPC thread, the
// call cnnserve's servables make (cnnserve::PrepareItem, server/preprocess/image_input.h: an image is checked,
// decoded with OpenCV and preprocessed to --input-shape, GRAY for one channel, else RGB, scale 1/255, mean 0, std
// 1; a tensor is checked for non-finite values and copied), into a per-thread buffer that is then dropped. An
// input that fails gets INVALID_ARGUMENT. This is the ceiling of gRPC plus decoding, what the null model's PNG
// requests are measured against: its work per image is the server's, without the service, the batcher or
// admission.
//
// Like cnnserve it tunes glibc malloc for large messages at start (engine/common/malloc_tuning.h), so that a large
// batch of raw tensors costs it what it costs cnnserve's gRPC threads: bench/server_overhead.py runs the engine
// beside this server's traffic to measure what the transport alone takes from the engine.
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cnnserve/v1/classifier.grpc.pb.h"
#include "engine/common/flags.h"
#include "engine/common/malloc_tuning.h"
#include "engine/common/strings.h"
#include "server/preprocess/image_input.h"
#include "tools/common/grpc_runtime.h"

namespace cnnserve {
namespace {

constexpr int kDefaultTopK = 5;  // as the server's (server/servables/classification.h)
constexpr int kMaxClasses = 1 << 20;
constexpr int64_t kMaxImagesPerInput = 1 << 16;  // bounds the answer to a malformed shape

struct Options {
  std::string address = "127.0.0.1:0";
  std::vector<int64_t> input_shape = {1, 32, 32};
  int classes = 10;
  bool decode = false;
};

// What --decode prepares each input for: the image preprocessing of a model whose input is `input_shape`.
PreprocessOptions DecodeOptions(const std::vector<int64_t>& input_shape) {
  PreprocessOptions preprocess;
  preprocess.color = input_shape[0] == 1 ? ColorFormat::kGray : ColorFormat::kRgb;
  preprocess.target_height_px = input_shape[1];
  preprocess.target_width_px = input_shape[2];
  return preprocess;
}

// --decode's step for one input: cnnserve::PrepareItem into this thread's buffer.
Status PrepareInput(const v1::Input& input, const PreprocessOptions& preprocess, const Dims& input_dims) {
  ImageItem item;
  if (input.has_tensor()) {
    item.kind = ImageItem::Kind::kTensor;
    item.data = input.tensor().data();
  } else {
    item.data = input.image();
  }
  thread_local std::vector<float> buffer;
  buffer.resize(static_cast<size_t>(NumElements(input_dims)));
  const ItemTarget target{
      .model = "bare", .preprocess = &preprocess, .input_dims = input_dims, .dst = buffer.data()};
  return PrepareItem(item, preprocess.decode_limits, target);
}

// The images one input carries: a tensor with one more dimension than the model's input is a batch of shape[0].
int ImagesOf(const v1::Input& input, const Dims& input_dims) {
  if (!input.has_tensor()) return 1;
  const auto& shape = input.tensor().shape();
  if (shape.size() != static_cast<int>(input_dims.size()) + 1 || shape[0] < 1) return 1;
  return static_cast<int>(std::min<int64_t>(shape[0], kMaxImagesPerInput));
}

class BareClassifier final : public v1::Classifier::CallbackService {
 public:
  explicit BareClassifier(const Options& options)
      : options_(options),
        preprocess_(DecodeOptions(options.input_shape)),
        input_dims_(options.input_shape.begin(), options.input_shape.end()) {}

  grpc::ServerUnaryReactor* Classify(grpc::CallbackServerContext* context, const v1::ClassifyRequest* request,
                                     v1::ClassifyResponse* response) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    if (options_.decode) {
      for (const v1::Input& input : request->inputs()) {
        if (const Status status = PrepareInput(input, preprocess_, input_dims_); !status.ok()) {
          reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, status.message()));
          return reactor;
        }
      }
    }
    const int k = std::min(request->top_k() > 0 ? request->top_k() : kDefaultTopK, options_.classes);
    response->set_model(request->model());
    response->set_version(1);
    response->set_request_id(request->request_id());
    for (const v1::Input& input : request->inputs()) {
      const int images = ImagesOf(input, input_dims_);
      for (int image = 0; image < images; ++image) AddFixedResult(k, response->add_results());
    }
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerUnaryReactor* DescribeModel(grpc::CallbackServerContext* context,
                                          const v1::DescribeModelRequest* request,
                                          v1::DescribeModelResponse* response) override {
    v1::ModelSummary* summary = response->mutable_summary();
    summary->set_name(request->model());
    summary->set_platform("bare");
    summary->set_num_classes(options_.classes);
    for (int64_t d : options_.input_shape) summary->add_input_shape(d);
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

 private:
  void AddFixedResult(int k, v1::Classification* result) const {
    for (int c = 0; c < k; ++c) {
      v1::Class* cls = result->add_classes();
      cls->set_index(c);
      cls->set_score(0.0f);
      cls->set_probability(1.0f / static_cast<float>(options_.classes));
    }
  }

  const Options options_;
  const PreprocessOptions preprocess_;
  const Dims input_dims_;
};

int Main(int argc, char** argv) {
  // Before gRPC's threads allocate. Its log line is not printed: stdout carries only the listening line and stderr
  // only errors, which bench/ and tests/bench/ read.
  (void)TuneMallocForLargeMessages();
  Options options;
  FlagSet flags(
      "usage: bare_grpc_server [--address 127.0.0.1:0] [--input-shape 1,32,32] [--classes 10] [--decode]\n");
  flags.String("--address", &options.address, "HOST:PORT", "where to listen (default 127.0.0.1:0)");
  flags.Value("--input-shape", "C,H,W", "what DescribeModel reports (default 1,32,32)",
              [&](std::string_view text) {
                StatusOr<std::vector<int64_t>> shape = ParseIntegerList<int64_t>(text, 1, 1 << 16);
                if (!shape.ok()) return shape.status();
                if (shape->size() != 3)
                  return InvalidArgumentError("--input-shape needs 3 values, got " + Quoted(text));
                options.input_shape = *std::move(shape);
                return OkStatus();
              });
  flags.Integer<int>("--classes", &options.classes, 1, kMaxClasses, "N", "classes of the fixed answer (10)");
  flags.Switch(
      "--decode", &options.decode,
      "decode and preprocess every input to --input-shape as cnnserve does (PrepareItem) before answering");
  if (const Status status = flags.Parse(argc, argv); !status.ok() || flags.help_requested()) {
    if (!status.ok()) std::fprintf(stderr, "bare_grpc_server: %s\n", status.message().c_str());
    std::fputs(flags.Usage().c_str(), status.ok() ? stdout : stderr);
    return status.ok() ? 0 : 2;
  }
  if (options.decode) {
    if (const Status status = ValidatePreprocessOptions(DecodeOptions(options.input_shape)); !status.ok()) {
      std::fprintf(stderr, "bare_grpc_server: --input-shape for --decode: %s\n", status.message().c_str());
      return 2;
    }
  }

  // SIGTERM/SIGINT are taken by sigwait below, on the main thread only.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  grpc::EnableDefaultHealthCheckService(true);
  BareClassifier service(options);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options.address, grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(64 << 20);
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);  // a port in use fails the start, as for cnnserve
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr, "bare_grpc_server: cannot listen on %s\n", options.address.c_str());
    return 1;
  }
  const std::string host = options.address.substr(0, options.address.rfind(':'));
  std::printf("bare_grpc_server listening on %s:%d\n", host.c_str(), port);
  std::fflush(stdout);
  int signal_number = 0;
  sigwait(&signals, &signal_number);
  server->Shutdown();
  return 0;
}

}  // namespace
}  // namespace cnnserve

int main(int argc, char** argv) {
  cnnserve::SkipMutexDeadlockChecks();
  return cnnserve::Main(argc, argv);
}
