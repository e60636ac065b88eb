#include "util/thread_pool.h"

#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <fstream>
#include <set>
#include <string>
#include <utility>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace lmserve::util {

namespace {

// How long an idle worker spins before it sleeps: longer than the gap between two loops of a
// decode step, short enough that an idle server stops burning its cores at once.
constexpr auto kSpinTime = std::chrono::microseconds(200);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Sleeps while *word == expected (or until woken, or spuriously).
void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected) {
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT_PRIVATE, expected, nullptr,
          nullptr, 0);
}

void futex_wake_all(std::atomic<std::uint32_t>& word) {
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE_PRIVATE, INT32_MAX,
          nullptr, nullptr, 0);
}

std::string read_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

}  // namespace

int physical_core_count() {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) {
    return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }
  std::set<std::pair<std::string, std::string>> cores;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &allowed)) continue;
    const std::string topology = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
    const std::string core = read_line(topology + "core_id");
    // Without sysfs topology every CPU counts as a core.
    if (core.empty()) return std::max(1, CPU_COUNT(&allowed));
    cores.emplace(read_line(topology + "physical_package_id"), core);
  }
  return std::max<int>(1, static_cast<int>(cores.size()));
}

ThreadPool::ThreadPool(int n_threads) {
  n_threads_ = n_threads > 0 ? n_threads : physical_core_count();
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  stopping_.store(true);
  publish();
  for (auto& t : workers_) t.join();
}

void ThreadPool::parallel_for(std::size_t n,
                              const std::function<void(std::size_t, std::size_t)>& fn,
                              std::size_t min_chunk) {
  if (n == 0) return;
  min_chunk = std::max<std::size_t>(1, min_chunk);
  if (n <= min_chunk || n_threads_ == 1) {
    fn(0, n);
    return;
  }
  // Guided self-scheduling: each claim takes 1/(2 x threads) of what is left. Equal chunks
  // (four a thread, as before) left one thread idle for half a chunk on average at the end of
  // every loop: 10% of Qwen2.5-0.5B decode's samples were the pool spinning, 3.6% now.
  Job job{&fn, n, min_chunk, static_cast<std::size_t>(n_threads_) * 2};
  current_.store(&job);
  publish();
  run_chunks(job);  // the caller works too
  while (job.items_done.load(std::memory_order_acquire) != n) cpu_relax();
  current_.store(nullptr);
  while (busy_workers_.load() != 0) cpu_relax();
  if (job.error) std::rethrow_exception(job.error);
}

void ThreadPool::publish() {
  generation_.fetch_add(1);
  // Either a worker about to sleep sees the new generation, or it is counted here (both seq_cst).
  if (sleeping_workers_.load() != 0) futex_wake_all(generation_);
}

void ThreadPool::run_chunks(Job& job) {
  std::size_t begin = job.next_item.load(std::memory_order_relaxed);
  while (begin < job.n) {
    const std::size_t left = job.n - begin;
    const std::size_t size = std::max(job.min_chunk, left / job.share_divisor);
    const std::size_t end = begin + std::min(left, size);
    if (!job.next_item.compare_exchange_weak(begin, end, std::memory_order_relaxed)) continue;
    try {
      (*job.fn)(begin, end);
    } catch (...) {
      std::lock_guard lock(job.error_mutex);
      if (!job.error) job.error = std::current_exception();
    }
    job.items_done.fetch_add(end - begin, std::memory_order_release);
    begin = job.next_item.load(std::memory_order_relaxed);
  }
}

void ThreadPool::worker_loop() {
  // Not a load: the thread may start after jobs (or the shutdown) were already published.
  std::uint32_t seen = 0;
  while (true) {
    // Spin for a while, then sleep until the generation moves.
    const auto spin_until = std::chrono::steady_clock::now() + kSpinTime;
    std::uint32_t now = seen;
    for (int i = 0; (now = generation_.load(std::memory_order_acquire)) == seen; ++i) {
      if ((i & 63) == 63 && std::chrono::steady_clock::now() > spin_until) {
        sleeping_workers_.fetch_add(1);
        if (generation_.load() == seen) futex_wait(generation_, seen);
        sleeping_workers_.fetch_sub(1);
      } else {
        cpu_relax();
      }
    }
    seen = now;
    if (stopping_.load()) return;
    busy_workers_.fetch_add(1);
    if (Job* job = current_.load()) run_chunks(*job);
    busy_workers_.fetch_sub(1);
  }
}

}  // namespace lmserve::util
