// The KServe v2 / Open Inference Protocol REST routes, with Triton's binary data extension and the statistics
// and model repository extensions as Triton names them. Every route reuses the gRPC service's translation
// (server/kserve/) so that a REST call and the matching gRPC call validate and answer alike; each names the gRPC
// method whose token scope it needs (server/auth/scope.h).
//
//   GET  /v2/health/live                               {"live": true} (open)
//   GET  /v2/health/ready                              {"ready": bool}: 200 when ready, else 503 (open)
//   GET  /v2                                           {"name", "version", "extensions"}
//   GET  /v2/models/{m}[/versions/{v}]                 model metadata {"name", "versions", "platform",
//                                                      "inputs", "outputs"}
//   GET  /v2/models/{m}[/versions/{v}]/ready           {"name", "ready"}: 200 ready, 503 not ready, 404 unknown
//   GET  /v2/models/{m}[/versions/{v}]/config          the Triton model configuration (ModelConfig as JSON)
//   POST /v2/models/{m}[/versions/{v}]/infer           inference (kserve_json.h)
//   GET  /v2/models[/{m}[/versions/{v}]]/stats         {"model_stats": [...]} (Triton's statistics extension)
//   POST /v2/repository/index                          [{"name", "version", "state", "reason"}]; body
//                                                      {"ready": true} lists only ready versions
//   POST /v2/repository/models/{m}/load | /unload      {} once done (model control; the body's parameters are
//                                                      refused like gRPC's)
// Thread-safety: the routes may run concurrently on any worker threads. Ownership: `service` must outlive them.
#ifndef CNNSERVE_SERVER_HTTP_KSERVE_ROUTES_H_
#define CNNSERVE_SERVER_HTTP_KSERVE_ROUTES_H_

#include <vector>

#include "server/http/http_route.h"

namespace cnnserve {
class InferenceService;
}

namespace cnnserve::http {

std::vector<Route> KServeRoutes(InferenceService* service);

}  // namespace cnnserve::http

#endif  // CNNSERVE_SERVER_HTTP_KSERVE_ROUTES_H_
