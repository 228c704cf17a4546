// Fuzz target: bytes as a model.onnx file through what loading a model version runs before any engine work: the
// importer (wire walk, protobuf parse, tensor and attribute conversion, op converters), Graph::Create (validation,
// shape inference, passes) and the layer table that DescribeModel shows.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "engine/graph/graph.h"
#include "engine/graph/inspect.h"
#include "models/onnx/onnx_importer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  cnnserve::StatusOr<cnnserve::GraphDef> def = cnnserve::ImportOnnxBytes(bytes, "fuzz.onnx");
  if (!def.ok()) return 0;
  cnnserve::StatusOr<std::shared_ptr<const cnnserve::Graph>> graph = cnnserve::Graph::Create(std::move(*def));
  if (!graph.ok()) return 0;
  const cnnserve::GraphStats stats = cnnserve::ComputeGraphStats(**graph);
  (void)cnnserve::FormatStatsTable(stats);
  return 0;
}
