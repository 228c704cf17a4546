// ONNX import: reads an ONNX model (protobuf ModelProto, parsed with Debian's libonnx_proto) into a GraphDef of
// the engine's op set, and reads serialized ONNX TensorProto files (.pb, the inputs and outputs of ONNX's
// backend test data).
//
// What is accepted (anything else is an error that names the node, its op and the attribute or value):
//  - opsets 7 to 17 of the default ONNX domain ("" or "ai.onnx"); a node of any other domain is rejected, an
//    unused import of another domain is ignored;
//  - the ops Conv, Relu, MaxPool, AveragePool, GlobalAveragePool, LRN, Gemm, MatMul, Add, Flatten, Reshape,
//    Dropout (inference: ratio/training_mode absent or constant, training off, mask output unused),
//    Softmax (opset < 13: the 2-D coercion with default axis 1; >= 13: one axis, default -1),
//    BatchNormalization (inference only), Identity, and Constant (which becomes a constant value);
//  - weights as FLOAT initializers (raw_data, little-endian, or float_data) stored inside the file; INT64 only
//    for Reshape's shape; external data and sparse initializers are not supported;
//  - exactly one runtime graph input (a float tensor with known dims; dimension 0 may be symbolic or 0, which
//    means a dynamic batch) and exactly one float graph output.
// Every attribute of a node is either mapped onto the engine's OpAttrs or rejected: none is silently ignored.
// The only exceptions are attributes that cannot change the inference result (BatchNormalization "momentum",
// Dropout "seed" and "ratio", MaxPool "storage_order" which only orders the unread Indices output); those are
// still type-checked. An attribute that does not exist in the op's version at the model's opset is rejected.
//
// Error codes: NOT_FOUND (file cannot be opened), RESOURCE_EXHAUSTED (file over the size limit),
// INVALID_ARGUMENT ("... is not a valid ONNX model", malformed graphs, bad attribute types or values),
// DATA_LOSS (tensor data whose size does not match its dims), UNIMPLEMENTED (valid ONNX outside what the engine
// supports). Messages start with `what` (the file path for files).
//
// Thread-safety: all functions are reentrant; they share no state.
#ifndef CNNSERVE_MODELS_ONNX_ONNX_IMPORTER_H_
#define CNNSERVE_MODELS_ONNX_ONNX_IMPORTER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/common/status.h"
#include "engine/graph/graph.h"
#include "engine/tensor/tensor.h"

namespace cnnserve {

// The default-domain opsets the importer understands.
inline constexpr int64_t kMinOnnxOpset = 7;
inline constexpr int64_t kMaxOnnxOpset = 17;
// Protobuf cannot parse a message of 2 GiB or more; such models need external data, which is not supported.
inline constexpr int64_t kMaxOnnxProtoBytes = (int64_t{1} << 31) - 1;

struct OnnxImportOptions {
  // Graph inputs to treat as constants, by ONNX value name. ONNX's node tests pass weights as graph inputs;
  // binding them leaves one runtime input. A bound name must be a graph input; the tensor's dims must match the
  // input's declared dims. The graph shares the tensors (no copy).
  std::map<std::string, std::shared_ptr<const Tensor>> bind_inputs;
  // The same for INT64 graph inputs, e.g. the shape input of a Reshape. Values are in row-major order; only
  // rank-0/1 inputs can be bound this way.
  std::map<std::string, std::vector<int64_t>> bind_int64_inputs;
  // Files larger than this are rejected with RESOURCE_EXHAUSTED before being read. Values above
  // kMaxOnnxProtoBytes are clamped to it.
  int64_t max_file_bytes = kMaxOnnxProtoBytes;
  // ImportOnnxFile only: large FLOAT initializers (64 KiB and more) whose bytes lie 4-byte aligned in the file
  // become read-only views of the memory-mapped file (Tensor::View) instead of copies. Backends that convert
  // the weights (int8, bf16) then drop the file's pages once converted, so the fp32 weights never need to be
  // resident all at once. The file stays mapped while any view lives: it must be replaced by a rename (a new
  // file), never rewritten in place. models/zoo/align_onnx.py aligns every initializer of a file.
  bool map_weights = false;
};

// Reads and converts the ONNX model at `path`. The file is memory-mapped, not copied; peak memory is about the
// parsed model plus its largest tensor. The returned GraphDef still has to pass Graph::Create (LoadOnnxGraph
// does both).
StatusOr<GraphDef> ImportOnnxFile(const std::string& path, const OnnxImportOptions& options = {});

// As ImportOnnxFile for a serialized ModelProto held in memory; `what` names it in error messages.
StatusOr<GraphDef> ImportOnnxBytes(const std::string& bytes, const std::string& what,
                                   const OnnxImportOptions& options = {});

// ImportOnnxFile followed by Graph::Create; errors from Graph::Create are prefixed with `path`.
StatusOr<std::shared_ptr<const Graph>> LoadOnnxGraph(const std::string& path,
                                                     const OnnxImportOptions& options = {});

// Reads a serialized ONNX TensorProto (a .pb file of ONNX's test data). Only FLOAT tensors (UNIMPLEMENTED
// naming the element type otherwise); a rank-0 tensor gets empty dims. DATA_LOSS when the data does not
// match the dims.
StatusOr<Tensor> ReadOnnxTensorFile(const std::string& path);
StatusOr<Tensor> ParseOnnxTensor(const std::string& bytes, const std::string& what);

// The same for INT64 tensors of rank 0 or 1 (e.g. a Reshape's shape): the values in order.
StatusOr<std::vector<int64_t>> ReadOnnxInt64TensorFile(const std::string& path);

}  // namespace cnnserve

#endif  // CNNSERVE_MODELS_ONNX_ONNX_IMPORTER_H_
