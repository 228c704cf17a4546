// INT8 calibration: the activation ranges an int8 plan quantizes with (BackendOptions::ranges), how they are
// measured, and the text file that carries them from `cnnbench calibrate` to the server.
//
// File format (text, one record per line; '#' starts a comment line; blank lines are ignored):
//   version 1
//   method minmax                      or: method percentile 99.99
//   images 512 <what the images were, rest of the line>
//   range <min> <max> <tensor name, rest of the line>
//   fp32 <tensor name, rest of the line>
// One `range` per tensor: the graph's input and every node's first output, named as imported. `fp32` (optional,
// any number): a tensor int8 plans keep in fp32, so the layers reading it compute in fp32 (chosen by Calibrate
// with max_output_error, or written by hand).
// Thread-safety: pure functions; Calibrate uses its own Model and Sessions.
#ifndef CNNSERVE_ENGINE_RUNTIME_CALIBRATION_H_
#define CNNSERVE_ENGINE_RUNTIME_CALIBRATION_H_

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <string_view>

#include "engine/backend/backend.h"
#include "engine/common/status.h"
#include "engine/graph/graph.h"
#include "engine/tensor/tensor.h"

namespace cnnserve {

enum class CalibrationMethod {
  kMinMax,      // the smallest and largest value seen
  kPercentile,  // the (100 - p)th and pth percentiles of the values seen (outliers clipped)
};

struct Calibration {
  CalibrationMethod method = CalibrationMethod::kMinMax;
  double percentile = 99.99;  // kPercentile only
  int64_t images = 0;         // how many images were measured
  std::string source;         // what they were (a file, a folder, "training images 0-511")
  TensorRanges ranges;
  std::set<std::string> fp32_tensors;
};

// The ranges an int8 plan quantizes with: `calibration.ranges` without its fp32 tensors.
std::shared_ptr<const TensorRanges> Int8Ranges(const Calibration& calibration);

// Largest calibration file read (a VGG-16 file is about 3 KB).
inline constexpr size_t kMaxCalibrationFileBytes = 4 << 20;

// INVALID_ARGUMENT naming the line for anything that is not the format above (unknown records, a missing
// version/method/images line, min > max, non-finite numbers, a tensor named twice, no range at all).
StatusOr<Calibration> ParseCalibration(std::string_view text);
std::string FormatCalibration(const Calibration& calibration);
// NOT_FOUND / INVALID_ARGUMENT naming `path` (larger than kMaxCalibrationFileBytes, or ParseCalibration's error).
StatusOr<Calibration> ReadCalibrationFile(const std::string& path);
// Writes to a temporary file beside `path` and renames it over `path`.
Status WriteCalibrationFile(const std::string& path, const Calibration& calibration);

struct CalibrateOptions {
  CalibrationMethod method = CalibrationMethod::kMinMax;
  double percentile = 99.99;  // in (50, 100]
  int64_t batch = 32;         // images per run
  int num_threads = 0;        // 0: all cores
  // kPercentile: at most this many values are kept per tensor (every k-th value, evenly over all images).
  int64_t max_samples = 1 << 20;
  std::string source;  // copied into Calibration::source
  // > 0: per-layer fallback. While the int8 model's outputs on the calibration images differ from fp32 by more
  // than this fraction of the largest |fp32 output|, the input tensor of a convolution or inner product goes
  // back to fp32 (Calibration::fp32_tensors): the layers that help most, one at a time. 0: none.
  double max_output_error = 0;
};

// Runs `graph` in fp32 (oneDNN backend) over `images` ([N, the graph's item dims...], preprocessed like the
// model's inputs) and measures the range of its input and of every node's first output. INVALID_ARGUMENT for
// images of another shape, an empty batch or options out of range; the engine's errors otherwise.
StatusOr<Calibration> Calibrate(std::shared_ptr<const Graph> graph, const Tensor& images,
                                const CalibrateOptions& options);

}  // namespace cnnserve

#endif  // CNNSERVE_ENGINE_RUNTIME_CALIBRATION_H_
