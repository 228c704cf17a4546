// Every route of the HTTP front end, in matching order: KServe v2 REST (kserve_routes.h), the native JSON API
// (native_routes.h) and the playground's static files (static_files.h).
#ifndef CNNSERVE_SERVER_HTTP_ROUTES_H_
#define CNNSERVE_SERVER_HTTP_ROUTES_H_

#include <vector>

#include "server/http/http_route.h"

namespace cnnserve {
class InferenceService;
}

namespace cnnserve::http {

// Ownership: `service` must outlive the routes.
std::vector<Route> AllRoutes(InferenceService* service);

}  // namespace cnnserve::http

#endif  // CNNSERVE_SERVER_HTTP_ROUTES_H_
