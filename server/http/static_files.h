// The playground's files (server/http/static/), compiled into the binary at build time (embed_static.cmake
// generates the table), served without any file system access:
//   GET /                 static/index.html
//   GET /static/<name>    static/<name>; Content-Type from the extension (ContentTypeFor)
// The routes are open (no token): the files hold no data; the playground's API calls carry the token.
// Thread-safety: immutable tables.
#ifndef CNNSERVE_SERVER_HTTP_STATIC_FILES_H_
#define CNNSERVE_SERVER_HTTP_STATIC_FILES_H_

#include <optional>
#include <string_view>
#include <vector>

#include "server/http/http_route.h"

namespace cnnserve::http {

struct EmbeddedFile {
  std::string_view name;  // file name inside static/, e.g. "index.html"
  std::string_view data;
};

// Every embedded file, sorted by name (generated).
const std::vector<EmbeddedFile>& EmbeddedFiles();

// The file called `name`, or nullopt.
std::optional<EmbeddedFile> FindEmbeddedFile(std::string_view name);

// "text/html; charset=utf-8", "text/javascript; charset=utf-8", "text/css; charset=utf-8", "image/png",
// "image/svg+xml", "application/json", ... by extension; "application/octet-stream" for anything else.
std::string_view ContentTypeFor(std::string_view name);

std::vector<Route> StaticRoutes();

}  // namespace cnnserve::http

#endif  // CNNSERVE_SERVER_HTTP_STATIC_FILES_H_
