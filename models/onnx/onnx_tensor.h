// Internal to the ONNX importer (not part of its API): TensorProto -> engine values. Initializers, Constant
// values and the .pb files of ONNX's test data become float Tensors; Reshape's shape an INT64 vector; Dropout's
// training_mode a bool.
//
// Every function checks that the data lies in the proto (no external data, no segments), that every dimension is
// positive and that the data holds exactly the dims' element count. Errors are prefixed with `label` (e.g.
// `initializer "w"`): UNIMPLEMENTED for tensors outside what the engine supports (other element types, external
// data, empty tensors), INVALID_ARGUMENT for malformed dims or a wrong element type, DATA_LOSS when the data does
// not match the dims.
//
// Thread-safety: reentrant; each call reads (or, with `release`, empties) only the proto it is given.
#ifndef CNNSERVE_MODELS_ONNX_ONNX_TENSOR_H_
#define CNNSERVE_MODELS_ONNX_ONNX_TENSOR_H_

#include <onnx/onnx_pb.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/common/status.h"
#include "engine/tensor/tensor.h"

namespace cnnserve::onnx_import {

// Raw data of initializers left in the (memory-mapped) file instead of copied into the parsed proto: see
// StripInitializerData. Keyed by the TensorProto whose raw_data field was cut out.
struct ExternalRawData {
  std::unordered_map<const onnx::TensorProto*, std::string_view> slices;
  // The mapped file the slices lie in when constants may be views of it (OnnxImportOptions::map_weights);
  // null: every tensor is copied out of it.
  std::shared_ptr<const void> mapping;
};

// Converts a FLOAT TensorProto. When `release` is set, the proto's data is freed as soon as it is copied so that
// a large model is never held twice in memory. `external` (may be null) holds raw data kept outside the proto.
StatusOr<Tensor> FloatTensorFromProto(onnx::TensorProto* proto, const std::string& label, bool release,
                                      const ExternalRawData* external = nullptr);

// As FloatTensorFromProto, shared: a read-only view of the mapped file (Tensor::View, no copy) when the raw data
// lies in `external`'s mapping at a 4-byte aligned address on a little-endian machine, a copy otherwise.
StatusOr<std::shared_ptr<const Tensor>> FloatConstantFromProto(onnx::TensorProto* proto, const std::string& label,
                                                               const ExternalRawData* external);

// The values of an INT64 tensor of rank 0 or 1.
StatusOr<std::vector<int64_t>> Int64VectorFromProto(const onnx::TensorProto& proto, const std::string& label);

// The value of a BOOL scalar (or one-element) tensor.
StatusOr<bool> BoolScalarFromProto(const onnx::TensorProto& proto, const std::string& label);

}  // namespace cnnserve::onnx_import

#endif  // CNNSERVE_MODELS_ONNX_ONNX_TENSOR_H_
