// cnnserve: the gRPC image-classification server (and, with --health-probe, its own health-check client).
//
//   cnnserve [--model-repository DIR] [--address HOST:PORT] [--metrics-address HOST:PORT] [--threads N] ...
//   cnnserve --health-probe HOST:PORT [--tls-ca FILE] [--tls-cert FILE --tls-key FILE] [--tls-server-name NAME]
//                                           exit 0 only when that server's overall health is SERVING
//
// Start-up: check the TLS files and the token file (a bad one: exit 1 naming it), log whether TLS/mTLS and tokens
// are on (the number of tokens, never a token), load and warm every model of the repository, log a summary, start
// gRPC (the native API and KServe v2 on one port), publish health, print "cnnserve metrics on
// http://HOST:PORT/metrics" (when the Prometheus endpoint runs) and "cnnserve listening on HOST:PORT" on stdout
// (the real ports when port 0 was asked for). Logs go to stderr.
// SIGTERM/SIGINT: health NOT_SERVING, stop admitting, finish what was admitted (up to --drain-timeout-s), stop
// gRPC, exit 0. The signals are blocked in every thread and taken synchronously by the main thread (sigtimedwait),
// so no code runs in a signal handler.
// Exit codes: 0 clean shutdown (or probe SERVING), 1 start-up failure (or probe not SERVING), 2 bad command line.

#include <grpcpp/grpcpp.h>
#include <pthread.h>
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "engine/backend/dnnl/dnnl_backend.h"
#include "engine/common/flags.h"
#include "engine/common/listen_address.h"
#include "engine/common/malloc_tuning.h"
#include "engine/common/strings.h"
#include "engine/common/units.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "server/auth/authorizer.h"
#include "server/http/http_server.h"
#include "server/http/routes.h"
#include "server/metrics/metrics_server.h"
#include "server/service/inference_service.h"
#include "server/transport/grpc_server.h"
#include "tools/common/client_channel.h"
#include "tools/common/grpc_runtime.h"

#ifndef CNNSERVE_DEFAULT_REPOSITORY
#define CNNSERVE_DEFAULT_REPOSITORY "models/repository"
#endif

namespace cnnserve {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
constexpr int kMaxReceiveMessageMiB = 2047;  // gRPC takes an int number of bytes
constexpr auto kHealthProbeTimeout = std::chrono::seconds(2);
constexpr int kProbeReconnectBackoffMs = 50;
constexpr int kHealthPollMillis = 200;  // how often readiness is copied to the health service
constexpr int kMaxRepositoryPollSecs = 3600;
constexpr int kMaxThreads = 4096;
constexpr int64_t kMaxImagesPerRequest = 1'000'000;
constexpr int64_t kMaxPixels = int64_t{1} << 40;
constexpr int64_t kMaxDecodeMiB = int64_t{1} << 20;
constexpr int kMaxInFlightPerStream = 65536;
constexpr int64_t kMaxInFlight = 1'000'000;
constexpr double kMaxDrainTimeoutSeconds = kSecondsPerDay;
constexpr int64_t kMaxQueueWaitMs = kSecondsPerDay * kMillisPerSecond;
constexpr int64_t kMaxInlineRunUs = 1'000'000;  // a second: far beyond any sensible bound
constexpr int kMaxPort = 65535;

constexpr char kSynopsis[] = R"(usage: cnnserve [flags]
       cnnserve --health-probe HOST:PORT [--tls-ca FILE] [--tls-cert FILE --tls-key FILE] [--tls-server-name NAME]
)";

struct Flags {
  std::string model_repository;
  std::string address = "127.0.0.1:8001";
  std::string http_address = "127.0.0.1:8000";  // empty: no HTTP front end
  bool http_address_given = false;
  std::string metrics_address = "127.0.0.1:8002";  // empty: no metrics endpoint
  bool metrics_address_given = false;
  int threads = 0;
  spdlog::level::level_enum log_level = spdlog::level::info;
  int max_receive_message_mb = 64;
  int64_t max_images_per_request = 256;
  int64_t max_pixels = 40'000'000;
  int64_t max_decoded_image_mb = 256;
  int64_t max_decode_memory_mb = 512;
  int64_t max_decode_queue = 256;
  int64_t max_explain_masks = 4096;
  int64_t cache_size_mb = 64;
  int max_in_flight_per_stream = 16;
  int64_t max_in_flight = 1024;
  double default_timeout_s = 60;
  int64_t max_queue_wait_ms = 1000;
  int64_t max_inline_run_us = 100;
  double drain_timeout_s = 30;
  std::string health_probe;
  tools::ClientSecurityOptions probe_security;  // --health-probe: --tls-ca, --tls-server-name (+ --tls-cert/key)
  TlsFileOptions tls;
  std::string auth_token_file;
  ModelControlMode model_control_mode = ModelControlMode::kNone;
  int repository_poll_secs = 5;
  bool strict_readiness = true;
};

bool IsHostPort(std::string_view address) {
  const size_t colon = address.rfind(':');
  return colon != std::string_view::npos && colon > 0 &&
         ParseInteger<int>(address.substr(colon + 1), 0, kMaxPort).ok();
}

// A setter of a HOST:PORT flag; `none_clears`: "" and "none" store "" (no address).
FlagSet::Setter HostPortSetter(std::string* out, bool none_clears) {
  return [out, none_clears](std::string_view text) {
    if (none_clears && (text.empty() || text == "none")) {
      out->clear();
    } else if (!IsHostPort(text)) {
      return InvalidArgumentError(Quoted(text) + " is not HOST:PORT" + (none_clears ? " (or none)" : ""));
    } else {
      *out = std::string(text);
    }
    return OkStatus();
  };
}

// The project's models/repository: beside the build tree's bin/ (build/bin/../../models/repository) when it
// exists, else the source tree's, compiled in.
std::string DefaultRepository() {
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const std::filesystem::path beside = exe.parent_path() / ".." / ".." / "models" / "repository";
    if (std::filesystem::is_directory(beside, ec)) return std::filesystem::weakly_canonical(beside, ec).string();
  }
  return CNNSERVE_DEFAULT_REPOSITORY;
}

// The client TLS flags: --tls-ca and --tls-server-name only with --health-probe, where --tls-cert/--tls-key are
// the client's certificate (the server's in server mode) and --tls-client-ca has no meaning. Fills
// flags->probe_security. The exit code when parsing must stop, nullopt to go on.
std::optional<int> CheckProbeFlags(Flags* flags) {
  const char* error = nullptr;
  if (flags->health_probe.empty() && flags->probe_security.tls()) {
    error = "--tls-ca and --tls-server-name are client flags: they go with --health-probe";
  } else if (!flags->health_probe.empty() && !flags->tls.client_ca_file.empty()) {
    error = "--tls-client-ca is a server flag: --health-probe takes --tls-ca (and --tls-cert/--tls-key)";
  }
  if (error != nullptr) {
    std::fprintf(stderr, "cnnserve: %s\nrun 'cnnserve --help' for the flags\n", error);
    return kExitUsage;
  }
  flags->probe_security.tls_cert_file = flags->tls.cert_file;
  flags->probe_security.tls_key_file = flags->tls.key_file;
  return std::nullopt;
}

void AddServingFlags(FlagSet& flags, Flags* f) {
  flags.NonEmptyString("--model-repository", &f->model_repository, "DIR",
                       "model repository in Triton's layout (default: the project's models/repository)");
  flags.Value("--address", "HOST:PORT", "where to listen (default 127.0.0.1:8001; port 0 picks a free port)",
              HostPortSetter(&f->address, false));
  flags.Value("--http-address", "HOST:PORT",
              "HTTP/1.1: KServe v2 REST, /v1 JSON and the playground at / (default\n"
              "127.0.0.1:8000; port 0 picks a free port; \"none\" disables). When the default\n"
              "address is taken the server runs without HTTP (a warning); an address given here\n"
              "must bind. Same limits, tokens and TLS files as gRPC",
              [f, set = HostPortSetter(&f->http_address, true)](std::string_view text) {
                f->http_address_given = true;
                return set(text);
              });
  flags.Value("--metrics-address", "HOST:PORT",
              "Prometheus metrics at http://HOST:PORT/metrics (default 127.0.0.1:8002; port 0\n"
              "picks a free port; \"none\" disables). When the default address is taken the\n"
              "server runs without metrics (a warning); an address given here must bind",
              [f, set = HostPortSetter(&f->metrics_address, true)](std::string_view text) {
                f->metrics_address_given = true;
                return set(text);
              });
  flags.Integer<int>("--threads", &f->threads, 0, kMaxThreads, "N",
                     "cores shared by the model instances (default 0: all)");
  flags.Value("--log-level", "LEVEL", "trace, debug, info, warn, error, critical or off (default info)",
              [f](std::string_view text) {
                const spdlog::level::level_enum level = spdlog::level::from_str(std::string(text));
                // from_str maps anything unknown to off: accept "off" only when spelled so.
                if (level == spdlog::level::off && text != "off") {
                  return InvalidArgumentError(Quoted(text) +
                                              " is not one of trace, debug, info, warn, error, critical, off");
                }
                f->log_level = level;
                return OkStatus();
              });
  flags.Value("--model-control-mode", "MODE",
              "none: serve the models found at start-up, refuse load/unload RPCs (default);\n"
              "explicit: load/unload RPCs change the served models; poll: follow the repository\n"
              "folder (new, changed, removed models and versions), refuse load/unload RPCs",
              [f](std::string_view text) {
                const std::optional<ModelControlMode> mode = ParseModelControlMode(text);
                if (!mode) return InvalidArgumentError(Quoted(text) + " is not one of none, explicit, poll");
                f->model_control_mode = *mode;
                return OkStatus();
              });
  flags.Integer<int>("--repository-poll-secs", &f->repository_poll_secs, 1, kMaxRepositoryPollSecs, "N",
                     "poll mode: seconds between scans of the repository (default 5, 1 to 3600)");
  flags.Bool("--strict-readiness", &f->strict_readiness, "BOOL",
             "true: ready (health SERVING, ServerReady) only while every model of the\n"
             "repository is ready; false: ready once started (default true)");
}

void AddLimitFlags(FlagSet& flags, Flags* f) {
  flags.Integer<int>("--max-receive-message-mb", &f->max_receive_message_mb, 1, kMaxReceiveMessageMiB, "N",
                     "larger gRPC messages get RESOURCE_EXHAUSTED (default 64)");
  flags.Integer<int64_t>("--max-images-per-request", &f->max_images_per_request, 1, kMaxImagesPerRequest, "N",
                         "more inputs in one request get INVALID_ARGUMENT (default 256)");
  flags.Integer<int64_t>("--max-pixels", &f->max_pixels, 1, kMaxPixels, "N",
                         "largest declared width*height of an image (default 40000000)");
  flags.Integer<int64_t>("--max-decoded-image-mb", &f->max_decoded_image_mb, 1, kMaxDecodeMiB, "N",
                         "most memory one image may take to decode: pixels x channels x bytes per sample,\n"
                         "plus the copy without alpha (default 256); larger images get INVALID_ARGUMENT");
  flags.Integer<int64_t>("--max-decode-memory-mb", &f->max_decode_memory_mb, 1, kMaxDecodeMiB, "N",
                         "most memory all images being decoded may hold at once (default 512); an image\n"
                         "that does not fit now gets UNAVAILABLE (retry)");
  flags.Integer<int64_t>("--max-decode-queue", &f->max_decode_queue, 1, kMaxInFlight, "N",
                         "requests with images that may wait for a decode worker (default 256; the workers\n"
                         "are as many as the --threads cores, at least 2); one more gets UNAVAILABLE");
  flags.Integer<int64_t>("--max-explain-masks", &f->max_explain_masks, 1, int64_t{1} << 20, "N",
                         "masked copies one occlusion map (Explain) may run (default 4096); more get\n"
                         "INVALID_ARGUMENT");
  flags.Integer<int64_t>("--cache-size-mb", &f->cache_size_mb, 0, kMaxDecodeMiB, "N",
                         "memory of the response cache shared by the models whose config says\n"
                         "response_cache { enable: true } (default 64; least recently used answers go first;\n"
                         "0: no caching)");
  flags.Integer<int>("--max-in-flight-per-stream", &f->max_in_flight_per_stream, 1, kMaxInFlightPerStream, "N",
                     "requests of one ClassifyStream / ModelStreamInfer running at once (default 16)");
  flags.Integer<int64_t>("--max-in-flight", &f->max_in_flight, 0, kMaxInFlight, "N",
                         "requests the server works on at once, every client and model together (default\n"
                         "1024; 0: no limit); one more gets UNAVAILABLE \"server busy\" before any work");
  flags.Double("--default-timeout-s", &f->default_timeout_s, 0, kMaxDrainTimeoutSeconds, "SECONDS",
               "the deadline of a request that comes without one (default 60; 0: none)");
  flags.Integer<int64_t>("--max-queue-wait-ms", &f->max_queue_wait_ms, 0, kMaxQueueWaitMs, "MS",
                         "a request is admitted only when the decode and model queues are expected to have\n"
                         "run it within this long, whatever its deadline (default 1000; 0: only the\n"
                         "deadline); others get UNAVAILABLE \"overloaded\" at once");
  flags.Integer<int64_t>("--max-inline-run-us", &f->max_inline_run_us, 0, kMaxInlineRunUs, "US",
                         "a request that finds its model idle and whose batch is expected to take at most\n"
                         "this long on one engine thread runs on the thread that received it, without a\n"
                         "hand-off to the model's worker (default 100; 0: always the worker)");
  flags.Double("--drain-timeout-s", &f->drain_timeout_s, 0, kMaxDrainTimeoutSeconds, "SECONDS",
               "on SIGTERM/SIGINT, how long admitted requests may take to finish (default 30)");
}

void AddSecurityFlags(FlagSet& flags, Flags* f) {
  flags.NonEmptyString("--tls-cert", &f->tls.cert_file, "FILE",
                       "serve gRPC and HTTP over TLS with this PEM certificate chain (needs --tls-key)");
  flags.NonEmptyString("--tls-key", &f->tls.key_file, "FILE", "the PEM private key of --tls-cert (unencrypted)");
  flags.NonEmptyString("--tls-client-ca", &f->tls.client_ca_file, "FILE",
                       "require client certificates signed by this PEM CA (mTLS; needs --tls-cert)");
  flags.NonEmptyString("--auth-token-file", &f->auth_token_file, "FILE",
                       "require 'authorization: Bearer TOKEN' with a token of FILE that has the RPC's\n"
                       "scope; lines 'TOKEN SCOPE[,SCOPE...]' or 'sha256:HEX SCOPE...', scopes infer,\n"
                       "metadata, statistics, model-control, all (health, ServerLive, ServerReady open)");
  flags.Value("--health-probe", "HOST:PORT",
              "client mode: exit 0 when that server's overall health is SERVING, else 1.\n"
              "Plaintext unless a TLS flag is given: --tls-ca FILE verifies the server against\n"
              "that PEM CA (default: the system's roots), --tls-cert/--tls-key are then the\n"
              "client certificate (for a server with --tls-client-ca), --tls-server-name NAME the\n"
              "name the server's certificate must carry when HOST is not in it. No token: the\n"
              "health service is always open",
              HostPortSetter(&f->health_probe, false));
  // The probe's client flags, described by --health-probe.
  for (const std::string_view name : {"--tls-ca", "--tls-server-name"}) {
    flags.Value(std::string(name), "", "", [name, f](std::string_view text) {
      if (text.empty()) return InvalidArgumentError("must not be empty");
      return tools::SetClientSecurityFlag(name, text, &f->probe_security);
    });
  }
}

// Returns the exit code to use when parsing must stop (help or an error), nullopt to go on.
std::optional<int> ParseFlags(int argc, char** argv, Flags* flags) {
  FlagSet flag_set(kSynopsis);
  AddServingFlags(flag_set, flags);
  AddLimitFlags(flag_set, flags);
  AddSecurityFlags(flag_set, flags);
  const Status status = flag_set.Parse(argc, argv);
  if (flag_set.help_requested()) {
    std::fputs(flag_set.Usage().c_str(), stdout);
    return kExitOk;
  }
  if (!status.ok()) {
    std::fprintf(stderr, "cnnserve: %s\nrun 'cnnserve --help' for the flags\n", status.message().c_str());
    return kExitUsage;
  }
  if (const std::optional<int> exit_code = CheckProbeFlags(flags)) return *exit_code;
  if (flags->tls.enabled() && (flags->tls.cert_file.empty() || flags->tls.key_file.empty())) {
    std::fputs(
        "cnnserve: --tls-cert and --tls-key go together (and --tls-client-ca needs both)\n"
        "run 'cnnserve --help' for the flags\n",
        stderr);
    return kExitUsage;
  }
  if (flags->model_repository.empty()) flags->model_repository = DefaultRepository();
  return std::nullopt;
}

// Client mode: asks `address` for its overall health ("") within 2 s in all (connecting included), over TLS when
// `security_options` say so (tools/common/client_channel.h; never a token: health is open). A failed connection is
// reported with gRPC's reason (a refused connection, a failed TLS handshake), which may take up to 1 s more.
int HealthProbe(const std::string& address, const tools::ClientSecurityOptions& security_options) {
  const auto deadline = std::chrono::system_clock::now() + kHealthProbeTimeout;
  StatusOr<std::unique_ptr<tools::ClientSecurity>> security = tools::ClientSecurity::Create(security_options);
  if (!security.ok()) {
    std::fprintf(stderr, "cnnserve: health probe: %s\n", security.status().message().c_str());
    return kExitUsage;
  }
  grpc::ChannelArguments args;
  // Reconnect at once: gRPC 1.51's TCP client now and then reports a good loopback connect as failed.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, kProbeReconnectBackoffMs);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, kProbeReconnectBackoffMs);
  auto channel = (*security)->NewChannel(address, args);
  if (const Status connected = tools::WaitForChannel(channel, address, kHealthProbeTimeout); !connected.ok()) {
    std::fprintf(stderr, "cnnserve: health probe failed: %s\n", connected.message().c_str());
    return kExitFailure;
  }
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(deadline);
  context.set_wait_for_ready(true);  // a refused connection is retried until the deadline
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  const grpc::Status status = stub->Check(&context, request, &response);
  if (!status.ok()) {
    std::fprintf(stderr, "cnnserve: health probe of %s failed: code %d: %s\n", address.c_str(),
                 static_cast<int>(status.error_code()), status.error_message().c_str());
    return kExitFailure;
  }
  const std::string& name = grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status());
  std::printf("%s\n", name.c_str());
  return response.status() == grpc::health::v1::HealthCheckResponse::SERVING ? kExitOk : kExitFailure;
}

void LogStartupSummary(const Flags& flags, InferenceService& inference) {
  spdlog::info("cnnserve {}: model repository {}", CNNSERVE_VERSION, flags.model_repository);
  const std::vector<InferenceService::ModelSummary> models = inference.Models();
  for (const InferenceService::ModelSummary& model : models) {
    std::string versions;
    for (const InferenceService::VersionRow& version : model.versions) {
      if (!versions.empty()) versions += ", ";
      versions += std::to_string(version.version) + " " + version.state;
      if (!version.reason.empty()) versions += " (" + version.reason + ")";
    }
    std::string shape;
    for (int64_t d : model.input_dims) shape += (shape.empty() ? "" : "x") + std::to_string(d);
    spdlog::info("model {} [{}]: input {}, {} classes; versions: {}", model.name, model.platform,
                 shape.empty() ? "?" : shape, model.num_classes, versions.empty() ? "none" : versions);
  }
  spdlog::info("{} model(s); oneDNN ISA {}; inference threads {} of {} hardware threads", models.size(),
               DnnlIsaName(), flags.threads == 0 ? std::string("all") : std::to_string(flags.threads),
               std::thread::hardware_concurrency());
  spdlog::info(
      "limits: {} MiB per message, {} images per request, {} pixels and {} MiB decoded per image, {} MiB of "
      "decodes at once, {} requests waiting to decode; {} requests in flight; default timeout {} s; queue wait at "
      "most {} ms; drain timeout {} s",
      flags.max_receive_message_mb, flags.max_images_per_request, flags.max_pixels, flags.max_decoded_image_mb,
      flags.max_decode_memory_mb, flags.max_decode_queue, flags.max_in_flight, flags.default_timeout_s,
      flags.max_queue_wait_ms, flags.drain_timeout_s);
  spdlog::info("model control mode {}{}; strict readiness {}", ModelControlModeName(flags.model_control_mode),
               flags.model_control_mode == ModelControlMode::kPoll
                   ? " (every " + std::to_string(flags.repository_poll_secs) + " s)"
                   : std::string(),
               flags.strict_readiness);
}

// ": models not ready: a (reason), b (reason)" (the models without a ready version) for the log line of a turn to
// NOT_SERVING; "" when there is none.
std::string UnreadyModels(const InferenceService& inference) {
  const std::vector<InferenceService::VersionRow> rows = inference.Index();
  std::set<std::string> ready;
  for (const InferenceService::VersionRow& row : rows) {
    if (row.state == "READY") ready.insert(row.name);
  }
  std::string out;
  for (const InferenceService::VersionRow& row : rows) {
    if (!ready.insert(row.name).second) continue;  // ready, or already named
    out += (out.empty() ? ": models not ready: " : ", ") + row.name + " (" + row.reason + ")";
  }
  return out;
}

// The HTTP front end on --http-address with gRPC's limits, tokens and TLS files; null when disabled, or when the
// default address is taken (a warning; an address given on the command line must bind).
StatusOr<std::unique_ptr<http::HttpServer>> StartHttp(const Flags& flags, InferenceService* inference,
                                                      std::shared_ptr<const auth::Authorizer> authorizer) {
  if (flags.http_address.empty()) return std::unique_ptr<http::HttpServer>();
  http::HttpServerOptions options;
  options.address = flags.http_address;
  options.max_request_bytes = int64_t{flags.max_receive_message_mb} * kBytesPerMiB;
  options.tls_cert_file = flags.tls.cert_file;
  options.tls_key_file = flags.tls.key_file;
  options.tls_client_ca_file = flags.tls.client_ca_file;
  StatusOr<std::unique_ptr<http::HttpServer>> server =
      http::HttpServer::Create(options, http::AllRoutes(inference), std::move(authorizer));
  if (server.ok()) {
    spdlog::info("HTTP on {}{}", (*server)->address(), flags.tls.enabled() ? " (TLS)" : "");
  } else if (!flags.http_address_given && server.status().code() == StatusCode::kUnavailable) {
    spdlog::warn("serving without HTTP: {} (choose another --http-address, or none)", server.status().ToString());
    return std::unique_ptr<http::HttpServer>();
  }
  return server;
}

InferenceServiceOptions ServiceOptions(const Flags& flags) {
  InferenceServiceOptions options;
  options.model_repository = flags.model_repository;
  options.total_threads = flags.threads;
  options.max_images_per_request = flags.max_images_per_request;
  options.max_pixels = flags.max_pixels;
  options.max_image_bytes = int64_t{flags.max_receive_message_mb} * kBytesPerMiB;
  options.max_decoded_image_bytes = flags.max_decoded_image_mb * kBytesPerMiB;
  options.max_decode_memory_bytes = flags.max_decode_memory_mb * kBytesPerMiB;
  options.max_decode_queue = flags.max_decode_queue;
  options.max_explain_masks = flags.max_explain_masks;
  options.response_cache_bytes = static_cast<size_t>(flags.cache_size_mb * kBytesPerMiB);
  options.model_control_mode = flags.model_control_mode;
  options.repository_poll_interval_ms = int64_t{flags.repository_poll_secs} * kMillisPerSecond;
  options.strict_readiness = flags.strict_readiness;
  options.max_in_flight = flags.max_in_flight;
  options.max_queue_wait_us = flags.max_queue_wait_ms * kMicrosPerMilli;
  options.max_inline_run_us = flags.max_inline_run_us;
  options.default_timeout_us = static_cast<int64_t>(std::llround(flags.default_timeout_s * kMicrosPerSecond));
  return options;
}

// Prometheus metrics on --metrics-address: every scrape reads the servables' statistics at that moment. Null
// when disabled, or when the default address is taken (a warning; an address given on the command line must
// bind).
StatusOr<std::unique_ptr<MetricsServer>> StartMetrics(const Flags& flags, InferenceService* service) {
  if (flags.metrics_address.empty()) return std::unique_ptr<MetricsServer>();
  MetricsServerOptions metrics_options;
  metrics_options.address = flags.metrics_address;
  StatusOr<std::unique_ptr<MetricsServer>> started =
      MetricsServer::Create(metrics_options, [service]() -> std::vector<ServableStats> {
        StatusOr<std::vector<ServableStats>> stats = service->Statistics("", 0);
        if (!stats.ok()) {
          spdlog::warn("metrics: {}", stats.status().ToString());
          return {};
        }
        return std::move(*stats);
      });
  if (started.ok()) {
    spdlog::info("metrics on {}", (*started)->url());
  } else if (!flags.metrics_address_given) {
    spdlog::warn("serving without metrics: {} (choose another --metrics-address, or none)",
                 started.status().ToString());
    return std::unique_ptr<MetricsServer>();
  }
  return started;
}

// Copies readiness to the health service every kHealthPollMillis until SIGTERM or SIGINT arrives; returns it.
int WaitForSignal(const sigset_t& signals, GrpcServer& server, const InferenceService& inference, bool ready) {
  const timespec poll = {0, kHealthPollMillis * kNanosPerMilli};
  while (true) {
    siginfo_t info;
    const int got = sigtimedwait(&signals, &info, &poll);
    if (got > 0) return got;
    if (got < 0 && errno != EAGAIN && errno != EINTR) {
      spdlog::critical("sigtimedwait: {}", std::strerror(errno));
      return SIGTERM;  // cannot wait for signals any more: shut down cleanly
    }
    if (const bool now_ready = server.UpdateHealth(); now_ready != ready) {
      ready = now_ready;
      spdlog::info("health {}{}", ready ? "SERVING" : "NOT_SERVING", ready ? "" : UnreadyModels(inference));
    }
  }
}

// The ports the server must bind, checked before the models load (which can take minutes) so that a port in use
// fails the start at once: --address, and --http-address and --metrics-address when given (a default one that is
// taken only costs that endpoint, with a warning).
Status CheckPortsFree(const Flags& flags) {
  std::vector<std::pair<std::string_view, const std::string*>> ports = {{"--address", &flags.address}};
  if (flags.http_address_given) ports.emplace_back("--http-address", &flags.http_address);
  if (flags.metrics_address_given) ports.emplace_back("--metrics-address", &flags.metrics_address);
  for (const auto& [flag, address] : ports) {
    if (address->empty()) continue;
    if (Status free = CheckPortFree(*address); !free.ok()) return free.WithContext(std::string(flag));
  }
  return OkStatus();
}

int Serve(const Flags& flags) {
  // Before any thread exists, so that every thread inherits the mask and only sigtimedwait below sees them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  if (const int err = pthread_sigmask(SIG_BLOCK, &signals, nullptr); err != 0) {
    spdlog::critical("pthread_sigmask: {}", std::strerror(err));
    return kExitFailure;
  }

  // TLS files and tokens are checked before the models load, so that a bad file fails the start at once.
  if (flags.tls.enabled()) {
    if (const StatusOr<TlsPem> pem = LoadTlsFiles(flags.tls); !pem.ok()) {
      spdlog::critical("cannot start: {}", pem.status().ToString());
      return kExitFailure;
    }
  }
  StatusOr<std::unique_ptr<auth::Authorizer>> authorizer =
      auth::Authorizer::Create(auth::AuthorizerOptions{flags.auth_token_file});
  if (!authorizer.ok()) {
    spdlog::critical("cannot start: {}", authorizer.status().WithContext("--auth-token-file").ToString());
    return kExitFailure;
  }
  spdlog::info("gRPC security: {}; {}",
               !flags.tls.enabled() ? "plaintext (no TLS)"
               : flags.tls.mtls()   ? "TLS, client certificates required (mTLS)"
                                    : "TLS",
               (*authorizer)->enabled()
                   ? "token authorization on (" + std::to_string((*authorizer)->token_count()) +
                         " token(s) from " + flags.auth_token_file + ")"
                   : std::string("token authorization off"));

  if (const Status free = CheckPortsFree(flags); !free.ok()) {
    spdlog::critical("cannot start: {}", free.ToString());
    return kExitFailure;
  }
  const InferenceServiceOptions options = ServiceOptions(flags);
  StatusOr<std::unique_ptr<InferenceService>> inference = InferenceService::Create(options);
  if (!inference.ok()) {
    spdlog::critical("cannot start: {}", inference.status().ToString());
    return kExitFailure;
  }
  LogStartupSummary(flags, **inference);

  StatusOr<std::unique_ptr<MetricsServer>> metrics_started = StartMetrics(flags, inference->get());
  if (!metrics_started.ok()) {
    spdlog::critical("cannot start: {}", metrics_started.status().ToString());
    return kExitFailure;
  }
  std::unique_ptr<MetricsServer> metrics = std::move(*metrics_started);

  GrpcServerOptions server_options;
  server_options.address = flags.address;
  server_options.tls = flags.tls;
  const std::shared_ptr<const auth::Authorizer> shared_authorizer = std::move(*authorizer);
  server_options.authorizer = shared_authorizer;
  server_options.max_receive_message_bytes = int64_t{flags.max_receive_message_mb} * kBytesPerMiB;
  server_options.classifier.max_in_flight_per_stream = flags.max_in_flight_per_stream;
  server_options.kserve.max_in_flight_per_stream = flags.max_in_flight_per_stream;
  StatusOr<std::unique_ptr<GrpcServer>> server = GrpcServer::Create(server_options, inference->get());
  if (!server.ok()) {
    spdlog::critical("cannot start: {}", server.status().ToString());
    return kExitFailure;
  }
  StatusOr<std::unique_ptr<http::HttpServer>> http_server = StartHttp(flags, inference->get(), shared_authorizer);
  if (!http_server.ok()) {
    spdlog::critical("cannot start: {}", http_server.status().ToString());
    return kExitFailure;
  }
  bool ready = (*server)->UpdateHealth();
  spdlog::info("listening on {}; health {}{}", (*server)->address(), ready ? "SERVING" : "NOT_SERVING",
               ready ? "" : UnreadyModels(**inference));

  if (metrics != nullptr) std::printf("cnnserve metrics on %s\n", metrics->url().c_str());
  if (*http_server != nullptr) {
    std::printf("cnnserve http on %s://%s\n", flags.tls.enabled() ? "https" : "http",
                (*http_server)->address().c_str());
  }
  std::printf("cnnserve listening on %s\n", (*server)->address().c_str());
  std::fflush(stdout);

  const int signal_number = WaitForSignal(signals, **server, **inference, ready);
  spdlog::info("received {}: draining for up to {} s", strsignal(signal_number), flags.drain_timeout_s);
  const int64_t drain_deadline_us =
      SteadyNowMicros() + static_cast<int64_t>(std::llround(flags.drain_timeout_s * kMicrosPerSecond));
  // HTTP first: it stops accepting and finishes the requests it is serving (the drain below covers them).
  if (*http_server != nullptr) (*http_server)->Shutdown();
  (void)(*server)->Shutdown(drain_deadline_us);  // logs a drain that ran out of time
  server->reset();
  metrics.reset();  // before the InferenceService its provider reads
  inference->reset();
  spdlog::info("stopped");
  return kExitOk;
}

int Main(int argc, char** argv) {
  SkipMutexDeadlockChecks();
  const std::string malloc_tuning = TuneMallocForLargeMessages();  // before any other thread allocates
  Flags flags;
  if (const std::optional<int> exit_code = ParseFlags(argc, argv, &flags)) return *exit_code;
  if (!flags.health_probe.empty()) return HealthProbe(flags.health_probe, flags.probe_security);

  auto logger = spdlog::stderr_color_mt("cnnserve");
  spdlog::set_default_logger(logger);
  spdlog::set_level(flags.log_level);
  spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%L%$ [%t] %v");
  spdlog::info("{}", malloc_tuning);
  return Serve(flags);
}

}  // namespace
}  // namespace cnnserve

int main(int argc, char** argv) { return cnnserve::Main(argc, argv); }
