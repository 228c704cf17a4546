#include "server/preprocess/image_header.h"

#include <gtest/gtest.h>

#include <opencv2/core.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "tests/server/preprocess/test_images.h"

namespace cnnserve {
namespace {

using ::cnnserve::testing::EncodeJpeg;
using ::cnnserve::testing::EncodePng;
using ::cnnserve::testing::FindJpegSegment;
using ::cnnserve::testing::IhdrData;
using ::cnnserve::testing::JpegSegmentLength;
using ::cnnserve::testing::kPngSignature;
using ::cnnserve::testing::PatternBgr;
using ::cnnserve::testing::PngChunk;
using ::cnnserve::testing::PngSignatureAndIhdr;

constexpr int64_t kDefaultMaxPixels = 40'000'000;
constexpr uint8_t kSof0 = 0xc0;
constexpr uint8_t kApp0 = 0xe0;

// Expects INVALID_ARGUMENT whose message contains every one of `parts`.
void ExpectInvalid(const StatusOr<ImageHeader>& result, const std::vector<std::string>& parts) {
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument) << result.status().ToString();
  for (const std::string& part : parts) {
    EXPECT_NE(result.status().message().find(part), std::string::npos)
        << "message \"" << result.status().message() << "\" lacks \"" << part << "\"";
  }
}

// A minimal structurally complete PNG around `ihdr` (the IDAT content is not valid zlib: InspectImage does not
// look inside).
std::string MinimalPng(const std::string& ihdr_data, bool with_plte = false) {
  return std::string(kPngSignature) + PngChunk("IHDR", ihdr_data) +
         (with_plte ? PngChunk("PLTE", std::string(3, '\0')) : "") + PngChunk("IDAT", "xx") + PngChunk("IEND", "");
}

TEST(InspectImageTest, ReadsPngHeader) {
  const auto header = InspectImage(EncodePng(PatternBgr(37, 23)), kDefaultMaxPixels);
  ASSERT_TRUE(header.ok()) << header.status().ToString();
  EXPECT_EQ(header->format, ImageFormat::kPng);
  EXPECT_EQ(header->width_px, 37);
  EXPECT_EQ(header->height_px, 23);
  EXPECT_EQ(header->channels, 3);
  EXPECT_EQ(header->bit_depth, 8);
}

TEST(InspectImageTest, ReadsPngDepthAndChannels) {
  const auto gray16 = InspectImage(EncodePng(cv::Mat(5, 6, CV_16UC1, cv::Scalar(1000))), kDefaultMaxPixels);
  ASSERT_TRUE(gray16.ok()) << gray16.status().ToString();
  EXPECT_EQ(gray16->bit_depth, 16);
  EXPECT_EQ(gray16->channels, 1);
  const auto bgra = InspectImage(EncodePng(cv::Mat(5, 6, CV_8UC4, cv::Scalar(1, 2, 3, 4))), kDefaultMaxPixels);
  ASSERT_TRUE(bgra.ok()) << bgra.status().ToString();
  EXPECT_EQ(bgra->channels, 4);
  EXPECT_FALSE(bgra->has_transparency);
  // A tRNS chunk (which decoders turn into alpha) is reported.
  const std::string trns = std::string(kPngSignature) + PngChunk("IHDR", testing::IhdrData(4, 4, 8, 2)) +
                           PngChunk("tRNS", std::string(6, '\0')) + PngChunk("IDAT", "xx") + PngChunk("IEND", "");
  const auto with_trns = InspectImage(trns, kDefaultMaxPixels);
  ASSERT_TRUE(with_trns.ok()) << with_trns.status().ToString();
  EXPECT_TRUE(with_trns->has_transparency);
}

TEST(InspectImageTest, ReadsJpegHeaders) {
  struct Case {
    cv::Mat image;
    bool progressive;
    int channels;
  };
  const std::vector<Case> cases = {{PatternBgr(41, 17), false, 3},
                                   {PatternBgr(41, 17), true, 3},
                                   {cv::Mat(17, 41, CV_8UC1, cv::Scalar(77)), false, 1}};
  for (const Case& c : cases) {
    const auto header = InspectImage(EncodeJpeg(c.image, 90, c.progressive), kDefaultMaxPixels);
    ASSERT_TRUE(header.ok()) << header.status().ToString();
    EXPECT_EQ(header->format, ImageFormat::kJpeg);
    EXPECT_EQ(header->width_px, 41);
    EXPECT_EQ(header->height_px, 17);
    EXPECT_EQ(header->channels, c.channels);
    EXPECT_EQ(header->bit_depth, 8);
  }
}

TEST(InspectImageTest, RejectsEmptyInput) {
  ExpectInvalid(InspectImage("", kDefaultMaxPixels),
                {"unsupported image format (empty input, 0 bytes): only JPEG and PNG are accepted"});
}

TEST(InspectImageTest, NamesOtherFormats) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {std::string("GIF89a\x01\x00\x01\x00\x80\x00\x00", 13), "(GIF)"},
      {"GIF87a", "(GIF)"},
      {std::string("BM\x36\x00\x00\x00\x00\x00", 8), "(BMP)"},
      {std::string("RIFF\x24\x00\x00\x00WEBPVP8 ", 16), "(WebP)"},
      {std::string("II*\x00\x08\x00\x00\x00", 8), "(TIFF)"},
      {std::string("MM\x00*\x00\x00\x00\x08", 8), "(TIFF)"},
      {std::string("\x00\x00\x00\x0cjP  \r\n\x87\n", 12), "(JPEG 2000)"},
      {std::string("\x00\x00\x00\x18"
                   "ftypheic\x00\x00\x00\x00",
                   16),
       "(HEIF)"},
      {std::string("\x00\x00\x00\x18"
                   "ftypavif\x00\x00\x00\x00",
                   16),
       "(AVIF)"},
      {std::string("\x00\x00\x01\x00\x01\x00", 6), "(ICO)"},
      {std::string("\x89PN", 3), "(truncated PNG signature, 3 bytes)"},
      {std::string("\xff\xd8", 2), "(truncated JPEG signature, 2 bytes)"},
      {std::string("\x12\x34\x56\x78\x9a\xbc\xde\xf0\x11\x22", 10),
       "(unrecognised, first bytes 12 34 56 78 9a bc de f0)"},
  };
  for (const auto& [bytes, name] : cases) {
    ExpectInvalid(InspectImage(bytes, kDefaultMaxPixels),
                  {"unsupported image format " + name, "only JPEG and PNG are accepted"});
  }
}

TEST(InspectImageTest, RejectsRandomBytes) {
  cv::RNG rng(1234);
  for (int trial = 0; trial < 200; ++trial) {
    std::string bytes(1 + rng.uniform(0, 300), '\0');
    for (char& c : bytes) c = static_cast<char>(rng.uniform(0, 256));
    const auto result = InspectImage(bytes, kDefaultMaxPixels);
    if (result.ok()) continue;  // vanishingly unlikely; checked below
    EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument) << result.status().ToString();
  }
  ExpectInvalid(InspectImage(std::string(100, '\x5a'), kDefaultMaxPixels), {"unrecognised, first bytes 5a 5a"});
}

TEST(InspectImageTest, RejectsEveryTruncationOfAPng) {
  const std::string png = EncodePng(PatternBgr(24, 16));
  ASSERT_TRUE(InspectImage(png, kDefaultMaxPixels).ok());
  for (size_t n = 0; n < png.size(); ++n) {
    const auto result = InspectImage(std::string_view(png).substr(0, n), kDefaultMaxPixels);
    ASSERT_FALSE(result.ok()) << "prefix of " << n << " bytes accepted";
    EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  }
  // Cut in the image data and just before the end: named as truncation.
  ExpectInvalid(InspectImage(png.substr(0, png.size() / 2), kDefaultMaxPixels), {"truncated PNG", "IDAT"});
  ExpectInvalid(InspectImage(png.substr(0, png.size() - 12), kDefaultMaxPixels),
                {"truncated PNG: the data ends at offset", "without an IEND chunk"});
}

TEST(InspectImageTest, RejectsEveryTruncationOfAJpeg) {
  for (bool progressive : {false, true}) {
    const std::string jpeg = EncodeJpeg(PatternBgr(24, 16), 90, progressive);
    ASSERT_TRUE(InspectImage(jpeg, kDefaultMaxPixels).ok());
    for (size_t n = 0; n < jpeg.size(); ++n) {
      const auto result = InspectImage(std::string_view(jpeg).substr(0, n), kDefaultMaxPixels);
      ASSERT_FALSE(result.ok()) << "prefix of " << n << " bytes accepted (progressive " << progressive << ")";
      EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
    }
    // Missing only the EOI marker.
    ExpectInvalid(InspectImage(jpeg.substr(0, jpeg.size() - 2), kDefaultMaxPixels),
                  {"truncated JPEG", "before the EOI marker"});
  }
}

TEST(InspectImageTest, IgnoresBytesAfterTheEnd) {
  EXPECT_TRUE(InspectImage(EncodePng(PatternBgr(8, 8)) + "trailer", kDefaultMaxPixels).ok());
  EXPECT_TRUE(InspectImage(EncodeJpeg(PatternBgr(8, 8)) + "trailer", kDefaultMaxPixels).ok());
}

TEST(InspectImageTest, RejectsHugeDeclaredPngBeforeLookingFurther) {
  // Header only (no IDAT, no IEND): the pixel cap fires first, whatever the CRC.
  for (bool valid_crc : {true, false}) {
    ExpectInvalid(InspectImage(PngSignatureAndIhdr(30000, 30000, valid_crc), kDefaultMaxPixels),
                  {"PNG image declares 30000x30000 = 900000000 pixels, which exceeds max_pixels 40000000"});
  }
  // A structurally complete file too.
  ExpectInvalid(InspectImage(MinimalPng(IhdrData(30000, 30000)), kDefaultMaxPixels), {"900000000", "40000000"});
  // The largest PNG dimensions.
  ExpectInvalid(InspectImage(PngSignatureAndIhdr(0x7fffffff, 0x7fffffff), kDefaultMaxPixels),
                {"2147483647x2147483647", "max_pixels"});
}

TEST(InspectImageTest, PixelCapIsInclusive) {
  const std::string png = EncodePng(PatternBgr(20, 10));
  EXPECT_TRUE(InspectImage(png, 200).ok());
  ExpectInvalid(InspectImage(png, 199), {"20x10 = 200 pixels, which exceeds max_pixels 199"});
  const std::string jpeg = EncodeJpeg(PatternBgr(20, 10));
  EXPECT_TRUE(InspectImage(jpeg, 200).ok());
  ExpectInvalid(InspectImage(jpeg, 199), {"JPEG image declares 20x10 = 200 pixels, which exceeds max_pixels 199"});
  ExpectInvalid(InspectImage(png, 0), {"max_pixels is 0"});
}

TEST(InspectImageTest, RejectsMalformedPngHeaders) {
  EXPECT_TRUE(InspectImage(MinimalPng(IhdrData(4, 4)), kDefaultMaxPixels).ok());
  ExpectInvalid(InspectImage(MinimalPng(IhdrData(0, 4)), kDefaultMaxPixels), {"IHDR declares 0x4"});
  ExpectInvalid(InspectImage(MinimalPng(IhdrData(4, 0x80000000u)), kDefaultMaxPixels), {"4x2147483648"});
  ExpectInvalid(InspectImage(MinimalPng(IhdrData(4, 4, /*bit_depth=*/3)), kDefaultMaxPixels),
                {"bit depth 3 with colour type 2"});
  ExpectInvalid(InspectImage(MinimalPng(IhdrData(4, 4, 16, /*color_type=*/3)), kDefaultMaxPixels),
                {"bit depth 16 with colour type 3"});
  ExpectInvalid(InspectImage(MinimalPng(IhdrData(4, 4, 8, /*color_type=*/5)), kDefaultMaxPixels),
                {"colour type 5"});
  ExpectInvalid(InspectImage(MinimalPng(IhdrData(4, 4, 8, 2, /*interlace=*/2)), kDefaultMaxPixels),
                {"interlace method 2"});
  // IHDR not first, or with the wrong length.
  ExpectInvalid(
      InspectImage(std::string(kPngSignature) + PngChunk("gAMA", "abcd") + PngChunk("IHDR", IhdrData(4, 4)),
                   kDefaultMaxPixels),
      {"the first chunk is 'gAMA', expected 'IHDR'"});
  ExpectInvalid(
      InspectImage(std::string(kPngSignature) + PngChunk("IHDR", IhdrData(4, 4).substr(0, 12)), kDefaultMaxPixels),
      {"IHDR chunk length is 12, expected 13"});
  ExpectInvalid(InspectImage(PngSignatureAndIhdr(4, 4).substr(0, 20), kDefaultMaxPixels),
                {"too short for the IHDR chunk"});
}

TEST(InspectImageTest, RejectsMalformedPngChunks) {
  const std::string head = PngSignatureAndIhdr(4, 4);
  // A chunk length that would overflow a naive `pos + length + 12`.
  ExpectInvalid(InspectImage(head + testing::U32Be(0xfffffff0u) + "IDAT" + "data", kDefaultMaxPixels),
                {"declares length 4294967280"});
  ExpectInvalid(InspectImage(head + testing::U32Be(0x7ffffff0u) + "IDAT" + "data", kDefaultMaxPixels),
                {"truncated PNG: chunk 'IDAT'", "only 4 remain"});
  ExpectInvalid(InspectImage(head + testing::U32Be(0) + std::string("ID\0T", 4) + "crc!", kDefaultMaxPixels),
                {"invalid chunk type 'ID\\x00T'"});
  ExpectInvalid(InspectImage(head + PngChunk("IEND", ""), kDefaultMaxPixels), {"no IDAT"});
  ExpectInvalid(InspectImage(head + PngChunk("IDAT", "x") + PngChunk("IEND", "x"), kDefaultMaxPixels),
                {"IEND chunk has length 1"});
  ExpectInvalid(InspectImage(head + PngChunk("IHDR", IhdrData(4, 4)), kDefaultMaxPixels), {"second IHDR"});
  ExpectInvalid(InspectImage(MinimalPng(IhdrData(4, 4, 8, 3)), kDefaultMaxPixels), {"without a PLTE chunk"});
  EXPECT_TRUE(InspectImage(MinimalPng(IhdrData(4, 4, 8, 3), /*with_plte=*/true), kDefaultMaxPixels).ok());
}

class JpegSurgeryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    jpeg_ = EncodeJpeg(PatternBgr(24, 16));
    sof_ = FindJpegSegment(jpeg_, kSof0);
    ASSERT_NE(sof_, std::string::npos);
    ASSERT_TRUE(InspectImage(jpeg_, kDefaultMaxPixels).ok());
  }
  // Byte `offset` within the SOF segment (0 is its 0xFF).
  char& SofByte(size_t offset) { return jpeg_[sof_ + offset]; }

  std::string jpeg_;
  size_t sof_ = 0;
};

TEST_F(JpegSurgeryTest, MissingSof) {
  jpeg_.erase(sof_, 2 + JpegSegmentLength(jpeg_, sof_));
  ExpectInvalid(InspectImage(jpeg_, kDefaultMaxPixels),
                {"malformed JPEG: no SOF frame header before the first scan"});
}

TEST_F(JpegSurgeryTest, SofTooShort) {
  jpeg_.erase(sof_ + 4, JpegSegmentLength(jpeg_, sof_) - 2);  // keep FF C0 and the length field
  SofByte(2) = 0;
  SofByte(3) = 5;  // 3 data bytes
  jpeg_.insert(sof_ + 4, "\x08\x00\x10", 3);
  ExpectInvalid(InspectImage(jpeg_, kDefaultMaxPixels),
                {"malformed JPEG: SOF0 segment at offset", "has 3 data bytes, too short for a frame header"});
}

TEST_F(JpegSurgeryTest, SofLengthDisagreesWithComponents) {
  SofByte(9) = 2;  // 2 components declared, 3 present
  ExpectInvalid(InspectImage(jpeg_, kDefaultMaxPixels), {"has 15 data bytes but declares 2 components"});
}

TEST_F(JpegSurgeryTest, SofZeroWidth) {
  SofByte(7) = 0;
  SofByte(8) = 0;
  ExpectInvalid(InspectImage(jpeg_, kDefaultMaxPixels), {"declares 0x16; width and height must be positive"});
}

TEST_F(JpegSurgeryTest, SofTwelveBitPrecision) {
  SofByte(4) = 12;
  ExpectInvalid(InspectImage(jpeg_, kDefaultMaxPixels), {"12-bit samples; only 8-bit JPEG is accepted"});
}

TEST_F(JpegSurgeryTest, LosslessCodingProcess) {
  SofByte(1) = static_cast<char>(0xc3);
  ExpectInvalid(InspectImage(jpeg_, kDefaultMaxPixels), {"SOF3 segment", "lossless or hierarchical"});
}

TEST_F(JpegSurgeryTest, HugeDeclaredSize) {
  SofByte(5) = SofByte(7) = static_cast<char>(0xfd);  // 65000 = 0xfde8
  SofByte(6) = SofByte(8) = static_cast<char>(0xe8);
  ExpectInvalid(InspectImage(jpeg_, kDefaultMaxPixels),
                {"JPEG image declares 65000x65000 = 4225000000 pixels, which exceeds max_pixels 40000000"});
}

TEST_F(JpegSurgeryTest, SecondSof) {
  const std::string sof = jpeg_.substr(sof_, 2 + JpegSegmentLength(jpeg_, sof_));
  jpeg_.insert(sof_, sof);
  ExpectInvalid(InspectImage(jpeg_, kDefaultMaxPixels), {"second frame header (SOF0)"});
}

TEST_F(JpegSurgeryTest, SegmentLengthPastTheEnd) {
  const size_t app0 = FindJpegSegment(jpeg_, kApp0);
  ASSERT_NE(app0, std::string::npos);
  jpeg_[app0 + 2] = static_cast<char>(0xff);
  jpeg_[app0 + 3] = static_cast<char>(0xff);
  jpeg_.resize(app0 + 100);
  ExpectInvalid(InspectImage(jpeg_, kDefaultMaxPixels),
                {"truncated JPEG: the APP0 segment at offset 2 declares 65535 bytes but only 98 remain"});
}

TEST_F(JpegSurgeryTest, SegmentLengthBelowTwo) {
  jpeg_[sof_ + 2] = 0;
  jpeg_[sof_ + 3] = 1;
  ExpectInvalid(InspectImage(jpeg_, kDefaultMaxPixels), {"SOF0 segment", "declares length 1 (minimum 2)"});
}

TEST_F(JpegSurgeryTest, GarbageWhereAMarkerBelongs) {
  jpeg_[sof_] = 0x12;
  ExpectInvalid(InspectImage(jpeg_, kDefaultMaxPixels),
                {"malformed JPEG: expected a marker at offset " + std::to_string(sof_) + ", found byte 12"});
}

TEST(InspectImageJpegTest, RejectsDegenerateStreams) {
  ExpectInvalid(InspectImage(std::string("\xff\xd8\xff\xd9", 4), kDefaultMaxPixels),
                {"EOI marker before any SOF frame header"});
  ExpectInvalid(InspectImage(std::string("\xff\xd8\xff\xd8", 4), kDefaultMaxPixels), {"unexpected second SOI"});
  ExpectInvalid(InspectImage(std::string("\xff\xd8\xff", 3), kDefaultMaxPixels),
                {"truncated JPEG: the data ends at offset 3 before the SOF frame header"});
  ExpectInvalid(InspectImage(std::string("\xff\xd8\xff\xff\xff", 5), kDefaultMaxPixels), {"truncated JPEG"});
  ExpectInvalid(InspectImage(std::string("\xff\xd8\xff\xe0\x00", 5), kDefaultMaxPixels),
                {"truncated JPEG: the data ends inside the length of the APP0 segment"});
  ExpectInvalid(InspectImage(std::string("\xff\xd8\xff\x00", 4), kDefaultMaxPixels), {"invalid marker FF 00"});
}

}  // namespace
}  // namespace cnnserve
