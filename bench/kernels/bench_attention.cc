// Kernel micro-benchmark (not a test): one layer's paged attention for a decode step (one query
// row per sequence) or a prefill chunk, at a real model's head shape over an f16 cache, reporting
// time per call, GFLOP/s (QK and PV products) and cache bytes read per second. --cold reads a
// buffer larger than the last-level cache on the pool's threads before every call (untimed), as
// a decode step's weights stream through the caches between two layers' attention: the call
// then finds its code, scratch and cache blocks in memory, as it does in a model.
//
//   bench_attention [--heads 32] [--kv-heads 8] [--head-dim 64] [--context 128,1024,2048]
//                   [--sequences 4] [--rows 1] [--threads 0] [--cpu avx512] [--cold]
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "kernels/cpu.h"
#include "kernels/target_kernels.h"
#include "util/thread_pool.h"

using namespace lmserve;
using namespace lmserve::kernels;

namespace {

// Evicts the caches: reads a buffer 2x the last-level cache, split across the pool's threads (a
// worker left idle this long would go to sleep, and the call would time its wake-up instead).
class CacheEvictor {
 public:
  void run(util::ThreadPool& pool) {
    const std::size_t n = lines_.size(), parts = static_cast<std::size_t>(pool.size());
    std::vector<std::uint64_t> sums(parts);
    pool.parallel_for(parts, [&](std::size_t begin, std::size_t end) {
      for (std::size_t t = begin; t < end; ++t) {
        for (std::size_t i = t * n / parts; i < (t + 1) * n / parts; i += kWordsPerLine)
          sums[t] += lines_[i];
      }
    });
    for (const std::uint64_t s : sums) sink_ = sink_ + s;  // volatile: the reads stay
  }

 private:
  static constexpr std::size_t kWordsPerLine = 64 / sizeof(std::uint64_t);
  std::vector<std::uint64_t> lines_ = std::vector<std::uint64_t>((std::size_t{64} << 20) / 8, 1);
  volatile std::uint64_t sink_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"paged attention micro-benchmark"};
  int heads = 32, kv_heads = 8, head_dim = 64, sequences = 4, rows = 1, threads = 0;
  std::vector<int> contexts = {128, 1024, 2048};
  double seconds = 1.0;
  std::string cpu;
  bool cold = false;
  app.add_option("--heads", heads)->capture_default_str();
  app.add_option("--kv-heads", kv_heads)->capture_default_str();
  app.add_option("--head-dim", head_dim)->capture_default_str();
  app.add_option("--context", contexts, "Positions each sequence holds, its rows included")
      ->delimiter(',');
  app.add_option("--sequences", sequences)->capture_default_str();
  app.add_option("--rows", rows, "Query rows per sequence (1: decode)")->capture_default_str();
  app.add_option("--threads", threads, "0 = one per core")->capture_default_str();
  app.add_option("--seconds", seconds, "Time per measurement")->capture_default_str();
  app.add_option("--cpu", cpu, "A CPU target (default: the best this machine runs)");
  app.add_flag("--cold", cold, "Evict the caches before every call, as a decode step does");
  CLI11_PARSE(app, argc, argv);

  const TargetKernels* target = cpu.empty() ? &active_kernels() : cpu_target(cpu);
  if (target == nullptr) {
    std::fprintf(stderr, "bench_attention: no CPU target %s here\n", cpu.c_str());
    return 1;
  }
  constexpr int kBlock = 16;
  const AttentionShape shape{heads, kv_heads, head_dim};
  const std::size_t row_bytes = kv_row_bytes(KvElement::kF16, head_dim);
  util::ThreadPool pool(threads);
  std::mt19937 rng(1);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  CacheEvictor evictor;
  std::printf("{\"heads\": %d, \"kv_heads\": %d, \"head_dim\": %d, \"sequences\": %d, "
              "\"rows\": %d, \"threads\": %d, \"cold\": %s, \"results\": [\n",
              heads, kv_heads, head_dim, sequences, rows, pool.size(), cold ? "true" : "false");
  for (std::size_t c = 0; c < contexts.size(); ++c) {
    const int context = std::max(contexts[c], rows);
    const int per_sequence = (context + kBlock - 1) / kBlock;
    const std::size_t head_stride = kBlock * row_bytes;
    const std::size_t block_stride = head_stride * static_cast<std::size_t>(kv_heads);
    const std::size_t blocks = static_cast<std::size_t>(per_sequence) * sequences;
    std::vector<std::byte> keys(block_stride * blocks), values(keys.size());
    const PagedKv kv{keys.data(), values.data(), block_stride, head_stride, kBlock,
                     KvElement::kF16};
    // Each sequence's blocks scattered through the pool, as a long-running server's are.
    std::vector<std::int32_t> ids(blocks);
    for (std::size_t i = 0; i < blocks; ++i) ids[i] = static_cast<std::int32_t>(i);
    std::shuffle(ids.begin(), ids.end(), rng);
    std::vector<float> k(static_cast<std::size_t>(kv_heads) * head_dim), v(k.size());
    std::vector<AttentionSequence> batch;
    for (int s = 0; s < sequences; ++s) {
      const std::int32_t* table = ids.data() + static_cast<std::size_t>(s) * per_sequence;
      for (int p = 0; p < context; ++p) {
        for (auto& x : k) x = dist(rng);
        for (auto& x : v) x = dist(rng);
        store_kv(kv, shape, table, p, k.data(), v.data());
      }
      batch.push_back({s * rows, rows, context - rows, table});
    }
    const std::size_t q_size = static_cast<std::size_t>(sequences) * rows * heads * head_dim;
    std::vector<float> q(q_size), out(q_size);
    for (auto& x : q) x = dist(rng);
    const float scale = 1.0f / static_cast<float>(head_dim);
    int calls = 0;
    double elapsed = 0.0;
    do {
      if (cold) evictor.run(pool);
      const auto t0 = std::chrono::steady_clock::now();
      target->paged_attention(pool, shape, kv, batch, q.data(), scale, out.data(), {});
      ++calls;
      elapsed += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    } while (elapsed < seconds);
    const double per_call = elapsed / calls;
    // Each row reads the positions up to its own: QK and PV are 2 flops a head and dimension.
    double positions = 0.0;
    for (int r = 0; r < rows; ++r) positions += context - rows + r + 1;
    const double flops = 4.0 * sequences * positions * heads * head_dim;
    const double bytes = 2.0 * sequences * context * kv_heads * static_cast<double>(row_bytes);
    std::printf("  {\"context\": %d, \"us_per_call\": %.1f, \"gflops\": %.1f, "
                "\"kv_gb_per_s\": %.1f}%s\n",
                context, per_call * 1e6, flops / per_call / 1e9, bytes / per_call / 1e9,
                c + 1 < contexts.size() ? "," : "");
  }
  std::printf("]}\n");
  return 0;
}
