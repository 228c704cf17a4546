#include "server/transport/grpc_server.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <limits>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "grpc/health/v1/health.pb.h"

namespace cnnserve {
namespace {

// "host:0" + 4711 -> "host:4711"; also for "[::1]:0".
std::string WithPort(const std::string& address, int port) {
  const size_t colon = address.rfind(':');
  const std::string host = colon == std::string::npos ? address : address.substr(0, colon);
  return host + ":" + std::to_string(port);
}

// After the drain every admitted request has been answered, so what gRPC still waits for at Server::Shutdown is
// responses on their way out and calls that never end by themselves (health Watch streams, which the default
// health service keeps open). They get this long, within the drain deadline but never less than the minimum.
constexpr int64_t kFinalGraceMaxUs = 1'000'000;
constexpr int64_t kFinalGraceMinUs = 100'000;

std::chrono::system_clock::time_point FinalDeadline(int64_t drain_deadline_us) {
  const int64_t grace_us =
      std::clamp<int64_t>(drain_deadline_us - SteadyNowMicros(), kFinalGraceMinUs, kFinalGraceMaxUs);
  return std::chrono::system_clock::now() + std::chrono::microseconds(grace_us);
}

// "grpc.health.v1.Health", taken from its descriptor: the reference also links the health messages into the
// binary, so that reflection finds the file of the service it lists.
std::string HealthServiceName() {
  return grpc::health::v1::HealthCheckRequest::descriptor()->file()->service(0)->full_name();
}

// Insecure credentials, or TLS ones from the checked files of `tls` (mTLS when it names a client CA).
StatusOr<std::shared_ptr<grpc::ServerCredentials>> ListeningCredentials(const TlsFileOptions& tls) {
  if (!tls.enabled()) return grpc::InsecureServerCredentials();
  CNN_ASSIGN_OR_RETURN(TlsPem pem, LoadTlsFiles(tls));
  for (const std::string& warning : pem.warnings) spdlog::warn("{}", warning);
  grpc::SslServerCredentialsOptions ssl(tls.mtls() ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                                   : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  ssl.pem_root_certs = pem.client_ca;
  ssl.pem_key_cert_pairs.push_back({pem.private_key, pem.cert_chain});
  return grpc::SslServerCredentials(ssl);
}

}  // namespace

StatusOr<std::unique_ptr<GrpcServer>> GrpcServer::Create(const GrpcServerOptions& options,
                                                         InferenceService* inference) {
  if (inference == nullptr) return InvalidArgumentError("GrpcServer: inference service is null");
  if (options.address.empty() || options.address.find(':') == std::string::npos) {
    return InvalidArgumentError("GrpcServer: address '" + options.address + "' is not HOST:PORT");
  }
  if (options.max_receive_message_bytes <= 0 ||
      options.max_receive_message_bytes > std::numeric_limits<int>::max()) {
    return InvalidArgumentError("GrpcServer: max_receive_message_bytes " +
                                std::to_string(options.max_receive_message_bytes) + " is not in [1, " +
                                std::to_string(std::numeric_limits<int>::max()) + "]");
  }
  if (options.classifier.max_in_flight_per_stream < 1) {
    return InvalidArgumentError("GrpcServer: max_in_flight_per_stream must be >= 1");
  }
  if (options.kserve.max_in_flight_per_stream < 1) {
    return InvalidArgumentError("GrpcServer: kserve.max_in_flight_per_stream must be >= 1");
  }

  StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials = ListeningCredentials(options.tls);
  if (!credentials.ok()) return credentials.status();

  // A process-wide switch read when a ServerBuilder is created.
  grpc::EnableDefaultHealthCheckService(true);

  std::unique_ptr<GrpcServer> server(new GrpcServer());
  server->inference_ = inference;
  server->classifier_ = std::make_unique<ClassifierService>(inference, options.classifier, options.authorizer);
  server->kserve_ = std::make_unique<KServeService>(inference, options.kserve, options.authorizer);
  if (options.enable_reflection) {
    server->reflection_ = std::make_unique<ReflectionService>(
        std::vector<std::string>{v1::Classifier::service_full_name(),
                                 inference::GRPCInferenceService::service_full_name(), HealthServiceName()},
        options.authorizer);
  }

  grpc::ServerBuilder builder;
  int selected_port = 0;
  builder.AddListeningPort(options.address, *credentials, &selected_port);
  builder.SetMaxReceiveMessageSize(static_cast<int>(options.max_receive_message_bytes));
  // gRPC binds with SO_REUSEPORT by default: a second server on the same port would start and take a share of the
  // connections unnoticed. Without it the bind fails while another process listens there.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.RegisterService(server->classifier_.get());
  builder.RegisterService(server->kserve_.get());
  if (server->reflection_ != nullptr) builder.RegisterService(server->reflection_.get());
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || selected_port == 0) {
    if (server->server_ != nullptr) server->server_->Shutdown();
    server->server_.reset();  // nothing was served: leave the InferenceService alone
    return UnavailableError("GrpcServer: cannot listen on '" + options.address +
                            "' (the port is in use, or the address is not local)");
  }
  server->port_ = selected_port;
  server->address_ = WithPort(options.address, selected_port);

  // The default health service starts with "" SERVING; nothing is served until UpdateHealth says so.
  grpc::HealthCheckServiceInterface* health = server->server_->GetHealthCheckService();
  if (health == nullptr) {
    server->server_->Shutdown();
    server->server_.reset();
    return InternalError("GrpcServer: the default health check service is missing");
  }
  health->SetServingStatus(false);
  health->SetServingStatus(kClassifierServiceName, false);
  health->SetServingStatus(kKServeServiceName, false);
  return server;
}

GrpcServer::~GrpcServer() {
  if (server_ != nullptr) (void)Shutdown(SteadyNowMicros());
}

bool GrpcServer::UpdateHealth() {
  const bool ready = inference_->Ready();
  std::lock_guard<std::mutex> lock(health_mu_);
  if (shutting_down_) return false;
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  health->SetServingStatus("", ready);
  health->SetServingStatus(kClassifierServiceName, ready);
  health->SetServingStatus(kKServeServiceName, ready);
  return ready;
}

Status GrpcServer::Shutdown(int64_t drain_deadline_us) {
  std::call_once(shutdown_once_, [this, drain_deadline_us] {
    {
      std::lock_guard<std::mutex> lock(health_mu_);
      shutting_down_ = true;
      // NOT_SERVING for every service, and no later change.
      server_->GetHealthCheckService()->Shutdown();
    }
    spdlog::info("shutting down: health NOT_SERVING, draining admitted requests");
    shutdown_status_ = inference_->Shutdown(drain_deadline_us);
    if (!shutdown_status_.ok()) spdlog::warn("drain: {}", shutdown_status_.ToString());
    // Every admitted request has been answered now; gRPC finishes sending and closes the remaining calls.
    server_->Shutdown(FinalDeadline(drain_deadline_us));
    server_->Wait();
    spdlog::info("gRPC server stopped");
  });
  return shutdown_status_;
}

}  // namespace cnnserve
