#include "engine/tensor/npy.h"

#include <cstring>
#include <fstream>
#include <sstream>

namespace cnnserve {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;

// Extracts the value text after `'key':` in a NumPy header dict.
bool FindHeaderValue(const std::string& header, const std::string& key, std::string* value) {
  size_t pos = header.find("'" + key + "'");
  if (pos == std::string::npos) return false;
  pos = header.find(':', pos);
  if (pos == std::string::npos) return false;
  ++pos;
  while (pos < header.size() && header[pos] == ' ') ++pos;
  size_t end = pos;
  if (pos < header.size() && header[pos] == '(') {
    end = header.find(')', pos);
    if (end == std::string::npos) return false;
    ++end;
  } else if (pos < header.size() && header[pos] == '\'') {
    end = header.find('\'', pos + 1);
    if (end == std::string::npos) return false;
    ++end;
  } else {
    while (end < header.size() && header[end] != ',' && header[end] != '}') ++end;
  }
  *value = header.substr(pos, end - pos);
  return true;
}

StatusOr<Dims> ParseShapeTuple(const std::string& text, const std::string& what) {
  Dims dims;
  std::string inner = text.substr(1, text.size() - 2);
  std::stringstream ss(inner);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t b = item.find_first_not_of(' ');
    if (b == std::string::npos) continue;
    item = item.substr(b);
    char* end = nullptr;
    long long v = std::strtoll(item.c_str(), &end, 10);
    if (end == item.c_str() || v < 0) return InvalidArgumentError(what + ": bad shape entry '" + item + "'");
    dims.push_back(v);
  }
  return dims;
}

}  // namespace

StatusOr<Tensor> ParseNpy(const std::string& bytes, const std::string& what) {
  if (bytes.size() < kMagicLen + 4 || std::memcmp(bytes.data(), kMagic, kMagicLen) != 0) {
    return InvalidArgumentError(what + ": not a .npy file (bad magic)");
  }
  const auto major = static_cast<uint8_t>(bytes[6]);
  size_t header_len = 0;
  size_t offset = 0;
  if (major == 1) {
    header_len = static_cast<uint8_t>(bytes[8]) | (static_cast<uint8_t>(bytes[9]) << 8);
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) return InvalidArgumentError(what + ": truncated .npy header");
    header_len = 0;
    for (int i = 3; i >= 0; --i) header_len = (header_len << 8) | static_cast<uint8_t>(bytes[8 + i]);
    offset = 12;
  } else {
    return InvalidArgumentError(what + ": unsupported .npy version " + std::to_string(major));
  }
  if (bytes.size() < offset + header_len) return InvalidArgumentError(what + ": truncated .npy header");
  const std::string header = bytes.substr(offset, header_len);
  std::string descr, fortran, shape;
  if (!FindHeaderValue(header, "descr", &descr) || !FindHeaderValue(header, "fortran_order", &fortran) ||
      !FindHeaderValue(header, "shape", &shape) || shape.empty() || shape.front() != '(') {
    return InvalidArgumentError(what + ": malformed .npy header: " + header);
  }
  if (descr != "'<f4'" && descr != "'f4'") {
    return InvalidArgumentError(what + ": dtype " + descr + " is not supported; expected little-endian float32 '<f4'");
  }
  if (fortran.rfind("False", 0) != 0) return InvalidArgumentError(what + ": Fortran-order arrays are not supported");
  CNN_ASSIGN_OR_RETURN(Dims dims, ParseShapeTuple(shape, what));
  for (int64_t d : dims) {
    if (d == 0) return InvalidArgumentError(what + ": empty arrays are not supported");
  }
  CNN_RETURN_IF_ERROR(ValidateDims(dims).WithContext(what));
  const size_t data_offset = offset + header_len;
  const size_t need = static_cast<size_t>(NumElements(dims)) * sizeof(float);
  if (bytes.size() - data_offset != need) {
    return InvalidArgumentError(what + ": data has " + std::to_string(bytes.size() - data_offset) +
                                " bytes, shape (" + DimsToString(dims) + ") needs " + std::to_string(need));
  }
  Tensor t(std::move(dims));
  std::memcpy(t.data(), bytes.data() + data_offset, need);
  return t;
}

StatusOr<Tensor> ReadNpy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError("cannot open " + path);
  std::stringstream buf;
  buf << in.rdbuf();
  return ParseNpy(buf.str(), path);
}

}  // namespace cnnserve
