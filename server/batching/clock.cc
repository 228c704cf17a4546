#include "server/batching/clock.h"

#include <chrono>
#include <ctime>

#include "engine/common/units.h"

namespace cnnserve {
namespace {

// Waits longer than this are split (the caller loops), which keeps the conversion to the condition variable's
// nanosecond clock far from overflow.
constexpr int64_t kMaxSingleWaitUs = kSecondsPerHour * kMicrosPerSecond;

class RealClock final : public Clock {
 public:
  int64_t NowMicros() const override {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }

  int64_t ThreadCpuMicros() const override {
    timespec cpu{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu);
    return static_cast<int64_t>(cpu.tv_sec) * kMicrosPerSecond +
           static_cast<int64_t>(cpu.tv_nsec) / kNanosPerMicro;
  }

  void WaitUntil(std::unique_lock<std::mutex>& lock, std::condition_variable& cv, int64_t deadline_us) override {
    if (deadline_us == kInfiniteFuture) {
      cv.wait(lock);
      return;
    }
    const int64_t now_us = NowMicros();
    if (deadline_us <= now_us) return;
    const int64_t wait_us = deadline_us - now_us < kMaxSingleWaitUs ? deadline_us - now_us : kMaxSingleWaitUs;
    cv.wait_for(lock, std::chrono::microseconds(wait_us));
  }
};

}  // namespace

Clock* Clock::Real() {
  static RealClock* const clock = new RealClock();
  return clock;
}

}  // namespace cnnserve
