#include "server/http/native_routes.h"

#include <google/protobuf/util/json_util.h>

#include <charconv>
#include <cstdlib>
#include <future>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

#include "server/http/client_connection.h"
#include "server/kserve/kserve_tensors.h"
#include "server/native/native_explain.h"
#include "server/native/native_metadata.h"
#include "server/native/native_request.h"
#include "server/service/inference_service.h"

namespace cnnserve::http {
namespace {

using json = nlohmann::json;

// A model, optionally at a version: captures[0] name, captures[1] version ("" = newest ready).
constexpr char kModelPath[] = "/v1/models/([^/:]+)(?:/versions/([^/:]+))?";
constexpr char kClassifier[] = "/cnnserve.v1.Classifier/";

std::string Op(const char* method) { return std::string(kClassifier) + method; }

void SetJson(const json& value, Reply* reply) {
  reply->status = 200;
  reply->content_type = kJsonContentType;
  reply->body = value.dump(-1, ' ', false, json::error_handler_t::replace);
}

json SummaryJson(const v1::ModelSummary& s) {
  json versions = json::array();
  for (const v1::ModelVersionState& v : s.versions()) {
    versions.push_back({{"version", v.version()}, {"state", v.state()}, {"reason", v.reason()}});
  }
  return {{"name", s.name()},
          {"platform", s.platform()},
          {"versions", std::move(versions)},
          {"input_shape", std::vector<int64_t>(s.input_shape().begin(), s.input_shape().end())},
          {"num_classes", s.num_classes()}};
}

void ListModels(const InferenceService& service, Reply* reply) {
  v1::ListModelsResponse response;
  ListModelsNative(service, &response);
  json models = json::array();
  for (const v1::ModelSummary& s : response.models()) models.push_back(SummaryJson(s));
  SetJson({{"models", std::move(models)}}, reply);
}

void DescribeModel(const InferenceService& service, const std::vector<std::string>& c, Reply* reply) {
  const StatusOr<int64_t> version = ParseModelVersion(c[1], "version");
  if (!version.ok()) return SetError(version.status(), reply);
  const StatusOr<InferenceService::ModelDescription> described = service.Describe(c[0], *version);
  if (!described.ok()) return SetError(described.status(), reply);
  v1::DescribeModelResponse response;
  FillDescribeModelResponse(*described, &response);
  json layers = json::array();
  for (const v1::LayerInfo& l : response.layers()) {
    layers.push_back({{"name", l.name()},
                      {"output_name", l.output_name()},
                      {"op", l.op()},
                      {"output_shape", std::vector<int64_t>(l.output_shape().begin(), l.output_shape().end())},
                      {"params", l.params()},
                      {"macs", l.macs()},
                      {"receptive_field", l.receptive_field()},
                      {"activation_values", l.activation_values()},
                      {"activation_bytes", l.activation_bytes()}});
  }
  SetJson({{"summary", SummaryJson(response.summary())},
           {"layers", std::move(layers)},
           {"total_params", response.total_params()},
           {"total_macs", response.total_macs()},
           {"input_values", response.input_values()},
           {"total_activation_values", response.total_activation_values()},
           {"total_activation_bytes", response.total_activation_bytes()},
           {"layer_table", response.layer_table()},
           {"labels", described->labels}},
          reply);
}

// "true"/"1" or "false"/"0" (absent: false).
StatusOr<bool> BoolParam(const httplib::Request& req, const char* name) {
  if (!req.has_param(name)) return false;
  const std::string value = req.get_param_value(name);
  if (value == "true" || value == "1") return true;
  if (value == "false" || value == "0") return false;
  return InvalidArgumentError(std::string("query parameter ") + name + " must be true or false");
}

Status ParseQuery(const httplib::Request& req, v1::ClassifyRequest* request) {
  if (req.has_param("top_k")) {
    const std::string text = req.get_param_value("top_k");
    int32_t top_k = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), top_k);
    if (text.empty() || error != std::errc() || end != text.data() + text.size()) {
      return InvalidArgumentError("query parameter top_k must be an integer");
    }
    request->set_top_k(top_k);
  }
  const StatusOr<bool> members = BoolParam(req, "members");
  if (!members.ok()) return members.status();
  const StatusOr<bool> timings = BoolParam(req, "timings");
  if (!timings.ok()) return timings.status();
  request->set_include_member_results(*members);
  request->set_include_timings(*timings);
  return OkStatus();
}

// The images of the body: every file part of a multipart form, or the body itself for an image type.
Status ParseImages(const httplib::Request& req, v1::ClassifyRequest* request) {
  if (req.is_multipart_form_data()) {
    for (const auto& [field, part] : req.files) request->add_inputs()->set_image(part.content);
    if (request->inputs_size() == 0) return InvalidArgumentError("the multipart form has no file part");
    return OkStatus();
  }
  const std::string type = req.get_header_value("Content-Type");
  const std::string media = type.substr(0, type.find(';'));
  if (media != "image/png" && media != "image/jpeg" && media != "application/octet-stream") {
    return UnimplementedError("Content-Type '" + type.substr(0, kMaxErrorMessageBytes) +
                              "' is not image/png, image/jpeg, application/octet-stream or multipart/form-data");
  }
  if (req.body.empty()) return InvalidArgumentError("the body is empty: send one JPEG or PNG image");
  request->add_inputs()->set_image(req.body);
  return OkStatus();
}

json ClassesJson(const google::protobuf::RepeatedPtrField<v1::Class>& classes) {
  json out = json::array();
  for (const v1::Class& c : classes) {
    out.push_back({{"index", c.index()}, {"label", c.label()}, {"score", c.score()}, {"probability", c.probability()}});
  }
  return out;
}

json ClassifyJson(const v1::ClassifyResponse& response, bool members, bool timings) {
  const bool ensemble = response.members_total() > 0;
  json results = json::array();
  for (const v1::Classification& r : response.results()) {
    json result = {{"classes", ClassesJson(r.classes())}};
    if (ensemble) {
      result["agreement"] = r.agreement();
      result["margin"] = r.margin();
    }
    if (ensemble && members) {
      json list = json::array();
      for (const v1::MemberClassification& m : r.members()) {
        list.push_back({{"model", m.model()}, {"version", m.version()}, {"classes", ClassesJson(m.classes())},
                        {"error", m.error()}});
      }
      result["members"] = std::move(list);
    }
    results.push_back(std::move(result));
  }
  json out = {{"model", response.model()},
              {"version", response.version()},
              {"request_id", response.request_id()},
              {"results", std::move(results)},
              {"members_answered", response.members_answered()},
              {"members_total", response.members_total()},
              {"partial", response.partial()}};
  if (timings) {
    const v1::Timings& t = response.timings();
    out["timings"] = {{"decode_us", t.decode_us()},
                      {"queue_us", t.queue_us()},
                      {"inference_us", t.inference_us()},
                      {"total_us", t.total_us()}};
  }
  return out;
}

// The deadline of query parameter `timeout` (microseconds from now); 0 when absent.
StatusOr<int64_t> DeadlineParam(const httplib::Request& req) {
  if (!req.has_param("timeout")) return int64_t{0};
  const std::string text = req.get_param_value("timeout");
  int64_t timeout_us = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), timeout_us);
  if (text.empty() || error != std::errc() || end != text.data() + text.size()) {
    return InvalidArgumentError("query parameter timeout must be an integer (microseconds)");
  }
  return DeadlineAfter(timeout_us, "query parameter timeout");
}

// Query parameter `name` as an int32 (absent: `fallback`).
StatusOr<int32_t> IntParam(const httplib::Request& req, const char* name, int32_t fallback) {
  if (!req.has_param(name)) return fallback;
  const std::string text = req.get_param_value(name);
  int32_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size()) {
    return InvalidArgumentError(std::string("query parameter ") + name + " must be an integer");
  }
  return value;
}

void Classify(InferenceService* service, const httplib::Request& req, const std::vector<std::string>& c,
              Reply* reply) {
  v1::ClassifyRequest request;
  request.set_model(c[0]);
  const StatusOr<int64_t> version = ParseModelVersion(c[1], "version");
  if (!version.ok()) return SetError(version.status(), reply);
  request.set_version(*version);
  if (Status s = ParseQuery(req, &request); !s.ok()) return SetError(s, reply);
  if (Status s = ParseImages(req, &request); !s.ok()) {
    SetError(s, reply);
    if (s.code() == StatusCode::kUnimplemented) reply->status = 415;
    return;
  }
  const StatusOr<int64_t> deadline_us = DeadlineParam(req);
  if (!deadline_us.ok()) return SetError(deadline_us.status(), reply);
  v1::ClassifyResponse response;
  std::promise<Status> finished;
  const ClientConnection client(req);  // a client that disconnects cancels its request
  ClassifyNative(*service, request, &response, *deadline_us, client.Check(),
                 [&finished](Status status) { finished.set_value(std::move(status)); });
  if (Status s = finished.get_future().get(); !s.ok()) return SetError(s, reply);
  SetJson(ClassifyJson(response, request.include_member_results(), request.include_timings()), reply);
}

// POST .../models/M[:explain]?patch=P&stride=S[&class=K][&fill=F][&layer=L][&timeout=US] with one image as the body
// (as :classify takes it): ExplainResponse as JSON (protobuf's mapping, field names as in the proto).
void Explain(InferenceService* service, const httplib::Request& req, const std::vector<std::string>& c,
             Reply* reply) {
  v1::ExplainRequest request;
  request.set_model(c[0]);
  const StatusOr<int64_t> version = ParseModelVersion(c[1], "version");
  if (!version.ok()) return SetError(version.status(), reply);
  request.set_version(*version);
  const StatusOr<int32_t> patch = IntParam(req, "patch", 0), stride = IntParam(req, "stride", 0),
                          target = IntParam(req, "class", -1);
  for (const StatusOr<int32_t>* p : {&patch, &stride, &target}) {
    if (!p->ok()) return SetError(p->status(), reply);
  }
  request.set_patch(*patch);
  request.set_stride(*stride);
  if (*target >= 0) request.set_target_class(*target);
  if (req.has_param("fill")) request.set_fill(std::strtof(req.get_param_value("fill").c_str(), nullptr));
  if (req.has_param("layer")) request.set_layer(req.get_param_value("layer"));
  v1::ClassifyRequest images;
  if (Status s = ParseImages(req, &images); !s.ok() || images.inputs_size() != 1) {
    SetError(s.ok() ? InvalidArgumentError("send one image") : s, reply);
    if (s.code() == StatusCode::kUnimplemented) reply->status = 415;
    return;
  }
  *request.mutable_input() = images.inputs(0);
  const StatusOr<int64_t> deadline_us = DeadlineParam(req);
  if (!deadline_us.ok()) return SetError(deadline_us.status(), reply);
  v1::ExplainResponse response;
  std::promise<Status> finished;
  const ClientConnection client(req);
  ExplainNative(*service, request, &response, *deadline_us, client.Check(),
                [&finished](Status status) { finished.set_value(std::move(status)); });
  if (Status s = finished.get_future().get(); !s.ok()) return SetError(s, reply);
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  reply->status = 200;
  reply->content_type = kJsonContentType;
  if (!google::protobuf::util::MessageToJsonString(response, &reply->body, options).ok()) {
    SetError(InternalError("cannot print the answer as JSON"), reply);
  }
}

}  // namespace

std::vector<Route> NativeRoutes(InferenceService* service) {
  const std::string model = kModelPath;
  std::vector<Route> routes;
  routes.push_back({"GET", std::regex("/v1/models"), Op("ListModels"),
                    [service](const httplib::Request&, const std::vector<std::string>&, Reply* r) {
                      ListModels(*service, r);
                    }});
  routes.push_back({"GET", std::regex(model), Op("DescribeModel"),
                    [service](const httplib::Request&, const std::vector<std::string>& c, Reply* r) {
                      DescribeModel(*service, c, r);
                    }});
  routes.push_back({"POST", std::regex(model + ":classify"), Op("Classify"),
                    [service](const httplib::Request& q, const std::vector<std::string>& c, Reply* r) {
                      Classify(service, q, c, r);
                    }});
  routes.push_back({"POST", std::regex(model + ":explain"), Op("Explain"),
                    [service](const httplib::Request& q, const std::vector<std::string>& c, Reply* r) {
                      Explain(service, q, c, r);
                    }});
  return routes;
}

}  // namespace cnnserve::http
