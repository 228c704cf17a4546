// RequestErrorLog: every client error gets its own line; load errors (UNAVAILABLE, DEADLINE_EXCEEDED) get one
// full line per interval and one line with the counts of the rest, written by the next call after the interval.
#include "server/service/request_error_log.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace cnnserve {
namespace {

// Sends the default logger's lines to a string for the life of the object.
class CapturedLog {
 public:
  CapturedLog() : previous_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(stream_);
    sink->set_pattern("%l %v");
    auto logger = std::make_shared<spdlog::logger>("captured", sink);
    logger->set_level(spdlog::level::info);
    spdlog::set_default_logger(logger);
  }
  ~CapturedLog() { spdlog::set_default_logger(previous_); }
  std::vector<std::string> Lines() const {
    std::vector<std::string> lines;
    std::istringstream in(stream_.str());
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  }

 private:
  std::shared_ptr<spdlog::logger> previous_;
  std::ostringstream stream_;
};

TEST(RequestErrorLogTest, ClientErrorsAreEachLoggedAtInfoOthersAtWarn) {
  CapturedLog captured;
  RequestErrorLog log(1'000'000);
  log.Log("r1", "m", InvalidArgumentError("bad image"), 0);
  log.Log("r2", "m", NotFoundError("no such model"), 1);
  log.Log("r3", "m", InternalError("engine failed"), 2);
  log.Log("r4", "m", InvalidArgumentError("bad image"), 3);
  EXPECT_EQ(captured.Lines(), (std::vector<std::string>{
                                  "info request r1 (model \"m\"): INVALID_ARGUMENT: bad image",
                                  "info request r2 (model \"m\"): NOT_FOUND: no such model",
                                  "warning request r3 (model \"m\"): INTERNAL: engine failed",
                                  "info request r4 (model \"m\"): INVALID_ARGUMENT: bad image",
                              }));
}

TEST(RequestErrorLogTest, LoadErrorsAreCountedPerInterval) {
  CapturedLog captured;
  RequestErrorLog log(1'000'000);
  log.Log("r0", "m", UnavailableError("queue full"), 10);
  for (int i = 1; i <= 999; ++i) {
    log.Log("r" + std::to_string(i), i % 100 == 0 ? "e" : "m",
            i % 100 == 0 ? DeadlineExceededError("late") : UnavailableError("queue full"), 10 + i);
  }
  log.Flush(500'000);  // the interval has not ended: nothing yet
  ASSERT_EQ(captured.Lines().size(), 1u);
  log.Flush(1'000'010);
  // A load error after the counts opens a new interval with a full line.
  log.Log("r1000", "m", UnavailableError("overloaded"), 1'200'000);
  log.Flush(1'300'000);
  log.Log("r1001", "m", UnavailableError("overloaded"), 1'400'000);
  log.Flush(1'500'000, /*force=*/true);
  log.Flush(1'600'000, /*force=*/true);  // nothing pending: nothing written
  EXPECT_EQ(captured.Lines(),
            (std::vector<std::string>{
                "warning request r0 (model \"m\"): UNAVAILABLE: queue full",
                "warning 999 more requests failed under load in the last 1.0 s (DEADLINE_EXCEEDED 9, UNAVAILABLE "
                "990); last: request r999 (model \"m\"): UNAVAILABLE: queue full",
                "warning request r1000 (model \"m\"): UNAVAILABLE: overloaded",
                "warning 1 more requests failed under load in the last 0.3 s (UNAVAILABLE 1); last: request r1001 "
                "(model \"m\"): UNAVAILABLE: overloaded",
            }));
}

TEST(RequestErrorLogTest, ALoadErrorAfterTheIntervalWritesTheCountsFirst) {
  CapturedLog captured;
  RequestErrorLog log(1'000'000);
  log.Log("a", "m", UnavailableError("x"), 0);
  log.Log("b", "m", UnavailableError("y"), 10);
  log.Log("c", "m", UnavailableError("z"), 2'000'000);
  EXPECT_EQ(captured.Lines(),
            (std::vector<std::string>{
                "warning request a (model \"m\"): UNAVAILABLE: x",
                "warning 1 more requests failed under load in the last 2.0 s (UNAVAILABLE 1); last: request b "
                "(model \"m\"): UNAVAILABLE: y",
                "warning request c (model \"m\"): UNAVAILABLE: z",
            }));
}

}  // namespace
}  // namespace cnnserve
