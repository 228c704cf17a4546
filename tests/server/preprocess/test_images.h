// Helpers for the preprocess tests: real PNG/JPEG files made with cv::imencode, hand-built PNG chunks, and JPEG
// segment lookup for surgery on real files.
#ifndef CNNSERVE_TESTS_SERVER_PREPROCESS_TEST_IMAGES_H_
#define CNNSERVE_TESTS_SERVER_PREPROCESS_TEST_IMAGES_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace cnnserve::testing {

inline std::string Encode(const std::string& extension, const cv::Mat& image,
                          const std::vector<int>& params = {}) {
  std::vector<uint8_t> buffer;
  if (!cv::imencode(extension, image, buffer, params)) return {};
  return std::string(buffer.begin(), buffer.end());
}

inline std::string EncodePng(const cv::Mat& image) { return Encode(".png", image); }

inline std::string EncodeJpeg(const cv::Mat& image, int quality = 95, bool progressive = false) {
  return Encode(".jpg", image,
                {cv::IMWRITE_JPEG_QUALITY, quality, cv::IMWRITE_JPEG_PROGRESSIVE, progressive ? 1 : 0});
}

// CRC-32 as used by PNG (reflected polynomial 0xEDB88320).
inline uint32_t Crc32(std::string_view bytes) {
  uint32_t crc = 0xffffffffu;
  for (char ch : bytes) {
    crc ^= static_cast<uint8_t>(ch);
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
  }
  return crc ^ 0xffffffffu;
}

inline std::string U32Be(uint32_t value) {
  return {static_cast<char>(value >> 24), static_cast<char>(value >> 16), static_cast<char>(value >> 8),
          static_cast<char>(value)};
}

inline constexpr std::string_view kPngSignature("\x89PNG\r\n\x1a\n", 8);

// length + type + data + CRC; `valid_crc` false writes a zero CRC.
inline std::string PngChunk(std::string_view type, std::string_view data, bool valid_crc = true) {
  const std::string type_and_data = std::string(type) + std::string(data);
  return U32Be(static_cast<uint32_t>(data.size())) + type_and_data + U32Be(valid_crc ? Crc32(type_and_data) : 0);
}

inline std::string IhdrData(uint32_t width, uint32_t height, int bit_depth = 8, int color_type = 2,
                            int interlace = 0) {
  return U32Be(width) + U32Be(height) +
         std::string{static_cast<char>(bit_depth), static_cast<char>(color_type), 0, 0,
                     static_cast<char>(interlace)};
}

// Signature and IHDR only (what an attacker needs to claim a size).
inline std::string PngSignatureAndIhdr(uint32_t width, uint32_t height, bool valid_crc = true) {
  return std::string(kPngSignature) + PngChunk("IHDR", IhdrData(width, height), valid_crc);
}

inline uint32_t Adler32(std::string_view bytes) {
  constexpr uint32_t kModulus = 65521;
  uint32_t a = 1;
  uint32_t b = 0;
  for (char ch : bytes) {
    a = (a + static_cast<uint8_t>(ch)) % kModulus;
    b = (b + a) % kModulus;
  }
  return (b << 16) | a;
}

// A zlib stream made of stored (uncompressed) deflate blocks, so tests can build any PNG by hand.
inline std::string ZlibStored(std::string_view raw) {
  constexpr size_t kMaxStoredBlock = 65535;
  std::string out("\x78\x01", 2);
  size_t pos = 0;
  do {
    const size_t n = std::min(raw.size() - pos, kMaxStoredBlock);
    const bool last = pos + n == raw.size();
    out += static_cast<char>(last ? 1 : 0);
    out += static_cast<char>(n & 0xff);
    out += static_cast<char>(n >> 8);
    out += static_cast<char>(~n & 0xff);
    out += static_cast<char>((~n >> 8) & 0xff);
    out.append(raw.substr(pos, n));
    pos += n;
  } while (pos < raw.size());
  return out + U32Be(Adler32(raw));
}

// A complete PNG from packed sample rows (without filter bytes; filter 0 is used).
inline std::string RawPng(uint32_t width, uint32_t height, int bit_depth, int color_type,
                          const std::vector<std::string>& rows, std::string_view plte = {}) {
  std::string raw;
  for (const std::string& row : rows) raw += '\0' + row;
  std::string png(kPngSignature);
  png += PngChunk("IHDR", IhdrData(width, height, bit_depth, color_type));
  if (!plte.empty()) png += PngChunk("PLTE", plte);
  png += PngChunk("IDAT", ZlibStored(raw));
  return png + PngChunk("IEND", "");
}

// Offset of the 0xFF of the first segment with `marker` before the first scan, or npos. Walks the segments of a
// well-formed JPEG (made by cv::imencode).
inline size_t FindJpegSegment(const std::string& jpeg, uint8_t marker) {
  size_t pos = 2;
  while (pos + 4 <= jpeg.size() && static_cast<uint8_t>(jpeg[pos]) == 0xff) {
    const uint8_t current = static_cast<uint8_t>(jpeg[pos + 1]);
    if (current == marker) return pos;
    if (current == 0xda) break;  // SOS
    const size_t length = (static_cast<uint8_t>(jpeg[pos + 2]) << 8) | static_cast<uint8_t>(jpeg[pos + 3]);
    pos += 2 + length;
  }
  return std::string::npos;
}

// Length of the segment at `pos` (including the two length bytes).
inline size_t JpegSegmentLength(const std::string& jpeg, size_t pos) {
  return (static_cast<uint8_t>(jpeg[pos + 2]) << 8) | static_cast<uint8_t>(jpeg[pos + 3]);
}

// A deterministic BGR test pattern with distinct values per pixel and channel.
inline cv::Mat PatternBgr(int width, int height) {
  cv::Mat image(height, width, CV_8UC3);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      image.at<cv::Vec3b>(y, x) =
          cv::Vec3b(static_cast<uint8_t>((x * 7 + y * 3) % 256), static_cast<uint8_t>((x * 11 + y * 5 + 40) % 256),
                    static_cast<uint8_t>((x * 13 + y * 17 + 90) % 256));
    }
  }
  return image;
}

}  // namespace cnnserve::testing

#endif  // CNNSERVE_TESTS_SERVER_PREPROCESS_TEST_IMAGES_H_
