#include "tools/cnnload/load_driver.h"

#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <limits>
#include <map>
#include <thread>

#include "engine/common/units.h"
#include "grpcpp/generic/generic_stub.h"
#include "tools/cnnload/histogram.h"
#include "tools/cnnload/pacing.h"

namespace cnnserve::cnnload {
namespace {

constexpr int64_t kNever = std::numeric_limits<int64_t>::max();
constexpr int kMaxReceiveMessageBytes = 256 * kBytesPerMiB;
constexpr int kReconnectBackoffMs = 50;
// Workers start their first calls this long after the row is set up (threads must exist first).
constexpr int64_t kStartDelayNs = 2 * kNanosPerMilli;
// The main thread's polling period during a row (progress lines come once per second).
constexpr auto kMainTick = std::chrono::milliseconds(10);
constexpr int64_t kSenderTimerSlackNs = 1000;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// steady_clock is CLOCK_MONOTONIC on Linux.
void SleepUntilNs(int64_t t) {
  timespec ts;
  ts.tv_sec = static_cast<time_t>(t / kNanosPerSecond);
  ts.tv_nsec = static_cast<long>(t % kNanosPerSecond);
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

double ProcessCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / kMicrosPerSecond;
}

}  // namespace

std::shared_ptr<grpc::Channel> NewChannel(const std::string& address, const tools::ClientSecurity& security) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxReceiveMessageBytes);
  args.SetMaxSendMessageSize(-1);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, kReconnectBackoffMs);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, kReconnectBackoffMs);
  // A connection of its own, whatever other channels of the process do.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  // Talk to the address given and nothing else.
  args.SetInt(GRPC_ARG_ENABLE_HTTP_PROXY, 0);
  args.SetInt(GRPC_ARG_SERVICE_CONFIG_DISABLE_RESOLUTION, 1);
  return security.NewChannel(address, args);
}

// What every worker of a row shares. Set up before the workers start; the atomics change during the row.
struct LoadDriver::Row {
  bool open_loop = false;
  int64_t start_ns = 0;                         // open-loop schedules count from here
  int64_t measure_start_ns = 0;                 // the window opens
  std::atomic<int64_t> measure_end_ns{kNever};  // the window closes (known in advance unless --requests)
  int64_t issue_end_ns = 0;                     // no call starts at or after this
  int64_t drain_end_ns = 0;                     // no call lives past this (deadline)
  int64_t requests_target = 0;  // closed loop --requests: the window ends after this many measured responses
  std::atomic<int64_t> measured{0};
  std::atomic<bool> stop{false};  // --requests: reached, or capped by --max-row-s
  // For the progress line.
  std::atomic<int64_t> ok_total{0};
  std::atomic<int64_t> errors_total{0};
  std::atomic<int64_t> in_flight{0};
};

// One worker: a completion queue on its own connection, with its own statistics.
class LoadDriver::Worker {
 public:
  Worker(Row* row, const std::shared_ptr<grpc::Channel>& channel, const Workload* workload,
         const LoadOptions& options, int index, int num_workers)
      : row_(row),
        stub_(channel),
        workload_(workload),
        checker_(workload->NewChecker()),
        deadline_ns_(options.deadline_ms * kNanosPerMilli),
        next_request_(static_cast<uint64_t>(index)),
        request_stride_(static_cast<uint64_t>(num_workers)) {}

  // Closed loop, in the worker's thread: keeps `concurrency` calls in flight until the row stops issuing.
  void RunClosedLoop(int concurrency) {
    tokens_.store(0);
    for (int i = 0; i < concurrency; ++i) Issue(NowNs(), /*in_window=*/false);
    void* tag = nullptr;
    bool ok = false;
    while (tokens_.load(std::memory_order_relaxed) > 0 && cq_.Next(&tag, &ok)) {
      Call* call = static_cast<Call*>(tag);
      const int64_t now = NowNs();
      CompleteClosedLoop(call, now);
      delete call;
      tokens_.fetch_sub(1, std::memory_order_relaxed);
      if (!row_->stop.load(std::memory_order_relaxed) && now < row_->issue_end_ns) Issue(NowNs(), false);
    }
    cq_.Shutdown();
    while (cq_.Next(&tag, &ok)) {
    }
  }

  // Open loop: the sender thread. Starts a call at every arrival of `schedule` until the row stops issuing.
  void RunSender(ArrivalSchedule schedule, int64_t max_outstanding) {
    prctl(PR_SET_TIMERSLACK, kSenderTimerSlackNs);
    while (true) {
      const int64_t intended = row_->start_ns + schedule.Peek();
      if (intended >= row_->issue_end_ns) break;
      SleepUntilNs(intended);
      schedule.Next();
      const bool in_window = intended >= row_->measure_start_ns;
      if (in_window) ++scheduled_;
      // tokens_ counts the calls in flight plus one for this sender.
      if (tokens_.load(std::memory_order_relaxed) - 1 >= max_outstanding) continue;
      if (in_window) {
        ++sent_;
        send_lag_ns.Record(NowNs() - intended);
      }
      Issue(intended, in_window);
    }
    ReleaseToken();
  }

  // Open loop: the completion thread. Records every call until the sender is done and nothing is in flight.
  void RunPoller() {
    void* tag = nullptr;
    bool ok = false;
    while (cq_.Next(&tag, &ok)) {
      Call* call = static_cast<Call*>(tag);
      CompleteOpenLoop(call, NowNs());
      delete call;
      ReleaseToken();
    }
  }

  void PrepareOpenLoop() { tokens_.store(1); }

  // Statistics (read after the worker's threads have been joined).
  LatencyHistogram latency_ns;          // every outcome but a refusal
  LatencyHistogram refused_latency_ns;  // UNAVAILABLE and RESOURCE_EXHAUSTED (IsRefusal)
  LatencyHistogram send_lag_ns;  // open loop: how late each call left after its intended time (sender thread)
  std::map<std::string, int64_t> errors;
  int64_t ok_in_window = 0;
  int64_t scheduled_ = 0;
  int64_t sent_ = 0;
  double send_ns_sum = 0;
  int64_t send_count = 0;
  int64_t drain_timeouts = 0;

 private:
  struct Call {
    grpc::ClientContext context;
    grpc::ByteBuffer response;
    grpc::Status status;
    std::unique_ptr<grpc::GenericClientAsyncResponseReader> reader;
    int64_t intended_ns = 0;      // open loop: the schedule's time; closed loop: when the call was handed to gRPC
    bool in_window = false;       // open loop: scheduled inside the window
    bool drain_deadline = false;  // the call's deadline is the row's drain bound, not --deadline-ms
  };

  void Issue(int64_t intended_ns, bool in_window) {
    const int64_t t0 = NowNs();
    Call* call = new Call;
    call->intended_ns = row_->open_loop ? intended_ns : t0;
    call->in_window = in_window;
    int64_t deadline = row_->drain_end_ns;
    if (deadline_ns_ > 0 && t0 + deadline_ns_ < deadline) {
      deadline = t0 + deadline_ns_;
    } else {
      call->drain_deadline = true;
    }
    call->context.set_deadline(std::chrono::system_clock::now() + std::chrono::nanoseconds(deadline - t0));
    tokens_.fetch_add(1, std::memory_order_relaxed);
    row_->in_flight.fetch_add(1, std::memory_order_relaxed);
    call->reader =
        stub_.PrepareUnaryCall(&call->context, workload_->method(), workload_->request(next_request_), &cq_);
    next_request_ += request_stride_;
    call->reader->StartCall();
    call->reader->Finish(&call->response, &call->status, call);
    send_ns_sum += static_cast<double>(NowNs() - t0);
    ++send_count;
  }

  void ReleaseToken() {
    if (tokens_.fetch_sub(1, std::memory_order_acq_rel) == 1) cq_.Shutdown();
  }

  // "" for a good response, else the error's name.
  std::string Outcome(Call* call) {
    if (call->status.ok()) return checker_->Check(&call->response).ok() ? "" : "BAD_RESPONSE";
    if (call->status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED && call->drain_deadline) {
      ++drain_timeouts;
      return "DRAIN_TIMEOUT";
    }
    return GrpcCodeName(call->status.error_code());
  }

  void Count(const std::string& outcome) {
    if (outcome.empty()) {
      row_->ok_total.fetch_add(1, std::memory_order_relaxed);
    } else {
      row_->errors_total.fetch_add(1, std::memory_order_relaxed);
    }
    row_->in_flight.fetch_sub(1, std::memory_order_relaxed);
  }

  // Whether a closed-loop response received at `now` is measured (the window; --requests counts them).
  bool Measured(int64_t now) {
    if (now < row_->measure_start_ns) return false;
    if (row_->requests_target == 0) return now < row_->measure_end_ns.load(std::memory_order_relaxed);
    if (row_->stop.load(std::memory_order_relaxed)) return false;
    const int64_t ticket = row_->measured.fetch_add(1, std::memory_order_relaxed);
    if (ticket >= row_->requests_target) return false;
    if (ticket == row_->requests_target - 1) {
      int64_t expected = kNever;
      row_->measure_end_ns.compare_exchange_strong(expected, now);
      row_->stop.store(true);
    }
    return true;
  }

  void CompleteClosedLoop(Call* call, int64_t now) {
    const std::string outcome = Outcome(call);
    Count(outcome);
    if (!Measured(now)) return;
    (IsRefusal(outcome) ? refused_latency_ns : latency_ns).Record(now - call->intended_ns);
    if (outcome.empty()) {
      ++ok_in_window;
    } else {
      ++errors[outcome];
    }
  }

  void CompleteOpenLoop(Call* call, int64_t now) {
    const std::string outcome = Outcome(call);
    Count(outcome);
    if (call->in_window) {
      (IsRefusal(outcome) ? refused_latency_ns : latency_ns).Record(now - call->intended_ns);
      if (!outcome.empty()) ++errors[outcome];
    }
    if (outcome.empty() && now >= row_->measure_start_ns && now < row_->measure_end_ns.load()) ++ok_in_window;
  }

  Row* row_;
  grpc::GenericStub stub_;
  const Workload* workload_;
  std::unique_ptr<ResponseChecker> checker_;
  grpc::CompletionQueue cq_;
  const int64_t deadline_ns_;
  uint64_t next_request_;
  const uint64_t request_stride_;
  std::atomic<int64_t> tokens_{0};
};

LoadDriver::LoadDriver(const LoadOptions& options, const Workload* workload,
                       std::function<void(const std::string&)> progress)
    : options_(options), workload_(workload), progress_(std::move(progress)) {}

LoadDriver::~LoadDriver() = default;

StatusOr<std::unique_ptr<LoadDriver>> LoadDriver::Create(const LoadOptions& options,
                                                         const tools::ClientSecurity& security,
                                                         const Workload* workload,
                                                         std::function<void(const std::string&)> progress,
                                                         double connect_timeout_s) {
  std::unique_ptr<LoadDriver> driver(new LoadDriver(options, workload, std::move(progress)));
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(connect_timeout_s * kMillisPerSecond));
  for (int i = 0; i < std::max(1, options.threads); ++i) {
    driver->channels_.push_back(NewChannel(options.server, security));
    CNN_RETURN_IF_ERROR(tools::WaitForChannel(driver->channels_.back(), options.server, timeout));
  }
  return driver;
}

RowResult LoadDriver::RunClosedLoop(int concurrency) { return Run(concurrency, 0); }
RowResult LoadDriver::RunOpenLoop(double rate_per_s) { return Run(0, rate_per_s); }

RowResult LoadDriver::Run(int concurrency, double rate_per_s) {
  const bool open_loop = concurrency == 0;
  const int num_workers = static_cast<int>(channels_.size());
  const int64_t warmup_ns = static_cast<int64_t>(options_.warmup_s * kNanosPerSecond);
  // Open loop with --requests N: a window of N / rate seconds (N arrivals expected).
  const bool by_count = options_.requests > 0 && !open_loop;
  const double window_s = open_loop && options_.requests > 0 ? static_cast<double>(options_.requests) / rate_per_s
                                                             : options_.duration_s;
  Row row;
  row.open_loop = open_loop;
  row.start_ns = NowNs() + kStartDelayNs;
  row.measure_start_ns = row.start_ns + warmup_ns;
  if (by_count) {
    row.requests_target = options_.requests;
    row.issue_end_ns = row.measure_start_ns + static_cast<int64_t>(options_.max_row_s * kNanosPerSecond);
  } else {
    row.measure_end_ns.store(row.measure_start_ns + static_cast<int64_t>(window_s * kNanosPerSecond));
    row.issue_end_ns = row.measure_end_ns.load();
  }
  row.drain_end_ns = row.issue_end_ns + static_cast<int64_t>(options_.drain_timeout_s * kNanosPerSecond);

  std::vector<std::unique_ptr<Worker>> workers;
  std::vector<std::thread> threads;
  for (int i = 0; i < num_workers; ++i) {
    workers.push_back(
        std::make_unique<Worker>(&row, channels_[static_cast<size_t>(i)], workload_, options_, i, num_workers));
  }
  if (open_loop) {
    const int64_t max_outstanding = std::max<int64_t>(1, options_.max_outstanding / num_workers);
    const uint64_t seed = options_.seed + 7919 * ++row_counter_;
    for (int i = 0; i < num_workers; ++i) {
      Worker* w = workers[static_cast<size_t>(i)].get();
      w->PrepareOpenLoop();
      threads.emplace_back([w] { w->RunPoller(); });
      threads.emplace_back(
          [w, schedule = ArrivalSchedule::ForSender(rate_per_s, options_.arrivals, i, num_workers, seed),
           max_outstanding] { w->RunSender(schedule, max_outstanding); });
    }
  } else {
    SleepUntilNs(row.start_ns);
    for (int i = 0; i < num_workers; ++i) {
      const int share = concurrency / num_workers + (i < concurrency % num_workers ? 1 : 0);
      if (share == 0) continue;
      Worker* w = workers[static_cast<size_t>(i)].get();
      threads.emplace_back([w, share] { w->RunClosedLoop(share); });
    }
  }

  // Watch the row: CPU time at the window's edges, the --max-row-s cap, a progress line per second.
  const std::string level = open_loop ? "rate=" + std::to_string(static_cast<int64_t>(rate_per_s)) + "/s"
                                      : "c=" + std::to_string(concurrency);
  double cpu_start = -1;
  double cpu_end = -1;
  bool capped = false;
  int64_t next_progress = row.start_ns + kNanosPerSecond;
  int64_t last_ok = 0;
  int64_t last_progress_time = row.start_ns;
  while (true) {
    const int64_t now = NowNs();
    if (cpu_start < 0 && now >= row.measure_start_ns) cpu_start = ProcessCpuSeconds();
    if (by_count && !row.stop.load() && now >= row.issue_end_ns) {
      int64_t expected = kNever;
      row.measure_end_ns.compare_exchange_strong(expected, row.issue_end_ns);
      row.stop.store(true);
      capped = true;
    }
    const int64_t measure_end = row.measure_end_ns.load();
    if (cpu_end < 0 && cpu_start >= 0 && now >= measure_end) cpu_end = ProcessCpuSeconds();
    if (cpu_end >= 0 && now >= row.issue_end_ns) break;
    if (cpu_end >= 0 && by_count) break;
    if (progress_ && now >= next_progress) {
      const int64_t ok = row.ok_total.load(std::memory_order_relaxed);
      const double rps =
          static_cast<double>(ok - last_ok) * kNanosPerSecond / static_cast<double>(now - last_progress_time);
      last_ok = ok;
      last_progress_time = now;
      const bool warming = now < row.measure_start_ns;
      const double phase_elapsed =
          static_cast<double>(now - (warming ? row.start_ns : row.measure_start_ns)) / kNanosPerSecond;
      const double phase_length = warming ? options_.warmup_s : (by_count ? 0 : window_s);
      progress_(FormatProgress(level, warming ? "warm-up" : "measure", phase_elapsed, phase_length, rps,
                               workload_->images_per_request(), row.errors_total.load(std::memory_order_relaxed),
                               row.in_flight.load(std::memory_order_relaxed)));
      next_progress += kNanosPerSecond;
    }
    // Sleep to the next event: window edges at (about) their exact time, else a short tick.
    int64_t wake = now + std::chrono::duration_cast<std::chrono::nanoseconds>(kMainTick).count();
    if (cpu_start < 0) wake = std::min(wake, row.measure_start_ns);
    if (cpu_end < 0 && measure_end != kNever) wake = std::min(wake, measure_end);
    SleepUntilNs(wake);
  }
  for (std::thread& t : threads) t.join();

  RowResult result;
  result.concurrency = concurrency;
  result.target_rate = rate_per_s;
  result.images_per_request = workload_->images_per_request();
  result.window_s = static_cast<double>(row.measure_end_ns.load() - row.measure_start_ns) / kNanosPerSecond;
  result.client_cpu_cores = result.window_s > 0 ? (cpu_end - cpu_start) / result.window_s : 0;
  result.ended_by_time_cap = capped;
  double send_ns = 0;
  int64_t sends = 0;
  for (const auto& w : workers) {
    result.latency_ns.Merge(w->latency_ns);
    result.refused_latency_ns.Merge(w->refused_latency_ns);
    result.send_lag_ns.Merge(w->send_lag_ns);
    for (const auto& [code, n] : w->errors) result.errors[code] += n;
    result.ok_requests += w->ok_in_window;
    result.scheduled += w->scheduled_;
    result.sent += w->sent_;
    result.cancelled_after_drain += w->drain_timeouts;
    send_ns += w->send_ns_sum;
    sends += w->send_count;
  }
  result.client_send_us = sends > 0 ? send_ns / static_cast<double>(sends) / kNanosPerMicro : 0;
  return result;
}

}  // namespace cnnserve::cnnload
