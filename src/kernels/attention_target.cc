// Causal attention over the paged cache (compiled per CPU target).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/attention.h"
#include "kernels/target.h"

LMSERVE_TARGET_BEGIN
namespace lmserve::kernels::LMSERVE_TARGET_NS {

void f16_to_f32(const std::uint16_t* in, float* out, int n);

namespace {

constexpr long kMinParallelWork = 1L << 15;

// n consecutive rows of head_dim values, widened to f32.
void widen(const std::byte* src, KvElement e, int n, int head_dim, float* dst) {
  switch (e) {
    case KvElement::kF16:
      f16_to_f32(reinterpret_cast<const std::uint16_t*>(src), dst, n * head_dim);
      return;
    case KvElement::kF32:
      std::memcpy(dst, src,
                  static_cast<std::size_t>(n) * static_cast<std::size_t>(head_dim) * sizeof(float));
      return;
    case KvElement::kQ8_0:
      for (int r = 0; r < n; ++r) {
        load_kv_row(e, src + static_cast<std::size_t>(r) * kv_row_bytes(e, head_dim),
                    dst + r * head_dim, head_dim);
      }
      return;
  }
}

float dot(const float* a, const float* b, int n) {
#if LMSERVE_HAVE_AVX2
  __m256 acc = _mm256_setzero_ps();
  int i = 0;
  for (; i + 8 <= n; i += 8)
    acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
  __m128 lo = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
  float s = _mm_cvtss_f32(lo);
  for (; i < n; ++i) s = std::fma(a[i], b[i], s);
  return s;
#else
  float s = 0.0f;
  for (int i = 0; i < n; ++i) s = std::fma(a[i], b[i], s);
  return s;
#endif
}

// acc = acc * c + p * v over n floats.
void scale_add(float* acc, float c, float p, const float* v, int n) {
  for (int i = 0; i < n; ++i) acc[i] = std::fma(p, v[i], acc[i] * c);
}

// Per-thread scratch, grown once: the step itself does not allocate.
struct Scratch {
  std::vector<float> keys, values, scores, acc, max, sum;
  void fit(int block_size, int head_dim, int group) {
    const std::size_t kv =
        static_cast<std::size_t>(block_size) * static_cast<std::size_t>(head_dim);
    if (keys.size() < kv) keys.resize(kv), values.resize(kv);
    const std::size_t s = static_cast<std::size_t>(block_size);
    if (scores.size() < s) scores.resize(s);
    const std::size_t a = static_cast<std::size_t>(group) * static_cast<std::size_t>(head_dim);
    if (acc.size() < a) acc.resize(a);
    if (max.size() < static_cast<std::size_t>(group)) {
      max.resize(static_cast<std::size_t>(group));
      sum.resize(static_cast<std::size_t>(group));
    }
  }
};

// One row, one kv head: the `group` query heads that read it, block by block.
void attend(const AttentionShape& shape, const PagedKv& kv, const AttentionSequence& seq, int row,
            int kv_head, const float* q, float scale, const ScoreOptions& options, float* out,
            Scratch& s) {
  const int hd = shape.head_dim;
  const int group = shape.n_heads / shape.n_kv_heads;
  const long q_stride = static_cast<long>(shape.n_heads) * hd;
  const int len = seq.start_pos + row + 1;  // causal: up to and including this position
  // A sliding window hides positions < lo. Blocks before lo's are skipped whole; inside its
  // block the scan starts at lo, so the visible positions keep their block grouping.
  const int lo = options.window > 0 ? std::max(0, len - options.window) : 0;
  const float* q_row =
      q + (seq.first_row + row) * q_stride + static_cast<long>(kv_head) * group * hd;
  float* out_row = out + (seq.first_row + row) * q_stride + static_cast<long>(kv_head) * group * hd;
  s.fit(kv.block_size, hd, group);
  std::fill_n(s.acc.begin(), group * hd, 0.0f);
  std::fill_n(s.max.begin(), group, -std::numeric_limits<float>::infinity());
  std::fill_n(s.sum.begin(), group, 0.0f);

  for (int first = lo - lo % kv.block_size; first < len; first += kv.block_size) {
    const int j0 = std::max(0, lo - first);  // the first visible slot of this block
    const int n = std::min(kv.block_size, len - first);
    widen(kv_slot(kv.keys, kv, seq.blocks, kv_head, first, hd), kv.element, n, hd, s.keys.data());
    widen(kv_slot(kv.values, kv, seq.blocks, kv_head, first, hd), kv.element, n, hd,
          s.values.data());
    for (int g = 0; g < group; ++g) {
      const float* qh = q_row + g * hd;
      float block_max = -std::numeric_limits<float>::infinity();
      for (int j = j0; j < n; ++j) {
        float score = dot(qh, s.keys.data() + j * hd, hd) * scale;
        if (options.softcap > 0.0f) score = options.softcap * std::tanh(score / options.softcap);
        s.scores[static_cast<std::size_t>(j)] = score;
        block_max = std::max(block_max, score);
      }
      float& m = s.max[static_cast<std::size_t>(g)];
      const float new_max = std::max(m, block_max);
      const float correction = std::exp(m - new_max);  // 0 on the first block (m = -inf)
      m = new_max;
      float* acc = s.acc.data() + g * hd;
      float block_sum = 0.0f;
      for (int j = j0; j < n; ++j) {
        const float p = std::exp(s.scores[static_cast<std::size_t>(j)] - new_max);
        block_sum += p;
        scale_add(acc, j == j0 ? correction : 1.0f, p, s.values.data() + j * hd, hd);
      }
      s.sum[static_cast<std::size_t>(g)] =
          s.sum[static_cast<std::size_t>(g)] * correction + block_sum;
    }
  }
  for (int g = 0; g < group; ++g) {
    const float inv = 1.0f / s.sum[static_cast<std::size_t>(g)];
    for (int i = 0; i < hd; ++i)
      out_row[g * hd + i] = s.acc[static_cast<std::size_t>(g * hd + i)] * inv;
  }
}

}  // namespace

void paged_attention(util::ThreadPool& pool, const AttentionShape& shape, const PagedKv& kv,
                     std::span<const AttentionSequence> sequences, const float* q, float scale,
                     float* out, const ScoreOptions& options) {
  if (sequences.empty()) return;
  const auto& last = sequences.back();
  const int rows = last.first_row + last.n_rows;
  const std::size_t items =
      static_cast<std::size_t>(rows) * static_cast<std::size_t>(shape.n_kv_heads);
  long work = 0;
  for (const auto& seq : sequences) {
    work += static_cast<long>(seq.n_rows) * (seq.start_pos + seq.n_rows) * shape.n_heads *
            shape.head_dim;
  }

  auto body = [&](std::size_t begin, std::size_t end) {
    thread_local Scratch scratch;
    // Items are (row, kv head) in row order; find each row's sequence by walking forward.
    auto seq =
        std::upper_bound(sequences.begin(), sequences.end(),
                         static_cast<int>(begin / static_cast<std::size_t>(shape.n_kv_heads)),
                         [](int row, const AttentionSequence& s) { return row < s.first_row; }) -
        1;
    for (std::size_t item = begin; item < end; ++item) {
      const int row = static_cast<int>(item / static_cast<std::size_t>(shape.n_kv_heads));
      const int kv_head = static_cast<int>(item % static_cast<std::size_t>(shape.n_kv_heads));
      while (row >= seq->first_row + seq->n_rows) ++seq;
      attend(shape, kv, *seq, row - seq->first_row, kv_head, q, scale, options, out, scratch);
    }
  };
  if (work < kMinParallelWork || pool.size() == 1) {
    body(0, items);
    return;
  }
  pool.parallel_for(items, body, 1);
}

}  // namespace lmserve::kernels::LMSERVE_TARGET_NS
LMSERVE_TARGET_END
