#include "server/kserve/kserve_tensors.h"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>
#include <utility>

namespace cnnserve {
namespace {

// Raw tensors are little-endian on the wire and are viewed in place.
static_assert(std::endian::native == std::endian::little, "KServe raw contents are viewed as host floats");

constexpr int64_t kFp32Bytes = 4;
constexpr size_t kBytesLengthPrefix = 4;
constexpr uint32_t kMaxUint8 = 255;

using InputTensor = inference::ModelInferRequest::InferInputTensor;

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += (i == 0 ? "" : ",") + std::to_string(shape[i]);
  return text + "]";
}

// "[N,1,32,32]": a shape with a free batch dimension first.
std::string BatchedShapeString(const Dims& item_dims) {
  std::string text = "[N";
  for (int64_t d : item_dims) text += "," + std::to_string(d);
  return text + "]";
}

// a * b, or nullopt when it overflows (both >= 0).
std::optional<int64_t> Multiply(int64_t a, int64_t b) {
  int64_t product = 0;
  if (__builtin_mul_overflow(a, b, &product)) return std::nullopt;
  return product;
}

std::optional<int64_t> Product(const std::vector<int64_t>& values) {
  int64_t product = 1;
  for (int64_t v : values) {
    const std::optional<int64_t> next = Multiply(product, v);
    if (!next) return std::nullopt;
    product = *next;
  }
  return product;
}

// The names of the typed contents fields that hold data.
std::vector<std::string> TypedFieldsSet(const inference::InferTensorContents& c) {
  std::vector<std::string> fields;
  if (c.bool_contents_size() > 0) fields.push_back("contents.bool_contents");
  if (c.int_contents_size() > 0) fields.push_back("contents.int_contents");
  if (c.int64_contents_size() > 0) fields.push_back("contents.int64_contents");
  if (c.uint_contents_size() > 0) fields.push_back("contents.uint_contents");
  if (c.uint64_contents_size() > 0) fields.push_back("contents.uint64_contents");
  if (c.fp32_contents_size() > 0) fields.push_back("contents.fp32_contents");
  if (c.fp64_contents_size() > 0) fields.push_back("contents.fp64_contents");
  if (c.bytes_contents_size() > 0) fields.push_back("contents.bytes_contents");
  return fields;
}

// Everything a datatype-specific parser needs.
struct InputContext {
  const InputTensor& tensor;
  const std::string* raw = nullptr;  // raw_input_contents[0] when raw contents are used
  std::vector<std::string> typed;    // typed fields set (empty with raw contents)
  std::string where;                 // "model 'm' input 'x'"
  const KServeInputLimits& limits;
};

// Only `allowed` may be among the typed fields; INVALID_ARGUMENT naming the first other one.
Status CheckOnlyTypedField(const InputContext& in, const std::string& datatype, const std::string& allowed) {
  for (const std::string& field : in.typed) {
    if (field != allowed) {
      return InvalidArgumentError(in.where + ": datatype " + datatype + " takes its values in " + allowed +
                                  " (or raw_input_contents), not in " + field);
    }
  }
  return OkStatus();
}

Status NoData(const InputContext& in, const std::string& datatype, const std::vector<int64_t>& shape,
              const std::string& typed_field) {
  return InvalidArgumentError(in.where + ": no data: the values of " + datatype + " " + ShapeString(shape) +
                              " go in raw_input_contents or " + typed_field);
}

Status CheckBatch(const InputContext& in, int64_t batch, const std::vector<int64_t>& shape) {
  if (batch < 1) {
    return InvalidArgumentError(in.where + ": shape " + ShapeString(shape) + " has batch size " +
                                std::to_string(batch) + "; at least 1 image is needed");
  }
  if (batch > in.limits.max_items) {
    return InvalidArgumentError(in.where + ": batch size " + std::to_string(batch) + " (shape " +
                                ShapeString(shape) + ") exceeds the limit of " +
                                std::to_string(in.limits.max_items) + " images per request");
  }
  return OkStatus();
}

Status ParseFp32(const InputContext& in, const ServableInfo& info, ParsedInferInput* out) {
  const std::vector<int64_t>& shape = out->shape;
  const Dims& item_dims = info.item_input_dims;
  const std::string expected = "FP32 " + BatchedShapeString(item_dims);
  bool matches = shape.size() == item_dims.size() + 1;
  for (size_t i = 0; matches && i < item_dims.size(); ++i) matches = shape[i + 1] == item_dims[i];
  if (!matches) {
    return InvalidArgumentError(in.where + ": FP32 shape " + ShapeString(shape) + " does not match the model's " +
                                expected);
  }
  const int64_t batch = shape[0];
  if (Status s = CheckBatch(in, batch, shape); !s.ok()) return s;
  const std::optional<int64_t> item_elements = Product(item_dims);
  if (!item_elements || *item_elements <= 0) {
    return InternalError(in.where + ": the model's input dims " + ShapeString(item_dims) + " are not usable");
  }
  const int64_t elements = batch * *item_elements;  // small: both factors are bounded
  const int64_t item_bytes = *item_elements * kFp32Bytes;
  const char* base = nullptr;
  if (in.raw != nullptr) {
    if (static_cast<int64_t>(in.raw->size()) != elements * kFp32Bytes) {
      return InvalidArgumentError(in.where + ": raw_input_contents[0] holds " + std::to_string(in.raw->size()) +
                                  " bytes; FP32 " + ShapeString(shape) + " needs " +
                                  std::to_string(elements * kFp32Bytes) + " (" + std::to_string(elements) +
                                  " elements of 4 bytes)");
    }
    base = in.raw->data();
  } else {
    if (Status s = CheckOnlyTypedField(in, kKServeFp32, "contents.fp32_contents"); !s.ok()) return s;
    const int count = in.tensor.contents().fp32_contents_size();
    if (count == 0) return NoData(in, kKServeFp32, shape, "contents.fp32_contents");
    if (count != elements) {
      return InvalidArgumentError(in.where + ": contents.fp32_contents has " + std::to_string(count) +
                                  " values; FP32 " + ShapeString(shape) + " needs " + std::to_string(elements));
    }
    auto storage = std::make_shared<std::string>(static_cast<size_t>(elements * kFp32Bytes), '\0');
    std::memcpy(storage->data(), in.tensor.contents().fp32_contents().data(), storage->size());
    base = storage->data();
    out->storage = std::move(storage);
  }
  out->items.reserve(static_cast<size_t>(batch));
  for (int64_t i = 0; i < batch; ++i) {
    ImageItem item;
    item.kind = ImageItem::Kind::kTensor;
    item.data = std::string_view(base + i * item_bytes, static_cast<size_t>(item_bytes));
    out->items.push_back(item);
  }
  return OkStatus();
}

Status ParseUint8(const InputContext& in, ParsedInferInput* out) {
  const std::vector<int64_t>& shape = out->shape;
  if (shape.size() != 4 || shape[1] < 1 || shape[2] < 1 || (shape[3] != 1 && shape[3] != 3)) {
    return InvalidArgumentError(in.where + ": UINT8 shape " + ShapeString(shape) +
                                " is not [N,H,W,C] with H, W >= 1 and C 1 (gray) or 3 (RGB)");
  }
  const int64_t batch = shape[0];
  if (Status s = CheckBatch(in, batch, shape); !s.ok()) return s;
  const int64_t height = shape[1];
  const int64_t width = shape[2];
  const int64_t channels = shape[3];
  const std::optional<int64_t> pixels = Multiply(height, width);
  if (!pixels || *pixels > in.limits.max_pixels || height > std::numeric_limits<int32_t>::max() ||
      width > std::numeric_limits<int32_t>::max()) {
    return InvalidArgumentError(in.where + ": UINT8 image of " + std::to_string(height) + "x" +
                                std::to_string(width) + " pixels exceeds the limit of " +
                                std::to_string(in.limits.max_pixels) + " pixels per image");
  }
  const int64_t item_bytes = *pixels * channels;
  const std::optional<int64_t> total = Multiply(item_bytes, batch);
  if (!total) return InvalidArgumentError(in.where + ": UINT8 shape " + ShapeString(shape) + " is too large");
  const char* base = nullptr;
  if (in.raw != nullptr) {
    if (static_cast<int64_t>(in.raw->size()) != *total) {
      return InvalidArgumentError(in.where + ": raw_input_contents[0] holds " + std::to_string(in.raw->size()) +
                                  " bytes; UINT8 " + ShapeString(shape) + " needs " + std::to_string(*total));
    }
    base = in.raw->data();
  } else {
    if (Status s = CheckOnlyTypedField(in, kKServeUint8, "contents.uint_contents"); !s.ok()) return s;
    const auto& values = in.tensor.contents().uint_contents();
    if (values.empty()) return NoData(in, kKServeUint8, shape, "contents.uint_contents");
    if (values.size() != *total) {
      return InvalidArgumentError(in.where + ": contents.uint_contents has " + std::to_string(values.size()) +
                                  " values; UINT8 " + ShapeString(shape) + " needs " + std::to_string(*total));
    }
    auto storage = std::make_shared<std::string>(static_cast<size_t>(*total), '\0');
    for (int i = 0; i < values.size(); ++i) {
      if (values[i] > kMaxUint8) {
        return InvalidArgumentError(in.where + ": contents.uint_contents[" + std::to_string(i) +
                                    "] = " + std::to_string(values[i]) + " is not a UINT8 value (0..255)");
      }
      (*storage)[static_cast<size_t>(i)] = static_cast<char>(values[i]);
    }
    base = storage->data();
    out->storage = std::move(storage);
  }
  out->items.reserve(static_cast<size_t>(batch));
  for (int64_t i = 0; i < batch; ++i) {
    ImageItem item;
    item.kind = ImageItem::Kind::kPixels;
    item.data = std::string_view(base + i * item_bytes, static_cast<size_t>(item_bytes));
    item.height = static_cast<int32_t>(height);
    item.width = static_cast<int32_t>(width);
    item.channels = static_cast<int32_t>(channels);
    out->items.push_back(item);
  }
  return OkStatus();
}

Status ParseBytes(const InputContext& in, ParsedInferInput* out) {
  const std::vector<int64_t>& shape = out->shape;
  if (shape.empty() || shape.size() > 2 || (shape.size() == 2 && shape[1] != 1)) {
    return InvalidArgumentError(in.where + ": BYTES shape " + ShapeString(shape) +
                                " is not [N] or [N,1] (one encoded JPEG/PNG image per element)");
  }
  const int64_t batch = shape[0];
  if (Status s = CheckBatch(in, batch, shape); !s.ok()) return s;
  out->items.reserve(static_cast<size_t>(batch));
  if (in.raw != nullptr) {
    const std::string& raw = *in.raw;
    size_t at = 0;
    for (int64_t i = 0; i < batch; ++i) {
      const size_t left = raw.size() - at;
      if (left < kBytesLengthPrefix) {
        return InvalidArgumentError(
            in.where + ": raw_input_contents[0] holds " + std::to_string(i) + " BYTES element(s); shape " +
            ShapeString(shape) + " needs " + std::to_string(batch) +
            (left == 0 ? std::string()
                       : " (" + std::to_string(left) + " trailing bytes are not a 4-byte length)"));
      }
      uint32_t length = 0;
      const auto* p = reinterpret_cast<const unsigned char*>(raw.data() + at);
      length = static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
               static_cast<uint32_t>(p[3]) << 24;
      at += kBytesLengthPrefix;
      if (length > raw.size() - at) {
        return InvalidArgumentError(in.where + ": raw_input_contents[0] BYTES element " + std::to_string(i) +
                                    " declares " + std::to_string(length) + " bytes but only " +
                                    std::to_string(raw.size() - at) +
                                    " remain (each element is a 4-byte little-endian length, then the bytes)");
      }
      ImageItem item;
      item.kind = ImageItem::Kind::kEncoded;
      item.data = std::string_view(raw.data() + at, length);
      out->items.push_back(item);
      at += length;
    }
    if (at != raw.size()) {
      return InvalidArgumentError(in.where + ": raw_input_contents[0] has " + std::to_string(raw.size() - at) +
                                  " bytes after the " + std::to_string(batch) + " BYTES element(s) of shape " +
                                  ShapeString(shape));
    }
    return OkStatus();
  }
  if (Status s = CheckOnlyTypedField(in, kKServeBytes, "contents.bytes_contents"); !s.ok()) return s;
  const auto& elements = in.tensor.contents().bytes_contents();
  if (elements.empty()) return NoData(in, kKServeBytes, shape, "contents.bytes_contents");
  if (elements.size() != batch) {
    return InvalidArgumentError(in.where + ": contents.bytes_contents has " + std::to_string(elements.size()) +
                                " elements; BYTES " + ShapeString(shape) + " needs " + std::to_string(batch));
  }
  for (const std::string& element : elements) {
    ImageItem item;
    item.kind = ImageItem::Kind::kEncoded;
    item.data = element;
    out->items.push_back(item);
  }
  return OkStatus();
}

std::string InputForms(const ServableInfo& info) {
  return "FP32 " + BatchedShapeString(info.item_input_dims) + ", UINT8 [N,H,W,C] or BYTES [N] of encoded images";
}

}  // namespace

StatusOr<ParsedInferInput> ParseInferInput(const inference::ModelInferRequest& request, const ServableInfo& info,
                                           const KServeInputLimits& limits) {
  const std::string model = "model '" + info.name + "'";
  if (request.inputs_size() == 0) {
    return InvalidArgumentError(model + ": missing input '" + info.input_name + "' (" + InputForms(info) + ")");
  }
  if (request.inputs_size() > 1) {
    std::string names;
    for (const InputTensor& t : request.inputs()) names += (names.empty() ? "'" : ", '") + t.name() + "'";
    return InvalidArgumentError(model + " takes exactly one input, '" + info.input_name + "'; the request has " +
                                std::to_string(request.inputs_size()) + ": " + names);
  }
  const InputTensor& tensor = request.inputs(0);
  if (tensor.name() != info.input_name) {
    return InvalidArgumentError(model + ": unknown input '" + tensor.name() + "'; missing input '" +
                                info.input_name + "' (" + InputForms(info) + ")");
  }
  if (request.raw_input_contents_size() > request.inputs_size()) {
    return InvalidArgumentError(model + ": raw_input_contents has " +
                                std::to_string(request.raw_input_contents_size()) +
                                " entries for 1 input; it needs one entry per input");
  }
  InputContext in{tensor, nullptr, TypedFieldsSet(tensor.contents()), model + " input '" + tensor.name() + "'",
                  limits};
  if (request.raw_input_contents_size() == 1) {
    if (!in.typed.empty()) {
      return InvalidArgumentError(in.where + ": both raw_input_contents and " + in.typed.front() +
                                  " are set; a request uses either raw_input_contents for every input or the "
                                  "typed contents, not both");
    }
    in.raw = &request.raw_input_contents(0);
  }

  ParsedInferInput out;
  out.name = tensor.name();
  out.datatype = tensor.datatype();
  out.shape.assign(tensor.shape().begin(), tensor.shape().end());
  for (int64_t d : out.shape) {
    if (d < 0) {
      return InvalidArgumentError(in.where + ": shape " + ShapeString(out.shape) +
                                  " has a negative dimension (-1 is only for metadata)");
    }
  }
  Status status;
  if (tensor.datatype() == kKServeFp32) {
    status = ParseFp32(in, info, &out);
  } else if (tensor.datatype() == kKServeUint8) {
    status = ParseUint8(in, &out);
  } else if (tensor.datatype() == kKServeBytes) {
    status = ParseBytes(in, &out);
  } else {
    status = InvalidArgumentError(in.where + ": datatype '" + tensor.datatype() + "' is not supported; expected " +
                                  InputForms(info));
  }
  if (!status.ok()) return status;
  return out;
}

StatusOr<std::vector<RequestedOutput>> ParseRequestedOutputs(const inference::ModelInferRequest& request,
                                                             const ServableInfo& info) {
  std::vector<RequestedOutput> outputs;
  if (request.outputs_size() == 0) {
    outputs.push_back({info.output_name, 0});
    return outputs;
  }
  const std::string model = "model '" + info.name + "'";
  for (const auto& requested : request.outputs()) {
    if (!info.layer.empty()) {  // a layer servable: the one output asked for, as named (a node or tensor name)
      if (requested.parameters().count(kClassificationParameter) != 0) {
        return InvalidArgumentError(model + " output '" + requested.name() +
                                    "' is an internal layer: parameter 'classification' does not apply");
      }
      outputs.push_back({requested.name(), 0});
      break;
    }
    if (requested.name() != info.output_name) {
      return InvalidArgumentError(model + ": unknown output '" + requested.name() +
                                  "' requested; the model's output is '" + info.output_name + "'");
    }
    for (const RequestedOutput& seen : outputs) {
      if (seen.name == requested.name()) {
        return InvalidArgumentError(model + ": output '" + requested.name() + "' is requested more than once");
      }
    }
    RequestedOutput output{requested.name(), 0};
    const auto it = requested.parameters().find(kClassificationParameter);
    if (it != requested.parameters().end()) {
      const inference::InferParameter& p = it->second;
      int64_t k = 0;
      if (p.parameter_choice_case() == inference::InferParameter::kInt64Param) {
        k = p.int64_param();
      } else if (p.parameter_choice_case() == inference::InferParameter::kUint64Param) {
        k = p.uint64_param() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())
                ? std::numeric_limits<int64_t>::max()
                : static_cast<int64_t>(p.uint64_param());
      } else {
        return InvalidArgumentError(model + " output '" + requested.name() +
                                    "': parameter 'classification' must " +
                                    "be an int64_param >= 1 (the number of classes to return)");
      }
      if (k < 1) {
        return InvalidArgumentError(model + " output '" + requested.name() + "': parameter 'classification' is " +
                                    std::to_string(k) + "; it must be >= 1 (the number of classes to return)");
      }
      output.classification = k;
    }
    outputs.push_back(std::move(output));
  }
  return outputs;
}

void AppendBytesElement(std::string_view element, std::string* out) {
  const auto length = static_cast<uint32_t>(element.size());
  const char prefix[kBytesLengthPrefix] = {
      static_cast<char>(length & 0xff), static_cast<char>((length >> 8) & 0xff),
      static_cast<char>((length >> 16) & 0xff), static_cast<char>((length >> 24) & 0xff)};
  out->append(prefix, kBytesLengthPrefix);
  out->append(element);
}

std::string ClassificationString(const ScoredClass& scored, const std::vector<std::string>& labels) {
  char score[64];
  std::snprintf(score, sizeof(score), "%f", static_cast<double>(scored.score));
  std::string text = std::string(score) + ":" + std::to_string(scored.index);
  if (scored.index >= 0 && static_cast<size_t>(scored.index) < labels.size() && !labels[scored.index].empty()) {
    text += ":" + labels[scored.index];
  }
  return text;
}

void FillInferOutputs(const RunResult& result, const ServableInfo& info,
                      const std::vector<RequestedOutput>& outputs, inference::ModelInferResponse* response) {
  response->set_model_name(result.model);
  response->set_model_version(std::to_string(result.version));
  const int64_t rows = result.num_items;
  const int64_t classes = result.num_classes;
  for (const RequestedOutput& requested : outputs) {
    inference::ModelInferResponse::InferOutputTensor* tensor = response->add_outputs();
    tensor->set_name(requested.name);
    std::string* raw = response->add_raw_output_contents();
    if (requested.classification == 0) {
      tensor->set_datatype(kKServeFp32);
      tensor->add_shape(rows);
      if (info.item_output_dims.empty()) tensor->add_shape(classes);
      for (int64_t d : info.item_output_dims) tensor->add_shape(d);  // a layer: its per-item shape
      const size_t count = std::min(result.scores.size(), static_cast<size_t>(rows * classes));
      raw->assign(reinterpret_cast<const char*>(result.scores.data()), count * sizeof(float));
      continue;
    }
    const int64_t k = std::min(requested.classification, classes);
    tensor->set_datatype(kKServeBytes);
    tensor->add_shape(rows);
    tensor->add_shape(k);
    for (int64_t row = 0; row < rows; ++row) {
      for (const ScoredClass& scored : result.Ranked(row, static_cast<int>(k))) {
        AppendBytesElement(ClassificationString(scored, info.labels), raw);
      }
    }
  }
}

StatusOr<int64_t> ParseModelVersion(std::string_view version, std::string_view field) {
  if (version.empty()) return int64_t{0};
  int64_t value = 0;
  const auto [end, ec] = std::from_chars(version.data(), version.data() + version.size(), value);
  if (ec != std::errc() || end != version.data() + version.size() || value < 1) {
    return InvalidArgumentError(std::string(field) + " '" + std::string(version) +
                                "' is not a model version (a positive integer, or empty for the newest)");
  }
  return value;
}

}  // namespace cnnserve
