// The importer's entry points: reading a file or bytes into a parsed proto (onnx_file.h), converting it
// (onnx_graph_importer.h) and reading TensorProto files (onnx_tensor.h). The pieces are listed in
// models/onnx/README.md.
#include "models/onnx/onnx_importer.h"

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <optional>
#include <string_view>
#include <utility>

#include "models/onnx/onnx_file.h"
#include "models/onnx/onnx_graph_importer.h"
#include "models/onnx/onnx_messages.h"
#include "models/onnx/onnx_tensor.h"

namespace cnnserve {
namespace {

using onnx_import::ExternalRawData;
using onnx_import::FileBytes;
using onnx_import::FloatTensorFromProto;
using onnx_import::ParseProto;

Status ParseModel(const uint8_t* data, size_t size, const std::string& what, onnx::ModelProto* model) {
  if (!ParseProto(data, size, model)) {
    return InvalidArgumentError(what + " is not a valid ONNX model (protobuf parsing failed after reading " +
                                std::to_string(size) + " bytes)");
  }
  if (!model->has_graph() || model->ir_version() <= 0) {
    return InvalidArgumentError(what + " is not a valid ONNX model (" +
                                (model->has_graph() ? "no IR version" : "no graph") + ")");
  }
  return OkStatus();
}

// Converts a parsed model; frees its tensor data along the way.
StatusOr<GraphDef> ImportModel(onnx::ModelProto* model, const std::string& what, const OnnxImportOptions& options,
                               const ExternalRawData* external = nullptr) {
  onnx_import::GraphImporter importer(model, options, external);
  StatusOr<GraphDef> def = importer.Import();
  if (!def.ok()) return def.status().WithContext(what);
  return def;
}

StatusOr<onnx::TensorProto> ParseTensorBytes(const uint8_t* data, size_t size, const std::string& what) {
  onnx::TensorProto proto;
  if (!ParseProto(data, size, &proto)) return InvalidArgumentError(what + " is not a valid ONNX TensorProto");
  return proto;
}

std::string TensorLabel(const std::string& what, const onnx::TensorProto& proto) {
  return proto.name().empty() ? what : what + ": tensor " + onnx_import::Quote(proto.name());
}

int64_t ClampFileLimit(int64_t max_file_bytes) { return std::min(max_file_bytes, kMaxOnnxProtoBytes); }

}  // namespace

StatusOr<GraphDef> ImportOnnxFile(const std::string& path, const OnnxImportOptions& options) {
  auto mapped = std::make_shared<FileBytes>();
  FileBytes& file = *mapped;
  CNN_RETURN_IF_ERROR(file.Open(path, ClampFileLimit(options.max_file_bytes)));
  // The big weights stay in the mapped file: the proto is parsed without them and each is copied straight into
  // its tensor (or, with map_weights, viewed where it lies), so loading peaks at about one copy of the weights
  // instead of two or three.
  std::vector<onnx_import::RawSlice> slices;
  std::optional<std::string> stripped = onnx_import::StripInitializerData(file.data(), file.size(), &slices);
  onnx::ModelProto model;
  if (!stripped) {  // not walkable: let protobuf parse it all and report what is wrong
    CNN_RETURN_IF_ERROR(ParseModel(file.data(), file.size(), path, &model));
    return ImportModel(&model, path, options);
  }
  CNN_RETURN_IF_ERROR(
      ParseModel(reinterpret_cast<const uint8_t*>(stripped->data()), stripped->size(), path, &model));
  stripped.reset();
  ExternalRawData external;
  if (options.map_weights && file.mapped()) external.mapping = mapped;
  const auto& initializers = model.graph().initializer();
  for (const onnx_import::RawSlice& slice : slices) {
    if (slice.initializer >= initializers.size()) {
      return InternalError(path + ": initializer index " + std::to_string(slice.initializer) + " out of range");
    }
    external.slices.emplace(
        &initializers.Get(slice.initializer),
        std::string_view(reinterpret_cast<const char*>(file.data()) + slice.offset, slice.size));
  }
  return ImportModel(&model, path, options, &external);
}

StatusOr<GraphDef> ImportOnnxBytes(const std::string& bytes, const std::string& what,
                                   const OnnxImportOptions& options) {
  const auto limit = static_cast<size_t>(ClampFileLimit(options.max_file_bytes));
  if (bytes.size() > limit) {
    return ResourceExhaustedError(what + ": model has " + std::to_string(bytes.size()) +
                                  " bytes, more than the limit of " + std::to_string(limit) + " bytes");
  }
  onnx::ModelProto model;
  CNN_RETURN_IF_ERROR(ParseModel(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), what, &model));
  return ImportModel(&model, what, options);
}

StatusOr<std::shared_ptr<const Graph>> LoadOnnxGraph(const std::string& path, const OnnxImportOptions& options) {
  CNN_ASSIGN_OR_RETURN(GraphDef def, ImportOnnxFile(path, options));
  StatusOr<std::shared_ptr<const Graph>> graph = Graph::Create(std::move(def));
  if (!graph.ok()) return graph.status().WithContext(path);
  return graph;
}

StatusOr<Tensor> ParseOnnxTensor(const std::string& bytes, const std::string& what) {
  CNN_ASSIGN_OR_RETURN(onnx::TensorProto proto,
                       ParseTensorBytes(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), what));
  return FloatTensorFromProto(&proto, TensorLabel(what, proto), /*release=*/true);
}

StatusOr<Tensor> ReadOnnxTensorFile(const std::string& path) {
  FileBytes file;
  CNN_RETURN_IF_ERROR(file.Open(path, kMaxOnnxProtoBytes));
  CNN_ASSIGN_OR_RETURN(onnx::TensorProto proto, ParseTensorBytes(file.data(), file.size(), path));
  return FloatTensorFromProto(&proto, TensorLabel(path, proto), /*release=*/true);
}

StatusOr<std::vector<int64_t>> ReadOnnxInt64TensorFile(const std::string& path) {
  FileBytes file;
  CNN_RETURN_IF_ERROR(file.Open(path, kMaxOnnxProtoBytes));
  CNN_ASSIGN_OR_RETURN(onnx::TensorProto proto, ParseTensorBytes(file.data(), file.size(), path));
  return onnx_import::Int64VectorFromProto(proto, TensorLabel(path, proto));
}

}  // namespace cnnserve
