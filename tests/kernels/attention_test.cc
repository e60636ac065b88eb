// Paged causal GQA attention against a naive double-precision implementation over a
// contiguous cache; block tables are shuffled so that logical order != physical order.
// Sliding windows and soft-caps are checked the same way.
#include "kernels/attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <utility>
#include <vector>

#include "kernels/convert.h"
#include "kernels/cpu.h"
#include "kernels/target_kernels.h"

namespace lmserve::kernels {
namespace {

// A pool of `blocks` blocks for one layer, laid out [block][kv_head][slot][head_dim].
struct Pool {
  Pool(const AttentionShape& s, int block_size, int blocks, KvElement e)
      : shape(s), element(e), block_size(block_size) {
    const std::size_t elem = e == KvElement::kF16 ? 2 : 4;
    head_stride =
        static_cast<std::size_t>(block_size) * static_cast<std::size_t>(s.head_dim) * elem;
    block_stride = head_stride * static_cast<std::size_t>(s.n_kv_heads);
    keys.resize(block_stride * static_cast<std::size_t>(blocks));
    values.resize(keys.size());
  }
  PagedKv view() {
    return {keys.data(), values.data(), block_stride, head_stride, block_size, element};
  }
  AttentionShape shape;
  KvElement element;
  int block_size;
  std::size_t head_stride, block_stride;
  std::vector<std::byte> keys, values;
};

// What the pool gives back for rows of head_dim values: each row stored and loaded again.
std::vector<float> stored(const std::vector<float>& rows, KvElement e, int head_dim) {
  std::vector<float> out(rows.size());
  std::vector<std::byte> row(kv_row_bytes(e, head_dim));
  for (std::size_t i = 0; i < rows.size(); i += static_cast<std::size_t>(head_dim)) {
    store_kv_row(e, rows.data() + i, row.data(), head_dim);
    load_kv_row(e, row.data(), out.data() + i, head_dim);
  }
  return out;
}

TEST(KvRows, StoredFormsRoundTripWithinTheirPrecision) {
  std::mt19937 rng(3);
  std::normal_distribution<float> dist(0.0f, 2.0f);
  for (int head_dim : {8, 16, 64, 128}) {
    std::vector<float> x(static_cast<std::size_t>(head_dim));
    for (auto& v : x) v = dist(rng);
    EXPECT_EQ(stored(x, KvElement::kF32, head_dim), x);
    const auto h = stored(x, KvElement::kF16, head_dim);
    for (int i = 0; i < head_dim; ++i)
      EXPECT_EQ(h[static_cast<std::size_t>(i)],
                f16_to_f32(f32_to_f16(x[static_cast<std::size_t>(i)])));
    // q8_0: groups of 32 (or the whole row), each within half a quantization step.
    const auto q = stored(x, KvElement::kQ8_0, head_dim);
    const int group = head_dim % 32 == 0 ? 32 : head_dim;
    EXPECT_EQ(kv_row_bytes(KvElement::kQ8_0, head_dim),
              static_cast<std::size_t>(head_dim / group * (group + 2)));
    for (int g = 0; g < head_dim; g += group) {
      float amax = 0;
      for (int i = g; i < g + group; ++i)
        amax = std::max(amax, std::fabs(x[static_cast<std::size_t>(i)]));
      for (int i = g; i < g + group; ++i) {
        EXPECT_NEAR(q[static_cast<std::size_t>(i)], x[static_cast<std::size_t>(i)],
                    amax / 127 * 0.51 + 1e-3 * amax);
      }
    }
  }
  // An all-zero row stays zero (no division by a zero scale).
  std::vector<float> zeros(32, 0.0f);
  EXPECT_EQ(stored(zeros, KvElement::kQ8_0, 32), zeros);
}

struct Case {
  int heads, kv_heads, head_dim, block_size;
  std::vector<int> rows, starts;  // per sequence
};

TEST(PagedAttention, BatchOfSequencesMatchesNaive) {
  std::mt19937 rng(5);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  util::ThreadPool threads(3);
  const std::vector<Case> cases = {
      {1, 1, 4, 4, {1}, {0}},
      {8, 4, 8, 4, {9}, {0}},
      {8, 4, 8, 16, {1, 1, 1}, {5, 0, 33}},
      {4, 1, 16, 3, {6, 2}, {3, 17}},
      {6, 2, 12, 8, {30, 1, 5}, {40, 7, 0}},
      {32, 8, 64, 16, {20, 1}, {100, 250}},
  };
  for (KvElement e : {KvElement::kF32, KvElement::kF16, KvElement::kQ8_0}) {
    for (const Case& c : cases) {
      SCOPED_TRACE(std::to_string(c.heads) + "/" + std::to_string(c.kv_heads) + " hd " +
                   std::to_string(c.head_dim) + " block " + std::to_string(c.block_size) +
                   " element " + std::to_string(static_cast<int>(e)));
      const AttentionShape shape{c.heads, c.kv_heads, c.head_dim};
      const int kv_dim = c.kv_heads * c.head_dim, q_dim = c.heads * c.head_dim;
      int total_blocks = 0;
      for (std::size_t s = 0; s < c.rows.size(); ++s)
        total_blocks += (c.starts[s] + c.rows[s] + c.block_size - 1) / c.block_size;
      Pool pool(shape, c.block_size, total_blocks + 2, e);
      std::vector<std::int32_t> physical(static_cast<std::size_t>(total_blocks + 2));
      std::iota(physical.begin(), physical.end(), 0);
      std::shuffle(physical.begin(), physical.end(), rng);

      // Each sequence: contiguous reference K/V, stored into its blocks position by position.
      std::vector<std::vector<float>> ref_k(c.rows.size()), ref_v(c.rows.size());
      std::vector<std::vector<std::int32_t>> tables(c.rows.size());
      std::vector<AttentionSequence> seqs;
      int next_block = 0, row = 0;
      for (std::size_t s = 0; s < c.rows.size(); ++s) {
        const int len = c.starts[s] + c.rows[s];
        for (int b = 0; b < (len + c.block_size - 1) / c.block_size; ++b)
          tables[s].push_back(physical[static_cast<std::size_t>(next_block++)]);
        ref_k[s].resize(static_cast<std::size_t>(len * kv_dim));
        ref_v[s].resize(ref_k[s].size());
        for (auto* vec : {&ref_k[s], &ref_v[s]})
          for (auto& x : *vec) x = dist(rng);
        for (int p = 0; p < len; ++p) {
          store_kv(pool.view(), shape, tables[s].data(), p, ref_k[s].data() + p * kv_dim,
                   ref_v[s].data() + p * kv_dim);
        }
        seqs.push_back({row, c.rows[s], c.starts[s], tables[s].data()});
        row += c.rows[s];
      }
      std::vector<float> q(static_cast<std::size_t>(row * q_dim));
      for (auto& x : q) x = dist(rng);
      std::vector<float> full(q.size()), out(q.size());
      const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
      paged_attention(threads, shape, pool.view(), seqs, q.data(), scale, full.data());
      // Windows shorter than, equal to and not aligned with the blocks, with and without a cap.
      for (const ScoreOptions opt :
           {ScoreOptions{}, ScoreOptions{.window = 1}, ScoreOptions{.window = 5},
            ScoreOptions{.softcap = 0.8f}, ScoreOptions{.softcap = 2.0f, .window = c.block_size}}) {
        SCOPED_TRACE("window " + std::to_string(opt.window) + " softcap " +
                     std::to_string(opt.softcap));
        paged_attention(threads, shape, pool.view(), seqs, q.data(), scale, out.data(), opt);
        bool changed = false;  // a window or cap that changes nothing would test nothing
        const int group = c.heads / c.kv_heads;
        for (std::size_t s = 0; s < seqs.size(); ++s) {
          // The reference reads what the pool holds: each head row stored and loaded again.
          const auto keys = stored(ref_k[s], e, c.head_dim);
          const auto values = stored(ref_v[s], e, c.head_dim);
          for (int i = 0; i < seqs[s].n_rows; ++i) {
            const int t = seqs[s].first_row + i, n = seqs[s].start_pos + i + 1;
            const int lo = opt.window > 0 ? std::max(0, n - opt.window) : 0;
            for (int h = 0; h < c.heads; ++h) {
              const int kvh = h / group;
              std::vector<double> sc(static_cast<std::size_t>(n), 0.0);
              double m = -1e300;
              for (int j = lo; j < n; ++j) {
                double d = 0;
                for (int x = 0; x < c.head_dim; ++x) {
                  d += static_cast<double>(
                           q[static_cast<std::size_t>(t * q_dim + h * c.head_dim + x)]) *
                       keys[static_cast<std::size_t>(j * kv_dim + kvh * c.head_dim + x)];
                }
                d *= scale;
                if (opt.softcap > 0) d = opt.softcap * std::tanh(d / opt.softcap);
                sc[static_cast<std::size_t>(j)] = d;
                m = std::max(m, d);
              }
              double sum = 0;
              for (int j = lo; j < n; ++j) {
                auto& x = sc[static_cast<std::size_t>(j)];
                sum += (x = std::exp(x - m));
              }
              for (int x = 0; x < c.head_dim; ++x) {
                double ref = 0;
                for (int j = lo; j < n; ++j) {
                  ref += sc[static_cast<std::size_t>(j)] / sum *
                         values[static_cast<std::size_t>(j * kv_dim + kvh * c.head_dim + x)];
                }
                const auto at = static_cast<std::size_t>(t * q_dim + h * c.head_dim + x);
                ASSERT_NEAR(out[at], ref, 2e-5)
                    << "seq " << s << " row " << i << " h " << h << " x " << x;
                changed = changed || std::abs(out[at] - full[at]) > 1e-3f;
              }
            }
          }
        }
        int longest = 0;
        for (std::size_t q_s = 0; q_s < c.rows.size(); ++q_s)
          longest = std::max(longest, c.starts[q_s] + c.rows[q_s]);
        if ((opt.softcap > 0 && longest > 1) || (opt.window > 0 && opt.window < longest)) {
          EXPECT_TRUE(changed);
        }
      }
    }
  }
}

// A row's output depends only on its own sequence: the same sequence alone or beside others
// (and with other thread counts) gives bit-identical results.
TEST(PagedAttention, BatchInvariant) {
  std::mt19937 rng(9);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  const AttentionShape shape{8, 2, 32};
  Pool pool(shape, 16, 16, KvElement::kF16);
  const int kv_dim = 2 * 32, q_dim = 8 * 32;
  std::vector<std::int32_t> a_table = {3, 7, 1}, b_table = {0, 2, 4, 5};
  for (int p = 0; p < 40; ++p) {
    std::vector<float> k(kv_dim), v(kv_dim);
    for (auto& x : k) x = dist(rng);
    for (auto& x : v) x = dist(rng);
    store_kv(pool.view(), shape, a_table.data(), p, k.data(), v.data());
  }
  for (int p = 0; p < 60; ++p) {
    std::vector<float> k(kv_dim), v(kv_dim);
    for (auto& x : k) x = dist(rng);
    for (auto& x : v) x = dist(rng);
    store_kv(pool.view(), shape, b_table.data(), p, k.data(), v.data());
  }
  std::vector<float> q(static_cast<std::size_t>(5 * q_dim));
  for (auto& x : q) x = dist(rng);
  util::ThreadPool one(1), three(3);
  // a: rows 0..2 at positions 37..39; b: rows 3..4 at 58..59.
  std::vector<AttentionSequence> both = {{0, 3, 37, a_table.data()}, {3, 2, 58, b_table.data()}};
  std::vector<float> together(q.size()), alone(static_cast<std::size_t>(3 * q_dim));
  paged_attention(three, shape, pool.view(), both, q.data(), 0.2f, together.data());
  std::vector<AttentionSequence> only_a = {{0, 3, 37, a_table.data()}};
  paged_attention(one, shape, pool.view(), only_a, q.data(), 0.2f, alone.data());
  for (std::size_t i = 0; i < alone.size(); ++i) ASSERT_EQ(alone[i], together[i]) << i;
}

// A prompt's rows attended together (in row tiles, as a prefill chunk) give each row the bits
// it gets attended alone (as a decode step), on every target, and every target gives the
// scalar target's bits (the scores are one fma chain per key everywhere).
TEST(PagedAttention, PrefillRowsEqualSingleRowsOnEveryTarget) {
  std::mt19937 rng(13);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  // Groups of 4 and 7 query heads per kv head (Llama 3.2 1B, Qwen2.5 0.5B) and of 10 (more than
  // one pass of the vector code carries); a head size with dimensions past the vectors' 32; a
  // block size the vector code has and one it lacks; f16 and f32 caches (both read in place);
  // scores spread so far apart that their exponentials cover exp's whole range.
  struct Shape {
    int heads, head_dim, block_size;
    KvElement element;
    float scale = 0.125f;
  };
  for (const auto& [heads, head_dim, block_size, element, scale] :
       {Shape{8, 64, 16, KvElement::kF16}, Shape{14, 64, 16, KvElement::kF16},
        Shape{8, 64, 5, KvElement::kF16}, Shape{20, 48, 16, KvElement::kF16},
        Shape{14, 64, 16, KvElement::kF32}, Shape{8, 64, 16, KvElement::kF16, 30.0f}}) {
    const AttentionShape shape{heads, 2, head_dim};
    const int kv_dim = 2 * head_dim, q_dim = heads * head_dim, rows = 45, start = 7;
    const int blocks = (start + rows + block_size - 1) / block_size;
    Pool pool(shape, block_size, blocks, element);
    std::vector<std::int32_t> table(static_cast<std::size_t>(blocks));
    std::iota(table.rbegin(), table.rend(), 0);
    for (int p = 0; p < start + rows; ++p) {
      std::vector<float> k(kv_dim), v(kv_dim);
      for (auto& x : k) x = dist(rng);
      for (auto& x : v) x = dist(rng);
      store_kv(pool.view(), shape, table.data(), p, k.data(), v.data());
    }
    std::vector<float> q(static_cast<std::size_t>(rows * q_dim));
    for (auto& x : q) x = dist(rng);
    util::ThreadPool threads(2);
    std::vector<float> want;
    for (auto name : available_cpu_targets()) {
      SCOPED_TRACE(std::string(name) + " heads " + std::to_string(heads) + " head_dim " +
                   std::to_string(head_dim) + " block " + std::to_string(block_size) +
                   " element " + std::to_string(static_cast<int>(element)) + " scale " +
                   std::to_string(scale));
      const auto attention = cpu_target(name)->paged_attention;
      for (const ScoreOptions opt : {ScoreOptions{}, ScoreOptions{.window = 9}}) {
        std::vector<float> together(q.size()), alone(q.size());
        const std::vector<AttentionSequence> prompt = {{0, rows, start, table.data()}};
        attention(threads, shape, pool.view(), prompt, q.data(), scale, together.data(), opt);
        for (int r = 0; r < rows; ++r) {
          const std::vector<AttentionSequence> one = {{0, 1, start + r, table.data()}};
          attention(threads, shape, pool.view(), one, q.data() + r * q_dim, scale,
                    alone.data() + r * q_dim, opt);
        }
        ASSERT_EQ(0, std::memcmp(together.data(), alone.data(), q.size() * sizeof(float)));
        if (opt.window == 0) {
          if (want.empty()) want = together;
          ASSERT_EQ(0, std::memcmp(want.data(), together.data(), q.size() * sizeof(float)));
        }
      }
    }
  }
}

// A position never sees the future: changing a later position's keys/values changes nothing.
TEST(PagedAttention, IsCausal) {
  util::ThreadPool pool1(1);
  const AttentionShape shape{1, 1, 4};
  Pool pool(shape, 2, 3, KvElement::kF32);
  std::vector<std::int32_t> table = {2, 0, 1};
  std::vector<float> k(4), v(4);
  for (int p = 0; p < 5; ++p) {
    for (int i = 0; i < 4; ++i)
      k[static_cast<std::size_t>(i)] = 0.1f * static_cast<float>((p + i) % 7),
      v[static_cast<std::size_t>(i)] = static_cast<float>(p * 4 + i);
    store_kv(pool.view(), shape, table.data(), p, k.data(), v.data());
  }
  std::vector<float> q(20, 0.3f), a(20), b(20);
  std::vector<AttentionSequence> seq = {{0, 5, 0, table.data()}};
  paged_attention(pool1, shape, pool.view(), seq, q.data(), 0.5f, a.data());
  std::vector<float> big(4, 100.0f);
  store_kv(pool.view(), shape, table.data(), 4, big.data(), big.data());
  paged_attention(pool1, shape, pool.view(), seq, q.data(), 0.5f, b.data());
  for (int i = 0; i < 16; ++i)
    EXPECT_EQ(a[static_cast<std::size_t>(i)], b[static_cast<std::size_t>(i)]);
  EXPECT_NE(a[16], b[16]);
  // The first position attends only to itself: its output is its own value row.
  for (int i = 0; i < 4; ++i) EXPECT_EQ(a[static_cast<std::size_t>(i)], static_cast<float>(i));
}

}  // namespace
}  // namespace lmserve::kernels
