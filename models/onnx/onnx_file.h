// Internal to the ONNX importer (not part of its API): getting a model's bytes into a parsed proto without
// holding the weights twice.
//  - FileBytes maps a whole file read-only (or reads it when it cannot be mapped).
//  - StripInitializerData walks the protobuf wire format of a ModelProto and re-encodes it without the raw_data
//    of its large FLOAT initializers, whose places in the file it reports, so that each can be copied from the
//    mapped file straight into its tensor, or viewed where it lies (FloatConstantFromProto in onnx_tensor.h;
//    the views share ownership of the FileBytes).
//  - ParseProto parses a message from a byte range with the 2 GiB protobuf limit.
//
// Thread-safety: the functions are reentrant; a FileBytes is read-only once opened (views read it from any
// thread).
#ifndef CNNSERVE_MODELS_ONNX_ONNX_FILE_H_
#define CNNSERVE_MODELS_ONNX_ONNX_FILE_H_

#include <google/protobuf/message_lite.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/common/status.h"

namespace cnnserve::onnx_import {

// A read-only view of a whole file: memory-mapped when possible, read into memory otherwise.
class FileBytes {
 public:
  FileBytes() = default;
  FileBytes(const FileBytes&) = delete;
  FileBytes& operator=(const FileBytes&) = delete;
  ~FileBytes();

  // NOT_FOUND if the file cannot be opened, INVALID_ARGUMENT if it is not a regular file,
  // RESOURCE_EXHAUSTED if it is larger than `max_bytes`.
  Status Open(const std::string& path, int64_t max_bytes);

  const uint8_t* data() const {
    return mapped_ != nullptr ? static_cast<const uint8_t*>(mapped_)
                              : reinterpret_cast<const uint8_t*>(buffer_.data());
  }
  size_t size() const { return size_; }
  // True when data() is a read-only mapping of the file (not a copy read into memory).
  bool mapped() const { return mapped_ != nullptr; }

 private:
  Status ReadFd(int fd, const std::string& path, int64_t max_bytes);

  void* mapped_ = nullptr;
  size_t size_ = 0;
  std::string buffer_;
};

// Where the raw_data of initializer number `initializer` lies in the file.
struct RawSlice {
  int initializer = 0;
  size_t offset = 0;
  size_t size = 0;
};

// The ModelProto in [data, data + size) re-encoded without the raw_data of its large FLOAT initializers, whose
// places in the file go to `slices`. nullopt when the bytes do not walk as protobuf (the caller then parses them
// whole, so that protobuf reports the problem).
std::optional<std::string> StripInitializerData(const uint8_t* data, size_t size, std::vector<RawSlice>* slices);

// Parses a protobuf message from `size` bytes at `data`; false when they are not one whole message or exceed
// kMaxOnnxProtoBytes.
bool ParseProto(const uint8_t* data, size_t size, google::protobuf::MessageLite* message);

}  // namespace cnnserve::onnx_import

#endif  // CNNSERVE_MODELS_ONNX_ONNX_FILE_H_
