// Text helpers for messages: one way to quote a value that came from outside (a flag, a file, a request).
//
// Quoted(text) is `text` in double quotes, bounded and escaped, so that an error message built from untrusted
// input stays one readable line of bounded size:
//   - at most `max_bytes` bytes of `text` are shown; a longer text is cut and followed by `... (N bytes)`;
//   - `"` and `\` are escaped as `\"` and `\\`; bytes below 0x20 and 0x7f as `\xHH` (lower-case hex).
//   Quoted("abc") == "\"abc\"";  Quoted("a\nb") == "\"a\\x0ab\"";
//   Quoted(std::string(70, 'z')) == "\"" + std::string(64, 'z') + "\"... (70 bytes)".
// Bytes of 0x80 and above are copied as they are (UTF-8 stays readable; the cut may split a character).
// Thread-safety: pure functions.
#ifndef CNNSERVE_ENGINE_COMMON_STRINGS_H_
#define CNNSERVE_ENGINE_COMMON_STRINGS_H_

#include <cstddef>
#include <string>
#include <string_view>

namespace cnnserve {

// How many bytes of a quoted text a message shows by default.
inline constexpr size_t kDefaultQuotedMaxBytes = 64;
// For a file path, which is longer than a name but still bounded.
inline constexpr size_t kMaxQuotedPathBytes = 1024;

// `text` quoted for a message, as described above.
std::string Quoted(std::string_view text, size_t max_bytes = kDefaultQuotedMaxBytes);

// The same without the quotes, for a word inside other punctuation (an op type in "node "x" (Conv)"):
//   Escaped("a\nb") == "a\\x0ab";  Escaped(std::string(70, 'z')) == std::string(64, 'z') + "... (70 bytes)".
std::string Escaped(std::string_view text, size_t max_bytes = kDefaultQuotedMaxBytes);

}  // namespace cnnserve

#endif  // CNNSERVE_ENGINE_COMMON_STRINGS_H_
