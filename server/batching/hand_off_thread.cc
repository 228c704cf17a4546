#include "server/batching/hand_off_thread.h"

#include <utility>

#include "engine/common/thread_name.h"

namespace cnnserve {

HandOffThread::HandOffThread(std::string name) : name_(std::move(name)) {}

HandOffThread::~HandOffThread() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  job_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void HandOffThread::Hand(std::function<void()> job) {
  std::unique_lock<std::mutex> lock(mu_);
  done_cv_.wait(lock, [&] { return !job_ && !running_; });
  job_ = std::move(job);
  if (!thread_.joinable()) thread_ = std::thread(&HandOffThread::Loop, this);
  lock.unlock();
  job_cv_.notify_one();
}

void HandOffThread::Loop() {
  SetCurrentThreadName(name_);
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    job_cv_.wait(lock, [&] { return job_ || stop_; });
    if (!job_) return;  // stopping with nothing held
    std::function<void()> job = std::move(job_);
    job_ = nullptr;
    running_ = true;
    lock.unlock();
    job();
    job = nullptr;  // what the job holds goes before Hand may return
    lock.lock();
    running_ = false;
    done_cv_.notify_all();
  }
}

}  // namespace cnnserve
