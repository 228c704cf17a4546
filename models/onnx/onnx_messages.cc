#include "models/onnx/onnx_messages.h"

#include <cstdio>

namespace cnnserve::onnx_import {

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

}  // namespace cnnserve::onnx_import
