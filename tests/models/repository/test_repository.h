// Helpers for tests that build model repositories on disk: temporary folders, file I/O and copies of the
// default repository's lenet5_fashion model under another name, with edits to its config.pbtxt.
// Used by tests/models/repository and tests/server/servables and tests/server/service. Header-only.
#ifndef CNNSERVE_TESTS_MODELS_REPOSITORY_TEST_REPOSITORY_H_
#define CNNSERVE_TESTS_MODELS_REPOSITORY_TEST_REPOSITORY_H_

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <system_error>

namespace cnnserve::testing {

inline constexpr char kLenetModel[] = "lenet5_fashion";

inline std::filesystem::path SourceDir() {
  const char* dir = std::getenv("CNNSERVE_SOURCE_DIR");
  return dir != nullptr ? std::filesystem::path(dir) : std::filesystem::path(".");
}

inline std::filesystem::path DefaultRepository() { return SourceDir() / "models" / "repository"; }

inline std::string ReadFileBytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void WriteFileBytes(const std::filesystem::path& path, const std::string& bytes) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

inline std::string RandomBytes(size_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string bytes(count, '\0');
  for (char& c : bytes) c = static_cast<char>(rng() & 0xff);
  return bytes;
}

// A fresh directory under TMPDIR (or /tmp), removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp != nullptr ? tmp : "/tmp") + "/cnnserve_test_XXXXXX";
    char* made = mkdtemp(pattern.data());
    EXPECT_NE(made, nullptr) << "mkdtemp failed";
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Replaces the first occurrence of `from` in `text` (which must contain it) by `to`.
inline std::string ReplaceOnce(std::string text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << "\"" << from << "\" not found in:\n" << text;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

// Copies the default repository's lenet5_fashion folder to <repo>/<name> and renames the model in its config.
// Returns the new model folder.
inline std::filesystem::path CopyLenet(const std::filesystem::path& repo, const std::string& name) {
  const std::filesystem::path dst = repo / name;
  std::filesystem::copy(DefaultRepository() / kLenetModel, dst, std::filesystem::copy_options::recursive);
  const std::string config = ReadFileBytes(dst / "config.pbtxt");
  WriteFileBytes(dst / "config.pbtxt",
                 ReplaceOnce(config, std::string("name: \"") + kLenetModel + "\"", "name: \"" + name + "\""));
  return dst;
}

// Edits <model_dir>/config.pbtxt: replaces `from` by `to`.
inline void EditConfig(const std::filesystem::path& model_dir, const std::string& from, const std::string& to) {
  const std::filesystem::path path = model_dir / "config.pbtxt";
  WriteFileBytes(path, ReplaceOnce(ReadFileBytes(path), from, to));
}

}  // namespace cnnserve::testing

#endif  // CNNSERVE_TESTS_MODELS_REPOSITORY_TEST_REPOSITORY_H_
