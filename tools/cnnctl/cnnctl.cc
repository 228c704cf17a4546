// cnnctl: the command-line client of cnnserve. It uses only the generated protobuf/gRPC code (proto/) and gRPC.
//
//   cnnctl [--server HOST:PORT] [--timeout-s S] [--tls-ca FILE] [--tls-cert FILE --tls-key FILE]
//          [--tls-server-name NAME] [--token T] COMMAND ...    (the token also from $CNNSERVE_TOKEN)
//   cnnctl ... classify --model M [--version V] [--top-k K] [--batch N] [--members]
//          [--json]
//          FILE...
//   cnnctl [--server HOST:PORT] list [--json]
//   cnnctl [--server HOST:PORT] describe MODEL [--version V] [--json]
//   cnnctl [--server HOST:PORT] health [--service NAME]
//   cnnctl ... explain --model M FILE --patch P --stride S [--class K] [--fill F] [--out MAP.png] [--json]
//   cnnctl ... features --model M --layer L FILE [--out GRID.png] [--json]
//   cnnctl ... embed --model M --layer L FILE... [--json]
//
// Exit codes: 0 success (health: SERVING), 1 an RPC failed or health is not SERVING (the gRPC code and message are
// printed on stderr), 2 bad command line or unreadable file (TLS files included).

#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cmath>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cnnserve/v1/classifier.grpc.pb.h"
#include "engine/common/flags.h"
#include "engine/common/strings.h"
#include "engine/common/units.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "tools/common/client_channel.h"
#include "tools/common/tool_text.h"
#include "tools/cnnctl/png_image.h"

namespace cnnserve::cnnctl {
namespace {

using ::cnnserve::tools::ClientSecurity;
using ::cnnserve::tools::ClientSecurityOptions;
using ::cnnserve::tools::GrpcCodeName;
using ::cnnserve::tools::JsonQuote;

constexpr int kExitOk = 0;
constexpr int kExitRpcFailed = 1;
constexpr int kExitUsage = 2;
constexpr int kDefaultBatch = 32;
// Responses such as DescribeModel of a large model may exceed gRPC's default 4 MiB receive limit.
constexpr int kMaxReceiveMessageBytes = 256 * kBytesPerMiB;
// How long to wait for the connection (at most; never longer than --timeout-s).
constexpr double kConnectTimeoutSeconds = 5;
// Reconnect quickly: gRPC 1.51's TCP client now and then reports a successful loopback connect as failed (it reads
// errno after other calls), and the default backoff would turn that into a 1 s pause.
constexpr int kReconnectBackoffMs = 50;
constexpr double kMinTimeoutSeconds = 0.001;
constexpr double kMaxTimeoutSeconds = kSecondsPerDay;
constexpr int kMaxBatch = 1 << 20;
constexpr int64_t kMaxVersion = std::numeric_limits<int64_t>::max();

constexpr char kSynopsis[] = R"(usage: cnnctl [--server HOST:PORT] [--timeout-s S] [security flags] COMMAND [ARGS]

commands:
  classify --model M [--version V] [--top-k K] [--batch N] [--members] [--json] FILE...
                      classify JPEG/PNG files (N files per request, default 32) and print the top-k per file;
                      for an ensemble also its agreement and margin, and with --members each member's top-k
  list [--json]       models, versions and their state
  describe MODEL [--version V] [--json]
                      a model's summary, config and per-layer table
  health [--service NAME]
                      the server's health ("" = overall); exit 0 only when SERVING
  explain --model M FILE --patch P --stride S [--class K] [--fill F] [--out MAP.png] [--json]
                      occlusion map: how much the class's probability falls with a P x P patch covered at every
                      S-th input pixel; --out writes it as a heat map (over the image when FILE is a PNG)
  features --model M --layer L FILE [--out GRID.png] [--json]
                      one layer's activations for FILE; --out writes one tile per channel
  embed --model M --layer L FILE... [--json]
                      one layer's activations (e.g. an embedding) for each FILE, in one batched request
)";

struct Global {
  std::string server = "127.0.0.1:8001";
  double timeout_s = 30;
  ClientSecurityOptions security;
};

// Prints a command-line error and returns the usage exit code.
int UsageError(const std::string& message) {
  std::fprintf(stderr, "cnnctl: %s\nrun 'cnnctl --help' for usage\n", message.c_str());
  return kExitUsage;
}

// The global flags (before the command) on `flags`, stored in `global`.
void AddGlobalFlags(FlagSet& flags, Global* global) {
  flags.Section("global flags:");
  flags.String("--server", &global->server, "HOST:PORT", "default 127.0.0.1:8001");
  flags.Double("--timeout-s", &global->timeout_s, kMinTimeoutSeconds, kMaxTimeoutSeconds, "S",
               "deadline of each call in seconds (default 30)");
  flags.Section("security flags (any --tls-* flag means TLS; without them the connection is plaintext):");
  tools::AddClientSecurityFlags(&flags, &global->security);
  flags.StopAtFirstPositional();
}

// Parses the arguments after `command` with `flags`; nullopt to go on, else the exit code (usage printed for
// --help, the error otherwise).
std::optional<int> ParseCommandFlags(FlagSet& flags, std::span<const std::string> args, std::string_view command) {
  const Status status = flags.Parse(args);
  if (flags.help_requested()) {
    std::fputs(flags.Usage().c_str(), stdout);
    return kExitOk;
  }
  if (!status.ok()) return UsageError(std::string(command) + ": " + status.message());
  return std::nullopt;
}

int ReportRpcError(std::string_view what, const grpc::Status& status) {
  std::fprintf(stderr, "cnnctl: %.*s failed: %s (%d): %s\n", static_cast<int>(what.size()), what.data(),
               GrpcCodeName(status.error_code()).c_str(), static_cast<int>(status.error_code()),
               status.error_message().c_str());
  return kExitRpcFailed;
}

class Client {
 public:
  Client(const Global& global, const ClientSecurity& security) : global_(global) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(kMaxReceiveMessageBytes);
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, kReconnectBackoffMs);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, kReconnectBackoffMs);
    channel_ = security.NewChannel(global.server, args);
  }
  // Waits for the connection; false (after printing the error, e.g. a failed TLS handshake) when the server cannot
  // be reached in time.
  bool Connect() {
    const double seconds = std::min(global_.timeout_s, kConnectTimeoutSeconds);
    const Status status = tools::WaitForChannel(
        channel_, global_.server, std::chrono::milliseconds(static_cast<int64_t>(seconds * kMillisPerSecond)));
    if (status.ok()) return true;
    std::fprintf(stderr, "cnnctl: UNAVAILABLE (%d): %s\n", static_cast<int>(grpc::StatusCode::UNAVAILABLE),
                 status.message().c_str());
    return false;
  }
  v1::Classifier::Stub& classifier() {
    if (!classifier_) classifier_ = v1::Classifier::NewStub(channel_);
    return *classifier_;
  }
  grpc::health::v1::Health::Stub& health() {
    if (!health_) health_ = grpc::health::v1::Health::NewStub(channel_);
    return *health_;
  }
  void SetDeadline(grpc::ClientContext* context) const {
    context->set_deadline(std::chrono::system_clock::now() +
                          std::chrono::microseconds(static_cast<int64_t>(global_.timeout_s * kMicrosPerSecond)));
  }

 private:
  Global global_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Classifier::Stub> classifier_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

bool ReadFile(const std::string& path, std::string* contents) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  contents->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return !in.bad();
}

// The classes of one result as JSON objects, comma-separated (no brackets).
void PrintClassesJson(const google::protobuf::RepeatedPtrField<v1::Class>& classes) {
  for (int r = 0; r < classes.size(); ++r) {
    const v1::Class& c = classes[r];
    std::printf("%s{\"rank\": %d, \"index\": %d, \"label\": %s, \"probability\": %.9g, \"score\": %.9g}",
                r == 0 ? "" : ", ", r + 1, c.index(), JsonQuote(c.label()).c_str(), c.probability(), c.score());
  }
}

int Classify(Client& client, std::span<const std::string> args) {
  std::string model;
  int64_t version = 0;
  int top_k = 0;
  int batch = kDefaultBatch;
  bool json = false;
  bool members = false;
  std::vector<std::string> files;
  FlagSet flags(kSynopsis);
  flags.String("--model", &model, "M", "the model (required)");
  flags.Integer<int64_t>("--version", &version, 0, kMaxVersion, "V",
                         "its version (default 0: the server's choice)");
  // The server judges the value of --top-k.
  flags.Integer<int>("--top-k", &top_k, std::numeric_limits<int>::min(), std::numeric_limits<int>::max(), "K",
                     "classes per file (default 0: the server's default)");
  flags.Integer<int>("--batch", &batch, 1, kMaxBatch, "N", "files per request (default 32)");
  flags.Switch("--json", &json, "print JSON");
  flags.Switch("--members", &members, "an ensemble's members' top-k too");
  flags.Positionals(&files);
  if (const std::optional<int> exit_code = ParseCommandFlags(flags, args, "classify")) return *exit_code;
  if (model.empty()) return UsageError("classify: --model is required");
  if (files.empty()) return UsageError("classify: no FILE given");
  std::vector<std::string> contents(files.size());
  for (size_t i = 0; i < files.size(); ++i) {
    if (!ReadFile(files[i], &contents[i])) return UsageError("cannot read " + Quoted(files[i], kMaxQuotedPathBytes));
  }
  if (!client.Connect()) return kExitRpcFailed;

  int file_width = 4;
  for (const std::string& file : files) file_width = std::max(file_width, static_cast<int>(file.size()));
  if (json) {
    std::printf("[");
  } else {
    std::printf("%-*s %4s  %-20s %5s  %11s  %10s\n", file_width, "file", "rank", "label", "index", "probability",
                "score");
  }
  bool first_json = true;
  for (size_t begin = 0; begin < files.size(); begin += batch) {
    const size_t end = std::min(files.size(), begin + batch);
    v1::ClassifyRequest request;
    request.set_model(model);
    request.set_version(version);
    request.set_top_k(top_k);
    request.set_include_member_results(members);
    for (size_t i = begin; i < end; ++i) request.add_inputs()->set_image(std::move(contents[i]));
    v1::ClassifyResponse response;
    grpc::ClientContext context;
    client.SetDeadline(&context);
    const grpc::Status status = client.classifier().Classify(&context, request, &response);
    if (!status.ok()) {
      if (json) std::printf("]\n");
      std::fflush(stdout);
      return ReportRpcError("Classify", status);
    }
    if (response.results_size() != static_cast<int>(end - begin)) {
      std::fprintf(stderr, "cnnctl: Classify returned %d results for %zu inputs\n", response.results_size(),
                   end - begin);
      return kExitRpcFailed;
    }
    for (size_t i = begin; i < end; ++i) {
      const v1::Classification& result = response.results(static_cast<int>(i - begin));
      if (json) {
        std::printf("%s\n {\"file\": %s, \"model\": %s, \"version\": %" PRId64 ", \"classes\": [",
                    first_json ? "" : ",", JsonQuote(files[i]).c_str(), JsonQuote(response.model()).c_str(),
                    response.version());
        first_json = false;
        PrintClassesJson(result.classes());
        std::printf("]");
        if (response.members_total() > 0) {
          std::printf(", \"agreement\": %.9g, \"margin\": %.9g, \"members_answered\": %d, \"members_total\": %d",
                      result.agreement(), result.margin(), response.members_answered(), response.members_total());
          if (result.members_size() > 0) {
            std::printf(", \"members\": [");
            for (int m = 0; m < result.members_size(); ++m) {
              const v1::MemberClassification& member = result.members(m);
              std::printf("%s{\"model\": %s, \"version\": %" PRId64 ", \"error\": %s, \"classes\": [",
                          m == 0 ? "" : ", ", JsonQuote(member.model()).c_str(), member.version(),
                          JsonQuote(member.error()).c_str());
              PrintClassesJson(member.classes());
              std::printf("]}");
            }
            std::printf("]");
          }
        }
        std::printf("}");
      } else {
        for (int r = 0; r < result.classes_size(); ++r) {
          const v1::Class& c = result.classes(r);
          std::printf("%-*s %4d  %-20s %5d  %11.6f  %10.4f\n", file_width, r == 0 ? files[i].c_str() : "", r + 1,
                      c.label().c_str(), c.index(), c.probability(), c.score());
        }
        if (response.members_total() > 0) {
          std::printf("%-*s ensemble: agreement %.2f, margin %.4f, %d of %d members answered\n", file_width, "",
                      result.agreement(), result.margin(), response.members_answered(), response.members_total());
          for (const v1::MemberClassification& member : result.members()) {
            if (!member.error().empty()) {
              std::printf("%-*s   member %s: %s\n", file_width, "", member.model().c_str(),
                          member.error().c_str());
            } else if (member.classes_size() > 0) {
              const v1::Class& c = member.classes(0);
              std::printf("%-*s   member %-24s top-1 %-20s %11.6f\n", file_width, "", member.model().c_str(),
                          c.label().c_str(), c.probability());
            }
          }
        }
      }
    }
  }
  if (json) std::printf("\n]\n");
  return kExitOk;
}

std::string VersionsText(const v1::ModelSummary& model) {
  std::string text;
  for (const v1::ModelVersionState& v : model.versions()) {
    if (!text.empty()) text += ", ";
    text += std::to_string(v.version()) + ":" + v.state();
  }
  return text.empty() ? "-" : text;
}

std::string ShapeText(const v1::ModelSummary& model) {
  std::string text;
  for (const int64_t d : model.input_shape()) text += (text.empty() ? "" : "x") + std::to_string(d);
  return text.empty() ? "-" : text;
}

int PrintJson(const google::protobuf::Message& message) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  if (!google::protobuf::util::MessageToJsonString(message, &json, options).ok()) {
    std::fprintf(stderr, "cnnctl: cannot print the response as JSON\n");
    return kExitRpcFailed;
  }
  std::printf("%s", json.c_str());
  return kExitOk;
}

int List(Client& client, std::span<const std::string> args) {
  bool json = false;
  FlagSet flags(kSynopsis);
  flags.Switch("--json", &json, "print JSON");
  if (const std::optional<int> exit_code = ParseCommandFlags(flags, args, "list")) return *exit_code;
  if (!client.Connect()) return kExitRpcFailed;
  v1::ListModelsResponse response;
  grpc::ClientContext context;
  client.SetDeadline(&context);
  const grpc::Status status = client.classifier().ListModels(&context, v1::ListModelsRequest(), &response);
  if (!status.ok()) return ReportRpcError("ListModels", status);
  if (json) return PrintJson(response);
  std::printf("%-24s %-10s %-12s %7s  %s\n", "model", "platform", "input", "classes", "versions");
  for (const v1::ModelSummary& model : response.models()) {
    std::printf("%-24s %-10s %-12s %7d  %s\n", model.name().c_str(), model.platform().c_str(),
                ShapeText(model).c_str(), model.num_classes(), VersionsText(model).c_str());
    for (const v1::ModelVersionState& v : model.versions()) {
      if (!v.reason().empty()) std::printf("  version %" PRId64 ": %s\n", v.version(), v.reason().c_str());
    }
  }
  return kExitOk;
}

int Describe(Client& client, std::span<const std::string> args) {
  v1::DescribeModelRequest request;
  int64_t version = 0;
  bool json = false;
  std::vector<std::string> models;
  FlagSet flags(kSynopsis);
  flags.Integer<int64_t>("--version", &version, 0, kMaxVersion, "V",
                         "the version (default 0: the server's choice)");
  flags.Switch("--json", &json, "print JSON");
  flags.Positionals(&models);
  if (const std::optional<int> exit_code = ParseCommandFlags(flags, args, "describe")) return *exit_code;
  if (models.empty()) return UsageError("describe: MODEL is required");
  if (models.size() > 1) return UsageError("describe: unexpected argument " + Quoted(models[1]));
  request.set_model(models[0]);
  request.set_version(version);
  if (!client.Connect()) return kExitRpcFailed;
  v1::DescribeModelResponse response;
  grpc::ClientContext context;
  client.SetDeadline(&context);
  const grpc::Status status = client.classifier().DescribeModel(&context, request, &response);
  if (!status.ok()) return ReportRpcError("DescribeModel", status);
  if (json) return PrintJson(response);
  const v1::ModelSummary& summary = response.summary();
  std::printf("model:      %s (%s)\n", summary.name().c_str(), summary.platform().c_str());
  std::printf("versions:   %s\n", VersionsText(summary).c_str());
  std::printf("input:      %s\n", ShapeText(summary).c_str());
  std::printf("classes:    %d\n", summary.num_classes());
  const v1::ModelConfig& config = response.config();
  if (config.platform().empty() || config.platform() == "onnx") {
    std::printf("precision:  %s\n", v1::Precision_Name(config.precision()).c_str());
  }
  if (config.response_cache().enable()) std::printf("cache:      response cache enabled\n");
  if (!response.config().description().empty()) {
    std::printf("about:      %s\n", response.config().description().c_str());
  }
  std::printf("parameters: %" PRId64 "\nMACs:       %" PRId64 "\n", response.total_params(),
              response.total_macs());
  if (!response.layer_table().empty()) std::printf("\n%s", response.layer_table().c_str());
  return kExitOk;
}

int Health(Client& client, std::span<const std::string> args) {
  grpc::health::v1::HealthCheckRequest request;
  std::string service;
  FlagSet flags(kSynopsis);
  flags.String("--service", &service, "NAME", "the service (default \"\": the server overall)");
  if (const std::optional<int> exit_code = ParseCommandFlags(flags, args, "health")) return *exit_code;
  request.set_service(service);
  if (!client.Connect()) return kExitRpcFailed;
  grpc::health::v1::HealthCheckResponse response;
  grpc::ClientContext context;
  client.SetDeadline(&context);
  const grpc::Status status = client.health().Check(&context, request, &response);
  if (!status.ok()) return ReportRpcError("Health.Check", status);
  std::printf("%s\n", grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status()).c_str());
  return response.status() == grpc::health::v1::HealthCheckResponse::SERVING ? kExitOk : kExitRpcFailed;
}

// The explain/features/embed commands' common flags.
struct LayerFlags {
  std::string model;
  int64_t version = 0;
  std::string layer;
  std::string out;
  bool json = false;
  std::vector<std::string> files;
};

void AddLayerFlags(FlagSet& flags, LayerFlags* f, bool layer, bool out) {
  flags.String("--model", &f->model, "M", "the model (required)");
  flags.Integer<int64_t>("--version", &f->version, 0, kMaxVersion, "V", "its version (default 0: the server's choice)");
  if (layer) flags.String("--layer", &f->layer, "L", "a node or tensor name as `cnnctl describe` lists them");
  if (out) flags.String("--out", &f->out, "FILE.png", "write the picture here");
  flags.Switch("--json", &f->json, "print JSON");
  flags.Positionals(&f->files);
}

// Parses `args` with `flags`, checks the common flags (--layer when `needs_layer`) and reads the files; nullopt to
// go on, else the exit code.
std::optional<int> ParseLayerCommand(FlagSet& flags, std::span<const std::string> args, const char* command,
                                     const LayerFlags& f, bool needs_layer, bool one_file,
                                     std::vector<std::string>* contents) {
  if (const std::optional<int> exit_code = ParseCommandFlags(flags, args, command)) return exit_code;
  if (needs_layer && f.layer.empty()) return UsageError(std::string(command) + ": --layer is required");
  if (f.model.empty()) return UsageError(std::string(command) + ": --model is required");
  if (f.files.empty()) return UsageError(std::string(command) + ": no FILE given");
  if (one_file && f.files.size() > 1) return UsageError(std::string(command) + ": one FILE only");
  contents->resize(f.files.size());
  for (size_t i = 0; i < f.files.size(); ++i) {
    if (!ReadFile(f.files[i], &(*contents)[i])) return UsageError("cannot read " + Quoted(f.files[i], kMaxQuotedPathBytes));
  }
  return std::nullopt;
}

// Connects and calls Explain; nullopt on success, else the exit code (the error printed).
std::optional<int> CallExplain(Client& client, const v1::ExplainRequest& request, v1::ExplainResponse* response) {
  if (!client.Connect()) return kExitRpcFailed;
  grpc::ClientContext context;
  client.SetDeadline(&context);
  const grpc::Status status = client.classifier().Explain(&context, request, response);
  if (!status.ok()) return ReportRpcError("Explain", status);
  return std::nullopt;
}

int WritePicture(const std::string& path, const tools::RgbImage& image) {
  if (Status s = tools::WritePng(path, image); !s.ok()) {
    std::fprintf(stderr, "cnnctl: %s\n", s.message().c_str());
    return kExitUsage;
  }
  return kExitOk;
}

// Pictures smaller than this (pixels per side) are enlarged by pixel repetition.
constexpr int kMinPictureSide = 256;

int Explain(Client& client, std::span<const std::string> args) {
  LayerFlags f;
  int patch = 0, stride = 0, target = -1;
  double fill = 0;
  FlagSet flags(kSynopsis);
  AddLayerFlags(flags, &f, /*layer=*/false, /*out=*/true);
  flags.Integer<int>("--patch", &patch, 1, std::numeric_limits<int>::max(), "P", "patch side, input pixels (required)");
  flags.Integer<int>("--stride", &stride, 1, std::numeric_limits<int>::max(), "S", "patch step (required)");
  flags.Integer<int>("--class", &target, 0, std::numeric_limits<int>::max(), "K", "the class (default: the top-1)");
  flags.Double("--fill", &fill, -1e6, 1e6, "F", "value of covered inputs after normalisation (default 0: the mean)");
  std::vector<std::string> contents;
  if (const std::optional<int> exit_code = ParseLayerCommand(flags, args, "explain", f, false, true, &contents)) {
    return *exit_code;
  }
  if (patch == 0 || stride == 0) return UsageError("explain: --patch and --stride are required");
  v1::ExplainRequest request;
  request.set_model(f.model);
  request.set_version(f.version);
  request.mutable_input()->set_image(contents[0]);
  request.set_patch(patch);
  request.set_stride(stride);
  if (target >= 0) request.set_target_class(target);
  request.set_fill(static_cast<float>(fill));
  v1::ExplainResponse response;
  if (const std::optional<int> exit_code = CallExplain(client, request, &response)) return *exit_code;
  const v1::OcclusionMap& map = response.occlusion();
  if (!f.out.empty() && map.input_shape_size() == 3) {
    const std::vector<float> drop(map.drop().begin(), map.drop().end());
    tools::RgbImage heat = tools::OcclusionHeatMap(drop, map.rows(), map.cols(), map.patch(), map.stride(),
                                                   static_cast<int>(map.input_shape(1)),
                                                   static_cast<int>(map.input_shape(2)));
    constexpr float kHeatWeight = 0.6f;
    StatusOr<tools::RgbImage> image = tools::DecodePng(contents[0]);
    tools::RgbImage picture = image.ok() ? tools::Overlay(*image, heat, kHeatWeight) : heat;
    picture = tools::Enlarge(picture, (kMinPictureSide + picture.width - 1) / std::max(1, picture.width));
    if (const int code = WritePicture(f.out, picture); code != kExitOk) return code;
  }
  if (f.json) return PrintJson(response);
  std::printf("model %s version %" PRId64 ": class %d %s, p = %.6f; %d x %d positions (patch %d, stride %d)\n",
              response.model().c_str(), response.version(), map.target_class(), map.target_label().c_str(),
              map.probability(), map.rows(), map.cols(), map.patch(), map.stride());
  std::printf("p(class | image) - p(class | patch at row, column):\n");
  for (int r = 0; r < map.rows(); ++r) {
    for (int c = 0; c < map.cols(); ++c) std::printf("%s%7.3f", c == 0 ? "" : " ", map.drop(r * map.cols() + c));
    std::printf("\n");
  }
  return kExitOk;
}

std::string ShapeString(const v1::LayerTensor& t) {
  std::string text;
  for (const int64_t d : t.shape()) text += (text.empty() ? "" : "x") + std::to_string(d);
  return text;
}

int Features(Client& client, std::span<const std::string> args) {
  LayerFlags f;
  FlagSet flags(kSynopsis);
  AddLayerFlags(flags, &f, /*layer=*/true, /*out=*/true);
  std::vector<std::string> contents;
  if (const std::optional<int> exit_code = ParseLayerCommand(flags, args, "features", f, true, true, &contents)) {
    return *exit_code;
  }
  v1::ExplainRequest request;
  request.set_model(f.model);
  request.set_version(f.version);
  request.mutable_input()->set_image(contents[0]);
  request.set_layer(f.layer);
  v1::ExplainResponse response;
  if (const std::optional<int> exit_code = CallExplain(client, request, &response)) return *exit_code;
  const v1::LayerTensor& t = response.features();
  const bool maps = t.shape_size() == 3;
  if (!f.out.empty()) {
    if (!maps) return UsageError("features: layer " + Quoted(t.layer()) + " has shape " + ShapeString(t) + ", not C x H x W: no grid");
    tools::RgbImage grid = tools::FeatureGrid(t.values().data(), static_cast<int>(t.shape(0)),
                                              static_cast<int>(t.shape(1)), static_cast<int>(t.shape(2)));
    grid = tools::Enlarge(grid, (kMinPictureSide + grid.width - 1) / std::max(1, grid.width));
    if (const int code = WritePicture(f.out, grid); code != kExitOk) return code;
  }
  if (f.json) return PrintJson(response);
  std::printf("model %s version %" PRId64 ", layer %s: %s\n", response.model().c_str(), response.version(),
              t.layer().c_str(), ShapeString(t).c_str());
  const int64_t channels = maps ? t.shape(0) : 1;
  const int64_t plane = channels > 0 ? t.values_size() / channels : 0;
  for (int64_t c = 0; c < channels && plane > 0; ++c) {
    const auto begin = t.values().begin() + c * plane;
    const auto [lo, hi] = std::minmax_element(begin, begin + plane);
    double sum = 0;
    for (auto it = begin; it != begin + plane; ++it) sum += *it;
    std::printf("%s %3" PRId64 ": min %10.4f  max %10.4f  mean %10.4f\n", maps ? "channel" : "values ", c, *lo, *hi,
                sum / plane);
  }
  return kExitOk;
}

int Embed(Client& client, std::span<const std::string> args) {
  LayerFlags f;
  FlagSet flags(kSynopsis);
  AddLayerFlags(flags, &f, /*layer=*/true, /*out=*/false);
  std::vector<std::string> contents;
  if (const std::optional<int> exit_code = ParseLayerCommand(flags, args, "embed", f, true, false, &contents)) {
    return *exit_code;
  }
  v1::EmbedRequest request;
  request.set_model(f.model);
  request.set_version(f.version);
  request.set_layer(f.layer);
  for (std::string& bytes : contents) request.add_inputs()->set_image(std::move(bytes));
  if (!client.Connect()) return kExitRpcFailed;
  v1::EmbedResponse response;
  grpc::ClientContext context;
  client.SetDeadline(&context);
  const grpc::Status status = client.classifier().Embed(&context, request, &response);
  if (!status.ok()) return ReportRpcError("Embed", status);
  const v1::LayerTensor& t = response.embeddings();
  if (t.count() != static_cast<int>(f.files.size()) || t.count() == 0) {
    std::fprintf(stderr, "cnnctl: Embed returned %d rows for %zu files\n", t.count(), f.files.size());
    return kExitRpcFailed;
  }
  const int per_item = t.values_size() / t.count();
  if (f.json) {
    std::printf("{\"model\": %s, \"version\": %" PRId64 ", \"layer\": %s, \"shape\": [", JsonQuote(response.model()).c_str(),
                response.version(), JsonQuote(t.layer()).c_str());
    for (int k = 0; k < t.shape_size(); ++k) std::printf("%s%" PRId64, k == 0 ? "" : ", ", t.shape(k));
    std::printf("], \"embeddings\": [");
    for (int i = 0; i < t.count(); ++i) {
      std::printf("%s\n {\"file\": %s, \"values\": [", i == 0 ? "" : ",", JsonQuote(f.files[i]).c_str());
      for (int k = 0; k < per_item; ++k) std::printf("%s%.9g", k == 0 ? "" : ", ", t.values(i * per_item + k));
      std::printf("]}");
    }
    std::printf("\n]}\n");
    return kExitOk;
  }
  std::printf("model %s version %" PRId64 ", layer %s: %s values per file\n", response.model().c_str(),
              response.version(), t.layer().c_str(), ShapeString(t).c_str());
  for (int i = 0; i < t.count(); ++i) {
    double norm = 0;
    for (int k = 0; k < per_item; ++k) norm += double{t.values(i * per_item + k)} * t.values(i * per_item + k);
    std::printf("%s  L2 norm %.6f\n", f.files[i].c_str(), std::sqrt(norm));
  }
  return kExitOk;
}

int Run(int argc, char** argv) {
  Global global;
  FlagSet flags(kSynopsis);
  AddGlobalFlags(flags, &global);
  const Status parsed = flags.Parse(argc, argv);
  if (flags.help_requested()) {
    std::fputs(flags.Usage().c_str(), stdout);
    return kExitOk;
  }
  if (!parsed.ok()) return UsageError(parsed.message());
  if (const Status status = tools::FinishClientSecurityOptions(&global.security); !status.ok()) {
    return UsageError(status.message());
  }
  if (flags.rest().empty()) return UsageError("no command given");
  const std::string& command = flags.rest()[0];
  const std::span<const std::string> args = std::span(flags.rest()).subspan(1);
  if (command == "help") {
    std::fputs(flags.Usage().c_str(), stdout);
    return kExitOk;
  }
  if (command != "classify" && command != "list" && command != "describe" && command != "health" &&
      command != "explain" && command != "features" && command != "embed") {
    return UsageError("unknown command " + Quoted(command));
  }
  StatusOr<std::unique_ptr<ClientSecurity>> security = ClientSecurity::Create(global.security);
  if (!security.ok()) return UsageError(security.status().message());
  Client client(global, **security);
  if (command == "classify") return Classify(client, args);
  if (command == "list") return List(client, args);
  if (command == "describe") return Describe(client, args);
  if (command == "explain") return Explain(client, args);
  if (command == "features") return Features(client, args);
  if (command == "embed") return Embed(client, args);
  return Health(client, args);
}

}  // namespace
}  // namespace cnnserve::cnnctl

int main(int argc, char** argv) { return cnnserve::cnnctl::Run(argc, argv); }
