// InspectImage: the gate in front of the image decoder. It identifies the container from its magic bytes, reads
// the declared dimensions from the header itself (PNG IHDR; JPEG SOFn segment), enforces the pixel cap, and walks
// the container structure to its end marker, every read bounds-checked, all without decoding any pixel data.
// Only input that passes goes on to OpenCV (see preprocess.h). It is plain C++ (no OpenCV) and linear in the
// input size.
//
// What is checked, in this order:
//   1. Magic bytes: JPEG (FF D8 FF) or PNG (89 50 4E 47 0D 0A 1A 0A). Anything else is rejected, naming the format
//      when it is recognisable (GIF, BMP, WebP, TIFF, JPEG 2000, HEIF/AVIF, ICO) or showing the first bytes.
//   2. The declared width and height (and for PNG bit depth, colour type, compression, filter and interlace
//      methods; for JPEG the coding process, 8-bit precision and 1, 3 or 4 components) are well formed.
//   3. width * height <= max_pixels. This runs as soon as the dimensions are known, before anything else is read.
//   4. Completeness, which is how truncated uploads are caught (decoders are lenient: libjpeg pads a truncated
//      JPEG with grey and only warns):
//        PNG:  every chunk lies entirely inside the input, IHDR comes first, there is at least one IDAT (and a
//              PLTE for palette images), and the chunk sequence reaches IEND. CRCs are not checked here (libpng
//              checks them while decoding).
//        JPEG: the marker segments are walked from SOI, through each scan's entropy-coded data (skipping stuffed
//              FF 00 bytes and RSTn markers), to an EOI marker. There must be exactly one SOF, before the first
//              SOS. A non-marker byte where a marker must start is an error (libjpeg would only warn).
//      Bytes after IEND / EOI are ignored: some cameras and editors append trailers.
// Errors are INVALID_ARGUMENT with a message naming the problem, the offset and the numbers involved.
// Corruption inside compressed data (zlib stream, entropy-coded scan) is not detected here.
// Thread-safety: pure functions, reentrant.
#ifndef CNNSERVE_SERVER_PREPROCESS_IMAGE_HEADER_H_
#define CNNSERVE_SERVER_PREPROCESS_IMAGE_HEADER_H_

#include <cstdint>
#include <string_view>

#include "engine/common/status.h"

namespace cnnserve {

// kRaw: pixels sent as an array of samples (ImageFromPixels), not a file.
enum class ImageFormat { kJpeg, kPng, kRaw };

// "JPEG", "PNG" or "raw pixels".
std::string_view ImageFormatName(ImageFormat format);

// What the header declares.
struct ImageHeader {
  ImageFormat format = ImageFormat::kPng;
  int64_t width_px = 0;
  int64_t height_px = 0;
  // Colour components as stored: JPEG 1, 3 or 4 (CMYK); PNG 1 (grey), 2 (grey + alpha), 3 (RGB or palette),
  // 4 (RGBA).
  int channels = 0;
  // Bits per sample: JPEG 8; PNG 1, 2, 4, 8 or 16 (palette: bits per index).
  int bit_depth = 0;
  // PNG: a tRNS chunk is present (decoders then add an alpha channel). JPEG: false.
  bool has_transparency = false;
};

// Checks `bytes` as described above. `max_pixels` > 0. Does not keep `bytes`.
StatusOr<ImageHeader> InspectImage(std::string_view bytes, int64_t max_pixels);

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_PREPROCESS_IMAGE_HEADER_H_
