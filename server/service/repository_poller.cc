#include "server/service/repository_poller.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <set>
#include <system_error>
#include <utility>

#include "models/repository/model_repository.h"

namespace cnnserve {
namespace {

namespace fs = std::filesystem;

constexpr size_t kMaxChangesNamed = 4;  // a load's reason names this many differences, then counts the rest

uint64_t HashContents(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Never 0, so that a hashed empty file differs from "not hashed".
  return std::hash<std::string>{}(bytes) | 1u;
}

// The stamp of a regular file; nullopt when it vanished or is not a regular file.
std::optional<FileStamp> StampFile(const fs::directory_entry& entry) {
  std::error_code ec;
  if (!entry.is_regular_file(ec) || ec) return std::nullopt;
  FileStamp stamp;
  const uintmax_t size = entry.file_size(ec);
  if (ec) return std::nullopt;
  const fs::file_time_type mtime = entry.last_write_time(ec);
  if (ec) return std::nullopt;
  stamp.size_bytes = static_cast<int64_t>(size);
  stamp.mtime_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(mtime.time_since_epoch()).count();
  if (stamp.size_bytes <= kMaxHashedFileBytes) stamp.content_hash = HashContents(entry.path());
  return stamp;
}

// Adds the regular files of `directory` under `prefix` ("" or "2/"), in name order, up to the entry cap.
void ScanFiles(const fs::path& directory, const std::string& prefix, bool with_versions,
               ModelFolderSnapshot* out) {
  std::error_code ec;
  std::vector<fs::directory_entry> entries;
  for (fs::directory_iterator it(directory, ec), end; !ec && it != end; it.increment(ec)) entries.push_back(*it);
  std::sort(entries.begin(), entries.end(),
            [](const fs::directory_entry& a, const fs::directory_entry& b) { return a.path() < b.path(); });
  for (const fs::directory_entry& entry : entries) {
    if (out->size() >= kMaxEntriesPerModel) return;
    const std::string name = entry.path().filename().string();
    if (name.empty() || name[0] == '.') continue;
    std::error_code type_ec;
    int64_t version = 0;
    if (with_versions && entry.is_directory(type_ec) && ParseVersionName(name, &version)) {
      (*out)[name + "/"] = FileStamp{.directory = true};
      ScanFiles(entry.path(), name + "/", /*with_versions=*/false, out);
      continue;
    }
    if (std::optional<FileStamp> stamp = StampFile(entry)) (*out)[prefix + name] = *stamp;
  }
}

// "version 2 added", "config.pbtxt changed", ... for the entries that differ (files inside an added or removed
// version folder are covered by the version's line).
std::string DescribeChanges(const ModelFolderSnapshot& previous, const ModelFolderSnapshot& current) {
  std::set<std::string> keys;
  for (const auto& [key, stamp] : previous) keys.insert(key);
  for (const auto& [key, stamp] : current) keys.insert(key);
  std::vector<std::string> changes;
  std::set<std::string> moved_versions;  // "2/" of versions added or removed
  for (const std::string& key : keys) {
    const auto before = previous.find(key);
    const auto after = current.find(key);
    const bool was = before != previous.end();
    const bool is = after != current.end();
    if (was && is && before->second == after->second) continue;
    if (key.back() == '/') {
      const std::string version = key.substr(0, key.size() - 1);
      if (was != is) moved_versions.insert(key);
      changes.push_back("version " + version + (is ? " added" : " removed"));
      continue;
    }
    const size_t slash = key.find('/');
    if (slash != std::string::npos && moved_versions.count(key.substr(0, slash + 1))) continue;
    changes.push_back(key + (!was ? " added" : !is ? " removed" : " changed"));
  }
  std::string out;
  for (size_t i = 0; i < changes.size() && i < kMaxChangesNamed; ++i) out += (i ? ", " : "") + changes[i];
  if (changes.size() > kMaxChangesNamed) {
    out += " and " + std::to_string(changes.size() - kMaxChangesNamed) + " more change(s)";
  }
  return out;
}

}  // namespace

StatusOr<RepositorySnapshot> ScanRepository(const std::string& root) {
  std::error_code ec;
  fs::directory_iterator it(root, ec);
  if (ec) return FailedPreconditionError("model repository cannot be listed: " + ec.message());
  RepositorySnapshot snapshot;
  for (fs::directory_iterator end; it != end; it.increment(ec)) {
    if (ec) return FailedPreconditionError("model repository cannot be listed: " + ec.message());
    const std::string name = it->path().filename().string();
    std::error_code type_ec;
    if (name.empty() || name[0] == '.' || !it->is_directory(type_ec)) continue;
    ModelFolderSnapshot& folder = snapshot[name];
    ScanFiles(it->path(), "", /*with_versions=*/true, &folder);
  }
  if (ec) return FailedPreconditionError("model repository cannot be listed: " + ec.message());
  return snapshot;
}

std::vector<PollAction> DecidePollActions(const RepositorySnapshot& previous, const RepositorySnapshot& current) {
  std::vector<PollAction> actions;
  for (const auto& [name, folder] : previous) {
    if (!current.count(name)) actions.push_back({PollAction::Kind::kRemove, name, "model folder removed"});
  }
  for (const auto& [name, folder] : current) {
    const auto before = previous.find(name);
    if (before == previous.end()) {
      actions.push_back({PollAction::Kind::kLoad, name, "new model"});
    } else if (before->second != folder) {
      actions.push_back({PollAction::Kind::kLoad, name, DescribeChanges(before->second, folder)});
    }
  }
  return actions;
}

StatusOr<std::unique_ptr<RepositoryPoller>> RepositoryPoller::Create(const RepositoryPollerOptions& options,
                                                                     RepositorySnapshot initial,
                                                                     Callbacks callbacks) {
  if (options.poll_interval_ms < 1) {
    return InvalidArgumentError("poll_interval_ms " + std::to_string(options.poll_interval_ms) + " must be >= 1");
  }
  if (!callbacks.load || !callbacks.remove) return InvalidArgumentError("RepositoryPoller: a callback is missing");
  return std::unique_ptr<RepositoryPoller>(
      new RepositoryPoller(options, std::move(initial), std::move(callbacks)));
}

RepositoryPoller::RepositoryPoller(const RepositoryPollerOptions& options, RepositorySnapshot initial,
                                   Callbacks callbacks)
    : options_(options),
      callbacks_(std::move(callbacks)),
      previous_(std::move(initial)),
      thread_([this] { Loop(); }) {}

RepositoryPoller::~RepositoryPoller() { Stop(); }

void RepositoryPoller::Stop() {
  std::call_once(stop_once_, [this] {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
  });
}

bool RepositoryPoller::stopping() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stopping_;
}

void RepositoryPoller::Loop() {
  spdlog::info("repository poller: scanning {} every {} ms", options_.root, options_.poll_interval_ms);
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(options_.poll_interval_ms), [this] { return stopping_; });
      if (stopping_) return;
    }
    PollOnce();
  }
}

void RepositoryPoller::PollOnce() {
  StatusOr<RepositorySnapshot> current = ScanRepository(options_.root);
  if (!current.ok()) {
    // Once per outage, not at every scan.
    if (!scan_failing_) {
      spdlog::warn("repository poller: {}; keeping every model as it is", current.status().ToString());
    }
    scan_failing_ = true;
    return;
  }
  if (scan_failing_) spdlog::info("repository poller: the model repository can be listed again");
  scan_failing_ = false;
  // A failed load is not retried until its folder changes again: `previous_` becomes this scan either way.
  const std::vector<PollAction> actions = DecidePollActions(previous_, *current);
  previous_ = *std::move(current);
  std::vector<const PollAction*> failed_loads;
  bool loaded_any = false;
  for (const PollAction& action : actions) {
    if (stopping()) return;
    const bool load = action.kind == PollAction::Kind::kLoad;
    spdlog::info("repository poller: model {}: {}: {}", action.model, action.reason,
                 load ? "loading" : "removing");
    if (RunAction(action)) {
      loaded_any = loaded_any || load;
    } else if (load) {
      failed_loads.push_back(&action);
    }
  }
  // An ensemble added in the same scan as its members may have been loaded before them: once more, now.
  if (!loaded_any) return;
  for (const PollAction* action : failed_loads) {
    if (stopping()) return;
    spdlog::info("repository poller: model {}: loading again after the other models of this scan", action->model);
    RunAction(*action);
  }
}

bool RepositoryPoller::RunAction(const PollAction& action) {
  const bool load = action.kind == PollAction::Kind::kLoad;
  const Status status = load ? callbacks_.load(action.model) : callbacks_.remove(action.model);
  if (!status.ok()) {
    spdlog::error("repository poller: model {}: {} failed ({}): {}", action.model, load ? "load" : "removal",
                  action.reason, status.ToString());
  }
  return status.ok();
}

}  // namespace cnnserve
