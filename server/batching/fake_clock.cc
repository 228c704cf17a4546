#include "server/batching/fake_clock.h"

#include <algorithm>
#include <chrono>
#include <utility>
#include <vector>

namespace cnnserve {

int64_t FakeClock::NowMicros() const {
  std::lock_guard<std::mutex> guard(mu_);
  return now_us_;
}

int64_t FakeClock::ThreadCpuMicros() const {
  std::lock_guard<std::mutex> guard(mu_);
  ++cpu_reads_;
  return now_us_ - idle_us_;
}

int64_t FakeClock::cpu_reads() const {
  std::lock_guard<std::mutex> guard(mu_);
  return cpu_reads_;
}

void FakeClock::AdvanceIdleMicros(int64_t delta_us) { Advance(delta_us, /*idle=*/true); }

void FakeClock::WaitUntil(std::unique_lock<std::mutex>& lock, std::condition_variable& cv, int64_t deadline_us) {
  Waiter self{lock.mutex(), &cv, deadline_us};
  {
    // Checking the time and registering happen under mu_, and `lock` stays held until cv.wait releases it
    // atomically; AdvanceMicros locks the waiter's mutex before notifying, so it cannot notify in between.
    std::lock_guard<std::mutex> guard(mu_);
    if (deadline_us <= now_us_) return;
    waiters_.push_back(&self);
  }
  waiters_changed_.notify_all();
  cv.wait(lock);
  std::lock_guard<std::mutex> guard(mu_);
  waiters_.remove(&self);  // no-op when AdvanceMicros already took it out
}

void FakeClock::AdvanceMicros(int64_t delta_us) { Advance(delta_us, /*idle=*/false); }

void FakeClock::Advance(int64_t delta_us, bool idle) {
  std::vector<std::pair<std::mutex*, std::condition_variable*>> to_wake;
  {
    std::lock_guard<std::mutex> guard(mu_);
    const int64_t before_us = now_us_;
    now_us_ = AddMicros(now_us_, std::max<int64_t>(delta_us, 0));
    if (idle) idle_us_ += now_us_ - before_us;
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      if ((*it)->deadline_us <= now_us_) {
        to_wake.emplace_back((*it)->mutex, (*it)->cv);
        it = waiters_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& [mutex, cv] : to_wake) {
    std::lock_guard<std::mutex> guard(*mutex);
    cv->notify_all();
  }
}

int FakeClock::NumWaiters() const {
  std::lock_guard<std::mutex> guard(mu_);
  return static_cast<int>(waiters_.size());
}

bool FakeClock::BlockUntilWaiters(int count, int64_t timeout_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  return waiters_changed_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                                   [&] { return static_cast<int>(waiters_.size()) >= count; });
}

bool FakeClock::BlockUntilWaitingFor(int64_t deadline_us, int64_t timeout_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  return waiters_changed_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] {
    return std::any_of(waiters_.begin(), waiters_.end(),
                       [&](const Waiter* w) { return w->deadline_us == deadline_us; });
  });
}

}  // namespace cnnserve
