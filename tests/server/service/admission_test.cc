// Where a request's images are decoded (NeedsDecodeWorker): small ones on the receiving thread, large or
// unreadable ones on a decode worker. Real PNGs (the Fashion-MNIST test images and one made by OpenCV).
#include "server/service/admission.h"

#include <gtest/gtest.h>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <string>
#include <vector>

#include "tests/server/servables/fashion_testdata.h"

namespace cnnserve {
namespace {

constexpr int64_t kMaxPixels = 40'000'000;

RunRequest WithItems(const std::vector<ImageItem>& items) {
  RunRequest run;
  run.items = items;
  return run;
}

TEST(NeedsDecodeWorkerTest, SmallImagesDecodeInlineLargeOrUnreadableOnesOnAWorker) {
  const std::vector<testing::FashionImage> images = testing::LoadFashionImages(".png");
  ASSERT_FALSE(images.empty());
  const ImageItem fashion{ImageItem::Kind::kEncoded, images[0].bytes};  // 28 x 28 gray: 784 bytes to decode
  const int64_t fit = kInlineDecodeBytes / (28 * 28);
  EXPECT_FALSE(NeedsDecodeWorker(WithItems({fashion}), kMaxPixels));
  EXPECT_FALSE(NeedsDecodeWorker(WithItems(std::vector<ImageItem>(fit, fashion)), kMaxPixels));
  EXPECT_TRUE(NeedsDecodeWorker(WithItems(std::vector<ImageItem>(fit + 1, fashion)), kMaxPixels));

  std::vector<uchar> big;
  ASSERT_TRUE(cv::imencode(".png", cv::Mat(300, 300, CV_8UC1, cv::Scalar(7)), big));  // 90,000 bytes decoded
  const std::string big_bytes(big.begin(), big.end());
  EXPECT_TRUE(NeedsDecodeWorker(WithItems({ImageItem{ImageItem::Kind::kEncoded, big_bytes}}), kMaxPixels));

  EXPECT_TRUE(NeedsDecodeWorker(WithItems({ImageItem{ImageItem::Kind::kEncoded, "not an image"}}), kMaxPixels));

  const std::string pixels(100 * 100 * 3, '\x10');
  const ImageItem raw{ImageItem::Kind::kPixels, pixels, 100, 100, 3};
  EXPECT_FALSE(NeedsDecodeWorker(WithItems({raw, raw}), kMaxPixels));
  EXPECT_TRUE(NeedsDecodeWorker(WithItems({raw, raw, raw}), kMaxPixels));

  const std::string floats(4 << 20, '\0');  // tensors are never decoded, whatever their size
  EXPECT_FALSE(NeedsDecodeWorker(WithItems({ImageItem{ImageItem::Kind::kTensor, floats}}), kMaxPixels));
}

}  // namespace
}  // namespace cnnserve
