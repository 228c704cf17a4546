#include "server/preprocess/preprocess.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <string>
#include <thread>
#include <vector>

#include "server/preprocess/image_input.h"
#include "tests/server/preprocess/test_images.h"

namespace cnnserve {
namespace {

using ::cnnserve::testing::EncodeJpeg;
using ::cnnserve::testing::EncodePng;
using ::cnnserve::testing::FindJpegSegment;
using ::cnnserve::testing::JpegSegmentLength;
using ::cnnserve::testing::PatternBgr;
using ::cnnserve::testing::PngSignatureAndIhdr;
using ::cnnserve::testing::RawPng;

constexpr float kScale = 1.0f / 255.0f;
const std::vector<float> kImageNetMean = {0.485f, 0.456f, 0.406f};
const std::vector<float> kImageNetStddev = {0.229f, 0.224f, 0.225f};

PreprocessOptions MakeOptions(ColorFormat color, int64_t height, int64_t width) {
  PreprocessOptions options;
  options.color = color;
  options.target_height_px = height;
  options.target_width_px = width;
  return options;
}

// The server's path for one encoded image (PrepareItem, image_input.h): the C x H x W input, or its error.
StatusOr<std::vector<float>> Prepare(const std::string& bytes, const PreprocessOptions& options) {
  ImageItem item;
  item.kind = ImageItem::Kind::kEncoded;
  item.data = bytes;
  ItemTarget target;
  target.preprocess = &options;
  if (ValidatePreprocessOptions(options).ok()) target.input_dims = PreprocessedDims(options);
  std::vector<float> values(static_cast<size_t>(target.input_dims.empty() ? 0 : NumElements(target.input_dims)));
  target.dst = values.data();
  CNN_RETURN_IF_ERROR(PrepareItem(item, options.decode_limits, target));
  return values;
}

// Runs Prepare and returns the values (asserting success).
std::vector<float> RunPipeline(const std::string& bytes, const PreprocessOptions& options) {
  StatusOr<std::vector<float>> values = Prepare(bytes, options);
  EXPECT_TRUE(values.ok()) << values.status().ToString();
  if (!values.ok()) return {};
  EXPECT_EQ(static_cast<int64_t>(values->size()), NumElements(PreprocessedDims(options)));
  return *std::move(values);
}

// The 8-bit step alone (DecodeImage, then Preprocess), for the tests of Preprocess itself: its interpolation
// modes and integer resize are what the served path falls back to for huge images.
std::vector<float> RunPreprocessStep(const std::string& bytes, const PreprocessOptions& options) {
  const StatusOr<DecodedImage> image = DecodeImage(bytes, options.decode_limits);
  EXPECT_TRUE(image.ok()) << image.status().ToString();
  if (!image.ok()) return {};
  std::vector<float> values(static_cast<size_t>(NumElements(PreprocessedDims(options))));
  const Status status = Preprocess(*image, options, values.data());
  EXPECT_TRUE(status.ok()) << status.ToString();
  return values;
}

// Output value at (c, y, x) of a C x H x W buffer.
float At(const std::vector<float>& values, int64_t height, int64_t width, int c, int y, int x) {
  return values[(static_cast<size_t>(c) * height + y) * width + x];
}

void ExpectInvalid(const Status& status, const std::vector<std::string>& parts) {
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status.ToString();
  for (const std::string& part : parts) {
    EXPECT_NE(status.message().find(part), std::string::npos)
        << "message \"" << status.message() << "\" lacks \"" << part << "\"";
  }
}

void ExpectDecodeInvalid(const std::string& bytes, const std::vector<std::string>& parts) {
  const StatusOr<std::vector<float>> result = Prepare(bytes, MakeOptions(ColorFormat::kRgb, 8, 8));
  ASSERT_FALSE(result.ok());
  ExpectInvalid(result.status(), parts);
}

// ---------------------------------------------------------------------------------------------------------------
// Round trips and colour

TEST(PreprocessTest, PngRoundTripGivesExactNormalisedValues) {
  const cv::Mat image = PatternBgr(5, 4);
  PreprocessOptions options = MakeOptions(ColorFormat::kRgb, 4, 5);
  options.scale = kScale;
  options.mean = kImageNetMean;
  options.stddev = kImageNetStddev;
  const std::vector<float> values = RunPipeline(EncodePng(image), options);
  ASSERT_EQ(values.size(), 3u * 4 * 5);
  for (int c = 0; c < 3; ++c) {
    for (int y = 0; y < 4; ++y) {
      for (int x = 0; x < 5; ++x) {
        // R, G, B from BGR, normalised in float32 operation by operation, as NumPy does in training.
        const float v = image.at<cv::Vec3b>(y, x)[2 - c];
        const float expected = (v * kScale - kImageNetMean[c]) / kImageNetStddev[c];
        EXPECT_EQ(At(values, 4, 5, c, y, x), expected) << c << "," << y << "," << x;
      }
    }
  }
}

TEST(PreprocessTest, BgrTargetKeepsSourceOrderAndRgbSwaps) {
  cv::Mat image(2, 3, CV_8UC3, cv::Scalar(10, 20, 30));  // B=10, G=20, R=30
  PreprocessOptions options = MakeOptions(ColorFormat::kBgr, 2, 3);
  options.scale = 1.0f;
  const std::vector<float> bgr = RunPipeline(EncodePng(image), options);
  options.color = ColorFormat::kRgb;
  const std::vector<float> rgb = RunPipeline(EncodePng(image), options);
  for (int y = 0; y < 2; ++y) {
    for (int x = 0; x < 3; ++x) {
      EXPECT_EQ(At(bgr, 2, 3, 0, y, x), 10.0f);
      EXPECT_EQ(At(bgr, 2, 3, 1, y, x), 20.0f);
      EXPECT_EQ(At(bgr, 2, 3, 2, y, x), 30.0f);
      EXPECT_EQ(At(rgb, 2, 3, 0, y, x), 30.0f);
      EXPECT_EQ(At(rgb, 2, 3, 1, y, x), 20.0f);
      EXPECT_EQ(At(rgb, 2, 3, 2, y, x), 10.0f);
    }
  }
}

TEST(PreprocessTest, SingleMeanAndStddevApplyToEveryChannel) {
  cv::Mat image(1, 1, CV_8UC3, cv::Scalar(0, 100, 200));
  PreprocessOptions options = MakeOptions(ColorFormat::kRgb, 1, 1);
  options.scale = 0.5f;
  options.mean = {10.0f};
  options.stddev = {4.0f};
  const std::vector<float> values = RunPipeline(EncodePng(image), options);
  EXPECT_EQ(values, (std::vector<float>{(100.0f - 10.0f) / 4.0f, (50.0f - 10.0f) / 4.0f, (0.0f - 10.0f) / 4.0f}));
}

TEST(PreprocessTest, GrayImageToRgbReplicatesTheChannel) {
  cv::Mat gray(3, 4, CV_8UC1);
  for (int i = 0; i < 12; ++i) gray.at<uint8_t>(i / 4, i % 4) = static_cast<uint8_t>(i * 20);
  PreprocessOptions options = MakeOptions(ColorFormat::kRgb, 3, 4);
  options.scale = 1.0f;
  for (const std::string& bytes : {EncodePng(gray), EncodeJpeg(gray, 100)}) {
    const auto image = DecodeImage(bytes, DecodeLimits());
    ASSERT_TRUE(image.ok()) << image.status().ToString();
    EXPECT_EQ(image->channels(), 1);
    std::vector<float> values(3 * 3 * 4);
    ASSERT_TRUE(Preprocess(*image, options, values.data()).ok());
    for (int y = 0; y < 3; ++y) {
      for (int x = 0; x < 4; ++x) {
        EXPECT_EQ(At(values, 3, 4, 0, y, x), At(values, 3, 4, 1, y, x));
        EXPECT_EQ(At(values, 3, 4, 0, y, x), At(values, 3, 4, 2, y, x));
        if (image->format() == ImageFormat::kPng) {
          EXPECT_EQ(At(values, 3, 4, 0, y, x), gray.at<uint8_t>(y, x));
        }
      }
    }
  }
}

TEST(PreprocessTest, ColourImageToGrayUsesLumaWeights) {
  const cv::Mat image = PatternBgr(6, 5);
  cv::Mat expected;
  cv::cvtColor(image, expected, cv::COLOR_BGR2GRAY);
  PreprocessOptions options = MakeOptions(ColorFormat::kGray, 5, 6);
  options.scale = 1.0f;
  const std::vector<float> values = RunPipeline(EncodePng(image), options);
  ASSERT_EQ(values.size(), 30u);
  for (int y = 0; y < 5; ++y) {
    for (int x = 0; x < 6; ++x) {
      EXPECT_EQ(At(values, 5, 6, 0, y, x), expected.at<uint8_t>(y, x));
      const cv::Vec3b p = image.at<cv::Vec3b>(y, x);
      EXPECT_NEAR(At(values, 5, 6, 0, y, x), 0.299 * p[2] + 0.587 * p[1] + 0.114 * p[0], 0.51);
    }
  }
}

TEST(PreprocessTest, AlphaIsDropped) {
  cv::Mat bgra(3, 3, CV_8UC4, cv::Scalar(10, 20, 30, 0));
  bgra.at<cv::Vec4b>(1, 1) = cv::Vec4b(40, 50, 60, 128);
  cv::Mat bgr;
  cv::cvtColor(bgra, bgr, cv::COLOR_BGRA2BGR);
  PreprocessOptions options = MakeOptions(ColorFormat::kRgb, 3, 3);
  const auto image = DecodeImage(EncodePng(bgra), DecodeLimits());
  ASSERT_TRUE(image.ok()) << image.status().ToString();
  EXPECT_EQ(image->channels(), 3);
  EXPECT_EQ(RunPipeline(EncodePng(bgra), options), RunPipeline(EncodePng(bgr), options));

  // Grey + alpha (PNG colour type 4, built by hand: OpenCV does not write it).
  const std::string gray_alpha = RawPng(2, 1, 8, 4, {std::string("\x10\xff\x80\x00", 4)});
  const auto gray_image = DecodeImage(gray_alpha, DecodeLimits());
  ASSERT_TRUE(gray_image.ok()) << gray_image.status().ToString();
  EXPECT_EQ(gray_image->channels(), 1);
  options = MakeOptions(ColorFormat::kGray, 1, 2);
  options.scale = 1.0f;
  EXPECT_EQ(RunPipeline(gray_alpha, options), (std::vector<float>{16.0f, 128.0f}));
}

TEST(PreprocessTest, SixteenBitPngMapsToTheEightBitRange) {
  cv::Mat image(1, 4, CV_16UC3);
  image.at<cv::Vec3w>(0, 0) = cv::Vec3w(0, 257, 65535);
  image.at<cv::Vec3w>(0, 1) = cv::Vec3w(257 * 100, 257 * 200, 257 * 255);
  image.at<cv::Vec3w>(0, 2) = cv::Vec3w(1000, 30000, 65534);
  image.at<cv::Vec3w>(0, 3) = cv::Vec3w(1, 2, 3);
  const auto decoded = DecodeImage(EncodePng(image), DecodeLimits());
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(decoded->bit_depth(), 16);
  PreprocessOptions options = MakeOptions(ColorFormat::kBgr, 1, 4);
  options.scale = kScale;
  std::vector<float> values(3 * 4);
  ASSERT_TRUE(Preprocess(*decoded, options, values.data()).ok());
  for (int c = 0; c < 3; ++c) {
    for (int x = 0; x < 4; ++x) {
      const double sample = image.at<cv::Vec3w>(0, x)[c];
      EXPECT_FLOAT_EQ(At(values, 1, 4, c, 0, x), static_cast<float>(sample / 257.0 / 255.0));
    }
  }
  EXPECT_FLOAT_EQ(At(values, 1, 4, 2, 0, 0), 1.0f);             // 65535 -> 255 -> 1
  EXPECT_FLOAT_EQ(At(values, 1, 4, 1, 0, 1), 200.0f / 255.0f);  // 257 * 200 -> 200

  // 16-bit grey.
  const cv::Mat gray(2, 2, CV_16UC1, cv::Scalar(257 * 7));
  options = MakeOptions(ColorFormat::kGray, 2, 2);
  options.scale = 1.0f;
  EXPECT_EQ(RunPipeline(EncodePng(gray), options), std::vector<float>(4, 7.0f));
}

TEST(PreprocessTest, PaletteAndLowBitDepthPngsAreExpanded) {
  // Palette: index 0 -> (255, 0, 0) red, index 1 -> (0, 0, 255) blue; 2 bits per index.
  const std::string palette(std::string("\xff\x00\x00\x00\x00\xff", 6));
  const std::string png = RawPng(3, 1, 2, 3, {std::string(1, static_cast<char>(0b00010000))}, palette);
  PreprocessOptions options = MakeOptions(ColorFormat::kRgb, 1, 3);
  options.scale = 1.0f;
  EXPECT_EQ(RunPipeline(png, options), (std::vector<float>{255, 0, 255, 0, 0, 0, 0, 255, 0}));
  // 1-bit grey: 0 -> 0, 1 -> 255.
  const std::string one_bit = RawPng(4, 1, 1, 0, {std::string(1, static_cast<char>(0b10100000))});
  options = MakeOptions(ColorFormat::kGray, 1, 4);
  options.scale = 1.0f;
  EXPECT_EQ(RunPipeline(one_bit, options), (std::vector<float>{255, 0, 255, 0}));
}

TEST(PreprocessTest, JpegRoundTripIsWithinTolerance) {
  cv::Mat image(32, 48, CV_8UC3);
  for (int y = 0; y < 32; ++y) {
    for (int x = 0; x < 48; ++x) image.at<cv::Vec3b>(y, x) = cv::Vec3b(x * 4, y * 6, 128);
  }
  PreprocessOptions options = MakeOptions(ColorFormat::kRgb, 32, 48);
  options.scale = kScale;
  options.mean = kImageNetMean;
  options.stddev = kImageNetStddev;
  for (bool progressive : {false, true}) {
    const std::vector<float> values = RunPipeline(EncodeJpeg(image, 100, progressive), options);
    ASSERT_EQ(values.size(), 3u * 32 * 48);
    // Errors in 8-bit levels. Quality 100 with 4:2:0 chroma subsampling measures at most 4 here.
    double max_error = 0;
    double total_error = 0;
    for (int c = 0; c < 3; ++c) {
      for (int y = 0; y < 32; ++y) {
        for (int x = 0; x < 48; ++x) {
          const double v = image.at<cv::Vec3b>(y, x)[2 - c];
          const double expected = (v * kScale - kImageNetMean[c]) / kImageNetStddev[c];
          const double error = std::abs(At(values, 32, 48, c, y, x) - expected) * kImageNetStddev[c] / kScale;
          max_error = std::max(max_error, error);
          total_error += error;
        }
      }
    }
    EXPECT_LE(max_error, 8.0) << "progressive " << progressive;
    EXPECT_LE(total_error / values.size(), 1.5) << "progressive " << progressive;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Geometry

const cv::Vec3b kRed(0, 0, 255);
const cv::Vec3b kGreen(0, 255, 0);
const cv::Vec3b kBlue(255, 0, 0);

PreprocessOptions UnitOptions(ResizeMode resize, int64_t height, int64_t width) {
  PreprocessOptions options = MakeOptions(ColorFormat::kRgb, height, width);
  options.resize = resize;
  options.scale = kScale;  // R, G, B planes in [0, 1]
  return options;
}

TEST(PreprocessGeometryTest, ExactResizeStretchesTheWholeImage) {
  // 300 wide x 200 high: left half red, right half blue.
  cv::Mat image(200, 300, CV_8UC3, kRed);
  image(cv::Rect(150, 0, 150, 200)).setTo(kBlue);
  const std::vector<float> values = RunPipeline(EncodePng(image), UnitOptions(ResizeMode::kExact, 100, 100));
  for (int y = 0; y < 100; ++y) {
    for (int x = 0; x < 100; ++x) {
      if (x == 49 || x == 50) continue;  // the boundary may blend
      const bool left = x < 50;
      EXPECT_NEAR(At(values, 100, 100, 0, y, x), left ? 1.0f : 0.0f, 1e-6) << y << "," << x;
      EXPECT_NEAR(At(values, 100, 100, 2, y, x), left ? 0.0f : 1.0f, 1e-6) << y << "," << x;
      EXPECT_NEAR(At(values, 100, 100, 1, y, x), 0.0f, 1e-6);
    }
  }
}

// 300x200 (landscape) or 200x300 (portrait) with 50-pixel green bands at both ends of the long axis, and a centre
// square whose first half (top, or left) is red and second half blue.
cv::Mat BandedImage(bool landscape) {
  cv::Mat image(landscape ? 200 : 300, landscape ? 300 : 200, CV_8UC3, kGreen);
  const cv::Rect centre = landscape ? cv::Rect(50, 0, 200, 200) : cv::Rect(0, 50, 200, 200);
  image(centre).setTo(kRed);
  image(landscape ? cv::Rect(50, 100, 200, 100) : cv::Rect(100, 50, 100, 200)).setTo(kBlue);
  return image;
}

TEST(PreprocessGeometryTest, ShorterSideCropKeepsTheCentreSquare) {
  for (bool landscape : {true, false}) {
    for (int64_t shorter_side : {int64_t{0}, int64_t{100}}) {  // 0: max(target) = 100
      PreprocessOptions options = UnitOptions(ResizeMode::kShorterSideCrop, 100, 100);
      options.resize_shorter_side_px = shorter_side;
      const std::vector<float> values = RunPipeline(EncodePng(BandedImage(landscape)), options);
      ASSERT_EQ(values.size(), 3u * 100 * 100);
      for (int y = 0; y < 100; ++y) {
        for (int x = 0; x < 100; ++x) {
          // No green band survives, not even blended into the edge.
          EXPECT_NEAR(At(values, 100, 100, 1, y, x), 0.0f, 1e-6) << landscape << " " << y << "," << x;
          const int along = landscape ? y : x;  // the red/blue split runs across this axis
          if (along == 49 || along == 50) continue;
          const bool first_half = along < 50;
          EXPECT_NEAR(At(values, 100, 100, 0, y, x), first_half ? 1.0f : 0.0f, 1e-6);
          EXPECT_NEAR(At(values, 100, 100, 2, y, x), first_half ? 0.0f : 1.0f, 1e-6);
        }
      }
    }
  }
}

TEST(PreprocessGeometryTest, ShorterSideCropMatchesResizeThenCentreCrop) {
  // 300x200 -> shorter side 128 -> 192x128 -> centre 100x100 at (46, 14); portrait the other way round.
  for (bool landscape : {true, false}) {
    const cv::Mat image = landscape ? PatternBgr(300, 200) : PatternBgr(200, 300);
    PreprocessOptions options = UnitOptions(ResizeMode::kShorterSideCrop, 100, 100);
    options.resize_shorter_side_px = 128;
    options.scale = 1.0f;
    options.color = ColorFormat::kBgr;
    const std::vector<float> values = RunPipeline(EncodePng(image), options);
    // The served path resizes the float image, as training does.
    cv::Mat image_float;
    image.convertTo(image_float, CV_32F);
    cv::Mat resized;
    cv::resize(image_float, resized, landscape ? cv::Size(192, 128) : cv::Size(128, 192), 0, 0, cv::INTER_LINEAR);
    const cv::Mat crop = resized(landscape ? cv::Rect(46, 14, 100, 100) : cv::Rect(14, 46, 100, 100));
    for (int c = 0; c < 3; ++c) {
      for (int y = 0; y < 100; ++y) {
        for (int x = 0; x < 100; ++x) {
          ASSERT_EQ(At(values, 100, 100, c, y, x), crop.at<cv::Vec3f>(y, x)[c]) << c << "," << y << "," << x;
        }
      }
    }
  }
}

TEST(PreprocessGeometryTest, NonSquareTargetCrop) {
  // Target 50 high x 120 wide; shorter side defaults to 120. A 400x400 image becomes 120x120, crop rows 35..84.
  cv::Mat image(400, 400, CV_8UC3, kGreen);
  image(cv::Rect(0, 150, 400, 100)).setTo(kRed);  // rows 150..249 -> resized rows 45..74
  const std::vector<float> values =
      RunPipeline(EncodePng(image), UnitOptions(ResizeMode::kShorterSideCrop, 50, 120));
  ASSERT_EQ(values.size(), 3u * 50 * 120);
  for (int y = 0; y < 50; ++y) {
    const int resized_row = y + 35;
    if (resized_row == 44 || resized_row == 45 || resized_row == 74 || resized_row == 75) continue;
    const bool red = resized_row > 45 && resized_row < 74;
    EXPECT_NEAR(At(values, 50, 120, 0, y, 60), red ? 1.0f : 0.0f, 1e-6) << y;
    EXPECT_NEAR(At(values, 50, 120, 1, y, 60), red ? 0.0f : 1.0f, 1e-6) << y;
  }
}

TEST(PreprocessGeometryTest, HandlesImagesOfManySizes) {
  PreprocessOptions base = MakeOptions(ColorFormat::kRgb, 24, 32);
  base.mean = kImageNetMean;
  base.stddev = kImageNetStddev;
  const std::vector<cv::Size> sizes = {{1, 1}, {3, 7}, {32, 24}, {640, 480}, {1000, 33}, {33, 1000}, {17, 2}};
  for (const cv::Size& size : sizes) {
    for (ResizeMode resize : {ResizeMode::kExact, ResizeMode::kShorterSideCrop}) {
      for (Interpolation interpolation :
           {Interpolation::kBilinear, Interpolation::kArea, Interpolation::kNearest, Interpolation::kBicubic}) {
        PreprocessOptions options = base;
        options.resize = resize;
        options.interpolation = interpolation;
        for (const std::string& bytes :
             {EncodePng(PatternBgr(size.width, size.height)), EncodeJpeg(PatternBgr(size.width, size.height))}) {
          // The served path (float bilinear resize) and the 8-bit step in every interpolation mode.
          for (const std::vector<float>& values : {RunPipeline(bytes, options), RunPreprocessStep(bytes, options)}) {
            ASSERT_EQ(values.size(), 3u * 24 * 32) << size;
            for (size_t i = 0; i < values.size(); ++i) {
              const int c = static_cast<int>(i / (24 * 32));
              const float low = (0.0f - kImageNetMean[c]) / kImageNetStddev[c];
              const float high = (1.0f - kImageNetMean[c]) / kImageNetStddev[c];
              ASSERT_TRUE(values[i] >= low - 1e-5f && values[i] <= high + 1e-5f) << size << " " << values[i];
            }
          }
        }
      }
    }
  }
}

TEST(PreprocessGeometryTest, ExtremeAspectRatioIsRejectedForCropOnly) {
  const std::string bytes = EncodePng(cv::Mat(1, 4000, CV_8UC3, kRed));
  PreprocessOptions options = UnitOptions(ResizeMode::kShorterSideCrop, 224, 224);
  options.decode_limits.max_pixels = 1'000'000;
  const StatusOr<std::vector<float>> result = Prepare(bytes, options);
  ASSERT_FALSE(result.ok());
  ExpectInvalid(result.status(), {"4000x1 image", "gives 896000x224 pixels, over max_pixels 1000000",
                                  "aspect ratio is too extreme"});
  options.resize = ResizeMode::kExact;
  EXPECT_TRUE(Prepare(bytes, options).ok());
}

// ---------------------------------------------------------------------------------------------------------------
// Decode once, preprocess many

TEST(DecodedImageTest, DescribesTheImage) {
  const auto png = DecodeImage(EncodePng(PatternBgr(7, 3)), DecodeLimits());
  ASSERT_TRUE(png.ok()) << png.status().ToString();
  EXPECT_FALSE(png->empty());
  EXPECT_EQ(png->format(), ImageFormat::kPng);
  EXPECT_EQ(png->width_px(), 7);
  EXPECT_EQ(png->height_px(), 3);
  EXPECT_EQ(png->channels(), 3);
  EXPECT_EQ(png->bit_depth(), 8);
  const auto jpeg = DecodeImage(EncodeJpeg(PatternBgr(7, 3)), DecodeLimits());
  ASSERT_TRUE(jpeg.ok()) << jpeg.status().ToString();
  EXPECT_EQ(jpeg->format(), ImageFormat::kJpeg);
  EXPECT_EQ(jpeg->width_px(), 7);

  DecodedImage copy = *png;
  DecodedImage moved = std::move(copy);
  EXPECT_EQ(moved.width_px(), 7);
  EXPECT_TRUE(DecodedImage().empty());
  std::vector<float> dst(3 * 2 * 2);
  ExpectInvalid(Preprocess(DecodedImage(), MakeOptions(ColorFormat::kRgb, 2, 2), dst.data()),
                {"the decoded image is empty"});
  ExpectInvalid(Preprocess(moved, MakeOptions(ColorFormat::kRgb, 2, 2), nullptr), {"dst is null"});
}

TEST(DecodedImageTest, OneDecodeFeedsSeveralModelsAndBatchSlots) {
  const std::string bytes = EncodePng(PatternBgr(40, 30));
  const auto image = DecodeImage(bytes, DecodeLimits());
  ASSERT_TRUE(image.ok()) << image.status().ToString();

  PreprocessOptions rgb = MakeOptions(ColorFormat::kRgb, 16, 16);
  rgb.resize = ResizeMode::kShorterSideCrop;
  rgb.resize_shorter_side_px = 20;
  PreprocessOptions gray = MakeOptions(ColorFormat::kGray, 8, 12);
  gray.interpolation = Interpolation::kArea;

  // Batch of two RGB slots written in place.
  const size_t slot = 3 * 16 * 16;
  std::vector<float> batch(2 * slot, -100.0f);
  ASSERT_TRUE(Preprocess(*image, rgb, batch.data() + slot).ok());
  EXPECT_TRUE(std::all_of(batch.begin(), batch.begin() + slot, [](float v) { return v == -100.0f; }));
  ASSERT_TRUE(Preprocess(*image, rgb, batch.data()).ok());
  const std::vector<float> reference = RunPreprocessStep(bytes, rgb);
  EXPECT_EQ(std::vector<float>(batch.begin(), batch.begin() + slot), reference);
  EXPECT_EQ(std::vector<float>(batch.begin() + slot, batch.end()), reference);

  std::vector<float> gray_values(8 * 12);
  ASSERT_TRUE(Preprocess(*image, gray, gray_values.data()).ok());
  EXPECT_EQ(gray_values, RunPreprocessStep(bytes, gray));
}

TEST(DecodedImageTest, ConcurrentPreprocessOfOneImage) {
  const auto image = DecodeImage(EncodeJpeg(PatternBgr(64, 48)), DecodeLimits());
  ASSERT_TRUE(image.ok());
  PreprocessOptions options = MakeOptions(ColorFormat::kRgb, 32, 32);
  options.resize = ResizeMode::kShorterSideCrop;
  std::vector<float> reference(3 * 32 * 32);
  ASSERT_TRUE(Preprocess(*image, options, reference.data()).ok());
  constexpr int kThreads = 2;
  constexpr int kIterations = 20;
  std::vector<int> mismatches(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const DecodedImage copy = *image;  // copies share the pixels
      std::vector<float> values(reference.size());
      for (int i = 0; i < kIterations; ++i) {
        if (!Preprocess(copy, options, values.data()).ok() || values != reference) ++mismatches[t];
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(mismatches, std::vector<int>(kThreads, 0));
}

TEST(PreprocessThreadsTest, SetPreprocessThreadsDoesNotBreakPreprocessing) {
  const std::string bytes = EncodePng(PatternBgr(300, 200));
  const PreprocessOptions options = MakeOptions(ColorFormat::kRgb, 64, 64);
  const std::vector<float> reference = RunPipeline(bytes, options);
  for (int threads : {1, 0, 2, -1}) {
    SetPreprocessThreads(threads);
    EXPECT_EQ(RunPipeline(bytes, options), reference) << threads;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Options

TEST(PreprocessOptionsTest, DefaultsAreValid) {
  const PreprocessOptions options;
  EXPECT_TRUE(ValidatePreprocessOptions(options).ok());
  EXPECT_EQ(PreprocessedDims(options), (Dims{3, 224, 224}));
  EXPECT_EQ(PreprocessedDims(MakeOptions(ColorFormat::kGray, 32, 32)), (Dims{1, 32, 32}));
  EXPECT_EQ(options.decode_limits.max_pixels, 40'000'000);
  EXPECT_FLOAT_EQ(options.scale, 1.0f / 255.0f);
}

TEST(PreprocessOptionsTest, RejectsBadFields) {
  struct Case {
    void (*mutate)(PreprocessOptions&);
    std::string expected;
  };
  const std::vector<Case> cases = {
      {[](PreprocessOptions& o) { o.target_height_px = 0; }, "target_height_px is 0; it must be in [1, 16384]"},
      {[](PreprocessOptions& o) { o.target_width_px = 20000; }, "target_width_px is 20000"},
      {[](PreprocessOptions& o) { o.color = static_cast<ColorFormat>(7); }, "color is 7"},
      {[](PreprocessOptions& o) { o.resize = static_cast<ResizeMode>(9); }, "resize is 9"},
      {[](PreprocessOptions& o) { o.interpolation = static_cast<Interpolation>(9); }, "interpolation is 9"},
      {[](PreprocessOptions& o) {
         o.resize = ResizeMode::kShorterSideCrop;
         o.resize_shorter_side_px = 200;
       },
       "resize_shorter_side_px is 200; it must be 0 (use 224) or in [224"},
      {[](PreprocessOptions& o) { o.scale = std::nanf(""); }, "scale is nan"},
      {[](PreprocessOptions& o) {
         o.mean = {1, 2};
       },
       "mean has 2 entries; it must have 0, 1 or 3"},
      {[](PreprocessOptions& o) {
         o.color = ColorFormat::kGray;
         o.stddev = {1, 1, 1};
       },
       "stddev has 3 entries; it must have 0, 1 or 1"},
      {[](PreprocessOptions& o) {
         o.stddev = {1, 0, 1};
       },
       "stddev[1] is 0.000000; it must be finite and non-zero"},
      {[](PreprocessOptions& o) { o.mean = {INFINITY}; }, "mean[0] is inf; it must be finite"},
      {[](PreprocessOptions& o) { o.decode_limits.max_pixels = 0; }, "max_pixels is 0"},
      {[](PreprocessOptions& o) { o.decode_limits.max_image_bytes = int64_t{1} << 40; }, "max_image_bytes is"},
  };
  const std::string bytes = EncodePng(PatternBgr(4, 4));
  for (const Case& c : cases) {
    PreprocessOptions options;
    c.mutate(options);
    ExpectInvalid(ValidatePreprocessOptions(options), {c.expected});
    // Every entry point checks them.
    const StatusOr<std::vector<float>> result = Prepare(bytes, options);
    ASSERT_FALSE(result.ok());
    ExpectInvalid(result.status(), {c.expected});
  }
  // resize_shorter_side_px is only read by kShorterSideCrop.
  PreprocessOptions exact;
  exact.resize_shorter_side_px = 5;
  EXPECT_TRUE(ValidatePreprocessOptions(exact).ok());
}

// ---------------------------------------------------------------------------------------------------------------
// Bad input: every error is INVALID_ARGUMENT naming the problem, and nothing crashes.

TEST(BadImageTest, EmptyBytes) {
  ExpectDecodeInvalid("", {"unsupported image format (empty input, 0 bytes): only JPEG and PNG are accepted"});
}

TEST(BadImageTest, TruncatedJpeg) {
  const std::string jpeg = EncodeJpeg(PatternBgr(64, 64));
  ExpectDecodeInvalid(jpeg.substr(0, jpeg.size() / 2), {"truncated JPEG", "before the EOI marker"});
  ExpectDecodeInvalid(jpeg.substr(0, jpeg.size() - 1), {"truncated JPEG"});
  ExpectDecodeInvalid(jpeg.substr(0, 10), {"truncated JPEG"});
}

TEST(BadImageTest, TruncatedPng) {
  const std::string png = EncodePng(PatternBgr(64, 64));
  ExpectDecodeInvalid(png.substr(0, png.size() / 2), {"truncated PNG"});
  ExpectDecodeInvalid(png.substr(0, png.size() - 1), {"truncated PNG"});
  ExpectDecodeInvalid(png.substr(0, 30), {"truncated PNG", "too short for the IHDR chunk"});
}

TEST(BadImageTest, HugeDeclaredPng) {
  ExpectDecodeInvalid(PngSignatureAndIhdr(30000, 30000),
                      {"PNG image declares 30000x30000 = 900000000 pixels, which exceeds max_pixels 40000000"});
  ExpectDecodeInvalid(PngSignatureAndIhdr(30000, 30000, /*valid_crc=*/false), {"900000000", "max_pixels"});
}

TEST(BadImageTest, OtherFormats) {
  ExpectDecodeInvalid(std::string("GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff;", 20),
                      {"unsupported image format (GIF): only JPEG and PNG are accepted"});
  ExpectDecodeInvalid(std::string("BM\x3a\x00\x00\x00", 6), {"unsupported image format (BMP)"});
  ExpectDecodeInvalid(std::string("RIFF\x1a\x00\x00\x00WEBPVP8L", 16), {"unsupported image format (WebP)"});
}

TEST(BadImageTest, RandomBytes) {
  cv::RNG rng(99);
  for (int trial = 0; trial < 50; ++trial) {
    std::string bytes(1 + rng.uniform(0, 1000), '\0');
    for (char& c : bytes) c = static_cast<char>(rng.uniform(0, 256));
    ExpectDecodeInvalid(bytes, {"unsupported image format", "only JPEG and PNG are accepted"});
  }
}

TEST(BadImageTest, JpegWithoutOrWithCorruptSof) {
  const std::string jpeg = EncodeJpeg(PatternBgr(32, 32));
  const size_t sof = FindJpegSegment(jpeg, 0xc0);
  ASSERT_NE(sof, std::string::npos);
  std::string missing = jpeg;
  missing.erase(sof, 2 + JpegSegmentLength(jpeg, sof));
  ExpectDecodeInvalid(missing, {"no SOF frame header"});
  std::string corrupt = jpeg;
  corrupt[sof + 9] = 0;  // zero components
  ExpectDecodeInvalid(corrupt, {"malformed JPEG: SOF0 segment", "declares 0 components"});
  std::string huge = jpeg;
  huge[sof + 5] = huge[sof + 7] = static_cast<char>(0xff);
  ExpectDecodeInvalid(huge, {"JPEG image declares", "exceeds max_pixels 40000000"});
}

TEST(BadImageTest, CorruptPngImageData) {
  // Structurally complete but the IDAT stream is not zlib data: the decoder fails, reported as INVALID_ARGUMENT.
  std::string png = EncodePng(PatternBgr(16, 16));
  const size_t idat = png.find("IDAT");
  ASSERT_NE(idat, std::string::npos);
  for (size_t i = idat + 4; i < idat + 14; ++i) png[i] = static_cast<char>(0xa5);
  ExpectDecodeInvalid(png, {"PNG image"});
}

TEST(BadImageTest, DecoderSideLimitsAreInvalidArgument) {
  // 1,100,000 x 1 passes max_pixels but exceeds libpng's default width limit (10^6) and OpenCV's (2^20): the
  // decoder refuses it, and that is reported as INVALID_ARGUMENT like any other bad image.
  constexpr uint32_t kWidth = 1'100'000;
  const std::string wide = RawPng(kWidth, 1, 8, 0, {std::string(kWidth, '\x40')});
  const auto result = DecodeImage(wide, DecodeLimits());
  ASSERT_FALSE(result.ok());
  ExpectInvalid(result.status(), {"PNG image"});
}

TEST(BadImageTest, DecodeLimits) {
  const std::string png = EncodePng(PatternBgr(20, 20));
  DecodeLimits limits;
  limits.max_image_bytes = static_cast<int64_t>(png.size()) - 1;
  const auto too_big = DecodeImage(png, limits);
  ASSERT_FALSE(too_big.ok());
  ExpectInvalid(too_big.status(), {"the image is " + std::to_string(png.size()) +
                                   " bytes, which exceeds max_image_bytes " + std::to_string(png.size() - 1)});
  limits = DecodeLimits();
  limits.max_pixels = 399;
  const auto too_many = DecodeImage(png, limits);
  ASSERT_FALSE(too_many.ok());
  ExpectInvalid(too_many.status(), {"20x20 = 400 pixels, which exceeds max_pixels 399"});
  limits.max_pixels = 400;
  EXPECT_TRUE(DecodeImage(png, limits).ok());
}

// Random corruption of valid files: every outcome is OK or INVALID_ARGUMENT, and nothing crashes (the suite also
// runs under ASan/UBSan).
TEST(BadImageTest, MutatedFilesNeverCrash) {
  const PreprocessOptions options = MakeOptions(ColorFormat::kRgb, 16, 16);
  const std::vector<std::string> originals = {EncodePng(PatternBgr(23, 17)), EncodeJpeg(PatternBgr(23, 17)),
                                              EncodeJpeg(PatternBgr(23, 17), 80, /*progressive=*/true),
                                              EncodePng(cv::Mat(9, 9, CV_16UC1, cv::Scalar(4000)))};
  cv::RNG rng(2024);
  int rejected = 0;
  int total = 0;
  for (const std::string& original : originals) {
    for (int trial = 0; trial < 150; ++trial) {
      std::string bytes = original;
      const int edits = 1 + rng.uniform(0, 4);
      for (int e = 0; e < edits; ++e) {
        bytes[rng.uniform(0, static_cast<int>(bytes.size()))] = static_cast<char>(rng.uniform(0, 256));
      }
      if (rng.uniform(0, 4) == 0) bytes.resize(rng.uniform(0, static_cast<int>(bytes.size())));
      const StatusOr<std::vector<float>> result = Prepare(bytes, options);
      ++total;
      if (!result.ok()) {
        ++rejected;
        EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument) << result.status().ToString();
        EXPECT_FALSE(result.status().message().empty());
      }
    }
  }
  EXPECT_GT(rejected, 0);
  EXPECT_EQ(total, 600);
}

// ---------------------------------------------------------------------------------------------------------------
// Raw tensors

TEST(CheckFiniteFloatsTest, NamesTheFirstNonFiniteValue) {
  const auto bytes = [](const std::vector<float>& v) {
    return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
  };
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_TRUE(CheckFiniteFloats("").ok());
  EXPECT_TRUE(CheckFiniteFloats(bytes({0.0f, -1e30f, 3.4e38f, -0.0f, 1e-45f})).ok());
  const Status nan_status = CheckFiniteFloats(bytes({1.0f, 2.0f, nan, inf}));
  EXPECT_EQ(nan_status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(nan_status.message(), "value 2 of the tensor is NaN: tensor values must be finite");
  EXPECT_EQ(CheckFiniteFloats(bytes({-inf})).message(), "value 0 of the tensor is infinite: tensor values must be finite");
  // Misaligned data is read correctly.
  std::string shifted = "x" + bytes({1.0f, inf});
  EXPECT_EQ(CheckFiniteFloats(std::string_view(shifted).substr(1)).code(), StatusCode::kInvalidArgument);
}

TEST(ValidateRawTensorTest, AcceptsChwAndNchw) {
  const Dims chw = {3, 224, 224};
  const size_t image_bytes = 3 * 224 * 224 * sizeof(float);
  EXPECT_TRUE(ValidateRawTensor({3, 224, 224}, image_bytes, chw).ok());
  EXPECT_TRUE(ValidateRawTensor({1, 3, 224, 224}, image_bytes, chw).ok());
  EXPECT_TRUE(ValidateRawTensor({4, 3, 224, 224}, 4 * image_bytes, chw).ok());
}

TEST(ValidateRawTensorTest, WrongShape) {
  const Dims chw = {3, 224, 224};
  ExpectInvalid(ValidateRawTensor({3, 224, 225}, 602112, chw),
                {"raw tensor shape [3x224x225] does not match the model input [3x224x224] (or [N x 3x224x224] "
                 "with N >= 1)"});
  ExpectInvalid(ValidateRawTensor({224, 224, 3}, 602112, chw), {"shape [224x224x3] does not match"});
  ExpectInvalid(ValidateRawTensor({1, 1, 3, 224, 224}, 602112, chw), {"shape [1x1x3x224x224] does not match"});
  ExpectInvalid(ValidateRawTensor({}, 0, chw), {"shape [] does not match"});
  ExpectInvalid(ValidateRawTensor({0, 3, 224, 224}, 0, chw), {"batch size 0; it must be at least 1"});
  ExpectInvalid(ValidateRawTensor({-2, 3, 224, 224}, 0, chw), {"batch size -2"});
}

TEST(ValidateRawTensorTest, WrongByteCount) {
  const Dims chw = {1, 32, 32};
  ExpectInvalid(ValidateRawTensor({1, 32, 32}, 4095, chw),
                {"raw tensor data has 4095 bytes but shape [1x32x32] of float32 needs 4096 bytes (1024 values x 4 "
                 "bytes)"});
  ExpectInvalid(ValidateRawTensor({2, 1, 32, 32}, 4096, chw), {"has 4096 bytes", "needs 8192 bytes"});
  ExpectInvalid(ValidateRawTensor({int64_t{1} << 61, 1, 32, 32}, 4096, chw), {"is too large"});
}

TEST(ValidateRawTensorTest, BadModelShapeIsInternal) {
  EXPECT_EQ(ValidateRawTensor({3, 4}, 48, {3, 4}).code(), StatusCode::kInternal);
  EXPECT_EQ(ValidateRawTensor({3, 0, 4}, 0, {3, 0, 4}).code(), StatusCode::kInternal);
}

}  // namespace
}  // namespace cnnserve
