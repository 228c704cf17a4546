#include "server/servables/compute_lanes.h"

#include <algorithm>
#include <utility>

#include "engine/common/thread_name.h"

namespace cnnserve {

ComputeLane::ComputeLane() : thread_(&ComputeLane::Loop, this) {}

ComputeLane::~ComputeLane() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_one();
  thread_.join();
}

void ComputeLane::Run(const std::function<void()>& fn) {
  Job job;
  job.fn = &fn;
  std::unique_lock<std::mutex> lock(mu_);
  queue_.push_back(&job);
  work_cv_.notify_one();
  done_cv_.wait(lock, [&] { return job.done; });
}

int64_t ComputeLane::runs() const {
  std::lock_guard<std::mutex> lock(mu_);
  return runs_;
}

void ComputeLane::Loop() {
  SetCurrentThreadName("lane");
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    work_cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stop_, and every queued job has run
    Job* job = queue_.front();
    queue_.pop_front();
    lock.unlock();
    (*job->fn)();
    lock.lock();
    job->done = true;
    ++runs_;
    // Several callers may wait on done_cv_ (one per queued job): wake them all, each checks its own flag.
    done_cv_.notify_all();
  }
}

ComputeLanes::ComputeLanes(int cpus)
    : cpus_(cpus > 0 ? cpus : std::max(1, static_cast<int>(std::thread::hardware_concurrency()))) {}

std::shared_ptr<ComputeLane> ComputeLanes::Assign(int threads) {
  const int t = Resolve(threads);
  if (t <= 1) return nullptr;
  const size_t max_lanes = static_cast<size_t>(std::max(1, cpus_ / t));
  std::lock_guard<std::mutex> lock(mu_);
  Group& group = groups_[t];
  if (group.lanes.size() < max_lanes) {
    group.lanes.push_back(std::make_shared<ComputeLane>());
    return group.lanes.back();
  }
  std::shared_ptr<ComputeLane> lane = group.lanes[group.next % group.lanes.size()];
  group.next = (group.next + 1) % group.lanes.size();
  return lane;
}

int ComputeLanes::lane_count(int threads) const {
  std::lock_guard<std::mutex> lock(mu_);
  const auto it = groups_.find(Resolve(threads));
  return it == groups_.end() ? 0 : static_cast<int>(it->second.lanes.size());
}

}  // namespace cnnserve
