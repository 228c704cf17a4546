#include "server/preprocess/image_header.h"

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <string>

namespace cnnserve {
namespace {

constexpr std::string_view kPngSignature("\x89PNG\r\n\x1a\n", 8);
constexpr std::string_view kJpegSignature("\xff\xd8\xff", 3);

// PNG: a chunk is length (4) + type (4) + data (length) + CRC (4); IHDR data is 13 bytes.
constexpr size_t kPngChunkOverheadBytes = 12;
constexpr size_t kPngChunkHeaderBytes = 8;
constexpr uint32_t kPngIhdrDataBytes = 13;
constexpr size_t kPngIhdrEndOffset = kPngSignature.size() + kPngChunkOverheadBytes + kPngIhdrDataBytes;  // 33
constexpr uint32_t kPngMaxChunkLength = 0x7fffffffu;  // PNG spec: lengths and dimensions are < 2^31
constexpr uint32_t kPngMaxDimension = 0x7fffffffu;

// JPEG markers (the byte after 0xFF).
constexpr uint8_t kJpegSoi = 0xd8;
constexpr uint8_t kJpegEoi = 0xd9;
constexpr uint8_t kJpegSos = 0xda;
constexpr uint8_t kJpegTem = 0x01;
constexpr uint8_t kJpegRst0 = 0xd0;
constexpr uint8_t kJpegRst7 = 0xd7;
constexpr uint8_t kJpegSof0 = 0xc0;
constexpr uint8_t kJpegSof15 = 0xcf;
constexpr uint8_t kJpegDht = 0xc4;  // in the SOFn range but not a SOF
constexpr uint8_t kJpegJpg = 0xc8;  // reserved, in the SOFn range
constexpr uint8_t kJpegDac = 0xcc;  // in the SOFn range but not a SOF
constexpr uint8_t kJpegDqt = 0xdb;
constexpr uint8_t kJpegDri = 0xdd;
constexpr uint8_t kJpegApp0 = 0xe0;
constexpr uint8_t kJpegApp15 = 0xef;
constexpr uint8_t kJpegCom = 0xfe;
constexpr int kJpegSupportedPrecisionBits = 8;
// SOF data: precision (1) + height (2) + width (2) + component count (1) + 3 bytes per component.
constexpr size_t kJpegSofFixedBytes = 6;
constexpr size_t kJpegSofBytesPerComponent = 3;
constexpr size_t kJpegSegmentLengthBytes = 2;

constexpr size_t kUnknownFormatPrefixBytes = 8;

uint32_t ReadU32Be(std::string_view bytes, size_t pos) {
  return (uint32_t{static_cast<uint8_t>(bytes[pos])} << 24) |
         (uint32_t{static_cast<uint8_t>(bytes[pos + 1])} << 16) |
         (uint32_t{static_cast<uint8_t>(bytes[pos + 2])} << 8) | uint32_t{static_cast<uint8_t>(bytes[pos + 3])};
}

uint32_t ReadU16Be(std::string_view bytes, size_t pos) {
  return (uint32_t{static_cast<uint8_t>(bytes[pos])} << 8) | uint32_t{static_cast<uint8_t>(bytes[pos + 1])};
}

uint8_t ByteAt(std::string_view bytes, size_t pos) { return static_cast<uint8_t>(bytes[pos]); }

std::string Hex(uint32_t value, int digits) {
  char buffer[16];
  std::snprintf(buffer, sizeof(buffer), "%0*x", digits, static_cast<unsigned>(value));
  return buffer;
}

// "89 50 4e 47" for the first `max_bytes` bytes.
std::string HexPrefix(std::string_view bytes, size_t max_bytes) {
  std::string out;
  for (size_t i = 0; i < std::min(bytes.size(), max_bytes); ++i) {
    if (i) out += ' ';
    out += Hex(ByteAt(bytes, i), 2);
  }
  return out;
}

// A chunk type for messages: printable ASCII as is, other bytes as \xNN.
std::string PrintableTag(std::string_view tag) {
  std::string out;
  for (char c : tag) {
    if (c >= 0x20 && c < 0x7f) {
      out += c;
    } else {
      out += "\\x" + Hex(static_cast<uint8_t>(c), 2);
    }
  }
  return out;
}

bool StartsWith(std::string_view bytes, std::string_view prefix) {
  return bytes.substr(0, prefix.size()) == prefix;
}

// Names a format we do not accept, for the error message.
std::string DescribeUnsupported(std::string_view bytes) {
  if (bytes.empty()) return "empty input, 0 bytes";
  if (StartsWith(kPngSignature, bytes)) {
    return "truncated PNG signature, " + std::to_string(bytes.size()) + " bytes";
  }
  if (StartsWith(kJpegSignature, bytes)) {
    return "truncated JPEG signature, " + std::to_string(bytes.size()) + " bytes";
  }
  if (StartsWith(bytes, "GIF87a") || StartsWith(bytes, "GIF89a")) return "GIF";
  if (bytes.size() >= 12 && StartsWith(bytes, "RIFF") && bytes.substr(8, 4) == "WEBP") return "WebP";
  if (StartsWith(bytes, "BM")) return "BMP";
  if (StartsWith(bytes, std::string_view("II*\0", 4)) || StartsWith(bytes, std::string_view("MM\0*", 4))) {
    return "TIFF";
  }
  if (StartsWith(bytes, std::string_view("\0\0\0\x0cjP  \r\n\x87\n", 12)) ||
      StartsWith(bytes, std::string_view("\xff\x4f\xff\x51", 4))) {
    return "JPEG 2000";
  }
  if (StartsWith(bytes, std::string_view("\xff\x0a", 2)) ||
      StartsWith(bytes, std::string_view("\0\0\0\x0cJXL \r\n\x87\n", 12))) {
    return "JPEG XL";
  }
  if (bytes.size() >= 12 && bytes.substr(4, 4) == "ftyp") {
    const std::string_view brand = bytes.substr(8, 4);
    if (brand == "avif" || brand == "avis") return "AVIF";
    if (brand == "heic" || brand == "heix" || brand == "hevc" || brand == "mif1" || brand == "msf1") return "HEIF";
    return "ISO media file, brand '" + PrintableTag(brand) + "'";
  }
  if (StartsWith(bytes, std::string_view("\0\0\1\0", 4))) return "ICO";
  return "unrecognised, first bytes " + HexPrefix(bytes, kUnknownFormatPrefixBytes);
}

Status CheckPixelCap(ImageFormat format, int64_t width, int64_t height, int64_t max_pixels) {
  const int64_t pixels = width * height;  // both < 2^31: no overflow
  if (pixels > max_pixels) {
    return InvalidArgumentError(std::string(ImageFormatName(format)) + " image declares " + std::to_string(width) +
                                "x" + std::to_string(height) + " = " + std::to_string(pixels) +
                                " pixels, which exceeds max_pixels " + std::to_string(max_pixels));
  }
  return OkStatus();
}

// ---------------------------------------------------------------------------------------------------------------
// PNG

bool ValidPngDepth(int color_type, int depth) {
  switch (color_type) {
    case 0:  // greyscale
      return depth == 1 || depth == 2 || depth == 4 || depth == 8 || depth == 16;
    case 3:  // palette
      return depth == 1 || depth == 2 || depth == 4 || depth == 8;
    case 2:  // RGB
    case 4:  // greyscale + alpha
    case 6:  // RGBA
      return depth == 8 || depth == 16;
    default:
      return false;
  }
}

int PngChannels(int color_type) {
  switch (color_type) {
    case 0:
      return 1;
    case 4:
      return 2;
    case 2:
    case 3:
      return 3;
    default:
      return 4;
  }
}

bool IsAsciiLetter(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }

StatusOr<ImageHeader> InspectPng(std::string_view bytes, int64_t max_pixels) {
  const size_t size = bytes.size();
  const size_t ihdr_pos = kPngSignature.size();
  if (size < ihdr_pos + kPngChunkHeaderBytes) {
    return InvalidArgumentError("truncated PNG: " + std::to_string(size) +
                                " bytes is too short for the IHDR chunk header");
  }
  const uint32_t ihdr_length = ReadU32Be(bytes, ihdr_pos);
  const std::string_view first_type = bytes.substr(ihdr_pos + 4, 4);
  if (first_type != "IHDR") {
    return InvalidArgumentError("malformed PNG: the first chunk is '" + PrintableTag(first_type) +
                                "', expected 'IHDR'");
  }
  if (ihdr_length != kPngIhdrDataBytes) {
    return InvalidArgumentError("malformed PNG: the IHDR chunk length is " + std::to_string(ihdr_length) +
                                ", expected " + std::to_string(kPngIhdrDataBytes));
  }
  if (size < kPngIhdrEndOffset) {
    return InvalidArgumentError("truncated PNG: " + std::to_string(size) +
                                " bytes is too short for the IHDR chunk (" + std::to_string(kPngIhdrEndOffset) +
                                " bytes)");
  }
  const size_t data = ihdr_pos + kPngChunkHeaderBytes;
  const uint32_t width = ReadU32Be(bytes, data);
  const uint32_t height = ReadU32Be(bytes, data + 4);
  const int depth = ByteAt(bytes, data + 8);
  const int color_type = ByteAt(bytes, data + 9);
  const int compression = ByteAt(bytes, data + 10);
  const int filter = ByteAt(bytes, data + 11);
  const int interlace = ByteAt(bytes, data + 12);
  if (width == 0 || width > kPngMaxDimension || height == 0 || height > kPngMaxDimension) {
    return InvalidArgumentError("malformed PNG: IHDR declares " + std::to_string(width) + "x" +
                                std::to_string(height) + "; width and height must be in [1, " +
                                std::to_string(kPngMaxDimension) + "]");
  }
  if (!ValidPngDepth(color_type, depth)) {
    return InvalidArgumentError("malformed PNG: IHDR bit depth " + std::to_string(depth) + " with colour type " +
                                std::to_string(color_type) + " is not a valid combination");
  }
  if (compression != 0 || filter != 0 || interlace > 1) {
    return InvalidArgumentError("malformed PNG: IHDR compression method " + std::to_string(compression) +
                                ", filter method " + std::to_string(filter) + ", interlace method " +
                                std::to_string(interlace) + " (expected 0, 0, 0 or 1)");
  }
  CNN_RETURN_IF_ERROR(CheckPixelCap(ImageFormat::kPng, width, height, max_pixels));

  bool seen_idat = false;
  bool seen_plte = false;
  bool seen_trns = false;
  size_t pos = kPngIhdrEndOffset;
  while (true) {
    if (pos == size) {
      return InvalidArgumentError("truncated PNG: the data ends at offset " + std::to_string(pos) +
                                  " without an IEND chunk");
    }
    if (size - pos < kPngChunkHeaderBytes) {
      return InvalidArgumentError("truncated PNG: the data ends inside the chunk header at offset " +
                                  std::to_string(pos));
    }
    const uint32_t length = ReadU32Be(bytes, pos);
    const std::string_view type = bytes.substr(pos + 4, 4);
    if (!std::all_of(type.begin(), type.end(), IsAsciiLetter)) {
      return InvalidArgumentError("malformed PNG: invalid chunk type '" + PrintableTag(type) + "' at offset " +
                                  std::to_string(pos));
    }
    if (length > kPngMaxChunkLength) {
      return InvalidArgumentError("malformed PNG: chunk '" + std::string(type) + "' at offset " +
                                  std::to_string(pos) + " declares length " + std::to_string(length) +
                                  ", over the limit " + std::to_string(kPngMaxChunkLength));
    }
    const size_t remaining = size - pos - kPngChunkHeaderBytes;
    if (remaining < size_t{length} + 4) {
      return InvalidArgumentError("truncated PNG: chunk '" + std::string(type) + "' at offset " +
                                  std::to_string(pos) + " needs " + std::to_string(size_t{length} + 4) +
                                  " bytes of data and CRC but only " + std::to_string(remaining) + " remain");
    }
    if (type == "IHDR") {
      return InvalidArgumentError("malformed PNG: second IHDR chunk at offset " + std::to_string(pos));
    }
    if (type == "IDAT") seen_idat = true;
    if (type == "PLTE") seen_plte = true;
    if (type == "tRNS") seen_trns = true;
    if (type == "IEND") {
      if (length != 0) {
        return InvalidArgumentError("malformed PNG: the IEND chunk has length " + std::to_string(length) +
                                    ", expected 0");
      }
      if (!seen_idat) return InvalidArgumentError("malformed PNG: no IDAT (image data) chunk before IEND");
      if (color_type == 3 && !seen_plte) {
        return InvalidArgumentError("malformed PNG: a palette image (colour type 3) without a PLTE chunk");
      }
      break;
    }
    pos += kPngChunkOverheadBytes + length;
  }

  ImageHeader header;
  header.format = ImageFormat::kPng;
  header.width_px = width;
  header.height_px = height;
  header.channels = PngChannels(color_type);
  header.bit_depth = depth;
  header.has_transparency = seen_trns;
  return header;
}

// ---------------------------------------------------------------------------------------------------------------
// JPEG

bool IsSofMarker(uint8_t marker) {
  return marker >= kJpegSof0 && marker <= kJpegSof15 && marker != kJpegDht && marker != kJpegJpg &&
         marker != kJpegDac;
}

// The coding processes libjpeg-turbo 2.x decodes: Huffman baseline/extended/progressive, and their arithmetic
// counterparts. Lossless (SOF3, SOF11) and hierarchical (SOF5-7, SOF13-15) are not supported.
bool IsSupportedSof(uint8_t marker) {
  return marker == 0xc0 || marker == 0xc1 || marker == 0xc2 || marker == 0xc9 || marker == 0xca;
}

std::string MarkerName(uint8_t marker) {
  if (IsSofMarker(marker)) return "SOF" + std::to_string(marker - kJpegSof0);
  if (marker >= kJpegApp0 && marker <= kJpegApp15) return "APP" + std::to_string(marker - kJpegApp0);
  switch (marker) {
    case kJpegSos:
      return "SOS";
    case kJpegDht:
      return "DHT";
    case kJpegDqt:
      return "DQT";
    case kJpegDri:
      return "DRI";
    case kJpegCom:
      return "COM";
    default:
      return "marker FF " + Hex(marker, 2);
  }
}

// Parses a SOFn segment whose data (after the length field) is bytes[data, data + data_length).
Status ParseJpegSof(std::string_view bytes, size_t data, size_t data_length, uint8_t marker, size_t marker_pos,
                    ImageHeader* header) {
  const std::string where = MarkerName(marker) + " segment at offset " + std::to_string(marker_pos);
  if (!IsSupportedSof(marker)) {
    return InvalidArgumentError("unsupported JPEG: " + where +
                                " uses a lossless or hierarchical coding process; only baseline, extended and "
                                "progressive JPEG are accepted");
  }
  if (data_length < kJpegSofFixedBytes) {
    return InvalidArgumentError("malformed JPEG: " + where + " has " + std::to_string(data_length) +
                                " data bytes, too short for a frame header (" +
                                std::to_string(kJpegSofFixedBytes) + ")");
  }
  const int precision = ByteAt(bytes, data);
  const uint32_t height = ReadU16Be(bytes, data + 1);
  const uint32_t width = ReadU16Be(bytes, data + 3);
  const int components = ByteAt(bytes, data + 5);
  if (data_length != kJpegSofFixedBytes + kJpegSofBytesPerComponent * components) {
    return InvalidArgumentError(
        "malformed JPEG: " + where + " has " + std::to_string(data_length) + " data bytes but declares " +
        std::to_string(components) + " components (expected " +
        std::to_string(kJpegSofFixedBytes + kJpegSofBytesPerComponent * components) + " bytes)");
  }
  if (precision != kJpegSupportedPrecisionBits) {
    return InvalidArgumentError("unsupported JPEG: " + where + " declares " + std::to_string(precision) +
                                "-bit samples; only 8-bit JPEG is accepted");
  }
  if (width == 0 || height == 0) {
    return InvalidArgumentError("malformed JPEG: " + where + " declares " + std::to_string(width) + "x" +
                                std::to_string(height) + "; width and height must be positive");
  }
  if (components != 1 && components != 3 && components != 4) {
    return InvalidArgumentError("unsupported JPEG: " + where + " declares " + std::to_string(components) +
                                " colour components; only 1, 3 or 4 are accepted");
  }
  header->format = ImageFormat::kJpeg;
  header->width_px = width;
  header->height_px = height;
  header->channels = components;
  header->bit_depth = precision;
  return OkStatus();
}

// Skips entropy-coded data starting at `pos`: returns the offset of the 0xFF that starts the next real marker
// (not a stuffed FF 00, not RSTn, fill bytes included), or an error if the data ends first.
StatusOr<size_t> SkipEntropyCodedData(std::string_view bytes, size_t pos, size_t scan_pos) {
  const size_t size = bytes.size();
  while (true) {
    const size_t ff = bytes.find('\xff', pos);
    if (ff == std::string_view::npos) break;
    size_t next = ff + 1;
    while (next < size && ByteAt(bytes, next) == 0xff) ++next;  // fill bytes
    if (next >= size) break;
    const uint8_t marker = ByteAt(bytes, next);
    if (marker == 0x00 || (marker >= kJpegRst0 && marker <= kJpegRst7)) {
      pos = next + 1;
      continue;
    }
    return next - 1;  // the last 0xFF before the marker byte
  }
  return InvalidArgumentError("truncated JPEG: the data ends inside the scan that starts at offset " +
                              std::to_string(scan_pos) + ", before the EOI marker");
}

StatusOr<ImageHeader> InspectJpeg(std::string_view bytes, int64_t max_pixels) {
  const size_t size = bytes.size();
  ImageHeader header;
  bool seen_sof = false;
  bool seen_sos = false;
  size_t pos = 2;  // after SOI
  while (true) {
    if (pos >= size) {
      return InvalidArgumentError(std::string("truncated JPEG: the data ends at offset ") + std::to_string(size) +
                                  (seen_sof ? " before the EOI marker" : " before the SOF frame header"));
    }
    if (ByteAt(bytes, pos) != 0xff) {
      return InvalidArgumentError("malformed JPEG: expected a marker at offset " + std::to_string(pos) +
                                  ", found byte " + Hex(ByteAt(bytes, pos), 2));
    }
    const size_t marker_pos = pos;
    while (pos < size && ByteAt(bytes, pos) == 0xff) ++pos;  // the marker prefix and any fill bytes
    if (pos >= size) continue;                               // reported as truncated above
    const uint8_t marker = ByteAt(bytes, pos++);
    if (marker == kJpegEoi) {
      if (!seen_sof) return InvalidArgumentError("malformed JPEG: EOI marker before any SOF frame header");
      if (!seen_sos) return InvalidArgumentError("malformed JPEG: EOI marker before any SOS scan");
      break;
    }
    if (marker == kJpegSoi) {
      return InvalidArgumentError("malformed JPEG: unexpected second SOI marker at offset " +
                                  std::to_string(marker_pos));
    }
    if (marker == 0x00) {
      return InvalidArgumentError("malformed JPEG: invalid marker FF 00 at offset " + std::to_string(marker_pos));
    }
    if (marker == kJpegTem || (marker >= kJpegRst0 && marker <= kJpegRst7)) continue;  // no length field

    if (size - pos < kJpegSegmentLengthBytes) {
      return InvalidArgumentError("truncated JPEG: the data ends inside the length of the " + MarkerName(marker) +
                                  " segment at offset " + std::to_string(marker_pos));
    }
    const size_t length = ReadU16Be(bytes, pos);  // includes the two length bytes
    if (length < kJpegSegmentLengthBytes) {
      return InvalidArgumentError("malformed JPEG: the " + MarkerName(marker) + " segment at offset " +
                                  std::to_string(marker_pos) + " declares length " + std::to_string(length) +
                                  " (minimum 2)");
    }
    if (size - pos < length) {
      return InvalidArgumentError("truncated JPEG: the " + MarkerName(marker) + " segment at offset " +
                                  std::to_string(marker_pos) + " declares " + std::to_string(length) +
                                  " bytes but only " + std::to_string(size - pos) + " remain");
    }
    const size_t data = pos + kJpegSegmentLengthBytes;
    const size_t data_length = length - kJpegSegmentLengthBytes;
    pos += length;

    if (IsSofMarker(marker)) {
      if (seen_sof) {
        return InvalidArgumentError("malformed JPEG: second frame header (" + MarkerName(marker) + ") at offset " +
                                    std::to_string(marker_pos));
      }
      CNN_RETURN_IF_ERROR(ParseJpegSof(bytes, data, data_length, marker, marker_pos, &header));
      CNN_RETURN_IF_ERROR(CheckPixelCap(ImageFormat::kJpeg, header.width_px, header.height_px, max_pixels));
      seen_sof = true;
    } else if (marker == kJpegSos) {
      if (!seen_sof) {
        return InvalidArgumentError("malformed JPEG: no SOF frame header before the first scan (SOS at offset " +
                                    std::to_string(marker_pos) + ")");
      }
      seen_sos = true;
      CNN_ASSIGN_OR_RETURN(pos, SkipEntropyCodedData(bytes, pos, marker_pos));
    }
  }
  return header;
}

}  // namespace

std::string_view ImageFormatName(ImageFormat format) {
  switch (format) {
    case ImageFormat::kJpeg:
      return "JPEG";
    case ImageFormat::kPng:
      return "PNG";
    case ImageFormat::kRaw:
      return "raw pixels";
  }
  return "unknown";
}

StatusOr<ImageHeader> InspectImage(std::string_view bytes, int64_t max_pixels) {
  if (max_pixels <= 0) {
    return InvalidArgumentError("max_pixels is " + std::to_string(max_pixels) + "; it must be positive");
  }
  if (StartsWith(bytes, kPngSignature)) return InspectPng(bytes, max_pixels);
  if (StartsWith(bytes, kJpegSignature)) return InspectJpeg(bytes, max_pixels);
  return InvalidArgumentError("unsupported image format (" + DescribeUnsupported(bytes) +
                              "): only JPEG and PNG are accepted");
}

}  // namespace cnnserve
