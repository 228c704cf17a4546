// The served input must equal the training input: decode + PreprocessImage of the fixture's PNGs against the
// training script's input.npy (bit for bit), and the float resize against OpenCV's cv::resize on CV_32F.
#include "server/preprocess/image_input.h"
#include "server/servables/preprocess_config.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <random>
#include <tuple>
#include <vector>

#include "models/repository/model_repository.h"
#include "tests/models/repository/test_repository.h"
#include "tests/server/servables/fashion_testdata.h"

namespace cnnserve {
namespace {

using ::cnnserve::testing::DefaultRepository;
using ::cnnserve::testing::FashionImage;
using ::cnnserve::testing::kLenetModel;
using ::cnnserve::testing::LoadFashionImages;
using ::cnnserve::testing::LoadFashionInputNpy;

constexpr int64_t kLenetItemSize = 32 * 32;

PreprocessOptions LenetOptions() {
  StatusOr<v1::ModelConfig> config =
      ParseModelConfig(testing::ReadFileBytes(DefaultRepository() / kLenetModel / "config.pbtxt"), "config.pbtxt");
  EXPECT_TRUE(config.ok()) << config.status().ToString();
  StatusOr<PreprocessOptions> options = PreprocessOptionsFromConfig(*config, DecodeLimits());
  EXPECT_TRUE(options.ok()) << options.status().ToString();
  return options.ok() ? *options : PreprocessOptions();
}

TEST(ImageInputTest, OptionsFromTheLenetConfig) {
  const PreprocessOptions options = LenetOptions();
  EXPECT_EQ(options.color, ColorFormat::kGray);
  EXPECT_EQ(options.target_height_px, 32);
  EXPECT_EQ(options.target_width_px, 32);
  EXPECT_EQ(options.resize, ResizeMode::kExact);
  EXPECT_EQ(options.interpolation, Interpolation::kBilinear);
  EXPECT_EQ(options.scale, 1.0f / 255.0f);
  EXPECT_EQ(options.mean, (std::vector<float>{0.2860f}));
  EXPECT_EQ(options.stddev, (std::vector<float>{0.3530f}));
}

TEST(ImageInputTest, OptionsFromAnImageNetConfig) {
  v1::ModelConfig config;
  config.set_name("alexnet");
  for (int64_t d : {3, 227, 227}) config.mutable_input()->add_dims(d);
  v1::PreprocessConfig& pre = *config.mutable_preprocess();
  pre.set_color(v1::PreprocessConfig::RGB);
  pre.set_resize(v1::PreprocessConfig::SHORTER_SIDE_CROP);
  pre.set_resize_shorter_side(256);
  for (float m : {0.485f, 0.456f, 0.406f}) pre.add_mean(m);
  for (float s : {0.229f, 0.224f, 0.225f}) pre.add_std(s);
  DecodeLimits limits;
  limits.max_pixels = 1000;
  StatusOr<PreprocessOptions> options = PreprocessOptionsFromConfig(config, limits);
  ASSERT_TRUE(options.ok()) << options.status().ToString();
  EXPECT_EQ(options->color, ColorFormat::kRgb);
  EXPECT_EQ(options->resize, ResizeMode::kShorterSideCrop);
  EXPECT_EQ(options->resize_shorter_side_px, 256);
  EXPECT_EQ(options->target_height_px, 227);
  EXPECT_EQ(options->scale, 1.0f / 255.0f);  // 0 means 1/255
  EXPECT_EQ(options->mean.size(), 3u);
  EXPECT_EQ(options->decode_limits.max_pixels, 1000);

  pre.set_color(v1::PreprocessConfig::GRAY);
  StatusOr<PreprocessOptions> gray = PreprocessOptionsFromConfig(config, limits);
  ASSERT_FALSE(gray.ok());
  EXPECT_EQ(gray.status().message(), "model \"alexnet\": preprocess.color gives 1 channels but the input has 3");
}

// The heart of "served input == training input": all 200 PNGs, bit for bit.
TEST(ImageInputTest, PngInputIsBitIdenticalToTheTrainingInput) {
  const std::vector<FashionImage> images = LoadFashionImages(".png");
  const Tensor expected = LoadFashionInputNpy();
  ASSERT_EQ(images.size(), 200u);
  ASSERT_EQ(expected.dims(), (Dims{200, 1, 32, 32}));
  const PreprocessOptions options = LenetOptions();
  std::vector<float> served(kLenetItemSize);
  int mismatched_images = 0;
  for (const FashionImage& image : images) {
    StatusOr<DecodedImage> decoded = DecodeImage(image.bytes, options.decode_limits);
    ASSERT_TRUE(decoded.ok()) << image.name << ": " << decoded.status().ToString();
    EXPECT_EQ(decoded->width_px(), 28);
    ASSERT_TRUE(PreprocessImage(*decoded, options, served.data()).ok());
    const float* want = expected.data() + image.index * kLenetItemSize;
    if (std::memcmp(served.data(), want, kLenetItemSize * sizeof(float)) != 0) {
      ++mismatched_images;
      for (int64_t i = 0; i < kLenetItemSize; ++i) {
        if (served[static_cast<size_t>(i)] != want[i]) {
          ADD_FAILURE() << image.name << " value " << i << ": served " << served[static_cast<size_t>(i)]
                        << ", training " << want[i];
          break;
        }
      }
    }
  }
  EXPECT_EQ(mismatched_images, 0);
}

// Why the float path exists: resizing the 8-bit image (Preprocess alone) does not reproduce the training input.
TEST(ImageInputTest, EightBitResizeDiffersFromTheTrainingInput) {
  const std::vector<FashionImage> images = LoadFashionImages(".png");
  const Tensor expected = LoadFashionInputNpy();
  ASSERT_FALSE(images.empty());
  const PreprocessOptions options = LenetOptions();
  std::vector<float> served(kLenetItemSize);
  double max_diff = 0;
  for (const FashionImage& image : images) {
    StatusOr<DecodedImage> decoded = DecodeImage(image.bytes, options.decode_limits);
    ASSERT_TRUE(decoded.ok());
    ASSERT_TRUE(PreprocessImage(*decoded, options, served.data(), /*max_float_source_values=*/0).ok());
    const float* want = expected.data() + image.index * kLenetItemSize;
    for (int64_t i = 0; i < kLenetItemSize; ++i) {
      max_diff = std::max(max_diff, std::abs(static_cast<double>(served[static_cast<size_t>(i)]) - want[i]));
    }
  }
  // Up to 0.75/255 per pixel before normalisation (std 0.353), never more than one grey level.
  EXPECT_GT(max_diff, 0.0);
  EXPECT_LT(max_diff, 1.0 / 255.0 / 0.353);
}

struct ResizeCase {
  int src_h, src_w, resized_h, resized_w, crop_y, crop_x, out_h, out_w;
};

TEST(ImageInputTest, FloatResizeMatchesOpenCv) {
  const std::vector<ResizeCase> cases = {
      {28, 28, 32, 32, 0, 0, 32, 32},          // LeNet: upscale by 8/7
      {64, 64, 32, 32, 0, 0, 32, 32},          // exact 2x downscale (OpenCV switches to INTER_AREA)
      {100, 80, 33, 47, 0, 0, 33, 47},         // uneven scales, one up, one down
      {375, 500, 256, 341, 16, 58, 224, 224},  // ImageNet: shorter side 256, centre crop 224
      {5, 7, 227, 227, 0, 0, 227, 227},        // tiny source, large upscale (edge clamping)
      {1, 9, 4, 3, 0, 0, 4, 3},                // a single row
      {300, 301, 300, 301, 10, 20, 50, 60},    // same size: a copy
  };
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> pixel(0, 255);
  for (const ResizeCase& c : cases) {
    SCOPED_TRACE(::testing::Message() << c.src_h << "x" << c.src_w << " -> " << c.resized_h << "x" << c.resized_w);
    cv::Mat src(c.src_h, c.src_w, CV_32F);
    for (int y = 0; y < c.src_h; ++y) {
      for (int x = 0; x < c.src_w; ++x) src.at<float>(y, x) = static_cast<float>(pixel(rng));
    }
    cv::Mat resized;
    if (c.resized_h == c.src_h && c.resized_w == c.src_w) {
      resized = src;
    } else {
      cv::resize(src, resized, cv::Size(c.resized_w, c.resized_h), 0, 0, cv::INTER_LINEAR);
    }
    std::vector<float> ours(static_cast<size_t>(c.out_h * c.out_w));
    ResizeBilinearWindow(src.ptr<float>(0), c.src_h, c.src_w, c.resized_h, c.resized_w, c.crop_y, c.crop_x,
                         c.out_h, c.out_w, ours.data());
    double max_diff = 0;
    for (int y = 0; y < c.out_h; ++y) {
      for (int x = 0; x < c.out_w; ++x) {
        const double diff = std::abs(static_cast<double>(ours[static_cast<size_t>(y * c.out_w + x)]) -
                                     resized.at<float>(c.crop_y + y, c.crop_x + x));
        max_diff = std::max(max_diff, diff);
      }
    }
    EXPECT_LE(max_diff, 1e-4) << "values are 0..255";
  }
}

// A colour image for an RGB model: the float path agrees with Preprocess's 8-bit path up to that rounding, and
// exactly (up to float normalisation) when no resize is needed.
TEST(ImageInputTest, ColourImagesAgreeWithPreprocess) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> pixel(0, 255);
  cv::Mat bgr(45, 60, CV_8UC3);
  for (int y = 0; y < bgr.rows; ++y) {
    for (int x = 0; x < bgr.cols; ++x) {
      bgr.at<cv::Vec3b>(y, x) = cv::Vec3b(static_cast<uint8_t>(pixel(rng)), static_cast<uint8_t>(pixel(rng)),
                                          static_cast<uint8_t>(pixel(rng)));
    }
  }
  std::vector<uint8_t> encoded;
  ASSERT_TRUE(cv::imencode(".png", bgr, encoded));
  const std::string png(encoded.begin(), encoded.end());
  StatusOr<DecodedImage> decoded = DecodeImage(png, DecodeLimits());
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  ASSERT_EQ(decoded->channels(), 3);

  for (const auto& [resize, shorter, h, w] :
       {std::tuple{ResizeMode::kExact, 0, 45, 60}, std::tuple{ResizeMode::kExact, 0, 32, 40},
        std::tuple{ResizeMode::kShorterSideCrop, 64, 56, 56}}) {
    PreprocessOptions options;
    options.color = ColorFormat::kRgb;
    options.resize = resize;
    options.resize_shorter_side_px = shorter;
    options.target_height_px = h;
    options.target_width_px = w;
    options.mean = {0.485f, 0.456f, 0.406f};
    options.stddev = {0.229f, 0.224f, 0.225f};
    const size_t size = static_cast<size_t>(3 * h * w);
    std::vector<float> ours(size), eight_bit(size);
    ASSERT_TRUE(PreprocessImage(*decoded, options, ours.data()).ok());
    ASSERT_TRUE(Preprocess(*decoded, options, eight_bit.data()).ok());
    double max_diff = 0;
    for (size_t i = 0; i < size; ++i) {
      max_diff = std::max(max_diff, std::abs(static_cast<double>(ours[i]) - eight_bit[i]));
    }
    const bool same_size = resize == ResizeMode::kExact && h == 45 && w == 60;
    // Rounding the resized 8-bit value moves it by at most 0.5 grey levels (OpenCV's fixed point adds up to
    // 0.75); divided by the smallest std.
    EXPECT_LE(max_diff, same_size ? 1e-5 : 1.0 / 255.0 / 0.224) << h << "x" << w;
  }
}

}  // namespace
}  // namespace cnnserve
