// A fixed pool of worker threads for data-parallel loops (matmul rows, attention heads).
// The calling thread takes part in the work, so a pool of N threads uses N cores.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace lmserve::util {

class ThreadPool {
 public:
  // n_threads <= 0 means std::thread::hardware_concurrency().
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Splits [0, n) into contiguous chunks of at least min_chunk items and runs
  // fn(begin, end) on each chunk, in parallel; returns when all chunks are done.
  // Not reentrant: fn must not call parallel_for on the same pool. If fn throws, the
  // remaining chunks still run to completion and the first exception is rethrown here.
  void parallel_for(std::size_t n, const std::function<void(std::size_t, std::size_t)>& fn,
                    std::size_t min_chunk = 1);

 private:
  void worker_loop(int index);
  // Runs chunk c of the current job with the lock released; records the first exception.
  void run_chunk(std::unique_lock<std::mutex>& lock, std::size_t c);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable work_ready_;
  std::condition_variable work_done_;
  const std::function<void(std::size_t, std::size_t)>* job_ = nullptr;
  std::size_t job_n_ = 0;
  std::size_t job_chunks_ = 0;
  std::size_t next_chunk_ = 0;
  std::size_t chunks_done_ = 0;
  std::size_t generation_ = 0;
  std::exception_ptr error_;
  bool stopping_ = false;
};

}  // namespace lmserve::util
