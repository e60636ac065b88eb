#include "util/thread_pool.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <numeric>
#include <stdexcept>
#include <thread>
#include <vector>

namespace lmserve::util {
namespace {

TEST(ThreadPool, CoversEveryIndexExactlyOnce) {
  ThreadPool pool(3);
  for (std::size_t n : {1u, 2u, 7u, 100u, 12345u}) {
    std::vector<std::atomic<int>> hits(n);
    pool.parallel_for(n, [&](std::size_t b, std::size_t e) {
      for (std::size_t i = b; i < e; ++i) hits[i]++;
    });
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(hits[i], 1) << "n=" << n << " i=" << i;
  }
}

TEST(ThreadPool, ManyConsecutiveJobs) {
  ThreadPool pool(2);
  std::atomic<long> total = 0;
  for (int job = 0; job < 2000; ++job) {
    pool.parallel_for(64, [&](std::size_t b, std::size_t e) { total += static_cast<long>(e - b); });
  }
  EXPECT_EQ(total, 2000 * 64);
}

TEST(ThreadPool, WorkersThatWentToSleepWakeForTheNextJob) {
  ThreadPool pool(3);
  for (int job = 0; job < 5; ++job) {
    // Longer than the workers spin: they are asleep when the job arrives.
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::vector<std::thread::id> ran(3000);
    pool.parallel_for(ran.size(), [&](std::size_t b, std::size_t e) {
      for (std::size_t i = b; i < e; ++i) ran[i] = std::this_thread::get_id();
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    });
    for (const auto& id : ran) ASSERT_NE(id, std::thread::id());
  }
}

TEST(ThreadPool, DefaultSizeIsThePhysicalCoreCount) {
  const int cores = physical_core_count();
  EXPECT_GE(cores, 1);
  EXPECT_LE(cores, static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  ThreadPool pool(0);
  EXPECT_EQ(pool.size(), cores);
}

TEST(ThreadPool, ExceptionIsRethrownAfterAllChunksFinish) {
  ThreadPool pool(4);
  std::atomic<int> done = 0;
  EXPECT_THROW(pool.parallel_for(64,
                                 [&](std::size_t b, std::size_t) {
                                   if (b == 0) throw std::runtime_error("boom");
                                   ++done;
                                 }),
               std::runtime_error);
  // The pool stays usable.
  std::atomic<int> after = 0;
  pool.parallel_for(10, [&](std::size_t b, std::size_t e) { after += static_cast<int>(e - b); });
  EXPECT_EQ(after, 10);
}

TEST(ThreadPool, NoChunkIsStillRunningWhenTheExceptionArrives) {
  using Clock = std::chrono::steady_clock;
  ThreadPool pool(4);
  std::atomic<bool> thrown = false;
  std::atomic<int> done = 0;
  const std::size_t n = 8;  // one index per chunk
  try {
    pool.parallel_for(n, [&](std::size_t b, std::size_t) {
      if (b == 0) {  // chunk 0 is always handed out first
        thrown = true;
        throw std::runtime_error("boom");
      }
      // The other chunks are still busy for a while after the throw.
      auto deadline = Clock::now() + std::chrono::seconds(5);
      while (!thrown && Clock::now() < deadline) std::this_thread::yield();
      auto busy_until = Clock::now() + std::chrono::milliseconds(30);
      while (Clock::now() < busy_until) std::this_thread::yield();
      ++done;
    });
    ADD_FAILURE() << "no exception";
  } catch (const std::runtime_error&) {
    EXPECT_EQ(done.load(), static_cast<int>(n - 1));
  }
}

TEST(ThreadPool, SingleThreadRunsInline) {
  ThreadPool pool(1);
  EXPECT_EQ(pool.size(), 1);
  std::size_t seen = 0;
  pool.parallel_for(5, [&](std::size_t b, std::size_t e) { seen += e - b; });
  EXPECT_EQ(seen, 5u);
}

}  // namespace
}  // namespace lmserve::util
