#include "server/http/routes.h"

#include <iterator>

#include "server/http/kserve_routes.h"
#include "server/http/native_routes.h"
#include "server/http/static_files.h"

namespace cnnserve::http {

std::vector<Route> AllRoutes(InferenceService* service) {
  std::vector<Route> routes = KServeRoutes(service);
  for (std::vector<Route> more : {NativeRoutes(service), StaticRoutes()}) {
    routes.insert(routes.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
  }
  return routes;
}

}  // namespace cnnserve::http
