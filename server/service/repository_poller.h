// RepositoryPoller: --model-control-mode poll. Every poll interval it scans the model repository's files and asks
// its owner (InferenceService) to load or remove the models whose folder changed.
//
// A scan (ScanRepository) records, for each visible model folder (hidden ".name" entries and plain files at the
// top level are skipped, as at start-up), every entry of the folder and of its numeric version folders: a
// version folder by its presence, a file by size and modification time, and a small file (config.pbtxt, labels)
// also by a hash of its contents. DecidePollActions (pure) compares two scans:
//   a model folder that appeared                               -> kLoad  ("new model")
//   a model folder whose entries differ (version added/removed,
//   config.pbtxt, labels or a model file changed)               -> kLoad  (the differences, e.g. "version 2
//   added") a model folder that disappeared                            -> kRemove ("model folder removed")
// A load reads the whole folder again: new versions are loaded and warmed up beside the serving ones, removed
// versions drain, and the swap happens only once the new load has a ready version (InferenceService::LoadModel).
// A load that fails leaves the serving model in place; the poller does not retry it until the folder changes
// again, so a half-copied folder (config present, model.onnx still being written) costs one failed load and the
// next scan after the copy ends loads it. Copy a model in with an atomic rename (write ".name.tmp", then rename)
// to avoid even that.
// When a scan's loads partly fail and partly succeed, the failed ones are tried once more at the end of the scan
// (an ensemble added together with its members may have been loaded before them).
// A scan that cannot list the repository root changes nothing (an unmounted volume does not unload every model).
//
// Thread-safety: the poller runs one thread of its own; Stop (and the destructor) may be called from any other
// thread, wake it at once and join it; a load in progress finishes first (Stop blocks for at most one load).
// Callbacks run on the poller's thread, one at a time.
#ifndef CNNSERVE_SERVER_SERVICE_REPOSITORY_POLLER_H_
#define CNNSERVE_SERVER_SERVICE_REPOSITORY_POLLER_H_

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/common/status.h"

namespace cnnserve {

// Files up to this size are also hashed (config.pbtxt, labels): a change that keeps size and mtime is still seen.
inline constexpr int64_t kMaxHashedFileBytes = int64_t{64} << 10;
// Entries recorded per model folder (a folder with more is compared on its first ones, in name order).
inline constexpr size_t kMaxEntriesPerModel = 4096;

// One entry of a model folder: a version folder ("2/", size and times 0) or a file ("config.pbtxt",
// "2/model.onnx").
struct FileStamp {
  bool directory = false;
  int64_t size_bytes = 0;
  int64_t mtime_ns = 0;
  uint64_t content_hash = 0;  // 0 for files larger than kMaxHashedFileBytes
  bool operator==(const FileStamp&) const = default;
};

// Relative path inside the model folder -> stamp.
using ModelFolderSnapshot = std::map<std::string, FileStamp>;
// Model folder name -> its entries.
using RepositorySnapshot = std::map<std::string, ModelFolderSnapshot>;

// Scans `root` as described above. FAILED_PRECONDITION when `root` cannot be listed (the caller keeps its
// models). A model folder that vanishes during the scan is simply absent.
StatusOr<RepositorySnapshot> ScanRepository(const std::string& root);

struct PollAction {
  enum class Kind { kLoad, kRemove };
  Kind kind = Kind::kLoad;
  std::string model;
  std::string reason;  // for the log, e.g. "version 2 added, 1/model.onnx changed"
  bool operator==(const PollAction&) const = default;
};

// What to do to go from `previous` to `current`: removals first (by name), then loads (by name).
std::vector<PollAction> DecidePollActions(const RepositorySnapshot& previous, const RepositorySnapshot& current);

struct RepositoryPollerOptions {
  std::string root;
  int64_t poll_interval_ms = 5000;
};

class RepositoryPoller {
 public:
  // Load(name) and Remove(name) carry out one action; their errors are logged (the poller goes on).
  struct Callbacks {
    std::function<Status(const std::string& model)> load;
    std::function<Status(const std::string& model)> remove;
  };

  // Starts the thread. `initial` is the scan the served models were loaded from (taken before loading them, so a
  // change made during start-up is seen by the first scan). INVALID_ARGUMENT for an interval < 1 ms or a missing
  // callback.
  static StatusOr<std::unique_ptr<RepositoryPoller>> Create(const RepositoryPollerOptions& options,
                                                            RepositorySnapshot initial, Callbacks callbacks);
  ~RepositoryPoller();  // Stop()
  RepositoryPoller(const RepositoryPoller&) = delete;
  RepositoryPoller& operator=(const RepositoryPoller&) = delete;

  // Stops the thread after the action in progress (no further action of the scan runs). Idempotent.
  void Stop();

 private:
  RepositoryPoller(const RepositoryPollerOptions& options, RepositorySnapshot initial, Callbacks callbacks);
  void Loop();
  // One scan and its actions.
  void PollOnce();
  // Runs one action through its callback and logs a failure; true when it succeeded.
  bool RunAction(const PollAction& action);
  bool stopping() const;

  const RepositoryPollerOptions options_;
  const Callbacks callbacks_;
  RepositorySnapshot previous_;  // only the poller thread touches it
  bool scan_failing_ = false;    // the last scan could not list the root (poller thread only)

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::once_flag stop_once_;
  std::thread thread_;  // last: starts after the members it uses exist
};

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_SERVICE_REPOSITORY_POLLER_H_
