#include "engine/common/strings.h"

#include <cstdio>

namespace cnnserve {
namespace {

constexpr unsigned char kFirstPrintable = 0x20;
constexpr unsigned char kDelete = 0x7f;

}  // namespace

namespace {

// The escaped form of `shown` (see the header), appended to `out`.
void AppendEscaped(std::string_view shown, std::string& out) {
  for (const char c : shown) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (byte < kFirstPrintable || byte == kDelete) {
      char hex[5];
      std::snprintf(hex, sizeof(hex), "\\x%02x", byte);
      out += hex;
    } else {
      out += c;
    }
  }
}

std::string CutSuffix(std::string_view text, std::string_view shown) {
  return shown.size() < text.size() ? "... (" + std::to_string(text.size()) + " bytes)" : std::string();
}

}  // namespace

std::string Quoted(std::string_view text, size_t max_bytes) {
  const std::string_view shown = text.substr(0, max_bytes);
  std::string out;
  out.reserve(shown.size() + 2);
  out += '"';
  AppendEscaped(shown, out);
  out += '"';
  return out + CutSuffix(text, shown);
}

std::string Escaped(std::string_view text, size_t max_bytes) {
  const std::string_view shown = text.substr(0, max_bytes);
  std::string out;
  out.reserve(shown.size());
  AppendEscaped(shown, out);
  return out + CutSuffix(text, shown);
}

}  // namespace cnnserve
