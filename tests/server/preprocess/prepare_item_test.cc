// PrepareItem (image_input.h), the one path every servable takes from a request item to model input: each kind of
// item, one and several targets, and the errors of the item versus those of a target.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <string>
#include <vector>

#include "server/preprocess/image_input.h"
#include "tests/server/preprocess/test_images.h"

namespace cnnserve {
namespace {

using ::cnnserve::testing::EncodePng;
using ::cnnserve::testing::PatternBgr;

PreprocessOptions Options(ColorFormat color, int64_t side) {
  PreprocessOptions options;
  options.color = color;
  options.target_height_px = side;
  options.target_width_px = side;
  return options;
}

ImageItem Encoded(const std::string& bytes) {
  ImageItem item;
  item.kind = ImageItem::Kind::kEncoded;
  item.data = bytes;
  return item;
}

std::string FloatBytes(const std::vector<float>& values) {
  std::string bytes(values.size() * sizeof(float), '\0');
  std::memcpy(bytes.data(), values.data(), bytes.size());
  return bytes;
}

TEST(PrepareItemTest, EncodedImageEqualsDecodeThenPreprocessImage) {
  const std::string png = EncodePng(PatternBgr(20, 12));
  const PreprocessOptions options = Options(ColorFormat::kRgb, 8);
  std::vector<float> served(3 * 8 * 8, -1.0f);
  const ItemTarget target{"m", &options, PreprocessedDims(options), served.data()};
  ASSERT_TRUE(PrepareItem(Encoded(png), DecodeLimits(), target).ok());

  StatusOr<DecodedImage> image = DecodeImage(png, DecodeLimits());
  ASSERT_TRUE(image.ok());
  std::vector<float> expected(served.size());
  ASSERT_TRUE(PreprocessImage(*image, options, expected.data()).ok());
  EXPECT_EQ(served, expected);
}

TEST(PrepareItemTest, RawPixelsAreRgbAndMatchTheEncodedImage) {
  const cv::Mat bgr = PatternBgr(6, 5);
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  ImageItem pixels;
  pixels.kind = ImageItem::Kind::kPixels;
  pixels.data = std::string_view(reinterpret_cast<const char*>(rgb.data), rgb.total() * 3);
  pixels.height = 5;
  pixels.width = 6;
  pixels.channels = 3;
  const PreprocessOptions options = Options(ColorFormat::kRgb, 4);
  std::vector<float> from_pixels(3 * 4 * 4);
  std::vector<float> from_png(3 * 4 * 4);
  ASSERT_TRUE(PrepareItem(pixels, DecodeLimits(), {"", &options, {3, 4, 4}, from_pixels.data()}).ok());
  const std::string png = EncodePng(bgr);
  ASSERT_TRUE(PrepareItem(Encoded(png), DecodeLimits(), {"", &options, {3, 4, 4}, from_png.data()}).ok());
  EXPECT_EQ(from_pixels, from_png);

  pixels.channels = 4;
  const Status bad = PrepareItem(pixels, DecodeLimits(), {"", &options, {3, 4, 4}, from_pixels.data()});
  EXPECT_EQ(bad.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.message().find("4 channels"), std::string::npos) << bad.message();
}

TEST(PrepareItemTest, TensorIsSizedPerTargetAndCopied) {
  const std::vector<float> values = {1.5f, -2.0f, 0.25f, 7.0f};
  const std::string bytes = FloatBytes(values);
  ImageItem item;
  item.kind = ImageItem::Kind::kTensor;
  item.data = bytes;
  std::vector<float> dst(4, 0.0f);
  ASSERT_TRUE(PrepareItem(item, DecodeLimits(), {"m", nullptr, {1, 2, 2}, dst.data()}).ok());
  EXPECT_EQ(dst, values);
  // Check only: a null dst writes nothing.
  EXPECT_TRUE(PrepareItem(item, DecodeLimits(), {"m", nullptr, {1, 2, 2}, nullptr}).ok());

  const Status wrong = PrepareItem(item, DecodeLimits(), {"m", nullptr, {1, 3, 2}, nullptr});
  EXPECT_EQ(wrong.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(wrong.message(), "a tensor of 16 bytes; model \"m\" takes 1x3x2 float32 = 24 bytes per image");

  const std::string nan = FloatBytes({1.0f, std::numeric_limits<float>::quiet_NaN(), 0.0f, 0.0f});
  item.data = nan;
  const Status not_finite = PrepareItem(item, DecodeLimits(), {"m", nullptr, {1, 2, 2}, dst.data()});
  EXPECT_EQ(not_finite.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(not_finite.message().find("value 1 of the tensor is NaN"), std::string::npos) << not_finite.message();
}

TEST(PrepareItemTest, ImageForAModelWithoutPreprocessingNamesTheModel) {
  const std::string png = EncodePng(PatternBgr(4, 4));
  const Status status = PrepareItem(Encoded(png), DecodeLimits(), {"vec", nullptr, {16}, nullptr});
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("model \"vec\" has no image preprocessing"), std::string::npos)
      << status.message();
}

TEST(PrepareItemTest, SeveralTargetsShareOneDecodeAndFailApart) {
  const std::string png = EncodePng(PatternBgr(1, 400));  // 1 wide, 400 high: no 8 x 8 centre crop within 1000 pixels
  const PreprocessOptions gray = Options(ColorFormat::kGray, 8);
  PreprocessOptions crop = Options(ColorFormat::kRgb, 8);
  crop.resize = ResizeMode::kShorterSideCrop;
  crop.decode_limits.max_pixels = 1000;
  std::vector<float> gray_out(64, -1.0f);
  std::vector<float> crop_out(3 * 64, -1.0f);
  const std::vector<ItemTarget> targets = {{"g", &gray, {1, 8, 8}, gray_out.data()},
                                           {"c", &crop, {3, 8, 8}, crop_out.data()}};
  std::vector<Status> status(2);
  ASSERT_TRUE(PrepareItem(Encoded(png), DecodeLimits(), targets, status).ok());
  EXPECT_TRUE(status[0].ok()) << status[0].ToString();
  EXPECT_EQ(status[1].code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status[1].message().find("aspect ratio is too extreme"), std::string::npos) << status[1].message();
  // The failing target does not change what the other one gets.
  std::vector<float> alone(64, -2.0f);
  ASSERT_TRUE(PrepareItem(Encoded(png), DecodeLimits(), {"g", &gray, {1, 8, 8}, alone.data()}).ok());
  EXPECT_EQ(gray_out, alone);

  // The item's own error (it cannot be decoded) fails every target at once, and leaves their statuses alone.
  const std::string truncated = png.substr(0, png.size() / 2);
  std::vector<Status> untouched(2);
  const Status item_error = PrepareItem(Encoded(truncated), DecodeLimits(), targets, untouched);
  EXPECT_EQ(item_error.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(untouched[0].ok() && untouched[1].ok());

  std::vector<Status> too_few(1);
  EXPECT_EQ(PrepareItem(Encoded(png), DecodeLimits(), targets, too_few).code(), StatusCode::kInternal);
}

TEST(PrepareItemTest, UnknownKindIsInvalid) {
  ImageItem item;
  item.kind = static_cast<ImageItem::Kind>(9);
  const Status status = PrepareItem(item, DecodeLimits(), ItemTarget{});
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "unknown item kind 9");
}

}  // namespace
}  // namespace cnnserve
