#include "engine/common/malloc_tuning.h"

#include <gtest/gtest.h>
#include <sys/resource.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace cnnserve {
namespace {

TEST(MallocTuning, AppliesUnlessGlibcTunablesSetsMalloc) {
  EXPECT_TRUE(MallocTuningApplies(nullptr));
  EXPECT_TRUE(MallocTuningApplies(""));
  EXPECT_TRUE(MallocTuningApplies("glibc.pthread.rseq=0"));
  EXPECT_FALSE(MallocTuningApplies("glibc.malloc.arena_max=2"));
  EXPECT_FALSE(MallocTuningApplies("glibc.pthread.rseq=0:glibc.malloc.trim_threshold=1"));
}

// Read after the copies, so that the compiler cannot leave out the allocations.
volatile char g_sink = 0;

int64_t ThreadPageFaults() {
  rusage usage{};
  getrusage(RUSAGE_THREAD, &usage);
  return usage.ru_minflt;
}

// What a gRPC thread does with two 19.8 MB requests in hand: each arrives in 8 KiB reads that are copied into one
// block (the message's bytes field) and freed; both blocks are freed at the end.
void ReceiveTwoLargeMessages() {
  constexpr size_t kRead = 8192;
  constexpr size_t kReads = 2416;
  std::vector<std::unique_ptr<char[]>> blocks;
  for (int message = 0; message < 2; ++message) {
    std::vector<std::unique_ptr<char[]>> reads;
    for (size_t i = 0; i < kReads; ++i) {
      reads.emplace_back(new char[kRead]);
      std::memset(reads.back().get(), 1, kRead);
    }
    blocks.emplace_back(new char[kRead * kReads]);
    for (size_t i = 0; i < kReads; ++i) std::memcpy(blocks.back().get() + i * kRead, reads[i].get(), kRead);
  }
  g_sink = blocks[0][kRead * kReads - 1] + blocks[1][0];
}

// With glibc's defaults this pattern faults in about 7,000 pages per message on every repetition (the memory of
// the previous ones was given back); with the tuning the thread's heap keeps it.
TEST(MallocTuning, LargeMessagesReuseTheirMemory) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "the sanitizers replace malloc";
#endif
  if (!MallocTuningApplies(std::getenv("GLIBC_TUNABLES"))) GTEST_SKIP() << "GLIBC_TUNABLES sets malloc tunables";
  EXPECT_NE(TuneMallocForLargeMessages().find("come from the heap"), std::string::npos);
  int64_t faults_per_message = -1;
  std::thread([&] {
    for (int i = 0; i < 3; ++i) ReceiveTwoLargeMessages();  // the heap grows to its size
    const int64_t before = ThreadPageFaults();
    constexpr int kRounds = 10;
    for (int i = 0; i < kRounds; ++i) ReceiveTwoLargeMessages();
    faults_per_message = (ThreadPageFaults() - before) / (2 * kRounds);
  }).join();
  EXPECT_LT(faults_per_message, 100);
}

}  // namespace
}  // namespace cnnserve
