#include "models/onnx/onnx_tensor.h"

#include <google/protobuf/repeated_field.h>

#include <algorithm>
#include <bit>
#include <cstring>

#include "models/onnx/onnx_importer.h"
#include "models/onnx/onnx_messages.h"

namespace cnnserve::onnx_import {
namespace {

// Dims of `proto` after checking every extent is positive and the element count is small enough to be real
// (the data has to be in the file, so at most kMaxOnnxProtoBytes elements).
StatusOr<Dims> TensorDims(const onnx::TensorProto& proto, const std::string& label) {
  Dims dims(proto.dims().begin(), proto.dims().end());
  int64_t count = 1;
  for (int64_t d : dims) {
    if (d == 0) {
      return UnimplementedError(label + " has dims " + DimsToString(dims) + ": empty tensors are not supported");
    }
    if (d < 0) return InvalidArgumentError(label + " has a negative dimension " + std::to_string(d));
    if (count > kMaxOnnxProtoBytes / d) {
      return InvalidArgumentError(label + " has dims " + DimsToString(dims) + ", too many elements");
    }
    count *= d;
  }
  return dims;
}

Status CheckStoredInFile(const onnx::TensorProto& proto, const std::string& label) {
  if (proto.data_location() == onnx::TensorProto::EXTERNAL || proto.external_data_size() > 0) {
    return UnimplementedError(label +
                              " uses external data, which is not supported: save the model with all tensors "
                              "inside the .onnx file");
  }
  if (proto.has_segment()) return UnimplementedError(label + " is a segment of a larger tensor (not supported)");
  return OkStatus();
}

// Copies `count` little-endian elements of type T from `raw` into `dst`.
template <typename T>
void CopyLittleEndian(const std::string& raw, int64_t count, T* dst) {
  std::memcpy(dst, raw.data(), static_cast<size_t>(count) * sizeof(T));
  if constexpr (std::endian::native == std::endian::big) {
    for (int64_t i = 0; i < count; ++i) {
      auto* bytes = reinterpret_cast<unsigned char*>(dst + i);
      std::reverse(bytes, bytes + sizeof(T));
    }
  }
}

Status CheckRawSize(const onnx::TensorProto& proto, int64_t count, size_t element_bytes, const Dims& dims,
                    const std::string& label) {
  const size_t want = static_cast<size_t>(count) * element_bytes;
  if (proto.raw_data().size() != want) {
    return DataLossError(label + ": raw_data holds " + std::to_string(proto.raw_data().size()) + " bytes, dims " +
                         DimsToString(dims) + " of " + DataTypeName(proto.data_type()) + " need " +
                         std::to_string(want));
  }
  return OkStatus();
}

Status CheckFieldSize(int64_t have, int64_t count, const char* field, const Dims& dims, const std::string& label) {
  if (have != count) {
    return DataLossError(label + ": " + field + " holds " + std::to_string(have) + " values, dims " +
                         DimsToString(dims) + " need " + std::to_string(count));
  }
  return OkStatus();
}

// Copies `count` little-endian floats from a mapped file region, dropping the region's pages as it goes so that
// the file and the weights are never resident together.
void CopyMappedFloats(std::string_view raw, int64_t count, float* dst) {
  constexpr size_t kChunkBytes = 16 << 20;
  const size_t total = static_cast<size_t>(count) * sizeof(float);
  for (size_t done = 0; done < total; done += kChunkBytes) {
    const size_t n = std::min(kChunkBytes, total - done);
    std::memcpy(reinterpret_cast<char*>(dst) + done, raw.data() + done, n);
    DropMappedPages(raw.data() + done, n);
  }
  if constexpr (std::endian::native == std::endian::big) {
    for (int64_t i = 0; i < count; ++i) {
      auto* bytes = reinterpret_cast<unsigned char*>(dst + i);
      std::reverse(bytes, bytes + sizeof(float));
    }
  }
}

}  // namespace

StatusOr<Tensor> FloatTensorFromProto(onnx::TensorProto* proto, const std::string& label, bool release,
                                      const ExternalRawData* external) {
  if (external != nullptr) {
    auto it = external->slices.find(proto);
    if (it != external->slices.end()) {
      // StripInitializerData only cuts the raw_data of FLOAT tensors stored in the file.
      CNN_ASSIGN_OR_RETURN(Dims dims, TensorDims(*proto, label));
      const int64_t count = NumElements(dims);
      const size_t want = static_cast<size_t>(count) * sizeof(float);
      if (it->second.size() != want) {
        return DataLossError(label + ": raw_data holds " + std::to_string(it->second.size()) + " bytes, dims " +
                             DimsToString(dims) + " of FLOAT need " + std::to_string(want));
      }
      Tensor tensor(dims);
      CopyMappedFloats(it->second, count, tensor.data());
      return tensor;
    }
  }
  CNN_RETURN_IF_ERROR(CheckStoredInFile(*proto, label));
  if (proto->data_type() != onnx::TensorProto::FLOAT) {
    return UnimplementedError(label + " has element type " + DataTypeName(proto->data_type()) +
                              "; only FLOAT tensors are supported here");
  }
  CNN_ASSIGN_OR_RETURN(Dims dims, TensorDims(*proto, label));
  const int64_t count = NumElements(dims);
  if (proto->has_raw_data()) {
    CNN_RETURN_IF_ERROR(CheckRawSize(*proto, count, sizeof(float), dims, label));
  } else {
    CNN_RETURN_IF_ERROR(CheckFieldSize(proto->float_data_size(), count, "float_data", dims, label));
  }
  Tensor tensor(dims);
  if (proto->has_raw_data()) {
    CopyLittleEndian(proto->raw_data(), count, tensor.data());
    if (release) delete proto->release_raw_data();
  } else {
    std::copy(proto->float_data().begin(), proto->float_data().end(), tensor.data());
    if (release) google::protobuf::RepeatedField<float>().Swap(proto->mutable_float_data());
  }
  return tensor;
}

StatusOr<std::shared_ptr<const Tensor>> FloatConstantFromProto(onnx::TensorProto* proto, const std::string& label,
                                                               const ExternalRawData* external) {
  if (external != nullptr && external->mapping != nullptr && std::endian::native == std::endian::little) {
    auto it = external->slices.find(proto);
    if (it != external->slices.end() && reinterpret_cast<uintptr_t>(it->second.data()) % alignof(float) == 0) {
      CNN_ASSIGN_OR_RETURN(Dims dims, TensorDims(*proto, label));
      const size_t want = static_cast<size_t>(NumElements(dims)) * sizeof(float);
      if (it->second.size() == want) {
        return Tensor::View(std::move(dims), reinterpret_cast<const float*>(it->second.data()), external->mapping);
      }  // else the copy below reports the size mismatch
    }
  }
  CNN_ASSIGN_OR_RETURN(Tensor tensor, FloatTensorFromProto(proto, label, /*release=*/true, external));
  return std::make_shared<const Tensor>(std::move(tensor));
}

StatusOr<std::vector<int64_t>> Int64VectorFromProto(const onnx::TensorProto& proto, const std::string& label) {
  CNN_RETURN_IF_ERROR(CheckStoredInFile(proto, label));
  if (proto.data_type() != onnx::TensorProto::INT64) {
    return InvalidArgumentError(label + " has element type " + DataTypeName(proto.data_type()) +
                                ", expected INT64");
  }
  if (proto.dims_size() > 1) {
    return InvalidArgumentError(label + " has rank " + std::to_string(proto.dims_size()) + ", expected 1");
  }
  if (proto.dims_size() == 1 && proto.dims(0) == 0) return std::vector<int64_t>();
  CNN_ASSIGN_OR_RETURN(Dims dims, TensorDims(proto, label));
  const int64_t count = NumElements(dims);
  std::vector<int64_t> values(static_cast<size_t>(count));
  if (proto.has_raw_data()) {
    CNN_RETURN_IF_ERROR(CheckRawSize(proto, count, sizeof(int64_t), dims, label));
    CopyLittleEndian(proto.raw_data(), count, values.data());
  } else {
    CNN_RETURN_IF_ERROR(CheckFieldSize(proto.int64_data_size(), count, "int64_data", dims, label));
    std::copy(proto.int64_data().begin(), proto.int64_data().end(), values.begin());
  }
  return values;
}

StatusOr<bool> BoolScalarFromProto(const onnx::TensorProto& proto, const std::string& label) {
  CNN_RETURN_IF_ERROR(CheckStoredInFile(proto, label));
  if (proto.data_type() != onnx::TensorProto::BOOL) {
    return InvalidArgumentError(label + " has element type " + DataTypeName(proto.data_type()) +
                                ", expected BOOL");
  }
  CNN_ASSIGN_OR_RETURN(Dims dims, TensorDims(proto, label));
  if (NumElements(dims) != 1)
    return InvalidArgumentError(label + " must hold one value, has dims " + DimsToString(dims));
  if (proto.has_raw_data()) {
    CNN_RETURN_IF_ERROR(CheckRawSize(proto, 1, 1, dims, label));
    return proto.raw_data()[0] != 0;
  }
  CNN_RETURN_IF_ERROR(CheckFieldSize(proto.int32_data_size(), 1, "int32_data", dims, label));
  return proto.int32_data(0) != 0;
}

}  // namespace cnnserve::onnx_import
