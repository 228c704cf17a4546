#include "server/service/request_error_log.h"

#include <spdlog/spdlog.h>

#include <cstdio>

namespace cnnserve {
namespace {

std::string Line(std::string_view request_id, std::string_view model, const Status& status) {
  return "request " + std::string(request_id) + " (model \"" + std::string(model) + "\"): " + status.ToString();
}

std::string Seconds(int64_t micros) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.1f", static_cast<double>(micros) / kMicrosPerSecond);
  return text;
}

}  // namespace

bool RequestErrorLog::IsLoadError(const Status& status) {
  return status.code() == StatusCode::kUnavailable || status.code() == StatusCode::kDeadlineExceeded;
}

void RequestErrorLog::Log(std::string_view request_id, std::string_view model, const Status& status,
                          int64_t now_us) {
  if (!IsLoadError(status)) {
    const bool client_error = status.code() == StatusCode::kInvalidArgument ||
                              status.code() == StatusCode::kNotFound || status.code() == StatusCode::kCancelled;
    spdlog::log(client_error ? spdlog::level::info : spdlog::level::warn, "{}", Line(request_id, model, status));
    return;
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (interval_open_ && now_us - interval_start_us_ < interval_us_) {
    ++codes_[status.code()];
    last_ = Line(request_id, model, status);
    pending_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (pending_.load(std::memory_order_relaxed) > 0) WritePendingLocked(now_us);
  spdlog::warn("{}", Line(request_id, model, status));
  interval_open_ = true;
  interval_start_us_ = now_us;
}

void RequestErrorLog::Flush(int64_t now_us, bool force) {
  if (pending_.load(std::memory_order_relaxed) == 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (pending_.load(std::memory_order_relaxed) == 0) return;
  if (!force && now_us - interval_start_us_ < interval_us_) return;
  WritePendingLocked(now_us);
  interval_open_ = false;
}

void RequestErrorLog::WritePendingLocked(int64_t now_us) {
  std::string counts;
  for (const auto& [code, count] : codes_) {
    counts += (counts.empty() ? "" : ", ") + std::string(StatusCodeName(code)) + " " + std::to_string(count);
  }
  spdlog::warn("{} more requests failed under load in the last {} s ({}); last: {}",
               pending_.load(std::memory_order_relaxed), Seconds(now_us - interval_start_us_), counts, last_);
  pending_.store(0, std::memory_order_relaxed);
  codes_.clear();
  last_.clear();
}

}  // namespace cnnserve
