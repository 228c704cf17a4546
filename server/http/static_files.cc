#include "server/http/static_files.h"

#include <algorithm>
#include <array>
#include <string>
#include <utility>

namespace cnnserve::http {
namespace {

constexpr char kIndexFile[] = "index.html";
constexpr std::array<std::pair<std::string_view, std::string_view>, 11> kContentTypes = {{
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".json", "application/json"},
    {".png", "image/png"},
    {".jpg", "image/jpeg"},
    {".jpeg", "image/jpeg"},
    {".svg", "image/svg+xml"},
    {".ico", "image/x-icon"},
    {".txt", "text/plain; charset=utf-8"},
    {".woff2", "font/woff2"},
}};

void Serve(std::string_view name, Reply* reply) {
  const std::optional<EmbeddedFile> file = FindEmbeddedFile(name);
  if (!file) {
    reply->status = 404;
    reply->body = ErrorBody("no static file '" + std::string(name) + "'");
    return;
  }
  reply->content_type = std::string(ContentTypeFor(file->name));
  reply->body = std::string(file->data);
  reply->headers.emplace_back("Cache-Control", "no-cache");
  reply->headers.emplace_back("X-Content-Type-Options", "nosniff");
}

}  // namespace

std::optional<EmbeddedFile> FindEmbeddedFile(std::string_view name) {
  const std::vector<EmbeddedFile>& files = EmbeddedFiles();
  const auto it = std::find_if(files.begin(), files.end(), [name](const EmbeddedFile& f) { return f.name == name; });
  if (it == files.end()) return std::nullopt;
  return *it;
}

std::string_view ContentTypeFor(std::string_view name) {
  for (const auto& [extension, type] : kContentTypes) {
    if (name.size() > extension.size() && name.substr(name.size() - extension.size()) == extension) return type;
  }
  return "application/octet-stream";
}

std::vector<Route> StaticRoutes() {
  std::vector<Route> routes;
  routes.push_back({"GET", std::regex("/"), "", [](const httplib::Request&, const std::vector<std::string>&, Reply* r) {
                      Serve(kIndexFile, r);
                    }});
  routes.push_back({"GET", std::regex("/static/([^/]+)"), "",
                    [](const httplib::Request&, const std::vector<std::string>& c, Reply* r) { Serve(c[0], r); }});
  return routes;
}

}  // namespace cnnserve::http
