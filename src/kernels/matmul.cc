#include "kernels/matmul.h"

#include <algorithm>
#include <vector>

#include "kernels/convert.h"

#ifdef __AVX2__
#include <immintrin.h>
#endif

namespace lmserve::kernels {

namespace {

// Below this many multiply-adds a product is cheaper than waking the pool.
constexpr long kMinParallelWork = 1L << 17;
// Rows per tile: four rows share each load of x.
constexpr int kTileRows = 4;

#ifdef __AVX2__
inline float hsum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v);
  __m128 hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
  return _mm_cvtss_f32(lo);
}

inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
#ifdef __F16C__
inline __m256 load8(const std::uint16_t* p, WeightType type) {
  __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  if (type == WeightType::kF16) return _mm256_cvtph_ps(h);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
#endif

float dot_f32_avx2(const float* w, const float* x, int n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
  int i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 = _mm256_fmadd_ps(load8(w + i), load8(x + i), a0);
    a1 = _mm256_fmadd_ps(load8(w + i + 8), load8(x + i + 8), a1);
    a2 = _mm256_fmadd_ps(load8(w + i + 16), load8(x + i + 16), a2);
    a3 = _mm256_fmadd_ps(load8(w + i + 24), load8(x + i + 24), a3);
  }
  for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(load8(w + i), load8(x + i), a0);
  float s = hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  for (; i < n; ++i) s += w[i] * x[i];
  return s;
}

#ifdef __F16C__
template <WeightType kType>
float dot_u16_avx2(const std::uint16_t* w, const float* x, int n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
  int i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 = _mm256_fmadd_ps(load8(w + i, kType), load8(x + i), a0);
    a1 = _mm256_fmadd_ps(load8(w + i + 8, kType), load8(x + i + 8), a1);
    a2 = _mm256_fmadd_ps(load8(w + i + 16, kType), load8(x + i + 16), a2);
    a3 = _mm256_fmadd_ps(load8(w + i + 24, kType), load8(x + i + 24), a3);
  }
  for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(load8(w + i, kType), load8(x + i), a0);
  float s = hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  for (; i < n; ++i) {
    s += (kType == WeightType::kF16 ? f16_to_f32(w[i]) : bf16_to_f32(w[i])) * x[i];
  }
  return s;
}
#endif

// Four dot products of f32 rows with one x: each load of x feeds four FMAs.
void dot4_f32_avx2(const float* const* w, const float* x, int n, float* out) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 xv = load8(x + i);
    a0 = _mm256_fmadd_ps(load8(w[0] + i), xv, a0);
    a1 = _mm256_fmadd_ps(load8(w[1] + i), xv, a1);
    a2 = _mm256_fmadd_ps(load8(w[2] + i), xv, a2);
    a3 = _mm256_fmadd_ps(load8(w[3] + i), xv, a3);
  }
  out[0] = hsum(a0);
  out[1] = hsum(a1);
  out[2] = hsum(a2);
  out[3] = hsum(a3);
  for (; i < n; ++i) {
    for (int r = 0; r < 4; ++r) out[r] += w[r][i] * x[i];
  }
}
#endif

// Eight partial sums let the compiler keep independent chains (and vectorise) without
// -ffast-math reassociation.
template <typename Load>
float dot_scalar_impl(Load load, const float* x, int n) {
  float acc[8] = {};
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j) acc[j] += load(i + j) * x[i + j];
  }
  for (; i < n; ++i) acc[0] += load(i) * x[i];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

void dot4_f32(const float* const* w, const float* x, int n, float* out) {
#ifdef __AVX2__
  dot4_f32_avx2(w, x, n, out);
#else
  for (int r = 0; r < 4; ++r) out[r] = dot(WeightType::kF32, w[r], x, n);
#endif
}

std::size_t element_size(WeightType type) { return type == WeightType::kF32 ? 4 : 2; }

const void* row_ptr(const WeightMatrix& w, int row) {
  return static_cast<const std::uint8_t*>(w.data) +
         static_cast<std::size_t>(row) * static_cast<std::size_t>(w.cols) * element_size(w.type);
}

}  // namespace

namespace detail {

float dot_scalar(WeightType type, const void* row, const float* x, int n) {
  switch (type) {
    case WeightType::kF32: {
      const auto* w = static_cast<const float*>(row);
      return dot_scalar_impl([w](int i) { return w[i]; }, x, n);
    }
    case WeightType::kF16: {
      const auto* w = static_cast<const std::uint16_t*>(row);
      return dot_scalar_impl([w](int i) { return f16_to_f32(w[i]); }, x, n);
    }
    case WeightType::kBF16: {
      const auto* w = static_cast<const std::uint16_t*>(row);
      return dot_scalar_impl([w](int i) { return bf16_to_f32(w[i]); }, x, n);
    }
  }
  return 0.0f;
}

}  // namespace detail

float dot(WeightType type, const void* row, const float* x, int n) {
#ifdef __AVX2__
  switch (type) {
    case WeightType::kF32:
      return dot_f32_avx2(static_cast<const float*>(row), x, n);
#ifdef __F16C__
    case WeightType::kF16:
      return dot_u16_avx2<WeightType::kF16>(static_cast<const std::uint16_t*>(row), x, n);
    case WeightType::kBF16:
      return dot_u16_avx2<WeightType::kBF16>(static_cast<const std::uint16_t*>(row), x, n);
#else
    default:
      break;
#endif
  }
#endif
  return detail::dot_scalar(type, row, x, n);
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
  const int cols = w.cols;
  const std::size_t n_tiles = static_cast<std::size_t>((rows + kTileRows - 1) / kTileRows);
  // With several tokens a 16-bit tile is widened once into scratch and reused for every
  // token; with one or two tokens the widening is fused into the dot product instead.
  const bool widen_tiles = w.type != WeightType::kF32 && n_tokens >= 3;

  auto body = [&](std::size_t tile_begin, std::size_t tile_end) {
    std::vector<float> scratch;
    if (widen_tiles)
      scratch.resize(static_cast<std::size_t>(kTileRows) * static_cast<std::size_t>(cols));
    for (std::size_t tile = tile_begin; tile < tile_end; ++tile) {
      const int r0 = static_cast<int>(tile) * kTileRows;
      const int nr = std::min(kTileRows, rows - r0);
      if (w.type != WeightType::kF32 && !widen_tiles) {
        for (int t = 0; t < n_tokens; ++t) {
          const float* xt = x + static_cast<std::size_t>(t) * cols;
          float* yt = y + static_cast<std::size_t>(t) * rows;
          for (int i = 0; i < nr; ++i) yt[r0 + i] = dot(w.type, row_ptr(w, r0 + i), xt, cols);
        }
        continue;
      }
      const float* rp[kTileRows] = {};
      for (int i = 0; i < kTileRows; ++i) {
        const int r = r0 + std::min(i, nr - 1);  // a short last tile repeats its last row
        if (widen_tiles) {
          float* dst = scratch.data() + static_cast<std::size_t>(i) * cols;
          if (i < nr) weight_row_to_f32(w, r, dst);
          rp[i] = i < nr ? dst : rp[nr - 1];
        } else {
          rp[i] = static_cast<const float*>(row_ptr(w, r));
        }
      }
      for (int t = 0; t < n_tokens; ++t) {
        const float* xt = x + static_cast<std::size_t>(t) * cols;
        float out[kTileRows];
        dot4_f32(rp, xt, cols, out);
        float* yt = y + static_cast<std::size_t>(t) * rows + r0;
        for (int i = 0; i < nr; ++i) yt[i] = out[i];
      }
    }
  };

  const long work = static_cast<long>(rows) * cols * n_tokens;
  if (work < kMinParallelWork || pool.size() == 1) {
    body(0, n_tiles);
    return;
  }
  const long per_tile = static_cast<long>(kTileRows) * cols * n_tokens;
  const std::size_t min_chunk =
      static_cast<std::size_t>(std::max(1L, (kMinParallelWork / 4) / per_tile));
  pool.parallel_for(n_tiles, body, min_chunk);
}

}  // namespace lmserve::kernels
