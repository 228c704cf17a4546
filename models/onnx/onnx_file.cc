#include "models/onnx/onnx_file.h"

#include <fcntl.h>
#include <google/protobuf/io/coded_stream.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "models/onnx/onnx_importer.h"

namespace cnnserve::onnx_import {
namespace {

// A minimal protobuf wire-format reader over [pos, end).
class WireReader {
 public:
  WireReader(const uint8_t* data, size_t begin, size_t end) : data_(data), pos_(begin), end_(end) {}
  bool done() const { return pos_ >= end_; }
  size_t pos() const { return pos_; }

  bool Varint(uint64_t* value) {
    *value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= end_) return false;
      const uint8_t byte = data_[pos_++];
      *value |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) return true;
    }
    return false;
  }

  // Reads one field: its number, wire type and the extent of its payload ([payload_begin, pos())).
  bool Field(uint32_t* number, int* wire_type, size_t* field_begin, size_t* payload_begin) {
    *field_begin = pos_;
    uint64_t key = 0;
    if (!Varint(&key) || (key >> 3) == 0 || (key >> 3) > 0x1fffffff) return false;
    *number = static_cast<uint32_t>(key >> 3);
    *wire_type = static_cast<int>(key & 7);
    uint64_t v = 0;
    switch (*wire_type) {
      case 0:
        *payload_begin = pos_;
        return Varint(&v);
      case 1:
        *payload_begin = pos_;
        return Skip(8);
      case 5:
        *payload_begin = pos_;
        return Skip(4);
      case 2:
        if (!Varint(&v)) return false;
        *payload_begin = pos_;
        return v <= end_ - pos_ && Skip(static_cast<size_t>(v));
      default:
        return false;  // groups (3, 4) and invalid types: let protobuf report it
    }
  }

 private:
  bool Skip(size_t n) {
    if (n > end_ - pos_) return false;
    pos_ += n;
    return true;
  }
  const uint8_t* data_;
  size_t pos_;
  size_t end_;
};

void AppendVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

void AppendLengthDelimited(uint32_t number, const std::string& payload, std::string* out) {
  AppendVarint((static_cast<uint64_t>(number) << 3) | 2, out);
  AppendVarint(payload.size(), out);
  out->append(payload);
}

// Field numbers of onnx.proto (ModelProto.graph, GraphProto.initializer, TensorProto.data_type/raw_data).
constexpr uint32_t kModelGraphField = 7;
constexpr uint32_t kGraphInitializerField = 5;
constexpr uint32_t kTensorDataTypeField = 2;
constexpr uint32_t kTensorRawDataField = 9;
constexpr size_t kStripMinBytes = 64 << 10;  // small tensors are not worth the bookkeeping

// Re-encodes one TensorProto without its raw_data when it is a FLOAT tensor with at least kStripMinBytes of it.
bool StripTensor(const uint8_t* data, size_t begin, size_t end, int index, std::string* out,
                 std::vector<RawSlice>* slices) {
  uint64_t data_type = 0;
  size_t raw_begin = 0, raw_size = 0;
  int raw_count = 0;
  WireReader scan(data, begin, end);
  while (!scan.done()) {
    uint32_t number = 0;
    int type = 0;
    size_t field_begin = 0, payload = 0;
    if (!scan.Field(&number, &type, &field_begin, &payload)) return false;
    if (number == kTensorDataTypeField && type == 0) WireReader(data, payload, scan.pos()).Varint(&data_type);
    if (number == kTensorRawDataField && type == 2) {
      raw_begin = payload;
      raw_size = scan.pos() - payload;
      ++raw_count;
    }
  }
  const bool strip = data_type == 1 /* FLOAT */ && raw_count == 1 && raw_size >= kStripMinBytes;
  WireReader copy(data, begin, end);
  while (!copy.done()) {
    uint32_t number = 0;
    int type = 0;
    size_t field_begin = 0, payload = 0;
    if (!copy.Field(&number, &type, &field_begin, &payload)) return false;
    if (strip && number == kTensorRawDataField && type == 2) continue;
    out->append(reinterpret_cast<const char*>(data) + field_begin, copy.pos() - field_begin);
  }
  if (strip) slices->push_back(RawSlice{index, raw_begin, raw_size});
  return true;
}

}  // namespace

FileBytes::~FileBytes() {
  if (mapped_ != nullptr) munmap(mapped_, size_);
}

Status FileBytes::Open(const std::string& path, int64_t max_bytes) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    const std::string message = path + ": cannot open: " + std::strerror(err);
    return err == ENOENT || err == ENOTDIR ? NotFoundError(message) : InvalidArgumentError(message);
  }
  Status status = ReadFd(fd, path, max_bytes);
  close(fd);
  return status;
}

Status FileBytes::ReadFd(int fd, const std::string& path, int64_t max_bytes) {
  struct stat st;
  if (fstat(fd, &st) != 0) return InvalidArgumentError(path + ": cannot stat: " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return InvalidArgumentError(path + ": not a regular file");
  if (st.st_size > max_bytes) {
    return ResourceExhaustedError(path + ": file has " + std::to_string(st.st_size) +
                                  " bytes, more than the limit of " + std::to_string(max_bytes) + " bytes");
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ == 0) return OkStatus();
  void* mapped = mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  if (mapped != MAP_FAILED) {
    mapped_ = mapped;
    madvise(mapped_, size_, MADV_SEQUENTIAL);
    return OkStatus();
  }
  // Some file systems cannot map files: read them instead.
  buffer_.resize(size_);
  size_t done = 0;
  while (done < size_) {
    const ssize_t n = read(fd, buffer_.data() + done, size_ - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return InvalidArgumentError(path + ": read failed: " + std::strerror(errno));
    if (n == 0) return DataLossError(path + ": file shrank while being read");
    done += static_cast<size_t>(n);
  }
  return OkStatus();
}

std::optional<std::string> StripInitializerData(const uint8_t* data, size_t size, std::vector<RawSlice>* slices) {
  std::string model;
  model.reserve(1 << 20);
  WireReader top(data, 0, size);
  while (!top.done()) {
    uint32_t number = 0;
    int type = 0;
    size_t field_begin = 0, payload = 0;
    if (!top.Field(&number, &type, &field_begin, &payload)) return std::nullopt;
    if (number != kModelGraphField || type != 2) {
      model.append(reinterpret_cast<const char*>(data) + field_begin, top.pos() - field_begin);
      continue;
    }
    std::string graph;
    int initializer = 0;
    WireReader g(data, payload, top.pos());
    while (!g.done()) {
      uint32_t gnumber = 0;
      int gtype = 0;
      size_t gbegin = 0, gpayload = 0;
      if (!g.Field(&gnumber, &gtype, &gbegin, &gpayload)) return std::nullopt;
      if (gnumber == kGraphInitializerField && gtype == 2) {
        std::string tensor;
        if (!StripTensor(data, gpayload, g.pos(), initializer++, &tensor, slices)) return std::nullopt;
        AppendLengthDelimited(gnumber, tensor, &graph);
      } else {
        graph.append(reinterpret_cast<const char*>(data) + gbegin, g.pos() - gbegin);
      }
    }
    AppendLengthDelimited(number, graph, &model);
  }
  return model;
}

bool ParseProto(const uint8_t* data, size_t size, google::protobuf::MessageLite* message) {
  if (size > static_cast<size_t>(kMaxOnnxProtoBytes)) return false;
  google::protobuf::io::CodedInputStream input(data, static_cast<int>(size));
  input.SetTotalBytesLimit(static_cast<int>(kMaxOnnxProtoBytes));
  return message->ParseFromCodedStream(&input) && input.ConsumedEntireMessage();
}

}  // namespace cnnserve::onnx_import
