#include "server/http/kserve_routes.h"

#include <google/protobuf/util/json_util.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <future>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

#include "inference/model_config.pb.h"
#include "server/http/client_connection.h"
#include "server/http/kserve_json.h"
#include "server/service/inference_service.h"
#include "server/kserve/kserve_infer.h"
#include "server/kserve/kserve_metadata.h"
#include "server/kserve/kserve_tensors.h"

#ifndef CNNSERVE_VERSION
#define CNNSERVE_VERSION "0.0.0"
#endif

namespace cnnserve::http {
namespace {

using json = nlohmann::json;

constexpr char kServerName[] = "cnnserve";
constexpr char kOctetStream[] = "application/octet-stream";
// A model, optionally at a version: captures[0] name, captures[1] version ("" = newest ready).
constexpr char kModelPath[] = "/v2/models/([^/]+)(?:/versions/([^/]+))?";
constexpr char kKServe[] = "/inference.GRPCInferenceService/";

std::string Op(const char* method) { return std::string(kKServe) + method; }

std::string Dump(const json& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace); }

void SetJson(const json& value, Reply* reply) {
  reply->status = 200;
  reply->content_type = kJsonContentType;
  reply->body = Dump(value);
}

// The servable named by a route's captures.
StatusOr<std::shared_ptr<Servable>> FindModel(const InferenceService& service, const std::vector<std::string>& c) {
  const StatusOr<int64_t> version = ParseModelVersion(c[1], "version");
  if (!version.ok()) return version.status();
  return service.Find(c[0], *version);
}

json TensorMetadataJson(const inference::ModelMetadataResponse::TensorMetadata& t) {
  return {{"name", t.name()}, {"datatype", t.datatype()}, {"shape", std::vector<int64_t>(t.shape().begin(), t.shape().end())}};
}

void ModelMetadata(InferenceService* service, const std::vector<std::string>& c, Reply* reply) {
  const StatusOr<std::shared_ptr<Servable>> servable = FindModel(*service, c);
  if (!servable.ok()) return SetError(servable.status(), reply);
  inference::ModelMetadataResponse metadata;
  FillModelMetadata((*servable)->info(), ReadyVersions(*service, c[0]), &metadata);
  json out = {{"name", metadata.name()},
              {"versions", std::vector<std::string>(metadata.versions().begin(), metadata.versions().end())},
              {"platform", metadata.platform()},
              {"inputs", json::array()},
              {"outputs", json::array()}};
  for (const auto& t : metadata.inputs()) out["inputs"].push_back(TensorMetadataJson(t));
  for (const auto& t : metadata.outputs()) out["outputs"].push_back(TensorMetadataJson(t));
  SetJson(out, reply);
}

void ModelReady(InferenceService* service, const std::vector<std::string>& c, Reply* reply) {
  const StatusOr<std::shared_ptr<Servable>> servable = FindModel(*service, c);
  if (!servable.ok() && servable.status().code() != StatusCode::kUnavailable) {
    return SetError(servable.status(), reply);
  }
  SetJson({{"name", c[0]}, {"ready", servable.ok()}}, reply);
  if (!servable.ok()) reply->status = 503;
}

void ModelConfig(InferenceService* service, const std::vector<std::string>& c, Reply* reply) {
  const StatusOr<std::shared_ptr<Servable>> servable = FindModel(*service, c);
  if (!servable.ok()) return SetError(servable.status(), reply);
  inference::ModelConfig config;
  FillModelConfig((*servable)->info(), &config);
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string text;
  if (!google::protobuf::util::MessageToJsonString(config, &text, options).ok()) {
    return SetError(InternalError("ModelConfig: JSON conversion failed"), reply);
  }
  reply->body = std::move(text);
}

json DurationJson(const inference::StatisticDuration& d) { return {{"count", d.count()}, {"ns", d.ns()}}; }

json StatisticsJson(const inference::ModelStatistics& s) {
  const inference::InferStatistics& i = s.inference_stats();
  json out = {{"name", s.name()},
              {"version", s.version()},
              {"last_inference", s.last_inference()},
              {"inference_count", s.inference_count()},
              {"execution_count", s.execution_count()},
              {"inference_stats",
               {{"success", DurationJson(i.success())},
                {"fail", DurationJson(i.fail())},
                {"queue", DurationJson(i.queue())},
                {"compute_input", DurationJson(i.compute_input())},
                {"compute_infer", DurationJson(i.compute_infer())},
                {"compute_output", DurationJson(i.compute_output())},
                {"cache_hit", DurationJson(i.cache_hit())},
                {"cache_miss", DurationJson(i.cache_miss())}}},
              {"batch_stats", json::array()}};
  for (const auto& b : s.batch_stats()) {
    out["batch_stats"].push_back({{"batch_size", b.batch_size()},
                                  {"compute_input", DurationJson(b.compute_input())},
                                  {"compute_infer", DurationJson(b.compute_infer())},
                                  {"compute_output", DurationJson(b.compute_output())}});
  }
  return out;
}

void ModelStatistics(InferenceService* service, const std::string& name, const std::string& version_text,
                     Reply* reply) {
  const StatusOr<int64_t> version = ParseModelVersion(version_text, "version");
  if (!version.ok()) return SetError(version.status(), reply);
  const StatusOr<std::vector<ServableStats>> stats = service->Statistics(name, *version);
  if (!stats.ok()) return SetError(stats.status(), reply);
  json out = {{"model_stats", json::array()}};
  for (const ServableStats& s : *stats) {
    inference::ModelStatistics message;
    FillModelStatistics(s, &message);
    out["model_stats"].push_back(StatisticsJson(message));
  }
  SetJson(out, reply);
}

void RepositoryIndex(InferenceService* service, const httplib::Request& req, Reply* reply) {
  bool ready_only = false;
  if (!req.body.empty()) {
    const json body = json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) {
      return SetError(InvalidArgumentError("the body is not a JSON object"), reply);
    }
    if (const auto it = body.find("ready"); it != body.end()) {
      if (!it->is_boolean()) return SetError(InvalidArgumentError("ready is not a bool"), reply);
      ready_only = it->get<bool>();
    }
  }
  json out = json::array();
  for (const InferenceService::VersionRow& row : service->Index()) {
    if (ready_only && row.state != "READY") continue;
    json entry = {{"name", row.name}, {"state", row.state}, {"reason", row.reason}};
    if (row.version > 0) entry["version"] = std::to_string(row.version);
    out.push_back(std::move(entry));
  }
  SetJson(out, reply);
}

// A load or unload body may be empty or {} (or carry only an empty "parameters"), as gRPC's request.
Status CheckRepositoryBody(const std::string& body) {
  if (body.empty()) return OkStatus();
  const json parsed = json::parse(body, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object()) return InvalidArgumentError("the body is not a JSON object");
  if (const auto it = parsed.find("parameters"); it != parsed.end()) {
    if (!it->is_object()) return InvalidArgumentError("parameters is not an object");
    if (!it->empty()) {
      return InvalidArgumentError("RepositoryModelLoad: parameters (such as '" + it->begin().key() +
                                  "') are not supported; the model is loaded from its folder");
    }
  }
  return OkStatus();
}

void RepositoryControl(InferenceService* service, bool load, const httplib::Request& req,
                       const std::vector<std::string>& c, Reply* reply) {
  if (Status s = CheckRepositoryBody(req.body); !s.ok()) return SetError(s, reply);
  const Status status = load ? service->LoadModel(c[0]) : service->UnloadModel(c[0]);
  const char* what = load ? "RepositoryModelLoad" : "RepositoryModelUnload";
  if (!status.ok()) {
    spdlog::warn("HTTP {}: model {}: {}", what, QuotedModelName(c[0]), status.ToString());
    return SetError(status, reply);
  }
  spdlog::info("HTTP {}: model {} done", what, QuotedModelName(c[0]));
  SetJson(json::object(), reply);
}

// The deadline of the request's "timeout" parameter (microseconds, as Triton's clients send it); 0: none.
StatusOr<int64_t> TimeoutDeadline(const inference::ModelInferRequest& request) {
  const auto found = request.parameters().find("timeout");
  if (found == request.parameters().end()) return 0;
  const inference::InferParameter& timeout = found->second;
  if (timeout.parameter_choice_case() == inference::InferParameter::kInt64Param) {
    return DeadlineAfter(timeout.int64_param(), "parameters.timeout");
  }
  if (timeout.parameter_choice_case() == inference::InferParameter::kUint64Param &&
      timeout.uint64_param() <= static_cast<uint64_t>(kMaxTimeoutUs)) {
    return DeadlineAfter(static_cast<int64_t>(timeout.uint64_param()), "parameters.timeout");
  }
  return InvalidArgumentError("parameters.timeout must be an integer: a timeout in microseconds from 1 to " +
                              std::to_string(kMaxTimeoutUs));
}

// Runs `request` on gRPC's path (RunKServeInfer) and waits for the answer. A client that disconnects cancels it.
Status RunInfer(InferenceService* service, const httplib::Request& req, const inference::ModelInferRequest& request,
                inference::ModelInferResponse* response) {
  const StatusOr<int64_t> deadline_us = TimeoutDeadline(request);
  if (!deadline_us.ok()) return deadline_us.status();
  std::promise<Status> finished;
  const ClientConnection client(req);
  RunKServeInfer(service, request, response, *deadline_us, client.Check(),
                 [&finished](Status status) { finished.set_value(std::move(status)); });
  return finished.get_future().get();
}

void Infer(InferenceService* service, const httplib::Request& req, const std::vector<std::string>& c, Reply* reply) {
  std::optional<std::string_view> json_length;
  const std::string header = req.get_header_value(kInferenceHeaderContentLength);
  if (req.has_header(kInferenceHeaderContentLength)) json_length = header;
  StatusOr<RestInferRequest> parsed = ParseRestInferRequest(req.body, json_length);
  if (!parsed.ok()) return SetError(parsed.status(), reply);
  parsed->request.set_model_name(c[0]);
  parsed->request.set_model_version(c[1]);
  inference::ModelInferResponse response;
  if (Status s = RunInfer(service, req, parsed->request, &response); !s.ok()) {
    spdlog::debug("HTTP infer {} from {}: {}", QuotedModelName(c[0]), req.remote_addr, s.ToString());
    return SetError(s, reply);
  }
  RestInferResponse rendered = RenderRestInferResponse(response, *parsed);
  reply->body = std::move(rendered.body);
  if (rendered.json_length) {
    reply->content_type = kOctetStream;
    reply->headers.emplace_back(kInferenceHeaderContentLength, std::to_string(*rendered.json_length));
  }
}

}  // namespace

std::vector<Route> KServeRoutes(InferenceService* service) {
  const std::string model = kModelPath;
  std::vector<Route> routes;
  routes.push_back({"GET", std::regex("/v2/health/live"), Op("ServerLive"),
                    [](const httplib::Request&, const std::vector<std::string>&, Reply* r) {
                      SetJson({{"live", true}}, r);
                    }});
  routes.push_back({"GET", std::regex("/v2/health/ready"), Op("ServerReady"),
                    [service](const httplib::Request&, const std::vector<std::string>&, Reply* r) {
                      const bool ready = service->Ready();
                      SetJson({{"ready", ready}}, r);
                      if (!ready) r->status = 503;
                    }});
  routes.push_back({"GET", std::regex("/v2"), Op("ServerMetadata"),
                    [](const httplib::Request&, const std::vector<std::string>&, Reply* r) {
                      SetJson({{"name", kServerName}, {"version", CNNSERVE_VERSION}, {"extensions", KServeExtensions()}},
                              r);
                    }});
  routes.push_back({"GET", std::regex("/v2/models/stats"), Op("ModelStatistics"),
                    [service](const httplib::Request&, const std::vector<std::string>&, Reply* r) {
                      ModelStatistics(service, "", "", r);
                    }});
  routes.push_back({"GET", std::regex(model), Op("ModelMetadata"),
                    [service](const httplib::Request&, const std::vector<std::string>& c, Reply* r) {
                      ModelMetadata(service, c, r);
                    }});
  routes.push_back({"GET", std::regex(model + "/ready"), Op("ModelReady"),
                    [service](const httplib::Request&, const std::vector<std::string>& c, Reply* r) {
                      ModelReady(service, c, r);
                    }});
  routes.push_back({"GET", std::regex(model + "/config"), Op("ModelConfig"),
                    [service](const httplib::Request&, const std::vector<std::string>& c, Reply* r) {
                      ModelConfig(service, c, r);
                    }});
  routes.push_back({"GET", std::regex(model + "/stats"), Op("ModelStatistics"),
                    [service](const httplib::Request&, const std::vector<std::string>& c, Reply* r) {
                      ModelStatistics(service, c[0], c[1], r);
                    }});
  routes.push_back({"POST", std::regex(model + "/infer"), Op("ModelInfer"),
                    [service](const httplib::Request& q, const std::vector<std::string>& c, Reply* r) {
                      Infer(service, q, c, r);
                    }});
  routes.push_back({"POST", std::regex("/v2/repository/index"), Op("RepositoryIndex"),
                    [service](const httplib::Request& q, const std::vector<std::string>&, Reply* r) {
                      RepositoryIndex(service, q, r);
                    }});
  routes.push_back({"POST", std::regex("/v2/repository/models/([^/]+)/load"), Op("RepositoryModelLoad"),
                    [service](const httplib::Request& q, const std::vector<std::string>& c, Reply* r) {
                      RepositoryControl(service, true, q, c, r);
                    }});
  routes.push_back({"POST", std::regex("/v2/repository/models/([^/]+)/unload"), Op("RepositoryModelUnload"),
                    [service](const httplib::Request& q, const std::vector<std::string>& c, Reply* r) {
                      RepositoryControl(service, false, q, c, r);
                    }});
  return routes;
}

}  // namespace cnnserve::http
