// Causal attention over the paged cache (compiled per CPU target).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/attention.h"
#include "kernels/convert.h"
#include "kernels/exp_approx.h"
#include "kernels/simd.h"
#include "kernels/target.h"

LMSERVE_TARGET_BEGIN
namespace lmserve::kernels::LMSERVE_TARGET_NS {

namespace {

constexpr long kMinParallelWork = 1L << 15;

inline float to_f32(float v) { return v; }
inline float to_f32(std::uint16_t h) { return kernels::f16_to_f32(h); }

// n consecutive q8_0 rows of head_dim values, widened to f32.
void widen_q8_rows(const std::byte* src, int n, int head_dim, float* dst) {
  const std::size_t row = kv_row_bytes(KvElement::kQ8_0, head_dim);
  for (int r = 0; r < n; ++r) {
    load_kv_row(KvElement::kQ8_0, src + static_cast<std::size_t>(r) * row, dst + r * head_dim,
                head_dim);
  }
}

// fn.template operator()<G>() with G = min(n, kMax), for n >= 1.
template <int kMax, class Fn>
void with_count(int n, Fn&& fn) {
  if constexpr (kMax > 1) {
    if (n < kMax) return with_count<kMax - 1>(n, fn);
  }
  fn.template operator()<kMax>();
}

// G heads' sums of their n weights (head g's at p + g * stride), each one chain in key order;
// the heads' chains run side by side in registers instead of waiting on one another.
constexpr int kSumHeads = 8;
template <int G>
void block_sums(const float* p, int stride, int n, float* out) {
  float sum[G] = {};
  for (int j = 0; j < n; ++j) {
    for (int g = 0; g < G; ++g) sum[g] += p[g * stride + j];
  }
  for (int g = 0; g < G; ++g) out[g] = sum[g];
}

#if LMSERVE_HAVE_AVX2
// The vectors the block loops work in: 512-bit where the target has them (16 keys or 16 value
// dimensions a vector, 32 registers), else 256-bit (16 registers). kScoreHeads and kValueHeads
// are how many query heads one pass carries in registers.
#if LMSERVE_HAVE_AVX512
using Lanes = Lanes16;
constexpr int kScoreHeads = 8;  // 8 sums + the keys' vector
constexpr int kValueHeads = 8;  // 8 x 2 sums + 2 value vectors + the weight
#else
using Lanes = Lanes8;
constexpr int kScoreHeads = 4;  // 4 x 2 sums + 2 key vectors
constexpr int kValueHeads = 2;  // 2 x 4 sums + 4 value vectors + the weight
#endif

// G query vectors' scores against a 16-key block: 16 fma chains side by side per head.
template <int G, class E>
void block_scores16(const float* q, int head_dim, const E* kt, float* scores) {
  constexpr int K = 16 / Lanes::kWidth;
  Lanes::F acc[G][K];
  for (auto& a : acc)
    for (auto& v : a) v = Lanes::zero();
  for (int i = 0; i < head_dim; ++i) {
    Lanes::F k[K];
    for (int v = 0; v < K; ++v) k[v] = Lanes::load(kt + i * 16 + v * Lanes::kWidth);
    for (int h = 0; h < G; ++h) {
      const Lanes::F qi = Lanes::splat(q[h * head_dim + i]);
      for (int v = 0; v < K; ++v) acc[h][v] = Lanes::fmadd(qi, k[v], acc[h][v]);
    }
  }
  for (int h = 0; h < G; ++h)
    for (int v = 0; v < K; ++v) Lanes::store(scores + h * 16 + v * Lanes::kWidth, acc[h][v]);
}
#endif

// Scores of `heads` query vectors (q + h * head_dim) against a block's keys, dimension-major
// (kt[i * width + j]: key j's element i, f32 or f16): scores[h * width + j] = sum over i, in
// order, of q[i] * key j[i], one fma chain per key, so every target computes the scalar target's
// bits (the vector code runs a 16-key block's chains side by side, for several heads at a time).
// Slots past the block's filled ones are computed too, and never read.
template <class E>
void block_scores(const float* q, int head_dim, int heads, const E* kt, int width,
                  float* scores) {
  int h = 0;
#if LMSERVE_HAVE_AVX2
  if (width == 16) {
    // Qwen2.5's 7 heads a kv head: one pass with 512-bit vectors, 4 + 3 with 256-bit ones.
    for (; h < heads; h += kScoreHeads) {
      with_count<kScoreHeads>(heads - h, [&]<int G>() {
        block_scores16<G>(q + h * head_dim, head_dim, kt, scores + h * 16);
      });
    }
    return;
  }
#endif
  for (; h < heads; ++h) {
    float* out = scores + h * width;
    std::fill_n(out, width, 0.0f);
    for (int i = 0; i < head_dim; ++i) {
      const float qi = q[h * head_dim + i];
      for (int j = 0; j < width; ++j) out[j] = std::fma(qi, to_f32(kt[i * width + j]), out[j]);
    }
  }
}

// keys [n][head_dim] -> kt [head_dim][width], slots n..width-1 zero.
void transpose_keys(const float* keys, int n, int head_dim, int width, float* kt) {
  for (int i = 0; i < head_dim; ++i) {
    for (int j = 0; j < n; ++j) kt[i * width + j] = keys[j * head_dim + i];
    std::fill(kt + i * width + n, kt + (i + 1) * width, 0.0f);
  }
}

#if LMSERVE_HAVE_AVX2
// accumulate_values for G heads and 32 dimensions (acc, v offset to them): the value vectors
// are loaded once per key for all G heads.
template <int G, class E>
void accumulate_values32(float* acc, int head_dim, const float* correction, const float* p,
                         int p_stride, const E* v, int n) {
  constexpr int K = 32 / Lanes::kWidth;
  Lanes::F a[G][K];
  for (int g = 0; g < G; ++g) {
    const Lanes::F c = Lanes::splat(correction[g]);
    for (int k = 0; k < K; ++k)
      a[g][k] = Lanes::mul(Lanes::load(acc + g * head_dim + k * Lanes::kWidth), c);
  }
  for (int j = 0; j < n; ++j) {
    const E* vj = v + static_cast<long>(j) * head_dim;
    Lanes::F vk[K];
    for (int k = 0; k < K; ++k) vk[k] = Lanes::load(vj + k * Lanes::kWidth);
    for (int g = 0; g < G; ++g) {
      const Lanes::F pj = Lanes::splat(p[g * p_stride + j]);
      for (int k = 0; k < K; ++k) a[g][k] = Lanes::fmadd(pj, vk[k], a[g][k]);
    }
  }
  for (int g = 0; g < G; ++g)
    for (int k = 0; k < K; ++k) Lanes::store(acc + g * head_dim + k * Lanes::kWidth, a[g][k]);
}
#endif

// One block's value sums for `heads` heads (acc + g * head_dim: head g's sums, p + g * p_stride:
// its weights): acc = acc * correction[g], then acc = fma(p[j], v[j], acc) for keys j = 0..n-1
// in order (n > 0, v[j] = v + j * head_dim, f32 or f16 values read as they are stored). The
// product by the correction is rounded before the first key's fma, as the scalar loop does it,
// so every target gives its bits; the vector code keeps 32 of several heads' sums in registers
// across the block's keys.
template <class E>
void accumulate_values(float* acc, const float* correction, const float* p, int p_stride,
                       const E* v, int n, int head_dim, int heads) {
  int i = 0;
#if LMSERVE_HAVE_AVX2
  for (; i + 32 <= head_dim; i += 32) {
    for (int g = 0; g < heads; g += kValueHeads) {
      with_count<kValueHeads>(heads - g, [&]<int G>() {
        accumulate_values32<G>(acc + g * head_dim + i, head_dim, correction + g, p + g * p_stride,
                               p_stride, v + i, n);
      });
    }
  }
#endif
  for (int g = 0; g < heads; ++g) {
    for (int d = i; d < head_dim; ++d) {
      float a = acc[g * head_dim + d] * correction[g];
      for (int j = 0; j < n; ++j)
        a = std::fma(p[g * p_stride + j], to_f32(v[static_cast<long>(j) * head_dim + d]), a);
      acc[g * head_dim + d] = a;
    }
  }
}

// x[i] = x[i] * scale, soft-capped where softcap > 0; returns their maximum (n > 0).
float scale_scores(float* x, int n, float scale, float softcap) {
  float max = -std::numeric_limits<float>::infinity();
  int i = 0;
#if LMSERVE_HAVE_AVX2
  // The products are the scalar ones and a maximum does not depend on its order.
  if (softcap <= 0.0f && n >= Lanes::kWidth) {
    const Lanes::F s = Lanes::splat(scale);
    Lanes::F m = Lanes::splat(max);
    for (; i + Lanes::kWidth <= n; i += Lanes::kWidth) {
      const Lanes::F v = Lanes::mul(Lanes::load(x + i), s);
      Lanes::store(x + i, v);
      m = Lanes::max(v, m);  // a NaN score leaves m, as std::max(m, score) does
    }
    float lanes[Lanes::kWidth];
    Lanes::store(lanes, m);
    for (const float lane : lanes) max = std::max(max, lane);
  }
#endif
  for (; i < n; ++i) {
    float score = x[i] * scale;
    if (softcap > 0.0f) score = softcap * std::tanh(score / softcap);
    x[i] = score;
    max = std::max(max, score);
  }
  return max;
}

// x[i] = exp(x[i] - shift): a block's scores into its softmax terms, the same bits on every
// target and in every lane.
void exp_shifted(float* x, int n, float shift) {
  int i = 0;
#if LMSERVE_HAVE_AVX2
  const __m256 s = _mm256_set1_ps(shift);
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(x + i, exp_approx8(_mm256_sub_ps(_mm256_loadu_ps(x + i), s)));
#endif
  for (; i < n; ++i) x[i] = exp_approx(x[i] - shift);
}

// The next block's keys and values are fetched while this one is attended: blocks sit anywhere
// in the pool, so the hardware prefetcher cannot run ahead from one to the next (decode
// attention over a long context waited on memory for most of its time).
void prefetch_block(const std::byte* p, std::size_t bytes) {
  constexpr std::size_t kLineBytes = 64;
  for (std::size_t line = 0; line < bytes; line += kLineBytes) __builtin_prefetch(p + line);
}

// Rows of one sequence attended together: each block of keys and values is widened to f32 once
// for all of them instead of once per row.
constexpr int kRowTile = 16;

// Per-thread scratch, grown once: the step itself does not allocate.
struct Scratch {
  std::vector<float> keys, keys_t, values, scores, acc, max, sum, block_max, block_sum,
      correction;
  void fit(int block_size, int head_dim, int group, int heads) {
    const std::size_t kv =
        static_cast<std::size_t>(block_size) * static_cast<std::size_t>(head_dim);
    if (keys.size() < kv) keys.resize(kv), keys_t.resize(kv), values.resize(kv);
    const std::size_t s = static_cast<std::size_t>(block_size) * static_cast<std::size_t>(group);
    if (scores.size() < s) scores.resize(s);
    const std::size_t a = static_cast<std::size_t>(heads) * static_cast<std::size_t>(head_dim);
    if (acc.size() < a) acc.resize(a);
    if (max.size() < static_cast<std::size_t>(heads)) {
      max.resize(static_cast<std::size_t>(heads));
      sum.resize(static_cast<std::size_t>(heads));
    }
    if (block_sum.size() < static_cast<std::size_t>(group)) {
      block_max.resize(static_cast<std::size_t>(group));
      block_sum.resize(static_cast<std::size_t>(group));
      correction.resize(static_cast<std::size_t>(group));
    }
  }
};

// Rows [row_begin, row_end) of one sequence, one kv head: the `group` query heads of each row
// that read it, block by block. Each row sees exactly the blocks and float operations it would
// alone (online softmax in block order), so its result does not depend on the tile or batch.
void attend(const AttentionShape& shape, const PagedKv& kv, const AttentionSequence& seq,
            int row_begin, int row_end, int kv_head, const float* q, float scale,
            const ScoreOptions& options, float* out, Scratch& s) {
  const int hd = shape.head_dim;
  const int group = shape.n_heads / shape.n_kv_heads;
  const int rows = row_end - row_begin;
  const long q_stride = static_cast<long>(shape.n_heads) * hd;
  // Row r attends causally up to and including its own position; a sliding window hides
  // positions < lo(r). Blocks before lo's are skipped whole; inside its block the scan starts
  // at lo, so the visible positions keep their block grouping.
  auto len_of = [&](int r) { return seq.start_pos + r + 1; };
  auto lo_of = [&](int r) {
    return options.window > 0 ? std::max(0, len_of(r) - options.window) : 0;
  };
  const int bs = kv.block_size;
  s.fit(bs, hd, group, rows * group);
  std::fill_n(s.acc.begin(), rows * group * hd, 0.0f);
  std::fill_n(s.max.begin(), rows * group, -std::numeric_limits<float>::infinity());
  std::fill_n(s.sum.begin(), rows * group, 0.0f);

  // One block's keys (dimension-major) and values for every row that sees it.
  auto attend_block = [&](int first, const auto* keys, const auto* values) {
    for (int r = row_begin; r < row_end; ++r) {
      const int lo = lo_of(r), len = len_of(r);
      if (first >= len || first + kv.block_size <= lo - lo % kv.block_size) continue;
      const int j0 = std::max(0, lo - first);  // the first visible slot of this block
      const int n = std::min(kv.block_size, len - first);
      const float* q_row =
          q + (seq.first_row + r) * q_stride + static_cast<long>(kv_head) * group * hd;
      const int state = (r - row_begin) * group;
      block_scores(q_row, hd, group, keys, bs, s.scores.data());
      // The heads' softmax terms, one step for all heads at a time: each step's heads are
      // independent chains that run side by side.
      float* scores = s.scores.data() + j0;
      for (int g = 0; g < group; ++g)
        s.block_max[static_cast<std::size_t>(g)] =
            scale_scores(scores + g * bs, n - j0, scale, options.softcap);
      for (int g = 0; g < group; ++g) {
        float& m = s.max[static_cast<std::size_t>(state + g)];
        const float new_max = std::max(m, s.block_max[static_cast<std::size_t>(g)]);
        // 0 on the first block (m = -inf)
        s.correction[static_cast<std::size_t>(g)] = std::exp(m - new_max);
        m = new_max;
      }
      for (int g = 0; g < group; ++g)
        exp_shifted(scores + g * bs, n - j0, s.max[static_cast<std::size_t>(state + g)]);
      accumulate_values(s.acc.data() + static_cast<long>(state) * hd, s.correction.data(), scores,
                        bs, values + j0 * hd, n - j0, hd, group);
      float* block_sum = s.block_sum.data();
      for (int g = 0; g < group; g += kSumHeads) {
        with_count<kSumHeads>(group - g, [&]<int G>() {
          block_sums<G>(scores + g * bs, bs, n - j0, block_sum + g);
        });
      }
      for (int g = 0; g < group; ++g) {
        float& sum = s.sum[static_cast<std::size_t>(state + g)];
        sum = sum * s.correction[static_cast<std::size_t>(g)] + block_sum[g];
      }
    }
  };

  const int lo_first = lo_of(row_begin);
  const int len_last = len_of(row_end - 1);
  const std::size_t block_bytes = static_cast<std::size_t>(bs) * kv_row_bytes(kv.element, hd);
  for (int first = lo_first - lo_first % kv.block_size; first < len_last; first += kv.block_size) {
    if (first + bs < len_last) {
      prefetch_block(kv_block(kv.keys, kv, seq.blocks, kv_head, first + bs), block_bytes);
      prefetch_block(kv_block(kv.values, kv, seq.blocks, kv_head, first + bs), block_bytes);
    }
    const std::byte* keys = kv_block(kv.keys, kv, seq.blocks, kv_head, first);
    const std::byte* values = kv_block(kv.values, kv, seq.blocks, kv_head, first);
    // f16 and f32 are read where they are stored; q8_0 is widened once a block, its keys
    // transposed to dimension-major.
    switch (kv.element) {
      case KvElement::kF16:
        attend_block(first, reinterpret_cast<const std::uint16_t*>(keys),
                     reinterpret_cast<const std::uint16_t*>(values));
        break;
      case KvElement::kF32:
        attend_block(first, reinterpret_cast<const float*>(keys),
                     reinterpret_cast<const float*>(values));
        break;
      case KvElement::kQ8_0: {
        const int n_block = std::min(kv.block_size, len_last - first);
        widen_q8_rows(keys, n_block, hd, s.keys.data());
        transpose_keys(s.keys.data(), n_block, hd, bs, s.keys_t.data());
        widen_q8_rows(values, n_block, hd, s.values.data());
        attend_block(first, static_cast<const float*>(s.keys_t.data()),
                     static_cast<const float*>(s.values.data()));
        break;
      }
    }
  }
  for (int r = row_begin; r < row_end; ++r) {
    float* out_row = out + (seq.first_row + r) * q_stride + static_cast<long>(kv_head) * group * hd;
    const int state = (r - row_begin) * group;
    for (int g = 0; g < group; ++g) {
      const float inv = 1.0f / s.sum[static_cast<std::size_t>(state + g)];
      const float* acc = s.acc.data() + static_cast<long>(state + g) * hd;
      for (int i = 0; i < hd; ++i) out_row[g * hd + i] = acc[i] * inv;
    }
  }
}

int row_tiles(const AttentionSequence& seq) { return (seq.n_rows + kRowTile - 1) / kRowTile; }

}  // namespace

void paged_attention(util::ThreadPool& pool, const AttentionShape& shape, const PagedKv& kv,
                     std::span<const AttentionSequence> sequences, const float* q, float scale,
                     float* out, const ScoreOptions& options) {
  if (sequences.empty()) return;
  long work = 0;
  std::size_t tiles = 0;
  for (const auto& seq : sequences) {
    work += static_cast<long>(seq.n_rows) * (seq.start_pos + seq.n_rows) * shape.n_heads *
            shape.head_dim;
    tiles += static_cast<std::size_t>(row_tiles(seq));
  }
  const auto kv_heads = static_cast<std::size_t>(shape.n_kv_heads);
  // Items are (row tile, kv head), tiles in sequence order.
  auto body = [&](std::size_t begin, std::size_t end) {
    thread_local Scratch scratch;
    auto seq = sequences.begin();
    std::size_t seq_first_tile = 0;
    for (std::size_t item = begin; item < end; ++item) {
      const std::size_t tile = item / kv_heads;
      while (tile >= seq_first_tile + static_cast<std::size_t>(row_tiles(*seq))) {
        seq_first_tile += static_cast<std::size_t>(row_tiles(*seq));
        ++seq;
      }
      const int row_begin = static_cast<int>(tile - seq_first_tile) * kRowTile;
      const int row_end = std::min(seq->n_rows, row_begin + kRowTile);
      attend(shape, kv, *seq, row_begin, row_end, static_cast<int>(item % kv_heads), q, scale,
             options, out, scratch);
    }
  };
  const std::size_t items = tiles * kv_heads;
  if (work < kMinParallelWork || pool.size() == 1) {
    body(0, items);
    return;
  }
  pool.parallel_for(items, body, 1);
}

}  // namespace lmserve::kernels::LMSERVE_TARGET_NS
LMSERVE_TARGET_END
