#include "server/http/kserve_json.h"

#include <bit>
#include <charconv>
#include <cstring>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <utility>

#include "server/kserve/kserve_tensors.h"

namespace cnnserve::http {
namespace {

using json = nlohmann::json;

static_assert(std::endian::native == std::endian::little, "KServe raw contents are little-endian host floats");

// How deep `data` may nest (a tensor's rank is far below).
constexpr int kMaxDataDepth = 32;
constexpr size_t kFp32Bytes = 4;
constexpr size_t kBytesLengthPrefix = 4;
constexpr uint64_t kMaxUint8 = 255;
// Transport parameters of the binary data extension: consumed here, not passed on.
constexpr char kBinaryDataSize[] = "binary_data_size";
constexpr char kBinaryData[] = "binary_data";
constexpr char kBinaryDataOutput[] = "binary_data_output";

using InputTensor = inference::ModelInferRequest::InferInputTensor;
using ParameterMap = google::protobuf::Map<std::string, inference::InferParameter>;

Status TypeError(const std::string& field, const char* expected) {
  return InvalidArgumentError(field + " is not " + expected);
}

// An object member of `object` by name, or nullptr.
const json* Member(const json& object, const char* name) {
  const auto it = object.find(name);
  return it == object.end() ? nullptr : &*it;
}

// A JSON parameter value -> InferParameter.
Status ToParameter(const json& value, const std::string& field, inference::InferParameter* out) {
  if (value.is_boolean()) {
    out->set_bool_param(value.get<bool>());
  } else if (value.is_number_unsigned()) {
    const uint64_t v = value.get<uint64_t>();
    if (v <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      out->set_int64_param(static_cast<int64_t>(v));
    } else {
      out->set_uint64_param(v);
    }
  } else if (value.is_number_integer()) {
    out->set_int64_param(value.get<int64_t>());
  } else if (value.is_number_float()) {
    out->set_double_param(value.get<double>());
  } else if (value.is_string()) {
    out->set_string_param(value.get<std::string>());
  } else {
    return TypeError(field, "a bool, number or string");
  }
  return OkStatus();
}

// Copies the "parameters" object of `owner` (if any) into `out`, leaving out the transport parameters, which are
// returned through `transport` (name -> value) for the caller to check.
Status ParseParameters(const json& owner, const std::string& field, ParameterMap* out,
                       std::vector<std::pair<std::string, const json*>>* transport) {
  const json* params = Member(owner, "parameters");
  if (params == nullptr) return OkStatus();
  if (!params->is_object()) return TypeError(field + ".parameters", "an object");
  for (const auto& [name, value] : params->items()) {
    if (name == kBinaryDataSize || name == kBinaryData || name == kBinaryDataOutput) {
      transport->emplace_back(name, &value);
      continue;
    }
    if (Status s = ToParameter(value, field + ".parameters." + name, &(*out)[name]); !s.ok()) return s;
  }
  return OkStatus();
}

Status ParseShape(const json& input, const std::string& field, InputTensor* tensor, int64_t* elements) {
  const json* shape = Member(input, "shape");
  if (shape == nullptr) return InvalidArgumentError(field + ".shape is missing");
  if (!shape->is_array()) return TypeError(field + ".shape", "an array");
  *elements = 1;
  for (size_t i = 0; i < shape->size(); ++i) {
    const json& d = (*shape)[i];
    if (!d.is_number_integer() || d.get<int64_t>() < 0) {
      return TypeError(field + ".shape[" + std::to_string(i) + "]", "a non-negative integer");
    }
    const int64_t dim = d.get<int64_t>();
    tensor->add_shape(dim);
    if (*elements >= 0 && __builtin_mul_overflow(*elements, dim, elements)) *elements = -1;  // -1: overflowed
  }
  return OkStatus();
}

// Calls `leaf` for every element of the (possibly nested) array `data`, in row-major order.
Status VisitData(const json& data, const std::string& field, int depth,
                 const std::function<Status(const json&, const std::string&)>& leaf) {
  if (!data.is_array()) return leaf(data, field);
  if (depth >= kMaxDataDepth) return InvalidArgumentError(field + " nests deeper than " + std::to_string(kMaxDataDepth));
  for (size_t i = 0; i < data.size(); ++i) {
    if (Status s = VisitData(data[i], field + "[" + std::to_string(i) + "]", depth + 1, leaf); !s.ok()) return s;
  }
  return OkStatus();
}

// The JSON `data` of one input into its typed contents (FP32, UINT8, BYTES); other datatypes get none.
Status ParseData(const json& data, const std::string& field, int64_t elements, InputTensor* tensor) {
  const std::string& datatype = tensor->datatype();
  inference::InferTensorContents* contents = tensor->mutable_contents();
  int64_t count = 0;
  std::function<Status(const json&, const std::string&)> leaf;
  if (datatype == kKServeFp32) {
    leaf = [&](const json& v, const std::string& where) {
      if (!v.is_number()) return TypeError(where, "a number (FP32)");
      contents->add_fp32_contents(static_cast<float>(v.get<double>()));
      ++count;
      return OkStatus();
    };
  } else if (datatype == kKServeUint8) {
    leaf = [&](const json& v, const std::string& where) {
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<uint64_t>() > kMaxUint8) {
        return TypeError(where, "an integer 0..255 (UINT8)");
      }
      contents->add_uint_contents(v.get<uint32_t>());
      ++count;
      return OkStatus();
    };
  } else if (datatype == kKServeBytes) {
    leaf = [&](const json& v, const std::string& where) {
      if (!v.is_string()) return TypeError(where, "a string (BYTES)");
      contents->add_bytes_contents(v.get<std::string>());
      ++count;
      return OkStatus();
    };
  } else {
    return OkStatus();  // the shared translation names the unsupported datatype
  }
  if (Status s = VisitData(data, field, 0, leaf); !s.ok()) return s;
  if (count != elements) {
    std::string shape;
    for (int64_t d : tensor->shape()) shape += (shape.empty() ? "" : ",") + std::to_string(d);
    return InvalidArgumentError(field + " has " + std::to_string(count) + " elements; " + datatype + " [" + shape +
                                "] needs " + (elements < 0 ? std::string("more than 2^63") : std::to_string(elements)));
  }
  return OkStatus();
}

// One entry of "inputs". `binary_size` is set when the input's data follows the JSON.
Status ParseInput(const json& input, const std::string& field, InputTensor* tensor,
                  std::optional<uint64_t>* binary_size) {
  if (!input.is_object()) return TypeError(field, "an object");
  const json* name = Member(input, "name");
  if (name == nullptr || !name->is_string()) return TypeError(field + ".name", "a string");
  tensor->set_name(name->get<std::string>());
  const json* datatype = Member(input, "datatype");
  if (datatype == nullptr || !datatype->is_string()) return TypeError(field + ".datatype", "a string");
  tensor->set_datatype(datatype->get<std::string>());
  int64_t elements = 0;
  if (Status s = ParseShape(input, field, tensor, &elements); !s.ok()) return s;
  std::vector<std::pair<std::string, const json*>> transport;
  if (Status s = ParseParameters(input, field, tensor->mutable_parameters(), &transport); !s.ok()) return s;
  for (const auto& [key, value] : transport) {
    const std::string where = field + ".parameters." + key;
    if (key != kBinaryDataSize) return InvalidArgumentError(where + " belongs on an output or on the request");
    if (!value->is_number_unsigned()) return TypeError(where, "a non-negative integer");
    *binary_size = value->get<uint64_t>();
  }
  const json* data = Member(input, "data");
  if (binary_size->has_value()) {
    if (data != nullptr) return InvalidArgumentError(field + " has both data and parameters.binary_data_size");
    return OkStatus();
  }
  if (data == nullptr) return InvalidArgumentError(field + ".data is missing (or parameters.binary_data_size)");
  return ParseData(*data, field + ".data", elements, tensor);
}

// The typed contents of `tensor` in raw form (for a request whose other inputs are binary).
std::string TypedToRaw(const InputTensor& tensor) {
  const inference::InferTensorContents& c = tensor.contents();
  std::string raw;
  if (c.fp32_contents_size() > 0) {
    raw.resize(static_cast<size_t>(c.fp32_contents_size()) * kFp32Bytes);
    std::memcpy(raw.data(), c.fp32_contents().data(), raw.size());
  }
  for (uint32_t v : c.uint_contents()) raw.push_back(static_cast<char>(v));
  for (const std::string& element : c.bytes_contents()) AppendBytesElement(element, &raw);
  return raw;
}

StatusOr<size_t> ParseJsonLength(std::string_view text, size_t body_size) {
  size_t length = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), length);
  if (error != std::errc() || end != text.data() + text.size() || text.empty()) {
    return InvalidArgumentError(std::string(kInferenceHeaderContentLength) + " is not a decimal byte count");
  }
  if (length == 0 || length > body_size) {
    return InvalidArgumentError(std::string(kInferenceHeaderContentLength) + " = " + std::to_string(length) +
                                " is outside 1.." + std::to_string(body_size) + " (the body's size)");
  }
  return length;
}

StatusOr<json> ParseJson(std::string_view text) {
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::parse_error& e) {
    return InvalidArgumentError("the body is not valid JSON (at byte " + std::to_string(e.byte) + ")");
  }
}

Status ParseOutputs(const json& root, RestInferRequest* out) {
  const json* outputs = Member(root, "outputs");
  if (outputs == nullptr) return OkStatus();
  if (!outputs->is_array()) return TypeError("outputs", "an array");
  for (size_t i = 0; i < outputs->size(); ++i) {
    const json& output = (*outputs)[i];
    const std::string field = "outputs[" + std::to_string(i) + "]";
    if (!output.is_object()) return TypeError(field, "an object");
    const json* name = Member(output, "name");
    if (name == nullptr || !name->is_string()) return TypeError(field + ".name", "a string");
    auto* requested = out->request.add_outputs();
    requested->set_name(name->get<std::string>());
    std::vector<std::pair<std::string, const json*>> transport;
    if (Status s = ParseParameters(output, field, requested->mutable_parameters(), &transport); !s.ok()) return s;
    bool binary = out->all_binary_outputs;
    for (const auto& [key, value] : transport) {
      const std::string where = field + ".parameters." + key;
      if (key != kBinaryData) return InvalidArgumentError(where + " belongs on an input or on the request");
      if (!value->is_boolean()) return TypeError(where, "a bool");
      binary = value->get<bool>();
    }
    out->binary_outputs.push_back(binary);
  }
  return OkStatus();
}

Status ParseRequestFields(const json& root, RestInferRequest* out) {
  if (!root.is_object()) return TypeError("the body", "a JSON object");
  if (const json* id = Member(root, "id"); id != nullptr) {
    if (!id->is_string()) return TypeError("id", "a string");
    out->request.set_id(id->get<std::string>());
  }
  std::vector<std::pair<std::string, const json*>> transport;
  if (Status s = ParseParameters(root, "request", out->request.mutable_parameters(), &transport); !s.ok()) return s;
  for (const auto& [key, value] : transport) {
    if (key != kBinaryDataOutput) return InvalidArgumentError("parameters." + key + " belongs on an input or output");
    if (!value->is_boolean()) return TypeError("parameters." + key, "a bool");
    out->all_binary_outputs = value->get<bool>();
  }
  return ParseOutputs(root, out);
}

// Moves the binary part of the body into raw_input_contents (and the JSON data of the other inputs with it).
Status AttachBinary(std::string_view binary, const std::vector<std::optional<uint64_t>>& sizes,
                    inference::ModelInferRequest* request) {
  uint64_t total = 0;
  bool any = false;
  for (const std::optional<uint64_t>& size : sizes) {
    if (!size) continue;
    any = true;
    if (__builtin_add_overflow(total, *size, &total)) total = std::numeric_limits<uint64_t>::max();
  }
  if (total != binary.size()) {
    return InvalidArgumentError("the inputs' binary_data_size add up to " + std::to_string(total) +
                                " bytes but " + std::to_string(binary.size()) + " bytes follow the JSON header");
  }
  if (!any) return OkStatus();
  size_t offset = 0;
  for (int i = 0; i < request->inputs_size(); ++i) {
    InputTensor* tensor = request->mutable_inputs(i);
    if (sizes[static_cast<size_t>(i)]) {
      const size_t size = static_cast<size_t>(*sizes[static_cast<size_t>(i)]);
      request->add_raw_input_contents(std::string(binary.substr(offset, size)));
      offset += size;
    } else {
      request->add_raw_input_contents(TypedToRaw(*tensor));
      tensor->clear_contents();
    }
  }
  return OkStatus();
}

json ParameterToJson(const inference::InferParameter& p) {
  switch (p.parameter_choice_case()) {
    case inference::InferParameter::kBoolParam:
      return p.bool_param();
    case inference::InferParameter::kInt64Param:
      return p.int64_param();
    case inference::InferParameter::kUint64Param:
      return p.uint64_param();
    case inference::InferParameter::kDoubleParam:
      return p.double_param();
    case inference::InferParameter::kStringParam:
      return p.string_param();
    default:
      return nullptr;
  }
}

// The elements of a raw output as JSON values (FP32 numbers, BYTES strings).
json RawToJson(const std::string& datatype, const std::string& raw) {
  json data = json::array();
  if (datatype == kKServeFp32) {
    for (size_t at = 0; at + kFp32Bytes <= raw.size(); at += kFp32Bytes) {
      float v = 0;
      std::memcpy(&v, raw.data() + at, kFp32Bytes);
      data.push_back(v);
    }
  } else if (datatype == kKServeBytes) {
    for (size_t at = 0; at + kBytesLengthPrefix <= raw.size();) {
      uint32_t length = 0;
      std::memcpy(&length, raw.data() + at, kBytesLengthPrefix);
      at += kBytesLengthPrefix;
      const size_t n = std::min<size_t>(length, raw.size() - at);
      data.push_back(raw.substr(at, n));
      at += n;
    }
  }
  return data;
}

bool IsBinaryOutput(const RestInferRequest& parsed, const std::string& name) {
  for (int i = 0; i < parsed.request.outputs_size(); ++i) {
    if (parsed.request.outputs(i).name() == name) return parsed.binary_outputs[static_cast<size_t>(i)];
  }
  return parsed.all_binary_outputs;
}

}  // namespace

StatusOr<RestInferRequest> ParseRestInferRequest(std::string_view body, std::optional<std::string_view> json_length) {
  std::string_view json_text = body;
  std::string_view binary;
  if (json_length) {
    const StatusOr<size_t> length = ParseJsonLength(*json_length, body.size());
    if (!length.ok()) return length.status();
    json_text = body.substr(0, *length);
    binary = body.substr(*length);
  }
  StatusOr<json> root = ParseJson(json_text);
  if (!root.ok()) return root.status();
  RestInferRequest out;
  if (Status s = ParseRequestFields(*root, &out); !s.ok()) return s;
  const json* inputs = Member(*root, "inputs");
  if (inputs == nullptr) return InvalidArgumentError("inputs is missing");
  if (!inputs->is_array()) return TypeError("inputs", "an array");
  std::vector<std::optional<uint64_t>> binary_sizes(inputs->size());
  for (size_t i = 0; i < inputs->size(); ++i) {
    if (Status s = ParseInput((*inputs)[i], "inputs[" + std::to_string(i) + "]", out.request.add_inputs(),
                              &binary_sizes[i]);
        !s.ok()) {
      return s;
    }
  }
  if (Status s = AttachBinary(binary, binary_sizes, &out.request); !s.ok()) return s;
  return out;
}

RestInferResponse RenderRestInferResponse(const inference::ModelInferResponse& response,
                                          const RestInferRequest& parsed) {
  json root = json::object();
  root["model_name"] = response.model_name();
  root["model_version"] = response.model_version();
  if (!response.id().empty()) root["id"] = response.id();
  if (!response.parameters().empty()) {
    json params = json::object();
    for (const auto& [name, value] : response.parameters()) params[name] = ParameterToJson(value);
    root["parameters"] = std::move(params);
  }
  std::string tail;
  bool any_binary = false;
  json outputs = json::array();
  for (int i = 0; i < response.outputs_size(); ++i) {
    const auto& tensor = response.outputs(i);
    const std::string& raw = i < response.raw_output_contents_size() ? response.raw_output_contents(i) : "";
    json out = {{"name", tensor.name()}, {"datatype", tensor.datatype()}, {"shape", json::array()}};
    for (int64_t d : tensor.shape()) out["shape"].push_back(d);
    if (IsBinaryOutput(parsed, tensor.name())) {
      out["parameters"] = {{kBinaryDataSize, raw.size()}};
      tail += raw;
      any_binary = true;
    } else {
      out["data"] = RawToJson(tensor.datatype(), raw);
    }
    outputs.push_back(std::move(out));
  }
  root["outputs"] = std::move(outputs);
  RestInferResponse rendered;
  rendered.body = root.dump(-1, ' ', false, json::error_handler_t::replace);
  if (any_binary) rendered.json_length = rendered.body.size();
  rendered.body += tail;
  return rendered;
}

}  // namespace cnnserve::http
