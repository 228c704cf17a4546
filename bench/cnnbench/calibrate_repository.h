// `cnnbench calibrate --model-repository R --model M --images DIR`: calibrates a repository model on image files
// preprocessed exactly as the server preprocesses them (the model's own config.pbtxt), and writes the ranges
// into the version folder, where the server reads them for precision: INT8.
// Thread-safety: one call at a time (it loads the model folder and runs the engine).
#ifndef CNNSERVE_BENCH_CNNBENCH_CALIBRATE_REPOSITORY_H_
#define CNNSERVE_BENCH_CNNBENCH_CALIBRATE_REPOSITORY_H_

#include <cstdint>
#include <string>

#include "engine/common/status.h"
#include "engine/runtime/calibration.h"

namespace cnnserve {

struct RepositoryCalibrationRequest {
  std::string root;        // the model repository
  std::string model;       // a model folder of it (platform onnx)
  int64_t version = 0;     // 0: the newest version folder with a model.onnx
  std::string images_dir;  // PNG/JPEG files; the first `count` by file name are used
  int64_t count = 512;
};

// What was written.
struct RepositoryCalibrationResult {
  std::string path;  // <root>/<model>/<version>/calibration.txt
  Calibration calibration;
};

// INVALID_ARGUMENT for a model that is not platform onnx, a broken config, no images in `images_dir`, an image
// that does not decode or preprocess (naming the file); NOT_FOUND for a missing model, version or folder.
StatusOr<RepositoryCalibrationResult> CalibrateRepositoryModel(const RepositoryCalibrationRequest& request,
                                                               const CalibrateOptions& options);

}  // namespace cnnserve

#endif  // CNNSERVE_BENCH_CNNBENCH_CALIBRATE_REPOSITORY_H_
