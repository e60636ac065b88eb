// A fixed pool of worker threads for data-parallel loops (matmul rows, attention heads).
// The calling thread takes part in the work, so a pool of N threads uses N cores.
//
// A decode step runs a few hundred short loops back to back, so waking sleeping threads for each
// (a futex round trip, tens of microseconds) would cost more than the work: idle workers spin
// on the job counter for a while before they sleep, and chunks are claimed with one atomic
// increment each.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace lmserve::util {

// Cores this process may run on, counting SMT siblings once (at least 1).
int physical_core_count();

class ThreadPool {
 public:
  // n_threads <= 0 means physical_core_count().
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Splits [0, n) into contiguous chunks of at least min_chunk items and runs
  // fn(begin, end) on each chunk, in parallel; returns when all chunks are done. Chunks shrink
  // as the range runs out (each claims a share of what is left), so the threads finish within
  // a small chunk of each other.
  // Not reentrant: fn must not call parallel_for on the same pool, and one thread at a time
  // may call it. If fn throws, the remaining chunks still run to completion and the first
  // exception is rethrown here.
  void parallel_for(std::size_t n, const std::function<void(std::size_t, std::size_t)>& fn,
                    std::size_t min_chunk = 1);

 private:
  // One parallel_for call, on its caller's stack; workers reach it through current_.
  struct Job {
    const std::function<void(std::size_t, std::size_t)>* fn;
    std::size_t n;
    std::size_t min_chunk;
    std::size_t share_divisor;  // a chunk is 1/share_divisor of the items left
    alignas(64) std::atomic<std::size_t> next_item{0};
    alignas(64) std::atomic<std::size_t> items_done{0};
    std::mutex error_mutex;
    std::exception_ptr error;
  };

  // Starts the next generation: a new job, or shutdown.
  void publish();
  void worker_loop();
  // Claims and runs chunks of job until none is left.
  static void run_chunks(Job& job);

  int n_threads_;
  std::vector<std::thread> workers_;
  // Bumped for every job (and at shutdown): what idle workers spin on, then sleep on.
  alignas(64) std::atomic<std::uint32_t> generation_{0};  // a futex word
  std::atomic<int> sleeping_workers_{0};
  // The running job, or null. A worker counts itself in busy_workers_ before it reads current_,
  // and parallel_for clears current_ and waits for busy_workers_ to drain before its Job dies.
  alignas(64) std::atomic<Job*> current_{nullptr};
  alignas(64) std::atomic<int> busy_workers_{0};
  std::atomic<bool> stopping_{false};
};

}  // namespace lmserve::util
