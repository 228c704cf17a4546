// ModelRepository: a folder of models in Triton's layout, scanned, validated and loaded into engine Models.
//
//   <root>/<model>/config.pbtxt           cnnserve.v1.ModelConfig in protobuf text format (model_config.proto)
//   <root>/<model>/<version>/model.onnx   versions are folders named by a positive integer
//   <root>/<model>/labels.txt             one class label per line (or the file named by `labels`)
//
// Load reads every model folder, parses and validates its config.pbtxt, picks the versions its version_policy
// serves, imports each version's ONNX file into a Model (engine/runtime) and checks it against the config and
// the labels. Nothing that is wrong with one model stops the others: a model whose config does not parse or
// validate has all its versions UNAVAILABLE with that reason, and a version whose model.onnx is missing,
// corrupt, unsupported or does not match the config is UNAVAILABLE with its own reason while the other
// versions load. Reasons name the file, and for config errors the line and column or the field:
//   models/x/config.pbtxt:3:16: Expected integer, got: [
//   models/x/config.pbtxt: field max_batch_size: -1 must be >= 0
//   models/x/2/model.onnx: ... is not a valid ONNX model
//
// The repository does not compile plans or warm anything up: the inference layer does that with its sessions
// (and may mark a version UNAVAILABLE when that fails). It logs nothing; callers log the entries' reasons.
// Thread-safety: Load is reentrant. A loaded ModelRepository is immutable: share it between threads freely.
#ifndef CNNSERVE_MODELS_REPOSITORY_MODEL_REPOSITORY_H_
#define CNNSERVE_MODELS_REPOSITORY_MODEL_REPOSITORY_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cnnserve/v1/model_config.pb.h"
#include "engine/common/status.h"
#include "engine/common/units.h"
#include "engine/graph/graph.h"
#include "engine/runtime/model.h"
#include "engine/tensor/tensor.h"

namespace cnnserve {

inline constexpr char kModelConfigFileName[] = "config.pbtxt";
inline constexpr char kModelFileName[] = "model.onnx";
// An INT8 version's activation ranges (engine/runtime/calibration.h), beside its model file.
inline constexpr char kCalibrationFileName[] = "calibration.txt";
inline constexpr char kDefaultLabelsFileName[] = "labels.txt";
inline constexpr char kPlatformOnnx[] = "onnx";
inline constexpr char kPlatformEnsemble[] = "ensemble";
// Built in: returns zeros without computing (to measure the server's own overhead). No version folders: it
// has exactly version 1; config needs input.dims and num_classes.
inline constexpr char kPlatformNull[] = "null";

// Limits checked by ValidateModelConfig (generous; they catch typos, not real models).
inline constexpr int64_t kMaxConfigBatchSize = 4096;
inline constexpr int64_t kMaxConfigQueueDelayUs = kSecondsPerMinute * kMicrosPerSecond;
inline constexpr int64_t kMaxConfigInstances = 64;
inline constexpr int64_t kMaxConfigThreads = 1024;
inline constexpr int64_t kMaxConfigInputSide = 16384;
inline constexpr int64_t kMaxConfigFileBytes = int64_t{1} << 20;
inline constexpr int64_t kMaxLabelsFileBytes = int64_t{16} << 20;
inline constexpr int64_t kMaxConfigNullClasses = int64_t{1} << 20;

enum class ModelState { kReady, kLoading, kUnavailable };

// "READY", "LOADING", "UNAVAILABLE" (the strings of ModelVersionState.state in classifier.proto).
std::string_view ModelStateName(ModelState state);

// One version of a model.
struct VersionEntry {
  int64_t version = 0;
  std::string model_path;  // <root>/<model>/<version>/model.onnx
  ModelState state = ModelState::kUnavailable;
  std::string reason;  // why it is UNAVAILABLE (empty when READY)
  // The imported graph (kept even when a later check failed, so that it can still be described), and the
  // loaded Model: non-null exactly when state == kReady.
  std::shared_ptr<const Graph> graph;
  std::shared_ptr<const Model> model;
  Dims item_input_dims;      // C, H, W of the ONNX input (empty when the file did not import)
  int64_t num_classes = 0;   // elements of one image's output
  int64_t load_time_us = 0;  // import + Model::Create
};

// One model folder.
struct ModelEntry {
  std::string name;         // the folder name
  std::string directory;    // <root>/<model>
  std::string config_path;  // <root>/<model>/config.pbtxt
  // False when config.pbtxt is missing or does not parse or validate; `config_error` says why, and every
  // version is UNAVAILABLE with that reason.
  bool config_ok = false;
  std::string config_error;
  // The config as written, with the defaults made explicit once it validated: name, platform, input.dims
  // (from the ONNX file when not given), preprocess.color,
  // preprocess.resize, preprocess.scale, dynamic_batching.max_queue_size (when `default_max_queue_size` > 0),
  // instance_group.count and .threads, labels (when a labels file exists).
  v1::ModelConfig config;
  std::vector<std::string> labels;  // empty when the model has no labels file
  // Versions the version policy serves, ascending. For a model whose config is broken: every numeric version
  // folder found (all UNAVAILABLE), or a single version 0 entry when there is none.
  std::vector<VersionEntry> versions;

  // The version an unpinned request gets: the newest READY one. nullptr when none is ready.
  const VersionEntry* DefaultVersion() const;
  // nullptr when `version` is not among `versions`.
  const VersionEntry* FindVersion(int64_t version) const;
  bool HasReadyVersion() const { return DefaultVersion() != nullptr; }
  // Per-image input dims (C, H, W) from the config; empty when unknown.
  Dims InputDims() const;
  // Classes of the newest version with a graph (0 when unknown).
  int64_t NumClasses() const;
};

struct ModelRepositoryOptions {
  // Cores to share between model instances when a config does not set instance_group.threads (0: all hardware
  // threads). Each instance of a model gets max(1, total_threads / instance_group.count) threads.
  int total_threads = 0;
  // Engine backend for every model ("dnnl" or "reference").
  std::string backend = "dnnl";
  // Written into dynamic_batching.max_queue_size when the config leaves it 0 (0: leave it 0).
  int64_t default_max_queue_size = 1024;
};

class ModelRepository {
 public:
  // Scans `root` and loads every model as described above. Hidden entries (".name") and plain files at the top
  // level are skipped. Errors: NOT_FOUND when `root` does not exist, FAILED_PRECONDITION when it is not a
  // directory or cannot be listed. A broken model is never an error here: see its entry.
  static StatusOr<std::unique_ptr<ModelRepository>> Load(const std::string& root,
                                                         const ModelRepositoryOptions& options = {});

  const std::string& root() const { return root_; }
  // Sorted by name.
  const std::vector<ModelEntry>& models() const { return models_; }
  // nullptr when there is no model folder of that name.
  const ModelEntry* Find(std::string_view name) const;

 private:
  ModelRepository() = default;

  std::string root_;
  std::vector<ModelEntry> models_;
};

// The pieces of Load, public so that they can be tested and reused by tools.

// Loads the one model folder <root>/<name> as Load does (a broken model is an entry with reasons, not an
// error). Errors: INVALID_ARGUMENT when `name` is not a plain folder name, NOT_FOUND when the folder is missing.
StatusOr<ModelEntry> LoadModelFolder(const std::string& root, const std::string& name,
                                     const ModelRepositoryOptions& options = {});

// Parses config.pbtxt text. `path` names the file in errors. INVALID_ARGUMENT "path:line:column: message" for
// syntax errors, unknown fields and bad enum values (the first error; further ones are appended, up to a few).
StatusOr<v1::ModelConfig> ParseModelConfig(std::string_view text, const std::string& path);

// Checks every field that can be checked without the ONNX file. `folder_name` is the model's folder name, which
// `name` must equal (an empty name is allowed and means the folder name). INVALID_ARGUMENT
// "path: field <field>: <value> <problem>", e.g. "m/config.pbtxt: field max_batch_size: -1 must be >= 0".
Status ValidateModelConfig(const v1::ModelConfig& config, const std::string& path, std::string_view folder_name);

// Checks the config (at `path`) against one imported version (`model_path`, named in messages; empty: "the
// model"): its per-image input dims (C, H, W) and number of classes. input.dims (when given) must equal the
// ONNX input; the preprocess colour must match the channels (1 for GRAY, 3 for RGB/BGR); mean/std must have 0,
// 1 or C entries; resize_shorter_side must cover the crop; `num_labels` (when > 0) must equal the number of
// classes. INVALID_ARGUMENT naming the file and field.
Status CheckConfigAgainstModel(const v1::ModelConfig& config, const std::string& path,
                               const std::string& model_path, const Dims& item_input_dims, int64_t num_classes,
                               int64_t num_labels, const std::string& labels_path);

// One label per line; a trailing newline (and "\r" before each newline) is ignored, and so are empty lines at
// the end of the file. NOT_FOUND when missing; INVALID_ARGUMENT for an empty file or one over
// kMaxLabelsFileBytes.
StatusOr<std::vector<std::string>> ReadLabelsFile(const std::string& path);

// A version folder name: digits only, a positive value that fits int64 (then true and `*version` set). Anything
// else is not a version folder and is ignored.
bool ParseVersionName(const std::string& name, int64_t* version);

// The version folders the policy serves, ascending, from the numeric folders found (ascending). With
// `specific`, exactly those versions (also ones without a folder: the caller reports them); with `latest` N >
// 0, the newest N; otherwise all.
std::vector<int64_t> SelectVersions(const v1::VersionPolicy& policy, const std::vector<int64_t>& found);

// Engine threads for one instance: `threads` when > 0, else max(1, total_threads / instances), where a
// total_threads of 0 means all hardware threads.
int InstanceThreads(int threads, int instances, int total_threads);

}  // namespace cnnserve

#endif  // CNNSERVE_MODELS_REPOSITORY_MODEL_REPOSITORY_H_
