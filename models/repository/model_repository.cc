#include "models/repository/model_repository.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <system_error>
#include <thread>
#include <utility>

#include "engine/common/strings.h"
#include "engine/runtime/calibration.h"
#include "models/onnx/onnx_importer.h"

namespace cnnserve {
namespace {

namespace fs = std::filesystem;

// The parser's messages after the first few add nothing but noise.
constexpr int kMaxReportedParseErrors = 3;
constexpr float kDefaultScale = 1.0f / 255.0f;
constexpr int kImageChannelsGray = 1;
constexpr int kImageChannelsColor = 3;

// Collects the text parser's errors as "path:line:column: message" (1-based, like compilers).
class ConfigErrorCollector final : public google::protobuf::io::ErrorCollector {
 public:
  explicit ConfigErrorCollector(std::string path) : path_(std::move(path)) {}

  void AddError(int line, google::protobuf::io::ColumnNumber column, const std::string& message) override {
    ++count_;
    if (count_ > kMaxReportedParseErrors) return;
    std::string where = path_;
    if (line >= 0) where += ":" + std::to_string(line + 1) + ":" + std::to_string(column + 1);
    if (!errors_.empty()) errors_ += "; ";
    errors_ += where + ": " + message;
  }

  int count() const { return count_; }
  std::string Summary() const {
    if (count_ <= kMaxReportedParseErrors) return errors_;
    return errors_ + " (and " + std::to_string(count_ - kMaxReportedParseErrors) + " more)";
  }

 private:
  std::string path_;
  std::string errors_;
  int count_ = 0;
};

std::string FloatString(float v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

std::string DimsList(const Dims& dims) {
  std::string out = "[";
  for (size_t i = 0; i < dims.size(); ++i) out += (i ? ", " : "") + std::to_string(dims[i]);
  return out + "]";
}

// "path: field <field>: <problem>".
Status FieldError(const std::string& path, const std::string& field, const std::string& problem) {
  return InvalidArgumentError(path + ": field " + field + ": " + problem);
}

Status CheckRange(const std::string& path, const std::string& field, int64_t value, int64_t lo, int64_t hi) {
  if (value < lo) return FieldError(path, field, std::to_string(value) + " must be >= " + std::to_string(lo));
  if (value > hi) return FieldError(path, field, std::to_string(value) + " must be <= " + std::to_string(hi));
  return OkStatus();
}

std::string Indexed(const std::string& field, int i) { return field + "[" + std::to_string(i) + "]"; }

// Reads a whole (small) file. NOT_FOUND when it cannot be opened; INVALID_ARGUMENT over `max_bytes`.
StatusOr<std::string> ReadSmallFile(const std::string& path, int64_t max_bytes) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return NotFoundError(path + ": no such file");
  if (!fs::is_regular_file(path, ec)) return InvalidArgumentError(path + ": not a regular file");
  const uintmax_t size = fs::file_size(path, ec);
  if (ec) return InvalidArgumentError(path + ": cannot read its size: " + ec.message());
  if (size > static_cast<uintmax_t>(max_bytes)) {
    return InvalidArgumentError(path + ": " + std::to_string(size) + " bytes, over the limit of " +
                                std::to_string(max_bytes));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError(path + ": cannot be opened");
  std::string bytes(static_cast<size_t>(size), '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (static_cast<uintmax_t>(in.gcount()) != size) return InvalidArgumentError(path + ": short read");
  return bytes;
}

std::vector<int64_t> FindVersionFolders(const fs::path& directory) {
  std::vector<int64_t> versions;
  std::error_code ec;
  for (fs::directory_iterator it(directory, ec), end; !ec && it != end; it.increment(ec)) {
    int64_t version = 0;
    if (it->is_directory(ec) && ParseVersionName(it->path().filename().string(), &version)) {
      versions.push_back(version);
    }
  }
  std::sort(versions.begin(), versions.end());
  versions.erase(std::unique(versions.begin(), versions.end()), versions.end());
  return versions;
}

std::string ColorName(v1::PreprocessConfig::Color color) {
  const std::string& name = v1::PreprocessConfig::Color_Name(color);
  return name.empty() ? std::to_string(static_cast<int>(color)) : name;
}

int64_t ElapsedMicros(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - since).count();
}

// The config's precision in `model_options`; INT8 also reads the version's calibration file.
Status ApplyPrecision(const v1::ModelConfig& config, const fs::path& folder, ModelOptions& model_options) {
  switch (config.precision()) {
    case v1::BF16:
      model_options.precision = Precision::kBf16;
      return OkStatus();
    case v1::INT8:
      break;
    default:
      model_options.precision = Precision::kFp32;
      return OkStatus();
  }
  model_options.precision = Precision::kInt8;
  const std::string path = (folder / kCalibrationFileName).string();
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    return NotFoundError(path +
                         ": missing (precision INT8 needs the calibration file that `cnnbench calibrate` "
                         "writes into the version folder)");
  }
  CNN_ASSIGN_OR_RETURN(Calibration calibration, ReadCalibrationFile(path));
  model_options.ranges = Int8Ranges(calibration);
  return OkStatus();
}

// Imports one version, checks it against the config and labels, and creates its Model.
void LoadVersion(const ModelEntry& entry, const ModelRepositoryOptions& options, const std::string& labels_path,
                 VersionEntry& version) {
  const auto start = std::chrono::steady_clock::now();
  const fs::path folder = fs::path(entry.directory) / std::to_string(version.version);
  version.model_path = (folder / kModelFileName).string();
  version.state = ModelState::kUnavailable;
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) {
    version.reason = folder.string() + ": no such version folder (version_policy.specific asks for version " +
                     std::to_string(version.version) + ")";
    return;
  }
  if (!fs::exists(version.model_path, ec)) {
    version.reason = version.model_path + ": missing (every version folder needs a " + kModelFileName + ")";
    return;
  }
  // BF16 and INT8 plans convert the weights: read them in place from the mapped file, so that the fp32 weights
  // are never resident all at once (OnnxImportOptions::map_weights).
  OnnxImportOptions import;
  import.map_weights = entry.config.precision() == v1::BF16 || entry.config.precision() == v1::INT8;
  StatusOr<std::shared_ptr<const Graph>> graph = LoadOnnxGraph(version.model_path, import);
  if (!graph.ok()) {
    version.reason = graph.status().message();
    if (version.reason.find(version.model_path) == std::string::npos) {
      version.reason = version.model_path + ": " + version.reason;
    }
    return;
  }
  version.graph = *graph;
  const Dims& input = version.graph->input_dims();
  const Dims& output = version.graph->output_dims();
  if (input.size() != 4) {
    version.reason = version.model_path + ": the input \"" + version.graph->input_name() + "\" has shape [" +
                     DimsToString(input) + "]; an image classifier needs N x C x H x W";
    return;
  }
  version.item_input_dims.assign(input.begin() + 1, input.end());
  version.num_classes = NumElements(Dims(output.begin() + (output.empty() ? 0 : 1), output.end()));
  if (Status status =
          CheckConfigAgainstModel(entry.config, entry.config_path, version.model_path, version.item_input_dims,
                                  version.num_classes, static_cast<int64_t>(entry.labels.size()), labels_path);
      !status.ok()) {
    version.reason = status.message();
    return;
  }
  ModelOptions model_options;
  model_options.backend = options.backend;
  model_options.num_threads = InstanceThreads(entry.config.instance_group().threads(),
                                              entry.config.instance_group().count(), options.total_threads);
  if (Status status = ApplyPrecision(entry.config, folder, model_options); !status.ok()) {
    version.reason = status.message();
    return;
  }
  StatusOr<std::shared_ptr<const Model>> model = Model::Create(version.graph, model_options);
  if (!model.ok()) {
    version.reason = version.model_path + ": " + model.status().message();
    return;
  }
  version.model = *std::move(model);
  version.state = ModelState::kReady;
  version.reason.clear();
  version.load_time_us = ElapsedMicros(start);
}

void MarkAllUnavailable(ModelEntry& entry, const std::vector<int64_t>& found) {
  entry.versions.clear();
  if (found.empty()) {
    VersionEntry version;
    version.reason = entry.config_error;
    entry.versions.push_back(std::move(version));
    return;
  }
  for (int64_t v : found) {
    VersionEntry version;
    version.version = v;
    version.model_path = (fs::path(entry.directory) / std::to_string(v) / kModelFileName).string();
    version.reason = entry.config_error;
    entry.versions.push_back(std::move(version));
  }
}

// Fills in the defaults the config leaves implicit once the input dims are known.
void ApplyDefaults(ModelEntry& entry, const ModelRepositoryOptions& options, const Dims& input_dims) {
  v1::ModelConfig& config = entry.config;
  if (config.name().empty()) config.set_name(entry.name);
  if (config.platform().empty()) config.set_platform(kPlatformOnnx);
  if (config.input().dims().empty() && input_dims.size() == 3) {
    for (int64_t d : input_dims) config.mutable_input()->add_dims(d);
  }
  v1::PreprocessConfig& preprocess = *config.mutable_preprocess();
  if (preprocess.color() == v1::PreprocessConfig::COLOR_UNSPECIFIED && input_dims.size() == 3) {
    if (input_dims[0] == kImageChannelsGray) preprocess.set_color(v1::PreprocessConfig::GRAY);
    if (input_dims[0] == kImageChannelsColor) preprocess.set_color(v1::PreprocessConfig::RGB);
  }
  if (preprocess.resize() == v1::PreprocessConfig::RESIZE_UNSPECIFIED) {
    preprocess.set_resize(v1::PreprocessConfig::EXACT);
  }
  if (preprocess.scale() == 0.0f) preprocess.set_scale(kDefaultScale);
  if (config.dynamic_batching().max_queue_size() == 0 && options.default_max_queue_size > 0) {
    config.mutable_dynamic_batching()->set_max_queue_size(static_cast<int32_t>(
        std::min<int64_t>(options.default_max_queue_size, std::numeric_limits<int32_t>::max())));
  }
  v1::InstanceGroup& group = *config.mutable_instance_group();
  if (group.count() == 0) group.set_count(1);
  if (group.threads() == 0) group.set_threads(InstanceThreads(0, group.count(), options.total_threads));
}

ModelEntry LoadModel(const fs::path& directory, const ModelRepositoryOptions& options) {
  ModelEntry entry;
  entry.name = directory.filename().string();
  entry.directory = directory.string();
  entry.config_path = (directory / kModelConfigFileName).string();
  const std::vector<int64_t> found = FindVersionFolders(directory);

  Status config_status = [&]() -> Status {
    StatusOr<std::string> text = ReadSmallFile(entry.config_path, kMaxConfigFileBytes);
    if (!text.ok()) {
      if (text.status().code() == StatusCode::kNotFound) {
        return NotFoundError(entry.config_path + ": missing (every model folder needs a " + kModelConfigFileName +
                             ")");
      }
      return text.status();
    }
    CNN_ASSIGN_OR_RETURN(entry.config, ParseModelConfig(*text, entry.config_path));
    return ValidateModelConfig(entry.config, entry.config_path, entry.name);
  }();

  std::string labels_path;
  if (config_status.ok()) {
    const std::string& labels_name = entry.config.labels();
    labels_path = (directory / (labels_name.empty() ? kDefaultLabelsFileName : labels_name)).string();
    std::error_code ec;
    if (!labels_name.empty() || fs::exists(labels_path, ec)) {
      StatusOr<std::vector<std::string>> labels = ReadLabelsFile(labels_path);
      if (labels.ok()) {
        entry.labels = *std::move(labels);
        if (labels_name.empty()) entry.config.set_labels(kDefaultLabelsFileName);
      } else {
        config_status =
            labels.status().code() == StatusCode::kNotFound
                ? InvalidArgumentError(entry.config_path + ": field labels: " + labels_path + " does not exist")
                : labels.status();
      }
    }
  }
  if (!config_status.ok()) {
    entry.config_ok = false;
    entry.config_error = config_status.message();
    MarkAllUnavailable(entry, found);
    return entry;
  }
  entry.config_ok = true;

  if (entry.config.platform() == kPlatformEnsemble) {  // served by an ensemble scheduler: nothing to load here
    ApplyDefaults(entry, options, {});
    return entry;
  }
  if (entry.config.platform() == kPlatformNull) {  // built in: one version, no file
    const Dims dims(entry.config.input().dims().begin(), entry.config.input().dims().end());
    VersionEntry version;
    version.version = 1;
    version.state = ModelState::kReady;
    version.item_input_dims = dims;
    version.num_classes = entry.config.num_classes();
    if (!entry.labels.empty() && static_cast<int64_t>(entry.labels.size()) != version.num_classes) {
      version.state = ModelState::kUnavailable;
      version.reason = entry.config_path + ": field labels: " + std::to_string(entry.labels.size()) +
                       " labels but num_classes is " + std::to_string(version.num_classes);
    }
    entry.versions.push_back(std::move(version));
    ApplyDefaults(entry, options, dims);
    return entry;
  }

  for (int64_t v : SelectVersions(entry.config.version_policy(), found)) {
    VersionEntry version;
    version.version = v;
    entry.versions.push_back(std::move(version));
  }
  if (entry.versions.empty()) {
    VersionEntry version;
    version.reason = entry.directory + ": no version folders (expected " + entry.directory + "/<N>/" +
                     kModelFileName + " with N a positive integer)";
    entry.versions.push_back(std::move(version));
    ApplyDefaults(entry, options, {});
    return entry;
  }
  for (VersionEntry& version : entry.versions) LoadVersion(entry, options, labels_path, version);

  // One preprocessing serves every version, so their inputs must agree: with the config's dims when given
  // (already checked), else with the newest version that imported.
  Dims input_dims(entry.config.input().dims().begin(), entry.config.input().dims().end());
  if (input_dims.empty()) {
    for (auto it = entry.versions.rbegin(); it != entry.versions.rend(); ++it) {
      if (!it->item_input_dims.empty()) {
        const int64_t reference_version = it->version;
        input_dims = it->item_input_dims;
        for (VersionEntry& version : entry.versions) {
          if (version.item_input_dims.empty() || version.item_input_dims == input_dims) continue;
          version.state = ModelState::kUnavailable;
          version.model.reset();
          version.reason = version.model_path + ": input " + DimsToString(version.item_input_dims) +
                           " differs from the input " + DimsToString(input_dims) + " of version " +
                           std::to_string(reference_version) + "; set input.dims in " + entry.config_path +
                           " to choose";
        }
        break;
      }
    }
  }
  ApplyDefaults(entry, options, input_dims);
  return entry;
}

}  // namespace

std::string_view ModelStateName(ModelState state) {
  switch (state) {
    case ModelState::kReady:
      return "READY";
    case ModelState::kLoading:
      return "LOADING";
    case ModelState::kUnavailable:
      break;
  }
  return "UNAVAILABLE";
}

const VersionEntry* ModelEntry::DefaultVersion() const {
  for (auto it = versions.rbegin(); it != versions.rend(); ++it) {
    if (it->state == ModelState::kReady) return &*it;
  }
  return nullptr;
}

const VersionEntry* ModelEntry::FindVersion(int64_t version) const {
  for (const VersionEntry& v : versions) {
    if (v.version == version) return &v;
  }
  return nullptr;
}

Dims ModelEntry::InputDims() const { return Dims(config.input().dims().begin(), config.input().dims().end()); }

int64_t ModelEntry::NumClasses() const {
  for (auto it = versions.rbegin(); it != versions.rend(); ++it) {
    if (it->num_classes > 0) return it->num_classes;
  }
  return 0;
}

StatusOr<ModelEntry> LoadModelFolder(const std::string& root, const std::string& name,
                                     const ModelRepositoryOptions& options) {
  if (name.empty() || name[0] == '.' || name.find('/') != std::string::npos || name == "..") {
    return InvalidArgumentError("model name " + Quoted(name) + " is not a folder name of the repository");
  }
  const fs::path directory = fs::path(root) / name;
  std::error_code ec;
  if (!fs::is_directory(directory, ec)) {
    return NotFoundError("model " + Quoted(name) + " not found: " + directory.string() + " is not a folder");
  }
  return LoadModel(directory, options);
}

StatusOr<std::unique_ptr<ModelRepository>> ModelRepository::Load(const std::string& root,
                                                                 const ModelRepositoryOptions& options) {
  std::error_code ec;
  if (!fs::exists(root, ec)) return NotFoundError("model repository " + root + " does not exist");
  if (!fs::is_directory(root, ec)) {
    return FailedPreconditionError("model repository " + root + " is not a directory");
  }
  std::vector<fs::path> folders;
  fs::directory_iterator it(root, ec);
  if (ec) return FailedPreconditionError("model repository " + root + " cannot be listed: " + ec.message());
  for (fs::directory_iterator end; it != end; it.increment(ec)) {
    if (ec) return FailedPreconditionError("model repository " + root + " cannot be listed: " + ec.message());
    const std::string name = it->path().filename().string();
    if (name.empty() || name[0] == '.') continue;
    std::error_code entry_ec;
    if (!it->is_directory(entry_ec)) continue;
    folders.push_back(it->path());
  }
  std::sort(folders.begin(), folders.end());
  auto repository = std::unique_ptr<ModelRepository>(new ModelRepository());
  repository->root_ = root;
  repository->models_.reserve(folders.size());
  for (const fs::path& folder : folders) repository->models_.push_back(LoadModel(folder, options));
  return repository;
}

const ModelEntry* ModelRepository::Find(std::string_view name) const {
  const auto it = std::lower_bound(models_.begin(), models_.end(), name,
                                   [](const ModelEntry& entry, std::string_view n) { return entry.name < n; });
  return it != models_.end() && it->name == name ? &*it : nullptr;
}

StatusOr<v1::ModelConfig> ParseModelConfig(std::string_view text, const std::string& path) {
  v1::ModelConfig config;
  ConfigErrorCollector errors(path);
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  const bool parsed = parser.ParseFromString(std::string(text), &config);
  if (!parsed || errors.count() > 0) {
    return InvalidArgumentError(errors.count() > 0 ? errors.Summary() : path + ": cannot be parsed");
  }
  return config;
}

namespace {

// precision: a known value, and only where an engine model is compiled.
Status ValidatePrecision(const v1::ModelConfig& config, const std::string& path) {
  if (!v1::Precision_IsValid(config.precision())) {
    return FieldError(path, "precision",
                      std::to_string(static_cast<int>(config.precision())) + " is not one of FP32, BF16, INT8");
  }
  const bool ensemble = config.platform() == kPlatformEnsemble;
  if (config.precision() != v1::FP32 && (ensemble || config.platform() == kPlatformNull)) {
    return FieldError(path, "precision",
                      "only for platform " + Quoted(kPlatformOnnx) +
                          (ensemble ? " (an ensemble's members each set their own)" : ""));
  }
  return OkStatus();
}

}  // namespace

Status ValidateModelConfig(const v1::ModelConfig& config, const std::string& path, std::string_view folder_name) {
  if (!config.name().empty() && config.name() != folder_name) {
    return FieldError(path, "name",
                      Quoted(config.name()) + " must equal the model's folder name " + Quoted(folder_name));
  }
  const std::string& platform = config.platform();
  if (!platform.empty() && platform != kPlatformOnnx && platform != kPlatformEnsemble &&
      platform != kPlatformNull) {
    return FieldError(path, "platform",
                      Quoted(platform) + " is not one of " + Quoted(kPlatformOnnx) + ", " +
                          Quoted(kPlatformEnsemble) + ", " + Quoted(kPlatformNull));
  }
  const bool ensemble = platform == kPlatformEnsemble;
  if (platform == kPlatformNull) {
    if (config.input().dims_size() != 3) {
      return FieldError(path, "input.dims", "platform \"null\" needs input.dims (C, H, W)");
    }
    CNN_RETURN_IF_ERROR(CheckRange(path, "num_classes", config.num_classes(), 1, kMaxConfigNullClasses));
  } else if (config.num_classes() != 0) {
    return FieldError(path, "num_classes", "only allowed with platform: " + Quoted(kPlatformNull));
  }
  CNN_RETURN_IF_ERROR(ValidatePrecision(config, path));
  CNN_RETURN_IF_ERROR(CheckRange(path, "max_batch_size", config.max_batch_size(), 0, kMaxConfigBatchSize));

  const auto& dims = config.input().dims();
  if (!dims.empty() && dims.size() != 3) {
    return FieldError(path, "input.dims",
                      DimsList(Dims(dims.begin(), dims.end())) + " must have 3 values (C, H, W) or none");
  }
  for (int i = 0; i < dims.size(); ++i) {
    CNN_RETURN_IF_ERROR(CheckRange(path, Indexed("input.dims", i), dims[i], 1, kMaxConfigInputSide));
  }

  const v1::PreprocessConfig& preprocess = config.preprocess();
  if (!v1::PreprocessConfig::Color_IsValid(preprocess.color())) {
    return FieldError(path, "preprocess.color",
                      std::to_string(static_cast<int>(preprocess.color())) + " is not one of GRAY, RGB, BGR");
  }
  if (!v1::PreprocessConfig::Resize_IsValid(preprocess.resize())) {
    return FieldError(
        path, "preprocess.resize",
        std::to_string(static_cast<int>(preprocess.resize())) + " is not one of EXACT, SHORTER_SIDE_CROP");
  }
  if (preprocess.resize_shorter_side() != 0) {
    CNN_RETURN_IF_ERROR(CheckRange(path, "preprocess.resize_shorter_side", preprocess.resize_shorter_side(), 1,
                                   kMaxConfigInputSide));
    if (preprocess.resize() != v1::PreprocessConfig::SHORTER_SIDE_CROP) {
      return FieldError(
          path, "preprocess.resize_shorter_side",
          std::to_string(preprocess.resize_shorter_side()) + " is only used with resize: SHORTER_SIDE_CROP");
    }
  }
  if (!std::isfinite(preprocess.scale()) || preprocess.scale() < 0.0f) {
    return FieldError(path, "preprocess.scale",
                      FloatString(preprocess.scale()) + " must be a finite number > 0 (0 means 1/255)");
  }
  for (const auto& [field, values] :
       {std::pair{"preprocess.mean", &preprocess.mean()}, std::pair{"preprocess.std", &preprocess.std()}}) {
    if (values->size() != 0 && values->size() != 1 && values->size() != kImageChannelsColor) {
      return FieldError(path, field,
                        std::to_string(values->size()) + " values; expected 0, 1 or one per channel (1 or 3)");
    }
    for (int i = 0; i < values->size(); ++i) {
      const float v = values->Get(i);
      const bool is_std = std::string_view(field) == "preprocess.std";
      if (!std::isfinite(v) || (is_std && v <= 0.0f)) {
        return FieldError(path, Indexed(field, i),
                          FloatString(v) + (is_std ? " must be a finite number > 0" : " must be finite"));
      }
    }
  }

  const v1::DynamicBatching& batching = config.dynamic_batching();
  CNN_RETURN_IF_ERROR(CheckRange(path, "dynamic_batching.max_queue_delay_us", batching.max_queue_delay_us(), 0,
                                 kMaxConfigQueueDelayUs));
  const int64_t max_batch = std::max<int64_t>(1, config.max_batch_size());
  for (int i = 0; i < batching.preferred_batch_size_size(); ++i) {
    const int64_t size = batching.preferred_batch_size(i);
    if (size < 1 || size > max_batch) {
      return FieldError(path, Indexed("dynamic_batching.preferred_batch_size", i),
                        std::to_string(size) + " must be in [1, " + std::to_string(max_batch) +
                            "] (max_batch_size is " + std::to_string(config.max_batch_size()) + ")");
    }
  }
  CNN_RETURN_IF_ERROR(CheckRange(path, "dynamic_batching.max_queue_size", batching.max_queue_size(), 0,
                                 std::numeric_limits<int32_t>::max()));
  CNN_RETURN_IF_ERROR(
      CheckRange(path, "instance_group.count", config.instance_group().count(), 0, kMaxConfigInstances));
  CNN_RETURN_IF_ERROR(
      CheckRange(path, "instance_group.threads", config.instance_group().threads(), 0, kMaxConfigThreads));

  if (!config.labels().empty()) {
    const fs::path labels(config.labels());
    bool inside = !labels.is_absolute() && labels.has_filename();
    for (const fs::path& part : labels) inside = inside && part != "..";
    if (!inside) {
      return FieldError(path, "labels", Quoted(config.labels()) + " must name a file inside the model folder");
    }
  }

  const v1::VersionPolicy& policy = config.version_policy();
  CNN_RETURN_IF_ERROR(
      CheckRange(path, "version_policy.latest", policy.latest(), 0, std::numeric_limits<int32_t>::max()));
  for (int i = 0; i < policy.specific_size(); ++i) {
    CNN_RETURN_IF_ERROR(CheckRange(path, Indexed("version_policy.specific", i), policy.specific(i), 1,
                                   std::numeric_limits<int64_t>::max()));
  }

  if (config.has_ensemble() && !ensemble) {
    return FieldError(path, "ensemble", "only allowed with platform: " + Quoted(kPlatformEnsemble));
  }
  if (ensemble && config.ensemble().members_size() == 0) {
    return FieldError(path, "ensemble.members", "an ensemble needs at least one member");
  }
  return OkStatus();
}

Status CheckConfigAgainstModel(const v1::ModelConfig& config, const std::string& path,
                               const std::string& model_path, const Dims& item_input_dims, int64_t num_classes,
                               int64_t num_labels, const std::string& labels_path) {
  const std::string of_model = model_path.empty() ? std::string("the model") : model_path;
  if (item_input_dims.size() != 3) {
    return InvalidArgumentError(of_model + ": per-image input " + DimsList(item_input_dims) + " is not C x H x W");
  }
  const Dims configured(config.input().dims().begin(), config.input().dims().end());
  if (!configured.empty() && configured != item_input_dims) {
    return FieldError(
        path, "input.dims",
        DimsList(configured) + " does not match the input " + DimsList(item_input_dims) + " of " + of_model);
  }
  const int64_t channels = item_input_dims[0];
  const v1::PreprocessConfig& preprocess = config.preprocess();
  switch (preprocess.color()) {
    case v1::PreprocessConfig::GRAY:
      if (channels != kImageChannelsGray) {
        return FieldError(path, "preprocess.color",
                          "GRAY needs 1 input channel but " + of_model + " has " + std::to_string(channels));
      }
      break;
    case v1::PreprocessConfig::RGB:
    case v1::PreprocessConfig::BGR:
      if (channels != kImageChannelsColor) {
        return FieldError(path, "preprocess.color",
                          ColorName(preprocess.color()) + " needs 3 input channels but " + of_model + " has " +
                              std::to_string(channels));
      }
      break;
    default:
      if (channels != kImageChannelsGray && channels != kImageChannelsColor) {
        return InvalidArgumentError(of_model + ": the input has " + std::to_string(channels) +
                                    " channels; image preprocessing needs 1 (GRAY) or 3 (RGB, BGR)");
      }
      break;
  }
  for (const auto& [field, size] : {std::pair{"preprocess.mean", preprocess.mean_size()},
                                    std::pair{"preprocess.std", preprocess.std_size()}}) {
    if (size != 0 && size != 1 && size != channels) {
      return FieldError(path, field,
                        std::to_string(size) + " values; expected 0, 1 or " + std::to_string(channels) +
                            " (the input channels of " + of_model + ")");
    }
  }
  if (preprocess.resize() == v1::PreprocessConfig::SHORTER_SIDE_CROP && preprocess.resize_shorter_side() != 0) {
    const int64_t longest = std::max(item_input_dims[1], item_input_dims[2]);
    if (preprocess.resize_shorter_side() < longest) {
      return FieldError(path, "preprocess.resize_shorter_side",
                        std::to_string(preprocess.resize_shorter_side()) +
                            " must be >= " + std::to_string(longest) + " (the input's larger side) to crop " +
                            std::to_string(item_input_dims[1]) + "x" + std::to_string(item_input_dims[2]));
    }
  }
  if (num_classes < 1) return InvalidArgumentError(of_model + ": the output has no elements");
  if (num_labels > 0 && num_labels != num_classes) {
    return InvalidArgumentError(labels_path + ": " + std::to_string(num_labels) + " labels but " + of_model +
                                " has " + std::to_string(num_classes) + " classes");
  }
  return OkStatus();
}

StatusOr<std::vector<std::string>> ReadLabelsFile(const std::string& path) {
  CNN_ASSIGN_OR_RETURN(const std::string text, ReadSmallFile(path, kMaxLabelsFileBytes));
  std::vector<std::string> labels;
  size_t begin = 0;
  while (begin < text.size()) {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(begin, end - begin);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    labels.push_back(std::move(line));
    begin = end + 1;
  }
  while (!labels.empty() && labels.back().empty()) labels.pop_back();
  if (labels.empty()) return InvalidArgumentError(path + ": no labels (the file is empty)");
  return labels;
}

bool ParseVersionName(const std::string& name, int64_t* version) {
  if (name.empty() || !std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return false;
  }
  int64_t value = 0;
  const auto [ptr, ec] = std::from_chars(name.data(), name.data() + name.size(), value);
  if (ec != std::errc() || ptr != name.data() + name.size() || value <= 0) return false;
  *version = value;
  return true;
}

std::vector<int64_t> SelectVersions(const v1::VersionPolicy& policy, const std::vector<int64_t>& found) {
  if (policy.specific_size() > 0) {
    std::set<int64_t> specific(policy.specific().begin(), policy.specific().end());
    return std::vector<int64_t>(specific.begin(), specific.end());
  }
  std::vector<int64_t> sorted = found;
  std::sort(sorted.begin(), sorted.end());
  if (policy.latest() > 0 && static_cast<size_t>(policy.latest()) < sorted.size()) {
    sorted.erase(sorted.begin(), sorted.end() - policy.latest());
  }
  return sorted;
}

int InstanceThreads(int threads, int instances, int total_threads) {
  if (threads > 0) return threads;
  int total = total_threads > 0 ? total_threads : static_cast<int>(std::thread::hardware_concurrency());
  total = std::max(total, 1);
  return std::max(1, total / std::max(instances, 1));
}

}  // namespace cnnserve
