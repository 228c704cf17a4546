// HandOffThread: a thread that runs the jobs one producer hands it, one at a time, so that the producer goes on
// with its next step meanwhile. The batcher's worker hands it a finished batch's answers (the tasks' callbacks)
// and runs the next batch while they are sent.
//
// At most one job is held: Hand blocks while the previous job has not returned, which bounds what waits here to
// one batch and keeps the jobs in the order they were handed. The thread starts with the first Hand.
// Thread-safety: Hand may be called from any thread; jobs run on the hand-off thread, never concurrently
// with each other. Ownership: the destructor runs the job still held, then joins the thread. A job must not call
// Hand or destroy this object.
#ifndef CNNSERVE_SERVER_BATCHING_HAND_OFF_THREAD_H_
#define CNNSERVE_SERVER_BATCHING_HAND_OFF_THREAD_H_

#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace cnnserve {

class HandOffThread {
 public:
  // `name`: the thread's name (SetCurrentThreadName).
  explicit HandOffThread(std::string name);
  ~HandOffThread();
  HandOffThread(const HandOffThread&) = delete;
  HandOffThread& operator=(const HandOffThread&) = delete;

  // Waits until the job handed before has returned, then gives `job` to the thread and returns without waiting
  // for it. `job` must not throw.
  void Hand(std::function<void()> job);

 private:
  void Loop();

  const std::string name_;
  std::mutex mu_;
  std::condition_variable job_cv_;   // the thread: a job arrived, or stop
  std::condition_variable done_cv_;  // Hand: the held job returned
  std::function<void()> job_;        // guarded by mu_: handed, not yet started; empty: none
  bool running_ = false;             // guarded by mu_: the thread runs a job
  bool stop_ = false;                // guarded by mu_
  std::thread thread_;               // started by the first Hand
};

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_BATCHING_HAND_OFF_THREAD_H_
