#include "models/onnx/onnx_importer.h"

#include <fcntl.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/repeated_field.h>
#include <onnx/onnx_pb.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <set>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace cnnserve {
namespace {

using AttrType = onnx::AttributeProto::AttributeType;

// Longest name quoted verbatim in an error message; longer (e.g. fuzzed) names are cut.
constexpr size_t kMaxQuotedChars = 120;
// Attributes that exist in every supported opset.
constexpr int64_t kAnyOpset = 0;
constexpr int64_t kNoLimitOpset = 1 << 20;

// `text` with non-printable bytes escaped, so that corrupt files give readable messages.
std::string Escape(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size() && i < kMaxQuotedChars; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    }
  }
  if (text.size() > kMaxQuotedChars) out += "...";
  return out;
}

// `"text"`, escaped.
std::string Quote(std::string_view text) { return "\"" + Escape(text) + "\""; }

std::string DataTypeName(int32_t data_type) {
  if (onnx::TensorProto_DataType_IsValid(data_type)) {
    return onnx::TensorProto_DataType_Name(static_cast<onnx::TensorProto_DataType>(data_type));
  }
  return "data type " + std::to_string(data_type);
}

std::string AttrTypeName(AttrType type) {
  if (onnx::AttributeProto_AttributeType_IsValid(type)) return onnx::AttributeProto_AttributeType_Name(type);
  return "type " + std::to_string(static_cast<int>(type));
}

std::string JoinQuoted(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& name : names) {
    if (!out.empty()) out += ", ";
    out += Quote(name);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Reading files.

// A read-only view of a whole file: memory-mapped when possible, read into memory otherwise.
class FileBytes {
 public:
  FileBytes() = default;
  FileBytes(const FileBytes&) = delete;
  FileBytes& operator=(const FileBytes&) = delete;
  ~FileBytes() {
    if (mapped_ != nullptr) munmap(mapped_, size_);
  }

  // NOT_FOUND if the file cannot be opened, INVALID_ARGUMENT if it is not a regular file,
  // RESOURCE_EXHAUSTED if it is larger than `max_bytes`.
  Status Open(const std::string& path, int64_t max_bytes) {
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

  const uint8_t* data() const {
    return mapped_ != nullptr ? static_cast<const uint8_t*>(mapped_)
                              : reinterpret_cast<const uint8_t*>(buffer_.data());
  }
  size_t size() const { return size_; }

 private:
  Status ReadFd(int fd, const std::string& path, int64_t max_bytes) {
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

  void* mapped_ = nullptr;
  size_t size_ = 0;
  std::string buffer_;
};

// ---------------------------------------------------------------------------------------------------------
// Loading large files without holding the weights twice.

// Where the raw_data of initializer number `initializer` lies in the file.
struct RawSlice {
  int initializer = 0;
  size_t offset = 0;
  size_t size = 0;
};

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

// The ModelProto in [data, data + size) re-encoded without the raw_data of its large FLOAT initializers, whose
// places in the file go to `slices`. nullopt when the bytes do not walk as protobuf (the caller then parses them
// whole, so that protobuf reports the problem).
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

// Parses a protobuf message from `size` bytes at `data`.
bool ParseProto(const uint8_t* data, size_t size, google::protobuf::MessageLite* message) {
  if (size > static_cast<size_t>(kMaxOnnxProtoBytes)) return false;
  google::protobuf::io::CodedInputStream input(data, static_cast<int>(size));
  input.SetTotalBytesLimit(static_cast<int>(kMaxOnnxProtoBytes));
  return message->ParseFromCodedStream(&input) && input.ConsumedEntireMessage();
}

// ---------------------------------------------------------------------------------------------------------
// Tensor data.

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

// Raw data of initializers left in the (memory-mapped) file instead of copied into the parsed proto: see
// StripInitializerData. Keyed by the TensorProto whose raw_data field was cut out.
using ExternalRawData = std::unordered_map<const onnx::TensorProto*, std::string_view>;

// Copies `count` little-endian floats from a mapped file region, dropping the region's pages as it goes so that
// the file and the weights are never resident together.
void CopyMappedFloats(std::string_view raw, int64_t count, float* dst) {
  constexpr size_t kChunkBytes = 16 << 20;
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t total = static_cast<size_t>(count) * sizeof(float);
  for (size_t done = 0; done < total; done += kChunkBytes) {
    const size_t n = std::min(kChunkBytes, total - done);
    std::memcpy(reinterpret_cast<char*>(dst) + done, raw.data() + done, n);
    // Whole pages inside this chunk only: the neighbouring tensors may share the boundary pages.
    const auto begin = reinterpret_cast<uintptr_t>(raw.data() + done);
    const uintptr_t first = (begin + page - 1) / page * page;
    const uintptr_t last = (begin + n) / page * page;
    if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
  }
  if constexpr (std::endian::native == std::endian::big) {
    for (int64_t i = 0; i < count; ++i) {
      auto* bytes = reinterpret_cast<unsigned char*>(dst + i);
      std::reverse(bytes, bytes + sizeof(float));
    }
  }
}

// Converts a FLOAT TensorProto. When `release` is set, the proto's data is freed as soon as it is copied so that
// a large model is never held twice in memory. `external` (may be null) holds raw data kept outside the proto.
StatusOr<Tensor> FloatTensorFromProto(onnx::TensorProto* proto, const std::string& label, bool release,
                                      const ExternalRawData* external = nullptr) {
  if (external != nullptr) {
    auto it = external->find(proto);
    if (it != external->end()) {
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

// The values of an INT64 tensor of rank 0 or 1.
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

// The value of a BOOL scalar (or one-element) tensor.
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

// ---------------------------------------------------------------------------------------------------------
// Node attributes.

// Reads the attributes of one node, remembering which ones were handled so that none is silently ignored.
// Every getter leaves `*value` unchanged when the attribute is absent (callers preset the ONNX default).
class NodeContext {
 public:
  NodeContext(std::string name, const onnx::NodeProto& proto, int64_t opset)
      : name_(std::move(name)), proto_(proto), opset_(opset) {}

  const std::string& name() const { return name_; }
  const std::string& op() const { return proto_.op_type(); }
  int64_t opset() const { return opset_; }
  const onnx::NodeProto& proto() const { return proto_; }

  // "node "conv1" (Conv): `message`" with `code`.
  Status Error(StatusCode code, const std::string& message) const {
    return Status(code, "node " + Quote(name_) + " (" + Escape(op()) + "): " + message);
  }

  // Indexes the attributes; rejects duplicates and references to function attributes.
  Status Init() {
    for (const onnx::AttributeProto& attr : proto_.attribute()) {
      if (!attrs_.emplace(attr.name(), &attr).second) {
        return Error(StatusCode::kInvalidArgument, "attribute " + Quote(attr.name()) + " is given twice");
      }
      if (!attr.ref_attr_name().empty()) {
        return Error(StatusCode::kUnimplemented,
                     "attribute " + Quote(attr.name()) + " refers to a function attribute (not supported)");
      }
    }
    return OkStatus();
  }

  bool Has(const std::string& name) const { return attrs_.count(name) != 0; }

  Status GetInt(const std::string& name, int64_t* value, int64_t since = kAnyOpset,
                int64_t until = kNoLimitOpset) {
    CNN_ASSIGN_OR_RETURN(const onnx::AttributeProto* attr, Find(name, onnx::AttributeProto::INT, since, until));
    if (attr != nullptr) *value = attr->i();
    return OkStatus();
  }

  // An INT attribute that must be 0 or 1.
  Status GetBool(const std::string& name, bool* value, int64_t since = kAnyOpset, int64_t until = kNoLimitOpset) {
    int64_t v = *value ? 1 : 0;
    CNN_RETURN_IF_ERROR(GetInt(name, &v, since, until));
    if (v != 0 && v != 1) {
      return Error(StatusCode::kInvalidArgument,
                   "attribute " + Quote(name) + " must be 0 or 1, got " + std::to_string(v));
    }
    *value = v == 1;
    return OkStatus();
  }

  Status GetFloat(const std::string& name, float* value, int64_t since = kAnyOpset,
                  int64_t until = kNoLimitOpset) {
    CNN_ASSIGN_OR_RETURN(const onnx::AttributeProto* attr, Find(name, onnx::AttributeProto::FLOAT, since, until));
    if (attr != nullptr) *value = attr->f();
    return OkStatus();
  }

  Status GetInts(const std::string& name, std::vector<int64_t>* value, int64_t since = kAnyOpset,
                 int64_t until = kNoLimitOpset) {
    CNN_ASSIGN_OR_RETURN(const onnx::AttributeProto* attr, Find(name, onnx::AttributeProto::INTS, since, until));
    if (attr != nullptr) value->assign(attr->ints().begin(), attr->ints().end());
    return OkStatus();
  }

  Status GetFloats(const std::string& name, std::vector<float>* value, int64_t since = kAnyOpset,
                   int64_t until = kNoLimitOpset) {
    CNN_ASSIGN_OR_RETURN(const onnx::AttributeProto* attr, Find(name, onnx::AttributeProto::FLOATS, since, until));
    if (attr != nullptr) value->assign(attr->floats().begin(), attr->floats().end());
    return OkStatus();
  }

  Status GetString(const std::string& name, std::string* value, int64_t since = kAnyOpset,
                   int64_t until = kNoLimitOpset) {
    CNN_ASSIGN_OR_RETURN(const onnx::AttributeProto* attr, Find(name, onnx::AttributeProto::STRING, since, until));
    if (attr != nullptr) *value = attr->s();
    return OkStatus();
  }

  Status GetAutoPad(AutoPad* value) {
    std::string text = "NOTSET";
    CNN_RETURN_IF_ERROR(GetString("auto_pad", &text));
    if (text == "NOTSET") {
      *value = AutoPad::kNotSet;
    } else if (text == "SAME_UPPER") {
      *value = AutoPad::kSameUpper;
    } else if (text == "SAME_LOWER") {
      *value = AutoPad::kSameLower;
    } else if (text == "VALID") {
      *value = AutoPad::kValid;
    } else {
      return Error(StatusCode::kUnimplemented, "attribute \"auto_pad\" value " + Quote(text) +
                                                   " is not supported (NOTSET, SAME_UPPER, SAME_LOWER, VALID)");
    }
    return OkStatus();
  }

  // Marks an attribute handled whatever its type (for attributes taken apart by the caller, e.g. Constant).
  const onnx::AttributeProto* Take(const std::string& name) {
    auto it = attrs_.find(name);
    if (it == attrs_.end()) return nullptr;
    used_.insert(name);
    return it->second;
  }

  // UNIMPLEMENTED naming the first attribute that no getter asked for.
  Status CheckAllUsed() const {
    for (const onnx::AttributeProto& attr : proto_.attribute()) {
      if (used_.count(attr.name()) == 0) {
        return Error(StatusCode::kUnimplemented, "attribute " + Quote(attr.name()) + " is not supported");
      }
    }
    return OkStatus();
  }

 private:
  // The attribute `name` (nullptr when absent) after checking its type and that it exists at this opset.
  StatusOr<const onnx::AttributeProto*> Find(const std::string& name, AttrType type, int64_t since,
                                             int64_t until) {
    auto it = attrs_.find(name);
    if (it == attrs_.end()) return static_cast<const onnx::AttributeProto*>(nullptr);
    const onnx::AttributeProto* attr = it->second;
    if (opset_ < since || opset_ > until) {
      // Not part of this op's version at the model's opset: not something we know how to interpret.
      return Error(StatusCode::kUnimplemented,
                   "attribute " + Quote(name) + " is not supported at opset " + std::to_string(opset_) +
                       (opset_ < since ? " (it exists from opset " + std::to_string(since) + ")"
                                       : " (it was removed after opset " + std::to_string(until) + ")"));
    }
    if (attr->type() != type && !(attr->type() == onnx::AttributeProto::UNDEFINED && HasField(*attr, type))) {
      return Error(StatusCode::kInvalidArgument, "attribute " + Quote(name) + " has type " +
                                                     AttrTypeName(attr->type()) + ", expected " +
                                                     AttrTypeName(type));
    }
    used_.insert(name);
    return attr;
  }

  // For old files whose attributes carry no type: is the field for `type` set?
  static bool HasField(const onnx::AttributeProto& attr, AttrType type) {
    switch (type) {
      case onnx::AttributeProto::INT:
        return attr.has_i();
      case onnx::AttributeProto::FLOAT:
        return attr.has_f();
      case onnx::AttributeProto::STRING:
        return attr.has_s();
      case onnx::AttributeProto::INTS:
        return attr.ints_size() > 0;
      case onnx::AttributeProto::FLOATS:
        return attr.floats_size() > 0;
      default:
        return false;
    }
  }

  std::string name_;
  const onnx::NodeProto& proto_;
  int64_t opset_;
  std::unordered_map<std::string, const onnx::AttributeProto*> attrs_;
  std::unordered_set<std::string> used_;
};

// ---------------------------------------------------------------------------------------------------------
// The importer.

class Importer {
 public:
  Importer(onnx::ModelProto* model, const OnnxImportOptions& options, const ExternalRawData* external = nullptr)
      : model_(*model), graph_(*model->mutable_graph()), options_(options), external_(external) {}

  StatusOr<GraphDef> Import() {
    CNN_RETURN_IF_ERROR(CheckModel());
    CNN_RETURN_IF_ERROR(IndexValues());
    CNN_RETURN_IF_ERROR(ImportInputAndOutput());
    for (int i = 0; i < graph_.node_size(); ++i) {
      CNN_RETURN_IF_ERROR(ImportNode(i, graph_.mutable_node(i)));
    }
    CNN_RETURN_IF_ERROR(AddConstants());
    return std::move(def_);
  }

 private:
  using Converter = Status (Importer::*)(NodeContext& ctx, Node* node);

  // Where a constant value comes from. Exactly one member is set.
  struct ConstantSource {
    onnx::TensorProto* proto = nullptr;  // an initializer or a Constant node's value
    const std::shared_ptr<const Tensor>* bound = nullptr;
    const std::vector<int64_t>* bound_int64 = nullptr;
  };

  Status CheckModel() {
    if (model_.ir_version() < 3) {
      return UnimplementedError("IR version " + std::to_string(model_.ir_version()) +
                                " is not supported (IR version 3 or later, i.e. ONNX 1.0+, with opset imports)");
    }
    int64_t default_opset = -1;
    for (const onnx::OperatorSetIdProto& opset : model_.opset_import()) {
      if (opset.domain() != "" && opset.domain() != "ai.onnx") continue;  // checked where a node uses it
      if (default_opset >= 0 && default_opset != opset.version()) {
        return InvalidArgumentError("the default ONNX domain is imported twice (opsets " +
                                    std::to_string(default_opset) + " and " + std::to_string(opset.version()) +
                                    ")");
      }
      default_opset = opset.version();
    }
    if (default_opset < 0) return InvalidArgumentError("the model imports no opset of the default ONNX domain");
    if (default_opset < kMinOnnxOpset || default_opset > kMaxOnnxOpset) {
      return UnimplementedError(
          "opset " + std::to_string(default_opset) +
          " of the default ONNX domain is not supported (supported: " + std::to_string(kMinOnnxOpset) + " to " +
          std::to_string(kMaxOnnxOpset) + "); re-export the model with an opset in that range");
    }
    opset_ = default_opset;
    if (graph_.sparse_initializer_size() > 0) {
      return UnimplementedError("sparse initializer " + Quote(graph_.sparse_initializer(0).values().name()) +
                                " is not supported");
    }
    return OkStatus();
  }

  // Indexes initializers and bound inputs and the set of values that some node or the graph output reads.
  Status IndexValues() {
    for (int i = 0; i < graph_.initializer_size(); ++i) {
      onnx::TensorProto* init = graph_.mutable_initializer(i);
      if (init->name().empty()) return InvalidArgumentError("initializer " + std::to_string(i) + " has no name");
      if (!initializers_.emplace(init->name(), init).second) {
        return InvalidArgumentError("initializer " + Quote(init->name()) + " is defined twice");
      }
    }
    std::unordered_map<std::string, const onnx::ValueInfoProto*> inputs;
    for (const onnx::ValueInfoProto& input : graph_.input()) {
      if (!inputs.emplace(input.name(), &input).second) {
        return InvalidArgumentError("graph input " + Quote(input.name()) + " is listed twice");
      }
    }
    for (const auto& [name, tensor] : options_.bind_inputs) {
      if (tensor == nullptr) return InvalidArgumentError("cannot bind " + Quote(name) + ": null tensor");
      CNN_RETURN_IF_ERROR(CheckBinding(inputs, name, tensor->dims(), onnx::TensorProto::FLOAT));
    }
    for (const auto& [name, values] : options_.bind_int64_inputs) {
      if (options_.bind_inputs.count(name) != 0) {
        return InvalidArgumentError("bind_inputs and bind_int64_inputs both bind " + Quote(name));
      }
      CNN_RETURN_IF_ERROR(
          CheckBinding(inputs, name, Dims{static_cast<int64_t>(values.size())}, onnx::TensorProto::INT64));
    }
    for (const onnx::NodeProto& node : graph_.node()) {
      for (const std::string& input : node.input()) read_.insert(input);
    }
    for (const onnx::ValueInfoProto& output : graph_.output()) read_.insert(output.name());
    return OkStatus();
  }

  Status CheckBinding(const std::unordered_map<std::string, const onnx::ValueInfoProto*>& inputs,
                      const std::string& name, const Dims& dims, int32_t data_type) const {
    auto it = inputs.find(name);
    if (it == inputs.end()) {
      std::vector<std::string> names;
      for (const onnx::ValueInfoProto& input : graph_.input()) names.push_back(input.name());
      return InvalidArgumentError("cannot bind " + Quote(name) +
                                  ": not a graph input (inputs: " + JoinQuoted(names) + ")");
    }
    const onnx::TypeProto& type = it->second->type();
    if (!type.has_tensor_type()) return OkStatus();
    const onnx::TypeProto::Tensor& tensor_type = type.tensor_type();
    if (tensor_type.elem_type() != 0 && tensor_type.elem_type() != data_type) {
      return InvalidArgumentError("cannot bind " + Quote(name) + ": the input has element type " +
                                  DataTypeName(tensor_type.elem_type()) + ", the bound tensor " +
                                  DataTypeName(data_type));
    }
    if (!tensor_type.has_shape()) return OkStatus();
    bool static_dims = true;
    Dims declared;
    for (const onnx::TensorShapeProto::Dimension& dim : tensor_type.shape().dim()) {
      static_dims = static_dims && dim.has_dim_value();
      declared.push_back(dim.dim_value());
    }
    // A declared scalar matches a one-element bound vector (bind_int64_inputs cannot express rank 0).
    const bool scalar_match = declared.empty() && NumElements(dims) == 1;
    if (static_dims && declared != dims && !scalar_match) {
      return InvalidArgumentError("cannot bind " + Quote(name) + ": the input has dims " + DimsToString(declared) +
                                  ", the bound tensor " + DimsToString(dims));
    }
    return OkStatus();
  }

  bool IsBound(const std::string& name) const {
    return options_.bind_inputs.count(name) != 0 || options_.bind_int64_inputs.count(name) != 0;
  }

  Status ImportInputAndOutput() {
    def_.name = graph_.name();
    std::vector<const onnx::ValueInfoProto*> runtime;
    for (const onnx::ValueInfoProto& input : graph_.input()) {
      if (initializers_.count(input.name()) == 0 && !IsBound(input.name())) runtime.push_back(&input);
    }
    if (runtime.size() != 1) {
      std::vector<std::string> names;
      for (const onnx::ValueInfoProto* input : runtime) names.push_back(input->name());
      return UnimplementedError(
          "the graph must have exactly one runtime input (not an initializer, not bound), "
          "it has " +
          std::to_string(runtime.size()) + (names.empty() ? "" : ": " + JoinQuoted(names)));
    }
    const onnx::ValueInfoProto& input = *runtime[0];
    const std::string label = "graph input " + Quote(input.name());
    if (input.name().empty()) return InvalidArgumentError("the graph input has no name");
    if (!input.type().has_tensor_type()) {
      return UnimplementedError(label + " is not a tensor (sequence, map and optional types are not supported)");
    }
    const onnx::TypeProto::Tensor& type = input.type().tensor_type();
    if (type.elem_type() != onnx::TensorProto::FLOAT) {
      return UnimplementedError(label + " has element type " + DataTypeName(type.elem_type()) +
                                "; only FLOAT inputs are supported");
    }
    if (!type.has_shape()) return UnimplementedError(label + " has no declared shape");
    if (type.shape().dim_size() == 0) return UnimplementedError(label + " is a scalar; inputs need rank >= 1");
    for (int i = 0; i < type.shape().dim_size(); ++i) {
      const onnx::TensorShapeProto::Dimension& dim = type.shape().dim(i);
      const bool known = dim.has_dim_value() && dim.dim_value() > 0;
      if (i == 0) {
        def_.input_dims.push_back(known ? dim.dim_value() : -1);
        continue;
      }
      if (!known) {
        const std::string what = dim.has_dim_param()   ? "symbolic (" + Quote(dim.dim_param()) + ")"
                                 : dim.has_dim_value() ? std::to_string(dim.dim_value())
                                                       : "unknown";
        return UnimplementedError(label + ": dimension " + std::to_string(i) + " is " + what +
                                  "; only dimension 0 (the batch) may be dynamic");
      }
      def_.input_dims.push_back(dim.dim_value());
    }
    Dims check = def_.input_dims;
    check[0] = 1;
    CNN_RETURN_IF_ERROR(ValidateDims(check).WithContext(label));
    def_.input = input.name();

    if (graph_.output_size() != 1) {
      std::vector<std::string> names;
      for (const onnx::ValueInfoProto& output : graph_.output()) names.push_back(output.name());
      return UnimplementedError("the graph must have exactly one output, it has " +
                                std::to_string(graph_.output_size()) +
                                (names.empty() ? "" : ": " + JoinQuoted(names)));
    }
    const onnx::ValueInfoProto& output = graph_.output(0);
    if (output.name().empty()) return InvalidArgumentError("the graph output has no name");
    if (output.type().has_tensor_type() && output.type().tensor_type().elem_type() != onnx::TensorProto::FLOAT) {
      return UnimplementedError("graph output " + Quote(output.name()) + " has element type " +
                                DataTypeName(output.type().tensor_type().elem_type()) +
                                "; only FLOAT outputs are supported");
    }
    if (output.type().has_sequence_type() || output.type().has_optional_type() || output.type().has_map_type()) {
      return UnimplementedError("graph output " + Quote(output.name()) + " is not a tensor");
    }
    def_.output = output.name();
    defined_.insert(def_.input);
    for (const auto& [name, init] : initializers_) defined_.insert(name);
    for (const auto& [name, tensor] : options_.bind_inputs) defined_.insert(name);
    for (const auto& [name, values] : options_.bind_int64_inputs) defined_.insert(name);
    return OkStatus();
  }

  // A name for the node that is unique in the graph: the ONNX name, or "<op>_<index>" when it has none.
  std::string UniqueNodeName(const onnx::NodeProto& proto, int index) {
    std::string base = proto.name().empty() ? proto.op_type() + "_" + std::to_string(index) : proto.name();
    std::string name = base;
    for (int k = 2; !node_names_.insert(name).second; ++k) name = base + "#" + std::to_string(k);
    return name;
  }

  Status ImportNode(int index, onnx::NodeProto* proto) {
    NodeContext ctx(UniqueNodeName(*proto, index), *proto, opset_);
    if (!proto->domain().empty() && proto->domain() != "ai.onnx") {
      return ctx.Error(StatusCode::kUnimplemented,
                       "domain " + Quote(proto->domain()) + " is not supported (only the default ONNX domain)");
    }
    CNN_RETURN_IF_ERROR(ctx.Init());
    if (proto->output_size() < 1 || proto->output(0).empty()) {
      return ctx.Error(StatusCode::kInvalidArgument, "has no output");
    }
    for (const std::string& output : proto->output()) {
      if (!output.empty() && !defined_.insert(output).second) {
        return ctx.Error(StatusCode::kInvalidArgument, "output " + Quote(output) + " is already defined");
      }
    }
    if (proto->op_type() == "Constant") {
      CNN_RETURN_IF_ERROR(ImportConstantNode(ctx, proto));
      return ctx.CheckAllUsed();
    }
    static const std::unordered_map<std::string_view, std::pair<OpType, Converter>> kConverters = {
        {"Conv", {OpType::kConv, &Importer::ConvertConv}},
        {"Relu", {OpType::kRelu, &Importer::ConvertUnary}},
        {"MaxPool", {OpType::kMaxPool, &Importer::ConvertMaxPool}},
        {"AveragePool", {OpType::kAveragePool, &Importer::ConvertAveragePool}},
        {"GlobalAveragePool", {OpType::kGlobalAveragePool, &Importer::ConvertUnary}},
        {"LRN", {OpType::kLrn, &Importer::ConvertLrn}},
        {"Gemm", {OpType::kGemm, &Importer::ConvertGemm}},
        {"MatMul", {OpType::kMatMul, &Importer::ConvertBinary}},
        {"Add", {OpType::kAdd, &Importer::ConvertBinary}},
        {"Flatten", {OpType::kFlatten, &Importer::ConvertFlatten}},
        {"Reshape", {OpType::kReshape, &Importer::ConvertReshape}},
        {"Dropout", {OpType::kDropout, &Importer::ConvertDropout}},
        {"Softmax", {OpType::kSoftmax, &Importer::ConvertSoftmax}},
        {"BatchNormalization", {OpType::kBatchNormalization, &Importer::ConvertBatchNorm}},
        {"Identity", {OpType::kIdentity, &Importer::ConvertUnary}},
    };
    auto it = kConverters.find(proto->op_type());
    if (it == kConverters.end()) {
      return ctx.Error(
          StatusCode::kUnimplemented,
          "op " + Quote(proto->op_type()) +
              " is not supported (supported: Conv, Relu, MaxPool, AveragePool, GlobalAveragePool, LRN, "
              "Gemm, MatMul, Add, Flatten, Reshape, Dropout, Softmax, BatchNormalization, Identity, "
              "Constant)");
    }
    Node node;
    node.name = ctx.name();
    node.type = it->second.first;
    node.inputs.assign(proto->input().begin(), proto->input().end());
    // Trailing empty names are absent optional inputs: drop them.
    while (!node.inputs.empty() && node.inputs.back().empty()) node.inputs.pop_back();
    node.outputs.push_back(proto->output(0));
    CNN_RETURN_IF_ERROR((this->*(it->second.second))(ctx, &node));
    CNN_RETURN_IF_ERROR(ctx.CheckAllUsed());
    def_.nodes.push_back(std::move(node));
    return OkStatus();
  }

  // --- helpers for converters ---

  static Status CheckInputCount(const NodeContext& ctx, const Node& node, size_t min, size_t max) {
    if (node.inputs.size() < min || node.inputs.size() > max) {
      const std::string want =
          min == max ? std::to_string(min) : std::to_string(min) + " to " + std::to_string(max);
      return ctx.Error(StatusCode::kInvalidArgument,
                       "expects " + want + " inputs, got " + std::to_string(node.inputs.size()));
    }
    for (size_t i = 0; i < min; ++i) {
      if (node.inputs[i].empty()) {
        return ctx.Error(StatusCode::kInvalidArgument, "required input " + std::to_string(i) + " is empty");
      }
    }
    return OkStatus();
  }

  // Outputs from `first` on must be absent; with `allow_unread`, an output that nothing reads is dropped too.
  Status CheckExtraOutputs(const NodeContext& ctx, int first, bool allow_unread) const {
    const onnx::NodeProto& proto = ctx.proto();
    for (int i = first; i < proto.output_size(); ++i) {
      const std::string& output = proto.output(i);
      if (output.empty() || (allow_unread && read_.count(output) == 0)) continue;
      return ctx.Error(StatusCode::kUnimplemented, "output " + std::to_string(i) + " (" + Quote(output) +
                                                       ") is not supported" +
                                                       (allow_unread ? " (only when nothing reads it)" : ""));
    }
    return OkStatus();
  }

  // The constant behind value `name`, or nothing (a runtime value).
  std::optional<ConstantSource> FindConstant(const std::string& name) {
    ConstantSource source;
    if (auto it = options_.bind_inputs.find(name); it != options_.bind_inputs.end()) {
      source.bound = &it->second;
    } else if (auto it2 = options_.bind_int64_inputs.find(name); it2 != options_.bind_int64_inputs.end()) {
      source.bound_int64 = &it2->second;
    } else if (auto it3 = constant_outputs_.find(name); it3 != constant_outputs_.end()) {
      source.proto = &it3->second;
    } else if (auto it4 = initializers_.find(name); it4 != initializers_.end()) {
      source.proto = it4->second;
    } else {
      return std::nullopt;
    }
    return source;
  }

  // The INT64 vector held by constant input `index` of the node.
  StatusOr<std::vector<int64_t>> ConstantInt64Input(const NodeContext& ctx, const Node& node, size_t index,
                                                    const std::string& role) {
    const std::string& name = node.inputs[index];
    const std::string label = "input " + std::to_string(index) + " (" + role + ", " + Quote(name) + ")";
    std::optional<ConstantSource> source = FindConstant(name);
    if (!source) {
      return ctx.Error(StatusCode::kUnimplemented,
                       label + " must be a constant (an initializer or a Constant node output)");
    }
    if (source->bound_int64 != nullptr) return *source->bound_int64;
    if (source->bound != nullptr)
      return ctx.Error(StatusCode::kInvalidArgument, label + " is bound to a float tensor");
    StatusOr<std::vector<int64_t>> values = Int64VectorFromProto(*source->proto, label);
    if (!values.ok()) return ctx.Error(values.status().code(), values.status().message());
    return values;
  }

  // --- converters: each reads every attribute the op has at the model's opset ---

  Status ConvertUnary(NodeContext& ctx, Node* node) {
    CNN_RETURN_IF_ERROR(CheckInputCount(ctx, *node, 1, 1));
    return CheckExtraOutputs(ctx, 1, false);
  }

  Status ConvertBinary(NodeContext& ctx, Node* node) {
    CNN_RETURN_IF_ERROR(CheckInputCount(ctx, *node, 2, 2));
    return CheckExtraOutputs(ctx, 1, false);
  }

  Status ConvertConv(NodeContext& ctx, Node* node) {
    CNN_RETURN_IF_ERROR(CheckInputCount(ctx, *node, 2, 3));
    ConvAttrs attrs;
    CNN_RETURN_IF_ERROR(ctx.GetAutoPad(&attrs.auto_pad));
    CNN_RETURN_IF_ERROR(ctx.GetInt("group", &attrs.group));
    CNN_RETURN_IF_ERROR(ctx.GetInts("kernel_shape", &attrs.kernel_shape));
    CNN_RETURN_IF_ERROR(ctx.GetInts("strides", &attrs.strides));
    CNN_RETURN_IF_ERROR(ctx.GetInts("pads", &attrs.pads));
    CNN_RETURN_IF_ERROR(ctx.GetInts("dilations", &attrs.dilations));
    node->attrs = std::move(attrs);
    return CheckExtraOutputs(ctx, 1, false);
  }

  Status GetPoolCommon(NodeContext& ctx, PoolAttrs* attrs) {
    if (!ctx.Has("kernel_shape")) {
      return ctx.Error(StatusCode::kInvalidArgument, "attribute \"kernel_shape\" is required");
    }
    CNN_RETURN_IF_ERROR(ctx.GetAutoPad(&attrs->auto_pad));
    CNN_RETURN_IF_ERROR(ctx.GetInts("kernel_shape", &attrs->kernel_shape));
    CNN_RETURN_IF_ERROR(ctx.GetInts("strides", &attrs->strides));
    CNN_RETURN_IF_ERROR(ctx.GetInts("pads", &attrs->pads));
    return ctx.GetBool("ceil_mode", &attrs->ceil_mode, /*since=*/10);
  }

  Status ConvertMaxPool(NodeContext& ctx, Node* node) {
    CNN_RETURN_IF_ERROR(CheckInputCount(ctx, *node, 1, 1));
    PoolAttrs attrs;
    CNN_RETURN_IF_ERROR(GetPoolCommon(ctx, &attrs));
    CNN_RETURN_IF_ERROR(ctx.GetInts("dilations", &attrs.dilations, /*since=*/10));
    // storage_order only changes the Indices output, which must be unread (checked below).
    bool column_major = false;
    CNN_RETURN_IF_ERROR(ctx.GetBool("storage_order", &column_major, /*since=*/8));
    node->attrs = std::move(attrs);
    return CheckExtraOutputs(ctx, 1, /*allow_unread=*/true);
  }

  Status ConvertAveragePool(NodeContext& ctx, Node* node) {
    CNN_RETURN_IF_ERROR(CheckInputCount(ctx, *node, 1, 1));
    PoolAttrs attrs;
    CNN_RETURN_IF_ERROR(GetPoolCommon(ctx, &attrs));
    CNN_RETURN_IF_ERROR(ctx.GetBool("count_include_pad", &attrs.count_include_pad));
    node->attrs = std::move(attrs);
    return CheckExtraOutputs(ctx, 1, false);
  }

  Status ConvertLrn(NodeContext& ctx, Node* node) {
    CNN_RETURN_IF_ERROR(CheckInputCount(ctx, *node, 1, 1));
    if (!ctx.Has("size")) return ctx.Error(StatusCode::kInvalidArgument, "attribute \"size\" is required");
    LrnAttrs attrs;
    CNN_RETURN_IF_ERROR(ctx.GetInt("size", &attrs.size));
    CNN_RETURN_IF_ERROR(ctx.GetFloat("alpha", &attrs.alpha));
    CNN_RETURN_IF_ERROR(ctx.GetFloat("beta", &attrs.beta));
    CNN_RETURN_IF_ERROR(ctx.GetFloat("bias", &attrs.bias));
    node->attrs = attrs;
    return CheckExtraOutputs(ctx, 1, false);
  }

  Status ConvertGemm(NodeContext& ctx, Node* node) {
    CNN_RETURN_IF_ERROR(CheckInputCount(ctx, *node, 2, 3));
    GemmAttrs attrs;
    CNN_RETURN_IF_ERROR(ctx.GetFloat("alpha", &attrs.alpha));
    CNN_RETURN_IF_ERROR(ctx.GetFloat("beta", &attrs.beta));
    CNN_RETURN_IF_ERROR(ctx.GetBool("transA", &attrs.trans_a));
    CNN_RETURN_IF_ERROR(ctx.GetBool("transB", &attrs.trans_b));
    node->attrs = attrs;
    return CheckExtraOutputs(ctx, 1, false);
  }

  Status ConvertFlatten(NodeContext& ctx, Node* node) {
    CNN_RETURN_IF_ERROR(CheckInputCount(ctx, *node, 1, 1));
    FlattenAttrs attrs;
    CNN_RETURN_IF_ERROR(ctx.GetInt("axis", &attrs.axis));
    node->attrs = attrs;
    return CheckExtraOutputs(ctx, 1, false);
  }

  Status ConvertReshape(NodeContext& ctx, Node* node) {
    CNN_RETURN_IF_ERROR(CheckInputCount(ctx, *node, 2, 2));
    ReshapeAttrs attrs;
    CNN_RETURN_IF_ERROR(ctx.GetBool("allowzero", &attrs.allow_zero, /*since=*/14));
    CNN_ASSIGN_OR_RETURN(attrs.shape, ConstantInt64Input(ctx, *node, 1, "shape"));
    node->inputs.resize(1);
    node->attrs = std::move(attrs);
    return CheckExtraOutputs(ctx, 1, false);
  }

  Status ConvertDropout(NodeContext& ctx, Node* node) {
    constexpr int64_t kInputsSince = 12;  // ratio and training_mode became inputs in Dropout-12
    if (ctx.opset() < kInputsSince) {
      CNN_RETURN_IF_ERROR(CheckInputCount(ctx, *node, 1, 1));
    } else {
      CNN_RETURN_IF_ERROR(CheckInputCount(ctx, *node, 1, 3));
    }
    // Neither changes inference results; they are read so that their types are checked.
    float ratio = 0.5f;
    CNN_RETURN_IF_ERROR(ctx.GetFloat("ratio", &ratio, kAnyOpset, /*until=*/kInputsSince - 1));
    int64_t seed = 0;
    CNN_RETURN_IF_ERROR(ctx.GetInt("seed", &seed, /*since=*/kInputsSince));
    if (node->inputs.size() > 1 && !node->inputs[1].empty()) {
      std::optional<ConstantSource> source = FindConstant(node->inputs[1]);
      if (!source) {
        return ctx.Error(StatusCode::kUnimplemented,
                         "input 1 (ratio, " + Quote(node->inputs[1]) + ") must be a constant or absent");
      }
    }
    if (node->inputs.size() > 2 && !node->inputs[2].empty()) {
      const std::string label = "input 2 (training_mode, " + Quote(node->inputs[2]) + ")";
      std::optional<ConstantSource> source = FindConstant(node->inputs[2]);
      if (!source || source->proto == nullptr) {
        return ctx.Error(StatusCode::kUnimplemented, label + " must be a constant BOOL or absent");
      }
      StatusOr<bool> training = BoolScalarFromProto(*source->proto, label);
      if (!training.ok()) return ctx.Error(training.status().code(), training.status().message());
      if (*training) {
        return ctx.Error(StatusCode::kUnimplemented, label + " is true: training mode is not supported");
      }
    }
    node->inputs.resize(1);
    return CheckExtraOutputs(ctx, 1, /*allow_unread=*/true);
  }

  Status ConvertSoftmax(NodeContext& ctx, Node* node) {
    constexpr int64_t kPerAxisSince = 13;
    CNN_RETURN_IF_ERROR(CheckInputCount(ctx, *node, 1, 1));
    SoftmaxAttrs attrs;
    attrs.coerce_2d = ctx.opset() < kPerAxisSince;
    attrs.axis = attrs.coerce_2d ? 1 : -1;
    CNN_RETURN_IF_ERROR(ctx.GetInt("axis", &attrs.axis));
    node->attrs = attrs;
    return CheckExtraOutputs(ctx, 1, false);
  }

  Status ConvertBatchNorm(NodeContext& ctx, Node* node) {
    CNN_RETURN_IF_ERROR(CheckInputCount(ctx, *node, 5, 5));
    BatchNormAttrs attrs;
    CNN_RETURN_IF_ERROR(ctx.GetFloat("epsilon", &attrs.epsilon));
    float momentum = 0.9f;  // training only; read for its type
    CNN_RETURN_IF_ERROR(ctx.GetFloat("momentum", &momentum));
    int64_t spatial = 1;
    CNN_RETURN_IF_ERROR(ctx.GetInt("spatial", &spatial, kAnyOpset, /*until=*/8));
    if (spatial != 1) {
      return ctx.Error(StatusCode::kUnimplemented,
                       "attribute \"spatial\" value " + std::to_string(spatial) + " is not supported (only 1)");
    }
    bool training = false;
    CNN_RETURN_IF_ERROR(ctx.GetBool("training_mode", &training, /*since=*/14));
    if (training) {
      return ctx.Error(StatusCode::kUnimplemented,
                       "attribute \"training_mode\" value 1 is not supported (inference only)");
    }
    node->attrs = attrs;
    return CheckExtraOutputs(ctx, 1, false);
  }

  // A Constant node defines a constant value; it adds no node to the graph.
  Status ImportConstantNode(NodeContext& ctx, onnx::NodeProto* proto) {
    if (proto->input_size() != 0) return ctx.Error(StatusCode::kInvalidArgument, "a Constant takes no inputs");
    CNN_RETURN_IF_ERROR(CheckExtraOutputs(ctx, 1, false));
    const std::string& output = proto->output(0);
    int given = 0;
    for (const onnx::AttributeProto& attr : proto->attribute()) {
      given += attr.name().rfind("value", 0) == 0 || attr.name() == "sparse_value" ? 1 : 0;
    }
    if (given != 1) {
      return ctx.Error(StatusCode::kInvalidArgument,
                       "needs exactly one value attribute, has " + std::to_string(given));
    }
    onnx::TensorProto value;
    const bool dense = !ctx.Has("sparse_value") && !ctx.Has("value_string") && !ctx.Has("value_strings");
    if (ctx.Has("value")) {
      const onnx::AttributeProto* attr = ctx.Take("value");
      if (attr->type() != onnx::AttributeProto::TENSOR && attr->type() != onnx::AttributeProto::UNDEFINED) {
        return ctx.Error(StatusCode::kInvalidArgument,
                         "attribute \"value\" has type " + AttrTypeName(attr->type()) + ", expected TENSOR");
      }
      if (!attr->has_t()) return ctx.Error(StatusCode::kInvalidArgument, "attribute \"value\" holds no tensor");
      // Move the tensor out of the model (nothing reads it again) instead of copying it.
      for (onnx::AttributeProto& mutable_attr : *proto->mutable_attribute()) {
        if (&mutable_attr == attr) value.Swap(mutable_attr.mutable_t());
      }
    } else if (ctx.Has("value_float")) {
      float v = 0;
      CNN_RETURN_IF_ERROR(ctx.GetFloat("value_float", &v, /*since=*/12));
      value.set_data_type(onnx::TensorProto::FLOAT);
      value.add_float_data(v);
    } else if (ctx.Has("value_floats")) {
      std::vector<float> values;
      CNN_RETURN_IF_ERROR(ctx.GetFloats("value_floats", &values, /*since=*/12));
      value.set_data_type(onnx::TensorProto::FLOAT);
      value.add_dims(static_cast<int64_t>(values.size()));
      for (float v : values) value.add_float_data(v);
    } else if (ctx.Has("value_int")) {
      int64_t v = 0;
      CNN_RETURN_IF_ERROR(ctx.GetInt("value_int", &v, /*since=*/12));
      value.set_data_type(onnx::TensorProto::INT64);
      value.add_int64_data(v);
    } else if (ctx.Has("value_ints")) {
      std::vector<int64_t> values;
      CNN_RETURN_IF_ERROR(ctx.GetInts("value_ints", &values, /*since=*/12));
      value.set_data_type(onnx::TensorProto::INT64);
      value.add_dims(static_cast<int64_t>(values.size()));
      for (int64_t v : values) value.add_int64_data(v);
    }
    // Anything else (sparse_value, value_string(s)) stays unread and is reported by CheckAllUsed.
    if (dense) constant_outputs_.emplace(output, std::move(value));
    return OkStatus();
  }

  // Converts the constants that nodes read as inputs (and the graph output if it is one) into float tensors.
  Status AddConstants() {
    std::set<std::string> needed;
    for (const Node& node : def_.nodes) {
      for (const std::string& input : node.inputs) {
        if (!input.empty()) needed.insert(input);
      }
    }
    needed.insert(def_.output);
    for (const std::string& name : needed) {
      std::optional<ConstantSource> source = FindConstant(name);
      if (!source) continue;
      if (source->bound != nullptr) {
        def_.constants.emplace(name, *source->bound);
        continue;
      }
      if (source->bound_int64 != nullptr) {
        return InvalidArgumentError("value " + Quote(name) + " is bound to INT64 values but is read as a tensor");
      }
      const bool is_initializer = initializers_.count(name) != 0 && constant_outputs_.count(name) == 0;
      const std::string label = (is_initializer ? "initializer " : "constant ") + Quote(name);
      CNN_ASSIGN_OR_RETURN(Tensor tensor, FloatTensorFromProto(source->proto, label, /*release=*/true, external_));
      def_.constants.emplace(name, std::make_shared<const Tensor>(std::move(tensor)));
    }
    return OkStatus();
  }

  onnx::ModelProto& model_;
  onnx::GraphProto& graph_;
  const OnnxImportOptions& options_;
  const ExternalRawData* external_;  // not owned; may be null
  int64_t opset_ = 0;
  GraphDef def_;
  std::unordered_map<std::string, onnx::TensorProto*> initializers_;
  std::unordered_map<std::string, onnx::TensorProto> constant_outputs_;
  std::unordered_set<std::string> read_;     // values read by some node or the graph output
  std::unordered_set<std::string> defined_;  // values defined so far (SSA check)
  std::unordered_set<std::string> node_names_;
};

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
StatusOr<GraphDef> ImportModel(onnx::ModelProto* model, const std::string& what,
                               const OnnxImportOptions& options, const ExternalRawData* external = nullptr) {
  Importer importer(model, options, external);
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
  return proto.name().empty() ? what : what + ": tensor " + Quote(proto.name());
}

int64_t ClampFileLimit(int64_t max_file_bytes) { return std::min(max_file_bytes, kMaxOnnxProtoBytes); }

}  // namespace

StatusOr<GraphDef> ImportOnnxFile(const std::string& path, const OnnxImportOptions& options) {
  FileBytes file;
  CNN_RETURN_IF_ERROR(file.Open(path, ClampFileLimit(options.max_file_bytes)));
  // The big weights stay in the mapped file: the proto is parsed without them and each is copied straight into
  // its tensor, so loading peaks at about one copy of the weights instead of two or three.
  std::vector<RawSlice> slices;
  std::optional<std::string> stripped = StripInitializerData(file.data(), file.size(), &slices);
  onnx::ModelProto model;
  if (!stripped) {  // not walkable: let protobuf parse it all and report what is wrong
    CNN_RETURN_IF_ERROR(ParseModel(file.data(), file.size(), path, &model));
    return ImportModel(&model, path, options);
  }
  CNN_RETURN_IF_ERROR(ParseModel(reinterpret_cast<const uint8_t*>(stripped->data()), stripped->size(), path, &model));
  stripped.reset();
  ExternalRawData external;
  const auto& initializers = model.graph().initializer();
  for (const RawSlice& slice : slices) {
    if (slice.initializer >= initializers.size()) {
      return InternalError(path + ": initializer index " + std::to_string(slice.initializer) + " out of range");
    }
    external.emplace(&initializers.Get(slice.initializer),
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
  return Int64VectorFromProto(proto, TensorLabel(path, proto));
}

}  // namespace cnnserve
