#include "kernels/matmul.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/convert.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#endif

namespace lmserve::kernels {

namespace {

// Below this many multiply-adds a product is cheaper than waking the pool.
constexpr long kMinParallelWork = 1L << 17;
// A tile is kTileRows weight rows x up to kTileTokens tokens: each weight load feeds
// kTileTokens FMAs and each activation load kTileRows.
constexpr int kTileRows = 4;
constexpr int kTileTokens = 4;

std::size_t element_size(WeightType type) { return type == WeightType::kF32 ? 4 : 2; }

const void* row_ptr(const WeightMatrix& w, int row) {
  return static_cast<const std::uint8_t*>(w.data) +
         static_cast<std::size_t>(row) * static_cast<std::size_t>(w.cols) * element_size(w.type);
}

// Every output y[t, r] is reduced in one canonical order, whatever the tile it is computed
// in and however many tokens the call has: eight lanes accumulate w*x over k = 0, 8, 16, ...
// (lane j takes k + j), the lanes are summed in a fixed tree, then the tail k >= 8*floor(n/8)
// is added one by one. That makes results batch-invariant: a token's output is bit-identical
// whether it is multiplied alone or among any number of other tokens.

template <WeightType kType>
inline float load1(const void* row, int i) {
  if constexpr (kType == WeightType::kF32) return static_cast<const float*>(row)[i];
  if constexpr (kType == WeightType::kF16)
    return f16_to_f32(static_cast<const std::uint16_t*>(row)[i]);
  return bf16_to_f32(static_cast<const std::uint16_t*>(row)[i]);
}

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
inline float hsum(__m256 v) {
  __m128 lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
  return _mm_cvtss_f32(lo);
}

template <WeightType kType>
inline __m256 load8(const void* row, int i) {
  if constexpr (kType == WeightType::kF32) {
    return _mm256_loadu_ps(static_cast<const float*>(row) + i);
  } else {
    __m128i h = _mm_loadu_si128(
        reinterpret_cast<const __m128i*>(static_cast<const std::uint16_t*>(row) + i));
    if constexpr (kType == WeightType::kF16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
}

// out[r][t] for R rows and T tokens, in the canonical order.
template <WeightType kType, int R, int T>
void tile(const void* const* w, const float* const* x, int n, float* const* out) {
  __m256 acc[R][T];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 wv[R];
    for (int r = 0; r < R; ++r) wv[r] = load8<kType>(w[r], i);
    for (int t = 0; t < T; ++t) {
      const __m256 xv = _mm256_loadu_ps(x[t] + i);
      for (int r = 0; r < R; ++r) acc[r][t] = _mm256_fmadd_ps(wv[r], xv, acc[r][t]);
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int t = 0; t < T; ++t) {
      float s = hsum(acc[r][t]);
      for (int k = i; k < n; ++k) s = std::fma(load1<kType>(w[r], k), x[t][k], s);
      out[r][t] = s;
    }
  }
}
#else
template <WeightType kType, int R, int T>
void tile(const void* const* w, const float* const* x, int n, float* const* out) {
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) out[r][t] = detail::dot_scalar(kType, w[r], x[t], n);
}
#endif

// Dispatches a tile of nr <= kTileRows rows and nt <= kTileTokens tokens to its instance.
template <WeightType kType, int R = kTileRows, int T = kTileTokens>
void tile_any(int nr, int nt, const void* const* w, const float* const* x, int n,
              float* const* out) {
  if constexpr (R > 1) {
    if (nr < R) return tile_any<kType, R - 1, T>(nr, nt, w, x, n, out);
  }
  if constexpr (T > 1) {
    if (nt < T) return tile_any<kType, R, T - 1>(nr, nt, w, x, n, out);
  }
  tile<kType, R, T>(w, x, n, out);
}

template <WeightType kType>
void matmul_rows(const WeightMatrix& w, const float* x, int n_tokens, float* y, int row_begin,
                 int row_end) {
  const int cols = w.cols;
  for (int r0 = row_begin; r0 < row_end; r0 += kTileRows) {
    const int nr = std::min(kTileRows, row_end - r0);
    const void* rows[kTileRows];
    for (int i = 0; i < nr; ++i) rows[i] = row_ptr(w, r0 + i);
    for (int t0 = 0; t0 < n_tokens; t0 += kTileTokens) {
      const int nt = std::min(kTileTokens, n_tokens - t0);
      const float* xs[kTileTokens];
      float outs[kTileRows][kTileTokens];
      float* out_rows[kTileRows];
      for (int t = 0; t < nt; ++t) xs[t] = x + static_cast<std::size_t>(t0 + t) * cols;
      for (int i = 0; i < kTileRows; ++i) out_rows[i] = outs[i];
      tile_any<kType>(nr, nt, rows, xs, cols, out_rows);
      for (int t = 0; t < nt; ++t) {
        float* yt = y + static_cast<std::size_t>(t0 + t) * w.rows + r0;
        for (int i = 0; i < nr; ++i) yt[i] = outs[i][t];
      }
    }
  }
}

void matmul_rows(const WeightMatrix& w, const float* x, int n_tokens, float* y, int row_begin,
                 int row_end) {
  switch (w.type) {
    case WeightType::kF32:
      return matmul_rows<WeightType::kF32>(w, x, n_tokens, y, row_begin, row_end);
    case WeightType::kF16:
      return matmul_rows<WeightType::kF16>(w, x, n_tokens, y, row_begin, row_end);
    case WeightType::kBF16:
      return matmul_rows<WeightType::kBF16>(w, x, n_tokens, y, row_begin, row_end);
  }
}

}  // namespace

namespace detail {

// The canonical order of the SIMD path, lane by lane.
float dot_scalar(WeightType type, const void* row, const float* x, int n) {
  auto reduce = [&](auto load) {
    float lane[8] = {};
    int i = 0;
    for (; i + 8 <= n; i += 8) {
      for (int j = 0; j < 8; ++j) lane[j] = std::fma(load(i + j), x[i + j], lane[j]);
    }
    float s =
        ((lane[0] + lane[4]) + (lane[2] + lane[6])) + ((lane[1] + lane[5]) + (lane[3] + lane[7]));
    for (; i < n; ++i) s = std::fma(load(i), x[i], s);
    return s;
  };
  switch (type) {
    case WeightType::kF32:
      return reduce([w = static_cast<const float*>(row)](int i) { return w[i]; });
    case WeightType::kF16:
      return reduce(
          [w = static_cast<const std::uint16_t*>(row)](int i) { return f16_to_f32(w[i]); });
    case WeightType::kBF16:
      return reduce(
          [w = static_cast<const std::uint16_t*>(row)](int i) { return bf16_to_f32(w[i]); });
  }
  return 0.0f;
}

}  // namespace detail

float dot(WeightType type, const void* row, const float* x, int n) {
  float out = 0.0f;
  float* out_row = &out;
  switch (type) {
    case WeightType::kF32:
      tile<WeightType::kF32, 1, 1>(&row, &x, n, &out_row);
      break;
    case WeightType::kF16:
      tile<WeightType::kF16, 1, 1>(&row, &x, n, &out_row);
      break;
    case WeightType::kBF16:
      tile<WeightType::kBF16, 1, 1>(&row, &x, n, &out_row);
      break;
  }
  return out;
}

void weight_row_to_f32(const WeightMatrix& w, int row, float* out) {
  const void* p = row_ptr(w, row);
  switch (w.type) {
    case WeightType::kF32:
      std::copy_n(static_cast<const float*>(p), w.cols, out);
      break;
    case WeightType::kF16:
      f16_to_f32(static_cast<const std::uint16_t*>(p), out, w.cols);
      break;
    case WeightType::kBF16:
      bf16_to_f32(static_cast<const std::uint16_t*>(p), out, w.cols);
      break;
  }
}

void matmul(util::ThreadPool& pool, const WeightMatrix& w, const float* x, int n_tokens, float* y) {
  if (n_tokens <= 0 || w.rows <= 0) return;
  const int rows = w.rows;
  const std::size_t n_tiles = static_cast<std::size_t>((rows + kTileRows - 1) / kTileRows);
  auto body = [&](std::size_t tile_begin, std::size_t tile_end) {
    matmul_rows(w, x, n_tokens, y, static_cast<int>(tile_begin) * kTileRows,
                std::min(rows, static_cast<int>(tile_end) * kTileRows));
  };
  const long work = static_cast<long>(rows) * w.cols * n_tokens;
  if (work < kMinParallelWork || pool.size() == 1) {
    body(0, n_tiles);
    return;
  }
  const long per_tile = static_cast<long>(kTileRows) * w.cols * n_tokens;
  const std::size_t min_chunk =
      static_cast<std::size_t>(std::max(1L, (kMinParallelWork / 4) / per_tile));
  pool.parallel_for(n_tiles, body, min_chunk);
}

}  // namespace lmserve::kernels
