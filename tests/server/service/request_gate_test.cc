// RequestGate: the per-server in-flight limit, closing, waiting for idle and the drain report.
#include "server/service/request_gate.h"

#include <gtest/gtest.h>

#include <thread>

#include "server/servables/servable.h"

namespace cnnserve {
namespace {

TEST(RequestGateTest, RefusesPastTheLimitAndAdmitsAgainOnceARequestLeaves) {
  RequestGate gate(2);
  ASSERT_TRUE(gate.Enter().ok());
  ASSERT_TRUE(gate.Enter().ok());
  const Status busy = gate.Enter();
  EXPECT_EQ(busy.code(), StatusCode::kUnavailable);
  EXPECT_EQ(
      busy.message(),
      "server busy: 2 requests in flight, the most this server takes at once (--max-in-flight 2); retry later");
  EXPECT_EQ(gate.in_flight(), 2);
  gate.Leave(OkStatus());
  EXPECT_TRUE(gate.Enter().ok());
  EXPECT_EQ(gate.in_flight(), 2);
}

TEST(RequestGateTest, NoLimitWhenZero) {
  RequestGate gate(0);
  for (int i = 0; i < 10000; ++i) ASSERT_TRUE(gate.Enter().ok());
  EXPECT_EQ(gate.in_flight(), 10000);
}

TEST(RequestGateTest, CloseRefusesNewRequestsAndReportsHowTheOthersWereAnswered) {
  RequestGate gate(0);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(gate.Enter().ok());
  gate.Leave(OkStatus());  // before Close: not in the report
  EXPECT_EQ(gate.Close(), 3);
  EXPECT_EQ(gate.Close(), 3);  // idempotent
  const Status refused = gate.Enter();
  EXPECT_EQ(refused, UnavailableError("shutting down: not accepting new requests"));
  gate.Leave(OkStatus());
  gate.Leave(DeadlineExceededError("late"));
  const RequestGate::DrainReport report = gate.Report();
  EXPECT_EQ(report.in_flight_at_close, 3);
  EXPECT_EQ(report.answered_ok, 1);
  EXPECT_EQ(report.failed.at(StatusCode::kDeadlineExceeded), 1);
  EXPECT_EQ(report.unanswered, 1);
  EXPECT_EQ(report.ToString(), "3 requests in flight; answered OK 1, failed 1 DEADLINE_EXCEEDED, unanswered 1");
}

TEST(RequestGateTest, WaitPreparedAndWaitIdleReturnWhenTheLastRequestGetsThereOrAtTheDeadline) {
  RequestGate gate(0);
  ASSERT_TRUE(gate.Enter().ok());
  gate.Close();
  EXPECT_FALSE(gate.WaitPrepared(SteadyNowMicros()));  // a deadline that has passed: no wait
  EXPECT_FALSE(gate.WaitIdle(SteadyNowMicros()));
  std::thread preparer([&gate] { gate.Prepared(); });
  EXPECT_TRUE(gate.WaitPrepared(SteadyNowMicros() + 60'000'000));
  preparer.join();
  EXPECT_FALSE(gate.WaitIdle(SteadyNowMicros())) << "prepared, still in flight";
  std::thread leaver([&gate] { gate.Leave(OkStatus()); });
  EXPECT_TRUE(gate.WaitIdle(SteadyNowMicros() + 60'000'000));
  leaver.join();
  EXPECT_EQ(gate.Report().ToString(), "1 requests in flight; answered OK 1, failed 0, unanswered 0");
}

}  // namespace
}  // namespace cnnserve
