// The decode budget on its own, then through DecodeImage and ImageFromPixels with real PNGs and JPEGs: the
// decoded bytes come from bit depth and channels (not only pixels), an image over max_decoded_bytes is refused
// before any decoder runs, and a budget bounds the bytes held by live DecodedImages across threads.
#include "server/preprocess/decode_budget.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "server/preprocess/preprocess.h"
#include "tests/server/preprocess/test_images.h"

namespace cnnserve {
namespace {

using ::cnnserve::testing::EncodePng;
using ::cnnserve::testing::IhdrData;
using ::cnnserve::testing::kPngSignature;
using ::cnnserve::testing::PngChunk;

TEST(DecodeBudgetTest, ReservesReleasesAndRefusesWhatDoesNotFit) {
  ASSERT_FALSE(DecodeBudget::Create(0).ok());
  std::shared_ptr<DecodeBudget> budget = *DecodeBudget::Create(100);
  {
    StatusOr<DecodeBudget::Reservation> a = budget->Reserve(60);
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(budget->in_use_bytes(), 60);
    const StatusOr<DecodeBudget::Reservation> refused = budget->Reserve(41);
    EXPECT_EQ(refused.status().code(), StatusCode::kUnavailable);
    EXPECT_NE(refused.status().message().find("retry"), std::string::npos) << refused.status().ToString();
    StatusOr<DecodeBudget::Reservation> b = budget->Reserve(40);
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(budget->in_use_bytes(), 100);
    DecodeBudget::Reservation moved = std::move(*a);  // the bytes go with the move, once
    EXPECT_EQ(moved.bytes(), 60);
    EXPECT_EQ(budget->in_use_bytes(), 100);
  }
  EXPECT_EQ(budget->in_use_bytes(), 0);
  EXPECT_EQ(budget->peak_bytes(), 100);
  EXPECT_EQ(budget->Reserve(101).status().code(), StatusCode::kInvalidArgument);  // can never fit
  EXPECT_EQ(budget->Reserve(-1).status().code(), StatusCode::kInvalidArgument);
}

TEST(DecodedBytesTest, CountsBitDepthChannelsAndTheCopyWithoutAlpha) {
  struct Case {
    ImageFormat format;
    int channels;
    int bit_depth;
    bool transparency;
    int64_t bytes_per_pixel;
  };
  const Case cases[] = {
      {ImageFormat::kPng, 1, 8, false, 1},   // grey
      {ImageFormat::kPng, 1, 16, false, 2},  // 16-bit grey
      {ImageFormat::kPng, 1, 8, true, 7},    // grey + tRNS: BGRA, then BGR
      {ImageFormat::kPng, 2, 8, false, 5},   // grey + alpha: BGRA, then one grey channel
      {ImageFormat::kPng, 3, 8, false, 3},   // RGB (or palette)
      {ImageFormat::kPng, 3, 1, true, 7},    // palette + tRNS
      {ImageFormat::kPng, 4, 16, false, 14},  // 16-bit RGBA: the attack of the issue
      {ImageFormat::kJpeg, 1, 8, false, 1},
      {ImageFormat::kJpeg, 3, 8, false, 3},
      {ImageFormat::kJpeg, 4, 8, false, 3},  // CMYK, converted to BGR row by row
  };
  for (const Case& c : cases) {
    ImageHeader header;
    header.format = c.format;
    header.width_px = 10;
    header.height_px = 3;
    header.channels = c.channels;
    header.bit_depth = c.bit_depth;
    header.has_transparency = c.transparency;
    EXPECT_EQ(DecodedBytes(header), 30 * c.bytes_per_pixel)
        << ImageFormatName(c.format) << " channels " << c.channels << " depth " << c.bit_depth;
  }
}

// The finding: a tiny PNG declaring 6300 x 6300 16-bit RGBA (under the 40M-pixel cap) took 2 s and 370 MB to
// decode. Now its declared decode memory (555 MB) is refused before any decoder runs (the IDAT here is not even
// valid zlib: had a decoder run, the error would be another).
TEST(DecodeLimitsTest, HugeDecodedSizeIsRefusedBeforeDecoding) {
  const std::string png = std::string(kPngSignature) + PngChunk("IHDR", IhdrData(6300, 6300, 16, 6)) +
                          PngChunk("IDAT", "not zlib") + PngChunk("IEND", "");
  DecodeLimits limits;
  const StatusOr<DecodedImage> image = DecodeImage(png, limits);
  ASSERT_FALSE(image.ok());
  EXPECT_EQ(image.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(image.status().message(),
            "the 6300x6300 16-bit PNG image takes 555660000 bytes to decode, over max_decoded_bytes 268435456");
  // The same for raw pixels.
  limits.max_decoded_bytes = 100;
  EXPECT_EQ(ImageFromPixels(std::string(101, '\0'), 101, 1, 1, limits).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(ImageFromPixels(std::string(100, '\0'), 100, 1, 1, limits).ok());
}

TEST(DecodeLimitsTest, DecodedImagesHoldTheirReservationUntilTheLastCopyGoes) {
  const std::string png = EncodePng(cv::Mat(20, 30, CV_16UC4, cv::Scalar(1, 2, 3, 4)));  // 20*30*2*(4+3)
  DecodeLimits limits;
  limits.budget = *DecodeBudget::Create(20 * 30 * 2 * 7 * 2);  // room for two
  StatusOr<DecodedImage> first = DecodeImage(png, limits);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(limits.budget->in_use_bytes(), 8400);
  DecodedImage copy = *first;
  StatusOr<DecodedImage> second = DecodeImage(png, limits);
  ASSERT_TRUE(second.ok());
  const StatusOr<DecodedImage> third = DecodeImage(png, limits);
  EXPECT_EQ(third.status().code(), StatusCode::kUnavailable) << third.status().ToString();
  first = StatusOr<DecodedImage>(DecodedImage());
  EXPECT_EQ(limits.budget->in_use_bytes(), 16800);  // `copy` still holds the pixels
  copy = DecodedImage();
  EXPECT_EQ(limits.budget->in_use_bytes(), 8400);
  EXPECT_TRUE(DecodeImage(png, limits).ok());  // decoded and dropped at once
  second = StatusOr<DecodedImage>(DecodedImage());
  EXPECT_EQ(limits.budget->in_use_bytes(), 0);
  // A failed decode returns what it reserved: a well-formed PNG whose image data is not zlib.
  const std::string corrupt = std::string(kPngSignature) + PngChunk("IHDR", IhdrData(30, 20, 16, 6)) +
                              PngChunk("IDAT", "xx") + PngChunk("IEND", "");
  EXPECT_EQ(DecodeImage(corrupt, limits).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(limits.budget->in_use_bytes(), 0);
}

// Many threads decoding at once never hold more than the budget; those that do not fit are refused, not blocked.
TEST(DecodeLimitsTest, ConcurrentDecodesStayWithinTheBudget) {
  const std::string png = EncodePng(cv::Mat(64, 64, CV_8UC3, cv::Scalar(9, 8, 7)));  // 12288 bytes each
  DecodeLimits limits;
  limits.budget = *DecodeBudget::Create(3 * 12288);
  std::atomic<int> ok{0}, refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        StatusOr<DecodedImage> image = DecodeImage(png, limits);
        if (image.ok()) {
          ++ok;
        } else if (image.status().code() == StatusCode::kUnavailable) {
          ++refused;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(ok + refused, 400);
  EXPECT_GT(ok.load(), 0);
  EXPECT_LE(limits.budget->peak_bytes(), 3 * 12288);
  EXPECT_EQ(limits.budget->in_use_bytes(), 0);
}

}  // namespace
}  // namespace cnnserve
