#include "server/preprocess/preprocess_pool.h"

#include <algorithm>
#include <chrono>
#include <string>
#include <utility>

#include "engine/common/thread_name.h"

namespace cnnserve {

StatusOr<std::unique_ptr<PreprocessPool>> PreprocessPool::Create(const PreprocessPoolOptions& options) {
  if (options.threads < 1) {
    return InvalidArgumentError("preprocess pool threads " + std::to_string(options.threads) + " must be >= 1");
  }
  if (options.max_queued < 1) {
    return InvalidArgumentError("preprocess pool max_queued " + std::to_string(options.max_queued) +
                                " must be >= 1");
  }
  auto pool = std::unique_ptr<PreprocessPool>(new PreprocessPool(options));
  pool->workers_.reserve(static_cast<size_t>(options.threads));
  for (int i = 0; i < options.threads; ++i) pool->workers_.emplace_back([p = pool.get()] { p->Work(); });
  return pool;
}

PreprocessPool::~PreprocessPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (std::thread& worker : workers_) worker.join();
}

Status PreprocessPool::Submit(std::function<void()> job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (static_cast<int64_t>(queue_.size()) >= options_.max_queued) {
      ++counters_.refused;
      return UnavailableError("decode queue full: " + std::to_string(queue_.size()) +
                              " requests already wait for one of the " + std::to_string(workers_.size()) +
                              " decode workers (at most " + std::to_string(options_.max_queued) +
                              " may wait); retry later");
    }
    queue_.push_back(std::move(job));
    ++counters_.queued;
  }
  cv_.notify_one();
  return OkStatus();
}

PreprocessPool::Counters PreprocessPool::counters() const {
  std::lock_guard<std::mutex> lock(mu_);
  return counters_;
}

int64_t PreprocessPool::ExpectedWaitMicros() const {
  std::lock_guard<std::mutex> lock(mu_);
  // The running jobs are on average half done; every worker takes jobs from the one queue.
  const double ahead = static_cast<double>(counters_.queued) + static_cast<double>(counters_.running) / 2;
  return static_cast<int64_t>(ahead * static_cast<double>(job_micros_) / static_cast<double>(workers_.size()));
}

void PreprocessPool::RecordJobMicros(int64_t micros) {
  // An exponential moving average over about the last kJobTimeWindow jobs; the first job sets it.
  constexpr int64_t kJobTimeWindow = 16;
  const int64_t average = job_micros_ == 0 ? micros : job_micros_ + (micros - job_micros_) / kJobTimeWindow;
  job_micros_ = std::max<int64_t>(1, average);
}

void PreprocessPool::WaitIdle() {
  std::unique_lock<std::mutex> lock(mu_);
  idle_cv_.wait(lock, [this] { return queue_.empty() && counters_.running == 0; });
}

void PreprocessPool::Work() {
  SetCurrentThreadName("decode");
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and every queued job has run
    std::function<void()> job = std::move(queue_.front());
    queue_.pop_front();
    --counters_.queued;
    ++counters_.running;
    lock.unlock();
    const auto start = std::chrono::steady_clock::now();
    job();
    job = nullptr;  // what the job holds is released before it counts as completed
    const auto micros =
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start).count();
    lock.lock();
    RecordJobMicros(static_cast<int64_t>(micros));
    --counters_.running;
    ++counters_.completed;
    if (queue_.empty() && counters_.running == 0) idle_cv_.notify_all();
  }
}

}  // namespace cnnserve
