// Internal to the ONNX importer (not part of its API): how the importer names values, types and attribute types
// in its error messages. Names from the file are quoted and escaped so that a corrupt or hostile file gives a
// readable, bounded message.
//
// Thread-safety: pure functions.
#ifndef CNNSERVE_MODELS_ONNX_ONNX_MESSAGES_H_
#define CNNSERVE_MODELS_ONNX_ONNX_MESSAGES_H_

#include <onnx/onnx_pb.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace cnnserve::onnx_import {

using AttrType = onnx::AttributeProto::AttributeType;

// Longest name quoted verbatim in an error message; longer (e.g. fuzzed) names are cut.
inline constexpr size_t kMaxQuotedChars = 120;

// Escaped / Quoted (engine/common/strings.h: the project's one way to quote) with the importer's bound.
std::string Escape(std::string_view text);
std::string Quote(std::string_view text);

// "FLOAT", "INT64", ... or "data type <n>" for a value outside the enum.
std::string DataTypeName(int32_t data_type);

// "INT", "FLOATS", ... or "type <n>" for a value outside the enum.
std::string AttrTypeName(AttrType type);

// The names quoted and joined with ", ".
std::string JoinQuoted(const std::vector<std::string>& names);

}  // namespace cnnserve::onnx_import

#endif  // CNNSERVE_MODELS_ONNX_ONNX_MESSAGES_H_
