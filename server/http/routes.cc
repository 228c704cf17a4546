#include "server/http/routes.h"

#include <iterator>

#include "server/http/kserve_routes.h"
#include "server/http/static_files.h"

namespace cnnserve::http {

std::vector<Route> AllRoutes(InferenceService* service) {
  std::vector<Route> routes = KServeRoutes(service);
  std::vector<Route> files = StaticRoutes();
  routes.insert(routes.end(), std::make_move_iterator(files.begin()), std::make_move_iterator(files.end()));
  return routes;
}

}  // namespace cnnserve::http
