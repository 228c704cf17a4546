#include "server/ensemble/deadline_timer.h"

#include "engine/common/thread_name.h"

namespace cnnserve {

std::shared_ptr<DeadlineTimer> DeadlineTimer::Start(Clock* clock) {
  std::shared_ptr<DeadlineTimer> timer(new DeadlineTimer(clock));
  std::lock_guard<std::mutex> lock(timer->mu_);
  // The thread owns a reference: the timer outlives its last callback even when the owner lets go first.
  timer->thread_ = std::thread([self = timer] { self->Loop(); });
  return timer;
}

DeadlineTimer::~DeadlineTimer() {
  // Only reachable once the thread has ended (it holds a reference until then), so there is nothing to join.
  if (thread_.joinable()) thread_.detach();
}

DeadlineTimer::Id DeadlineTimer::Schedule(int64_t deadline_us, std::function<void()> callback) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) return 0;
  const Id id = next_id_++;
  const bool earliest = callbacks_.empty() || deadline_us < callbacks_.begin()->first.first;
  callbacks_.emplace(std::make_pair(deadline_us, id), std::move(callback));
  deadlines_.emplace(id, deadline_us);
  if (earliest) cv_.notify_all();
  return id;
}

void DeadlineTimer::Cancel(Id id) {
  std::lock_guard<std::mutex> lock(mu_);
  const auto it = deadlines_.find(id);
  if (it == deadlines_.end()) return;
  const auto key = std::make_pair(it->second, id);
  const bool earliest = callbacks_.begin()->first == key;
  callbacks_.erase(key);
  deadlines_.erase(it);
  if (earliest) cv_.notify_all();  // the thread re-evaluates what it waits for
}

size_t DeadlineTimer::Pending() const {
  std::lock_guard<std::mutex> lock(mu_);
  return callbacks_.size();
}

void DeadlineTimer::Stop() {
  std::thread to_join;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    callbacks_.clear();
    deadlines_.clear();
    cv_.notify_all();
    if (!thread_.joinable()) return;
    if (thread_.get_id() == std::this_thread::get_id()) {
      thread_.detach();
      return;
    }
    to_join = std::move(thread_);
  }
  to_join.join();
}

void DeadlineTimer::Loop() {
  SetCurrentThreadName("timer");
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    if (callbacks_.empty()) {
      clock_->WaitUntil(lock, cv_, Clock::kInfiniteFuture);
      continue;
    }
    const auto first = callbacks_.begin();
    const int64_t deadline_us = first->first.first;
    if (clock_->NowMicros() < deadline_us) {
      clock_->WaitUntil(lock, cv_, deadline_us);
      continue;
    }
    std::function<void()> callback = std::move(first->second);
    deadlines_.erase(first->first.second);
    callbacks_.erase(first);
    lock.unlock();
    callback();
    callback = nullptr;  // destroy what it captured outside the lock too
    lock.lock();
  }
}

}  // namespace cnnserve
