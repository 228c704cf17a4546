// The admission policy, one table row per rule and corner case.
#include "server/batching/admission_policy.h"

#include <gtest/gtest.h>

#include <string>

namespace cnnserve {
namespace {

using Action = AdmissionDecision::Action;
constexpr int64_t kNever = Clock::kInfiniteFuture;
constexpr int64_t kNow = 1'000'000;

TEST(AdmissionPolicyTest, Table) {
  struct Row {
    std::string name;
    AdmissionSnapshot queue;
    int64_t items;
    int64_t deadline_us;
    Action want;
    int64_t want_wait_us;
  };
  const AdmissionSnapshot idle{.max_queue_size = 4};
  // 10 items queued, 4 running, 1 ms per item, one instance: 12 ms ahead.
  const AdmissionSnapshot busy{.queued_tasks = 3,
                               .queued_items = 10,
                               .running_items = 4,
                               .item_service_ns = 1'000'000,
                               .num_instances = 1,
                               .max_queue_size = 4};
  AdmissionSnapshot busy_two = busy;
  busy_two.num_instances = 2;
  AdmissionSnapshot full = busy;
  full.queued_tasks = 4;
  AdmissionSnapshot unmeasured = busy;
  unmeasured.item_service_ns = 0;
  const Row rows[] = {
      {"idle, no deadline", idle, 1, kNever, Action::kAdmit, 0},
      {"idle, any deadline (nothing measured)", idle, 1, kNow + 1, Action::kAdmit, 0},
      {"queue full wins over everything", full, 1, kNever, Action::kQueueFull, 0},
      {"busy, no deadline", busy, 1, kNever, Action::kAdmit, 12'000},
      {"busy, deadline after the expected finish", busy, 2, kNow + 14'000, Action::kAdmit, 12'000},
      {"busy, deadline 1 us before the expected finish", busy, 2, kNow + 13'999, Action::kMissesDeadline, 12'000},
      {"two instances halve the wait", busy_two, 2, kNow + 8'000, Action::kAdmit, 6'000},
      {"two instances, still too late", busy_two, 2, kNow + 7'999, Action::kMissesDeadline, 6'000},
      {"not measured yet: never refused for time", unmeasured, 1, kNow + 1, Action::kAdmit, 0},
  };
  for (const Row& row : rows) {
    const AdmissionDecision d = DecideAdmission(row.queue, row.items, kNow, row.deadline_us);
    EXPECT_EQ(d.action, row.want) << row.name;
    EXPECT_EQ(d.expected_wait_us, row.want_wait_us) << row.name;
  }
}

TEST(AdmissionPolicyTest, HugeQueuesDoNotOverflow) {
  const AdmissionSnapshot huge{.queued_tasks = 1,
                               .queued_items = int64_t{1} << 60,
                               .running_items = 0,
                               .item_service_ns = int64_t{1} << 40,
                               .num_instances = 1,
                               .max_queue_size = 2};
  const AdmissionDecision d = DecideAdmission(huge, 1, kNow, kNow + 1'000'000);
  EXPECT_EQ(d.action, Action::kMissesDeadline);
  EXPECT_GT(d.expected_finish_us, kNow);
  EXPECT_LT(d.expected_finish_us, kNever);
}

}  // namespace
}  // namespace cnnserve
