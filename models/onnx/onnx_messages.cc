#include "models/onnx/onnx_messages.h"

#include "engine/common/strings.h"

namespace cnnserve::onnx_import {

std::string Escape(std::string_view text) { return Escaped(text, kMaxQuotedChars); }

std::string Quote(std::string_view text) { return Quoted(text, kMaxQuotedChars); }

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
