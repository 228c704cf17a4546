// GrpcServer: the process's gRPC endpoint. It serves
//   - cnnserve.v1.Classifier (ClassifierService, callback API) on top of an InferenceService,
//   - inference.GRPCInferenceService, the KServe v2 / Open Inference Protocol (KServeService, callback API), on
//     the same InferenceService and the same port,
//   - grpc.health.v1.Health through gRPC's default health service: the overall status ("") and the service
//     "cnnserve.v1.Classifier" and "inference.GRPCInferenceService" are SERVING only while
//     InferenceService::Ready() is true (UpdateHealth copies it over), and NOT_SERVING for good once shutdown
//     begins,
//   - server reflection (grpc.reflection.v1alpha.ServerReflection, ReflectionService), so grpcurl and friends
//     need no .proto files.
// Every call of Classifier, KServe and reflection is authorized by `authorizer` before it does any work
// (grpc_auth.h); health, ServerLive and ServerReady stay open. TLS (and mTLS) come from `tls` (tls_files.h).
// Messages larger than `max_receive_message_bytes` are refused by gRPC itself with RESOURCE_EXHAUSTED before any
// handler runs.
//
// Typical life: Create (binds and starts), UpdateHealth whenever readiness may have changed, then on SIGTERM:
// Shutdown, which turns health to NOT_SERVING, stops admitting, drains the InferenceService and stops gRPC.
// Thread-safety: every method may be called from any thread; Shutdown is idempotent (later calls wait for the
// first one and return its result). Ownership: the InferenceService is not owned and must outlive the GrpcServer.
#ifndef CNNSERVE_SERVER_TRANSPORT_GRPC_SERVER_H_
#define CNNSERVE_SERVER_TRANSPORT_GRPC_SERVER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "engine/common/status.h"
#include "server/auth/authorizer.h"
#include "server/service/inference_service.h"
#include "server/transport/classifier_service.h"
#include "server/transport/kserve_service.h"
#include "server/transport/reflection_service.h"
#include "server/transport/tls_files.h"

namespace grpc {
class Server;
}  // namespace grpc

namespace cnnserve {

// The name under which the Classifier service's health is reported.
inline constexpr char kClassifierServiceName[] = "cnnserve.v1.Classifier";

struct GrpcServerOptions {
  // HOST:PORT to listen on; port 0 picks a free port (see GrpcServer::address()).
  std::string address = "127.0.0.1:8001";
  // TLS on the port when tls.enabled() (server certificate and key, and with a client CA: mTLS); plaintext
  // otherwise. The files are read and checked by Create (tls_files.h); a bad file fails Create, never falls back
  // to plaintext.
  TlsFileOptions tls;
  // Larger incoming messages get RESOURCE_EXHAUSTED from gRPC (> 0).
  int64_t max_receive_message_bytes = int64_t{64} << 20;
  // Register the server reflection service.
  bool enable_reflection = true;
  // Token authorization by scope (server/auth/authorizer.h), shared by the services; null or one without
  // tokens: every call is allowed.
  std::shared_ptr<const auth::Authorizer> authorizer;
  ClassifierServiceOptions classifier;
  KServeServiceOptions kserve;
};

class GrpcServer {
 public:
  // Builds and starts the server. INVALID_ARGUMENT for bad options, FAILED_PRECONDITION for a TLS file that cannot
  // be read or does not fit (LoadTlsFiles), UNAVAILABLE when the address cannot be bound (the bind is exclusive,
  // without SO_REUSEPORT: a port another process listens on, another cnnserve included, fails).
  // Health starts as NOT_SERVING; call UpdateHealth to publish readiness.
  static StatusOr<std::unique_ptr<GrpcServer>> Create(const GrpcServerOptions& options,
                                                      InferenceService* inference);
  // Shuts down (with an immediate deadline) if Shutdown was not called.
  ~GrpcServer();

  GrpcServer(const GrpcServer&) = delete;
  GrpcServer& operator=(const GrpcServer&) = delete;

  // The bound address, "HOST:PORT" with the real port (also when the options asked for port 0).
  const std::string& address() const { return address_; }
  int port() const { return port_; }

  // Sets health to InferenceService::Ready(). Returns that readiness. No effect once shutdown has begun.
  bool UpdateHealth();

  // Graceful shutdown: health NOT_SERVING (permanently); InferenceService::Shutdown(drain_deadline_us), which
  // stops admitting (new calls get UNAVAILABLE) and finishes what was admitted; then grpc::Server::Shutdown, which
  // stops accepting calls, lets responses already finished go out and cancels what is still open after a short
  // grace (at most 1 s and within the drain deadline, but at least 100 ms): by then only calls that never end by
  // themselves are left, such as health Watch streams. Blocks until done. Returns the InferenceService's drain
  // status (DEADLINE_EXCEEDED when admitted work had to be dropped).
  Status Shutdown(int64_t drain_deadline_us);

 private:
  GrpcServer() = default;

  InferenceService* inference_ = nullptr;
  std::unique_ptr<ClassifierService> classifier_;
  std::unique_ptr<KServeService> kserve_;
  std::unique_ptr<ReflectionService> reflection_;  // null when reflection is off
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  int port_ = 0;

  std::mutex health_mu_;  // orders health updates with the start of shutdown
  bool shutting_down_ = false;
  std::once_flag shutdown_once_;
  Status shutdown_status_;
};

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_TRANSPORT_GRPC_SERVER_H_
