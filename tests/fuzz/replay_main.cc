// Runs a fuzz target's LLVMFuzzerTestOneInput over every file of the folders (or files) named on the command
// line, as libFuzzer does when given a corpus without -runs, so that the seed corpus and every kept crash input
// are replayed by CTest in the ordinary (gcc) and sanitizer builds. A missing folder is an error (a corpus that
// vanished must not pass silently); an empty one is fine (crashes/ holds nothing until a bug is found).
// Exit 0 when every input ran; a crash aborts the process like the fuzzer would.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

std::vector<std::filesystem::path> InputFiles(const std::filesystem::path& root, std::error_code* ec) {
  std::vector<std::filesystem::path> files;
  if (std::filesystem::is_regular_file(root, *ec)) return {root};
  for (std::filesystem::recursive_directory_iterator it(root, *ec), end; !*ec && it != end; it.increment(*ec)) {
    if (it->is_regular_file() && it->path().filename().string().front() != '.') files.push_back(it->path());
  }
  return files;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR|FILE...\n", argv[0]);
    return 2;
  }
  int64_t replayed = 0;
  for (int a = 1; a < argc; ++a) {
    std::error_code ec;
    const std::vector<std::filesystem::path> files = InputFiles(argv[a], &ec);
    if (ec) {
      std::fprintf(stderr, "%s: %s\n", argv[a], ec.message().c_str());
      return 1;
    }
    for (const std::filesystem::path& file : files) {
      std::ifstream in(file, std::ios::binary);
      const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      if (!in.good() && !in.eof()) {
        std::fprintf(stderr, "%s: cannot read\n", file.c_str());
        return 1;
      }
      LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
      ++replayed;
    }
    std::printf("%s: %zu inputs\n", argv[a], files.size());
  }
  std::printf("replayed %lld inputs\n", static_cast<long long>(replayed));
  return 0;
}
