#include "bench/cnnbench/calibrate_repository.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <utility>
#include <vector>

#include "engine/common/strings.h"
#include "models/onnx/onnx_importer.h"
#include "models/repository/model_repository.h"
#include "server/preprocess/image_input.h"
#include "server/servables/preprocess_config.h"

namespace cnnserve {
namespace {

namespace fs = std::filesystem;

// The first `count` PNG/JPEG files of `dir` by name.
StatusOr<std::vector<fs::path>> ImageFiles(const std::string& dir, int64_t count) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return NotFoundError("no such image folder " + Quoted(dir));
  std::vector<fs::path> files;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, ec)) {
    std::string ext = entry.path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
    if (entry.is_regular_file() && (ext == ".png" || ext == ".jpg" || ext == ".jpeg"))
      files.push_back(entry.path());
  }
  if (ec) return InvalidArgumentError("cannot list " + Quoted(dir) + ": " + ec.message());
  if (files.empty()) return InvalidArgumentError(Quoted(dir) + " holds no .png, .jpg or .jpeg file");
  std::sort(files.begin(), files.end());
  if (static_cast<int64_t>(files.size()) > count) files.resize(static_cast<size_t>(count));
  return files;
}

// The version to calibrate: `wanted`, or the newest one with a graph.
StatusOr<const VersionEntry*> PickVersion(const ModelEntry& entry, int64_t wanted) {
  const VersionEntry* picked = nullptr;
  for (const VersionEntry& version : entry.versions) {
    if (version.graph == nullptr) continue;
    if (wanted == 0 || version.version == wanted) picked = &version;
  }
  if (picked == nullptr) {
    return NotFoundError("model " + Quoted(entry.name) + " has no " +
                         (wanted == 0 ? std::string("version") : "version " + std::to_string(wanted)) +
                         " whose model.onnx imports" +
                         (entry.versions.empty() ? "" : ": " + entry.versions.back().reason));
  }
  return picked;
}

// The images preprocessed with the model's config, as one [N, C, H, W] tensor.
StatusOr<Tensor> PreprocessFiles(const ModelEntry& entry, const std::vector<fs::path>& files) {
  DecodeLimits limits;
  CNN_ASSIGN_OR_RETURN(const PreprocessOptions preprocess, PreprocessOptionsFromConfig(entry.config, limits));
  const Dims item = entry.InputDims();
  Dims dims = {static_cast<int64_t>(files.size())};
  dims.insert(dims.end(), item.begin(), item.end());
  Tensor images(dims);
  const int64_t item_size = NumElements(item);
  for (size_t i = 0; i < files.size(); ++i) {
    std::ifstream in(files[i], std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof()) return InvalidArgumentError("cannot read " + Quoted(files[i].string()));
    ImageItem image;
    image.data = bytes;
    ItemTarget target{entry.name, &preprocess, item, images.data() + static_cast<int64_t>(i) * item_size};
    const Status status = PrepareItem(image, limits, target);
    if (!status.ok()) return status.WithContext(Quoted(files[i].string()));
  }
  return images;
}

}  // namespace

StatusOr<RepositoryCalibrationResult> CalibrateRepositoryModel(const RepositoryCalibrationRequest& request,
                                                               const CalibrateOptions& options) {
  CNN_ASSIGN_OR_RETURN(const ModelEntry entry, LoadModelFolder(request.root, request.model));
  if (!entry.config_ok) return InvalidArgumentError(entry.config_error);
  if (entry.config.platform() != kPlatformOnnx) {
    return InvalidArgumentError("model " + Quoted(entry.name) + " is platform " + Quoted(entry.config.platform()) +
                                "; only onnx models are calibrated");
  }
  CNN_ASSIGN_OR_RETURN(const VersionEntry* version, PickVersion(entry, request.version));
  CNN_ASSIGN_OR_RETURN(const std::vector<fs::path> files, ImageFiles(request.images_dir, request.count));
  CNN_ASSIGN_OR_RETURN(const Tensor images, PreprocessFiles(entry, files));
  CalibrateOptions with_source = options;
  with_source.source = "the first " + std::to_string(files.size()) + " images by name of " + request.images_dir +
                       " (" + files.front().filename().string() + " .. " + files.back().filename().string() + ")";
  RepositoryCalibrationResult result;
  CNN_ASSIGN_OR_RETURN(result.calibration, Calibrate(version->graph, images, with_source));
  result.path = (fs::path(version->model_path).parent_path() / kCalibrationFileName).string();
  CNN_RETURN_IF_ERROR(WriteCalibrationFile(result.path, result.calibration));
  return result;
}

}  // namespace cnnserve
