// ComputeLanes: the few long-lived threads on which multi-threaded engine work runs.
//
// Why. The engine runs its oneDNN primitives on OpenMP (Debian's oneDNN uses GNU libgomp). libgomp gives every
// thread that starts a parallel region its own pool of worker threads, kept for that thread's lifetime, and once
// the pools of the whole process hold more threads than there are CPUs it stops spinning at barriers and sleeps
// in the kernel at each one ("throttled" spinning; no environment variable lifts it). A network of ~20
// primitives then pays two futex wake-ups per primitive: AlexNet at batch 1 ran 15-20% slower inside the server
// than in `cnnbench run` (about 20 voluntary context switches per thread and batch), as soon as a second thread
// (the thread that loaded the model, a second model's worker) had started a parallel region.
//
// What. Engine work with more than one OpenMP thread (compiling plans, warm-up and inference of instances whose
// instance_group gives them several threads) is handed to a lane: a dedicated thread that runs closures one at
// a time in arrival order. For each thread count T there are at most max(1, cpus / T) lanes, handed out round
// robin, so the pools together never hold more threads than the CPUs. Instances on one lane take turns; on a
// machine where each instance already uses every core that is what the CPUs would do anyway. Work with one
// thread needs no pool and runs inline on the caller's thread (Assign returns null).
//
// Thread-safety: ComputeLanes and ComputeLane are thread-safe. Ownership: a lane's thread lives as long as the
// ComputeLane object (shared by ComputeLanes and every runner assigned to it) and is joined by its destructor,
// after the closures already queued have run. A closure must not wait for other work on its own lane.
#ifndef CNNSERVE_SERVER_SERVABLES_COMPUTE_LANES_H_
#define CNNSERVE_SERVER_SERVABLES_COMPUTE_LANES_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace cnnserve {

class ComputeLane {
 public:
  ComputeLane();
  ~ComputeLane();
  ComputeLane(const ComputeLane&) = delete;
  ComputeLane& operator=(const ComputeLane&) = delete;

  // Runs `fn` on the lane's thread and returns once it has returned (exceptions must not escape `fn`).
  void Run(const std::function<void()>& fn);

  // Closures run so far (for tests and statistics).
  int64_t runs() const;

 private:
  struct Job {
    const std::function<void()>* fn = nullptr;
    bool done = false;
  };
  void Loop();

  mutable std::mutex mu_;
  std::condition_variable work_cv_;  // the lane: a job arrived or stop
  std::condition_variable done_cv_;  // callers: a job finished
  std::deque<Job*> queue_;           // guarded by mu_; jobs live on their callers' stacks
  bool stop_ = false;                // guarded by mu_
  int64_t runs_ = 0;                 // guarded by mu_
  std::thread thread_;               // last: started once the members above exist
};

class ComputeLanes {
 public:
  // `cpus` <= 0: std::thread::hardware_concurrency() (at least 1).
  explicit ComputeLanes(int cpus = 0);

  // The lane for engine work with `threads` OpenMP threads (0: all `cpus`), or null when that is 1 thread
  // (run inline). Lanes are created on first use.
  std::shared_ptr<ComputeLane> Assign(int threads);

  int cpus() const { return cpus_; }
  // Lanes created so far for `threads` threads (0: all cpus).
  int lane_count(int threads) const;

 private:
  struct Group {
    std::vector<std::shared_ptr<ComputeLane>> lanes;
    size_t next = 0;  // round robin
  };
  int Resolve(int threads) const { return threads > 0 ? threads : cpus_; }

  const int cpus_;
  mutable std::mutex mu_;
  std::map<int, Group> groups_;  // guarded by mu_; by thread count
};

}  // namespace cnnserve

#endif  // CNNSERVE_SERVER_SERVABLES_COMPUTE_LANES_H_
