#include "server/service/request_gate.h"

#include <chrono>

namespace cnnserve {

Status RequestGate::Enter() {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return UnavailableError("shutting down: not accepting new requests");
  if (max_in_flight_ > 0 && in_flight_ >= max_in_flight_) {
    return UnavailableError("server busy: " + std::to_string(in_flight_) +
                            " requests in flight, the most this server takes at once (--max-in-flight " +
                            std::to_string(max_in_flight_) + "); retry later");
  }
  ++in_flight_;
  ++preparing_;
  return OkStatus();
}

void RequestGate::Prepared() {
  std::lock_guard<std::mutex> lock(mu_);
  --preparing_;
  if (preparing_ == 0) idle_cv_.notify_all();
}

void RequestGate::Leave(const Status& answer) {
  std::lock_guard<std::mutex> lock(mu_);
  --in_flight_;
  if (closed_) {
    if (answer.ok()) {
      ++report_.answered_ok;
    } else {
      ++report_.failed[answer.code()];
    }
  }
  if (in_flight_ == 0) idle_cv_.notify_all();
}

int64_t RequestGate::Close() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!closed_) {
    closed_ = true;
    report_.in_flight_at_close = in_flight_;
  }
  return report_.in_flight_at_close;
}

bool RequestGate::WaitIdle(int64_t deadline_us) {
  std::unique_lock<std::mutex> lock(mu_);
  const auto deadline = std::chrono::steady_clock::time_point(std::chrono::microseconds(deadline_us));
  return idle_cv_.wait_until(lock, deadline, [this] { return in_flight_ == 0; });
}

bool RequestGate::WaitPrepared(int64_t deadline_us) {
  std::unique_lock<std::mutex> lock(mu_);
  const auto deadline = std::chrono::steady_clock::time_point(std::chrono::microseconds(deadline_us));
  return idle_cv_.wait_until(lock, deadline, [this] { return preparing_ == 0; });
}

RequestGate::DrainReport RequestGate::Report() const {
  std::lock_guard<std::mutex> lock(mu_);
  DrainReport report = report_;
  report.unanswered = in_flight_;
  return report;
}

int64_t RequestGate::in_flight() const {
  std::lock_guard<std::mutex> lock(mu_);
  return in_flight_;
}

std::string RequestGate::DrainReport::ToString() const {
  std::string text = std::to_string(in_flight_at_close) + " requests in flight; answered OK " +
                     std::to_string(answered_ok) + ", failed ";
  if (failed.empty()) text += "0";
  bool first = true;
  for (const auto& [code, count] : failed) {
    text += (first ? "" : ", ") + std::to_string(count) + " " + std::string(StatusCodeName(code));
    first = false;
  }
  return text + ", unanswered " + std::to_string(unanswered);
}

}  // namespace cnnserve
