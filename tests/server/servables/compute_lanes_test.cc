// ComputeLanes: lane counts per thread count, round robin, and that a lane runs closures one at a time, in
// order, on its own thread.
#include "server/servables/compute_lanes.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

namespace cnnserve {
namespace {

TEST(ComputeLanesTest, OneThreadRunsInline) {
  ComputeLanes lanes(4);
  EXPECT_EQ(lanes.Assign(1), nullptr);
  EXPECT_EQ(lanes.lane_count(1), 0);
  ComputeLanes single(1);
  EXPECT_EQ(single.Assign(0), nullptr);  // 0 = every cpu = 1 thread
}

TEST(ComputeLanesTest, AtMostCpusOverThreadsLanesRoundRobin) {
  ComputeLanes lanes(4);
  EXPECT_EQ(lanes.cpus(), 4);
  // 2 threads on 4 cpus: two lanes, then the same two again in turn.
  std::shared_ptr<ComputeLane> a = lanes.Assign(2);
  std::shared_ptr<ComputeLane> b = lanes.Assign(2);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(a, b);
  EXPECT_EQ(lanes.Assign(2), a);
  EXPECT_EQ(lanes.Assign(2), b);
  EXPECT_EQ(lanes.Assign(2), a);
  EXPECT_EQ(lanes.lane_count(2), 2);
  // All cores (0 or 4): one lane, shared by everybody; more threads than cpus: still one.
  std::shared_ptr<ComputeLane> all = lanes.Assign(0);
  EXPECT_EQ(lanes.Assign(4), all);
  EXPECT_NE(all, a);
  EXPECT_EQ(lanes.lane_count(4), 1);
  EXPECT_NE(lanes.Assign(8), nullptr);
  EXPECT_EQ(lanes.Assign(8), lanes.Assign(8));
  EXPECT_EQ(lanes.lane_count(8), 1);
}

TEST(ComputeLanesTest, DefaultCpusIsTheHardware) {
  ComputeLanes lanes;
  EXPECT_EQ(lanes.cpus(), std::max(1, static_cast<int>(std::thread::hardware_concurrency())));
}

TEST(ComputeLaneTest, RunsOnItsOwnThreadAndReturnsAfterTheClosure) {
  ComputeLane lane;
  std::thread::id first;
  int value = 0;
  lane.Run([&] {
    first = std::this_thread::get_id();
    value = 42;
  });
  EXPECT_EQ(value, 42);  // visible as soon as Run returns
  EXPECT_NE(first, std::this_thread::get_id());
  std::thread::id second;
  lane.Run([&] { second = std::this_thread::get_id(); });
  EXPECT_EQ(first, second);  // always the same thread (one OpenMP pool)
  EXPECT_EQ(lane.runs(), 2);
}

TEST(ComputeLaneTest, ConcurrentCallersTakeTurns) {
  ComputeLane lane;
  constexpr int kCallers = 8;
  constexpr int kRunsEach = 200;
  std::atomic<int> inside{0};
  std::atomic<int> overlaps{0};
  std::vector<int> per_caller(kCallers, 0);  // written only inside closures: no two at once
  std::vector<std::thread> callers;
  for (int c = 0; c < kCallers; ++c) {
    callers.emplace_back([&, c] {
      for (int i = 0; i < kRunsEach; ++i) {
        lane.Run([&] {
          if (inside.fetch_add(1) != 0) overlaps.fetch_add(1);
          ++per_caller[static_cast<size_t>(c)];
          inside.fetch_sub(1);
        });
        EXPECT_EQ(per_caller[static_cast<size_t>(c)], i + 1);  // our closure ran before Run returned
      }
    });
  }
  for (std::thread& t : callers) t.join();
  EXPECT_EQ(overlaps.load(), 0);
  EXPECT_EQ(lane.runs(), kCallers * kRunsEach);
}

TEST(ComputeLaneTest, DestroyedWhileIdleJoinsItsThread) {
  for (int i = 0; i < 20; ++i) {
    auto lane = std::make_unique<ComputeLane>();
    if (i % 2 == 0) lane->Run([] {});
    lane.reset();  // must not hang
  }
}

}  // namespace
}  // namespace cnnserve
