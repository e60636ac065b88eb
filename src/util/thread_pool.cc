#include "util/thread_pool.h"

#include <algorithm>
#include <utility>

namespace lmserve::util {

ThreadPool::ThreadPool(int n_threads) {
  if (n_threads <= 0)
    n_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  n_threads_ = n_threads;
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  work_ready_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::parallel_for(std::size_t n,
                              const std::function<void(std::size_t, std::size_t)>& fn,
                              std::size_t min_chunk) {
  if (n == 0) return;
  min_chunk = std::max<std::size_t>(1, min_chunk);
  // A few chunks per thread balance uneven work without much scheduling overhead.
  std::size_t chunks = std::min<std::size_t>((n + min_chunk - 1) / min_chunk,
                                             static_cast<std::size_t>(n_threads_) * 4);
  if (chunks <= 1 || n_threads_ == 1) {
    fn(0, n);
    return;
  }
  std::unique_lock lock(mutex_);
  job_ = &fn;
  job_n_ = n;
  job_chunks_ = chunks;
  next_chunk_ = 0;
  chunks_done_ = 0;
  error_ = nullptr;
  ++generation_;
  work_ready_.notify_all();
  // The caller works too.
  while (next_chunk_ < job_chunks_) run_chunk(lock, next_chunk_++);
  work_done_.wait(lock, [this] { return chunks_done_ == job_chunks_; });
  job_ = nullptr;
  if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
}

void ThreadPool::run_chunk(std::unique_lock<std::mutex>& lock, std::size_t c) {
  const auto* fn = job_;
  const std::size_t n = job_n_, chunks = job_chunks_;
  lock.unlock();
  std::exception_ptr error;
  try {
    (*fn)(c * n / chunks, (c + 1) * n / chunks);
  } catch (...) {
    error = std::current_exception();
  }
  lock.lock();
  if (error && !error_) error_ = error;
  if (++chunks_done_ == job_chunks_) work_done_.notify_all();
}

void ThreadPool::worker_loop(int /*index*/) {
  std::size_t seen_generation = 0;
  std::unique_lock lock(mutex_);
  while (true) {
    work_ready_.wait(
        lock, [&] { return stopping_ || (job_ != nullptr && generation_ != seen_generation); });
    if (stopping_) return;
    seen_generation = generation_;
    while (job_ != nullptr && next_chunk_ < job_chunks_) run_chunk(lock, next_chunk_++);
  }
}

}  // namespace lmserve::util
