// Pictures cnnctl makes from Explain answers: an occlusion heat map (over the image when it is a PNG) and a grid
// of feature maps, written as PNG with libpng. Pure functions of their arguments (no gRPC, no protobuf).
#ifndef CNNSERVE_TOOLS_CNNCTL_PNG_IMAGE_H_
#define CNNSERVE_TOOLS_CNNCTL_PNG_IMAGE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "engine/common/status.h"

namespace cnnserve::tools {

struct RgbImage {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;  // height x width x 3, row-major
};

// An occlusion map at the model's input size `input_h` x `input_w`: each input pixel gets the mean drop of the
// patch positions covering it (0 where none does), coloured on a diverging scale (red: covering it lowers the
// class's probability, blue: raises it; white: no change), saturating at the largest |drop|.
// `drop` holds rows x cols values (OcclusionMap.drop).
RgbImage OcclusionHeatMap(const std::vector<float>& drop, int rows, int cols, int patch, int stride, int input_h,
                          int input_w);

// `heat` stretched over `base` (the image as sent; its size is kept) and blended with weight `alpha` in 0..1.
RgbImage Overlay(const RgbImage& base, const RgbImage& heat, float alpha);

// `image` enlarged `factor` times by pixel repetition (factor >= 1).
RgbImage Enlarge(const RgbImage& image, int factor);

// A grid of `channels` gray tiles of height x width (values channel after channel, row-major), each normalised
// to its own min..max (a constant channel is black), ceil(sqrt(channels)) tiles per row, one-pixel gaps.
RgbImage FeatureGrid(const float* values, int channels, int height, int width);

// The decoded pixels of PNG `bytes` (any colour type, as 8-bit RGB). INVALID_ARGUMENT when it is not a PNG
// libpng can read.
StatusOr<RgbImage> DecodePng(const std::string& bytes);

// Writes `image` to `path` as an 8-bit RGB PNG. INVALID_ARGUMENT (naming the path) when it cannot.
Status WritePng(const std::string& path, const RgbImage& image);

}  // namespace cnnserve::tools

#endif  // CNNSERVE_TOOLS_CNNCTL_PNG_IMAGE_H_
