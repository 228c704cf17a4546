// The repository poller: its pure decision table, the scan of real folders, and a real InferenceService in poll
// mode following a temporary repository (versions added and removed, a half-copied model file, a removed model).
#include "server/service/repository_poller.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "server/service/inference_service.h"
#include "tests/models/repository/test_repository.h"

namespace cnnserve {
namespace {

namespace fs = std::filesystem;
using ::cnnserve::testing::CopyLenet;
using ::cnnserve::testing::ReadFileBytes;
using ::cnnserve::testing::TempDir;
using ::cnnserve::testing::WriteFileBytes;
using Kind = PollAction::Kind;

FileStamp File(int64_t size, int64_t mtime, uint64_t hash = 0) { return FileStamp{false, size, mtime, hash}; }
FileStamp Dir() { return FileStamp{.directory = true}; }

// lenet: config, labels, version 1.
ModelFolderSnapshot Lenet() {
  return {{"config.pbtxt", File(100, 1, 7)},
          {"labels.txt", File(50, 1, 9)},
          {"1/", Dir()},
          {"1/model.onnx", File(9000, 1)}};
}

TEST(DecidePollActionsTest, Table) {
  ModelFolderSnapshot with_v2 = Lenet();
  with_v2["2/"] = Dir();
  with_v2["2/model.onnx"] = File(9000, 2);
  ModelFolderSnapshot without_v1 = with_v2;
  without_v1.erase("1/");
  without_v1.erase("1/model.onnx");
  ModelFolderSnapshot new_config = Lenet();
  new_config["config.pbtxt"] = File(100, 1, 8);  // same size and time, other contents
  ModelFolderSnapshot new_weights = Lenet();
  new_weights["1/model.onnx"] = File(9000, 5);
  ModelFolderSnapshot new_labels = Lenet();
  new_labels["labels.txt"] = File(51, 3, 10);
  ModelFolderSnapshot half_copied = Lenet();
  half_copied["1/model.onnx"] = File(4096, 4);
  ModelFolderSnapshot copied = Lenet();
  copied["1/model.onnx"] = File(9000, 6);

  struct Row {
    const char* what;
    RepositorySnapshot previous;
    RepositorySnapshot current;
    std::vector<PollAction> want;
  };
  const std::vector<Row> rows = {
      {"nothing changed", {{"m", Lenet()}}, {{"m", Lenet()}}, {}},
      {"empty repository", {}, {}, {}},
      {"new model", {{"m", Lenet()}}, {{"m", Lenet()}, {"n", Lenet()}}, {{Kind::kLoad, "n", "new model"}}},
      {"removed model",
       {{"m", Lenet()}, {"n", Lenet()}},
       {{"m", Lenet()}},
       {{Kind::kRemove, "n", "model folder removed"}}},
      {"added version", {{"m", Lenet()}}, {{"m", with_v2}}, {{Kind::kLoad, "m", "version 2 added"}}},
      {"removed version", {{"m", with_v2}}, {{"m", without_v1}}, {{Kind::kLoad, "m", "version 1 removed"}}},
      {"changed config (hash only)",
       {{"m", Lenet()}},
       {{"m", new_config}},
       {{Kind::kLoad, "m", "config.pbtxt changed"}}},
      {"changed model file", {{"m", Lenet()}}, {{"m", new_weights}}, {{Kind::kLoad, "m", "1/model.onnx changed"}}},
      {"changed labels", {{"m", Lenet()}}, {{"m", new_labels}}, {{Kind::kLoad, "m", "labels.txt changed"}}},
      // A half-copied file is loaded (and fails, keeping the old version); the same files are not retried; the
      // finished copy is loaded again.
      {"half-copied file", {{"m", Lenet()}}, {{"m", half_copied}}, {{Kind::kLoad, "m", "1/model.onnx changed"}}},
      {"failed load, unchanged folder: no retry", {{"m", half_copied}}, {{"m", half_copied}}, {}},
      {"copy finished", {{"m", half_copied}}, {{"m", copied}}, {{Kind::kLoad, "m", "1/model.onnx changed"}}},
      {"removals first, then loads by name",
       {{"a", Lenet()}, {"z", Lenet()}},
       {{"b", Lenet()}, {"a", with_v2}},
       {{Kind::kRemove, "z", "model folder removed"},
        {Kind::kLoad, "a", "version 2 added"},
        {Kind::kLoad, "b", "new model"}}},
      {"a new file beside the config",
       {{"m", Lenet()}},
       {{"m",
         [] {
           ModelFolderSnapshot s = Lenet();
           s["other.txt"] = File(1, 1, 3);
           return s;
         }()}},
       {{Kind::kLoad, "m", "other.txt added"}}},
  };
  for (const Row& row : rows) {
    EXPECT_EQ(DecidePollActions(row.previous, row.current), row.want) << row.what;
  }
}

TEST(DecidePollActionsTest, ManyChangesAreSummarised) {
  ModelFolderSnapshot before, after;
  for (int v = 1; v <= 6; ++v) after[std::to_string(v) + "/"] = Dir();
  const std::vector<PollAction> actions = DecidePollActions({{"m", before}}, {{"m", after}});
  ASSERT_EQ(actions.size(), 1u);
  EXPECT_EQ(actions[0].reason,
            "version 1 added, version 2 added, version 3 added, version 4 added and 2 more change(s)");
}

TEST(ScanRepositoryTest, RecordsVersionsAndFilesAndSkipsHiddenEntries) {
  TempDir repo;
  CopyLenet(repo.path(), "lenet");
  fs::create_directories(repo.path() / ".incoming" / "1");
  WriteFileBytes(repo.path() / "top_level_file", "x");
  WriteFileBytes(repo.path() / "lenet" / ".swp", "editor");
  fs::create_directories(repo.path() / "lenet" / "notes");  // not a version folder: ignored
  StatusOr<RepositorySnapshot> scan = ScanRepository(repo.path().string());
  ASSERT_TRUE(scan.ok()) << scan.status().ToString();
  ASSERT_EQ(scan->size(), 1u);
  const ModelFolderSnapshot& lenet = scan->at("lenet");
  std::vector<std::string> keys;
  for (const auto& [key, stamp] : lenet) keys.push_back(key);
  EXPECT_EQ(keys, (std::vector<std::string>{"1/", "1/model.onnx", "config.pbtxt", "labels.txt"}));
  EXPECT_TRUE(lenet.at("1/").directory);
  EXPECT_EQ(lenet.at("1/model.onnx").size_bytes,
            static_cast<int64_t>(fs::file_size(repo.path() / "lenet" / "1" / "model.onnx")));
  EXPECT_NE(lenet.at("config.pbtxt").content_hash, 0u);

  // Same size, same modification time, other contents: the hash sees it.
  const fs::path config = repo.path() / "lenet" / "config.pbtxt";
  const fs::file_time_type mtime = fs::last_write_time(config);
  std::string text = ReadFileBytes(config);
  text[text.size() - 2] = text[text.size() - 2] == ' ' ? '\t' : ' ';
  WriteFileBytes(config, text);
  fs::last_write_time(config, mtime);
  StatusOr<RepositorySnapshot> again = ScanRepository(repo.path().string());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->at("lenet").at("config.pbtxt").mtime_ns, lenet.at("config.pbtxt").mtime_ns);
  EXPECT_EQ(DecidePollActions(*scan, *again),
            (std::vector<PollAction>{{Kind::kLoad, "lenet", "config.pbtxt changed"}}));

  EXPECT_EQ(ScanRepository((repo.path() / "missing").string()).status().code(), StatusCode::kFailedPrecondition);
}

TEST(RepositoryPollerTest, CreateChecksItsOptions) {
  RepositoryPoller::Callbacks callbacks;
  callbacks.load = [](const std::string&) { return OkStatus(); };
  callbacks.remove = callbacks.load;
  RepositoryPollerOptions options;
  options.root = "/nonexistent";
  options.poll_interval_ms = 0;
  EXPECT_EQ(RepositoryPoller::Create(options, {}, callbacks).status().code(), StatusCode::kInvalidArgument);
  options.poll_interval_ms = 10;
  RepositoryPoller::Callbacks missing = callbacks;
  missing.remove = nullptr;
  EXPECT_EQ(RepositoryPoller::Create(options, {}, missing).status().code(), StatusCode::kInvalidArgument);
  // A root that cannot be listed changes nothing (no action is ever taken) and Stop returns.
  int calls = 0;
  callbacks.remove = [&calls](const std::string&) {
    ++calls;
    return OkStatus();
  };
  StatusOr<std::unique_ptr<RepositoryPoller>> poller =
      RepositoryPoller::Create(options, {{"m", ModelFolderSnapshot{}}}, callbacks);
  ASSERT_TRUE(poller.ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  (*poller)->Stop();
  EXPECT_EQ(calls, 0);
}

// Waits up to 60 s for `condition`.
bool WaitFor(const std::function<bool()>& condition) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

int64_t ServedVersion(const InferenceService& service, const std::string& name) {
  StatusOr<std::shared_ptr<Servable>> found = service.Find(name, 0);
  return found.ok() ? (*found)->info().version : -1;
}

std::string IndexReason(const InferenceService& service, const std::string& name) {
  for (const InferenceService::VersionRow& row : service.Index()) {
    if (row.name == name && !row.reason.empty()) return row.reason;
  }
  return "";
}

TEST(PollModeServiceTest, FollowsTheRepositoryFolder) {
  TempDir repo;
  const fs::path lenet = CopyLenet(repo.path(), "lenet");
  InferenceServiceOptions options;
  options.model_repository = repo.path().string();
  options.total_threads = 1;
  options.model_control_mode = ModelControlMode::kPoll;
  options.repository_poll_interval_ms = 50;
  StatusOr<std::unique_ptr<InferenceService>> created = InferenceService::Create(options);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  InferenceService& service = **created;
  ASSERT_EQ(ServedVersion(service, "lenet"), 1);

  // A new version is loaded and becomes the default.
  fs::copy(lenet / "1", lenet / "2", fs::copy_options::recursive);
  ASSERT_TRUE(WaitFor([&] { return ServedVersion(service, "lenet") == 2; }));
  EXPECT_TRUE(service.Find("lenet", 1).ok());
  // Version 1 removed: drained and gone.
  fs::remove_all(lenet / "1");
  ASSERT_TRUE(WaitFor([&] { return service.Find("lenet", 1).status().code() == StatusCode::kNotFound; }));
  EXPECT_EQ(ServedVersion(service, "lenet"), 2);

  // A half-copied model file: the failed load keeps version 2 serving and the index says why; the finished copy
  // is loaded by a later scan.
  const std::string onnx = ReadFileBytes(lenet / "2" / "model.onnx");
  WriteFileBytes(lenet / "2" / "model.onnx", onnx.substr(0, onnx.size() / 2));
  ASSERT_TRUE(WaitFor([&] { return !IndexReason(service, "lenet").empty(); }));
  EXPECT_NE(IndexReason(service, "lenet").find("the last load failed: lenet/2/model.onnx"), std::string::npos)
      << IndexReason(service, "lenet");
  EXPECT_EQ(ServedVersion(service, "lenet"), 2);
  EXPECT_TRUE(service.Ready());
  WriteFileBytes(lenet / "2" / "model.onnx", onnx);
  ASSERT_TRUE(WaitFor([&] { return IndexReason(service, "lenet").empty(); }));
  EXPECT_EQ(ServedVersion(service, "lenet"), 2);

  // A new model appears (atomically, by a rename), then its folder is removed: it leaves the
  // index, and readiness does not count it any more.
  TempDir staging;
  CopyLenet(staging.path(), "other");
  fs::rename(staging.path() / "other", repo.path() / "other");
  ASSERT_TRUE(WaitFor([&] { return ServedVersion(service, "other") == 1; }));
  fs::remove_all(repo.path() / "other");
  ASSERT_TRUE(WaitFor([&] { return service.Find("other", 0).status().code() == StatusCode::kNotFound; }));
  for (const InferenceService::VersionRow& row : service.Index()) EXPECT_NE(row.name, "other");
  EXPECT_TRUE(service.Ready());

  // Shutdown stops the poller: a change made afterwards is not loaded.
  ASSERT_TRUE(service.Shutdown(SteadyNowMicros() + 5'000'000).ok());
  fs::copy(lenet / "2", lenet / "3", fs::copy_options::recursive);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  for (const InferenceService::VersionRow& row : service.Index()) EXPECT_NE(row.version, 3);
}

}  // namespace
}  // namespace cnnserve
