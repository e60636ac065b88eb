// Products with f32, f16 and bf16 weights (compiled per CPU target): f32 activations, each
// output reduced in one canonical order. A SIMD target repacks f16 and bf16 matrices into groups
// of kTileRows rows interleaved 8 values at a time (F16x4, BF16x4): a tile then reads one
// contiguous stream instead of kTileRows rows a page apart, which is what bounds decode.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/convert.h"
#include "kernels/quant/quant_matmul.h"
#include "kernels/simd.h"

LMSERVE_TARGET_BEGIN
namespace lmserve::kernels::LMSERVE_TARGET_NS {

namespace {

// A tile is kTileRows weight rows x up to kTileTokens tokens: each weight load feeds
// kTileTokens FMAs and each activation load kTileRows.
constexpr int kTileRows = 4;  // also the F16x4 / BF16x4 groups (weight_types.def)
constexpr int kTileTokens = 4;

// Values a load covers, and so how many of a row an interleaved group stores in turn.
constexpr int kChunk = 8;

std::size_t element_size(WeightType type) { return type == WeightType::kF32 ? 4 : 2; }

// Where row `row`'s value 0 is. In an interleaved layout (kInterleave rows per group) value k
// (a multiple of kChunk) is then kInterleave * k values further on, the group's other rows' in
// between; in the file's layout (1) rows follow each other.
template <int kInterleave>
const void* row_ptr(const WeightMatrix& w, int row) {
  const std::size_t group = static_cast<std::size_t>(row / kInterleave) * kInterleave;
  const std::size_t offset = group * static_cast<std::size_t>(w.cols) +
                             static_cast<std::size_t>(row % kInterleave) * kChunk;
  return static_cast<const std::uint8_t*>(w.data) + offset * element_size(w.type);
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

// The canonical order of the SIMD path, lane by lane (the scalar target's kernel).
template <WeightType kType, int kInterleave>
float dot_scalar(const void* row, const float* x, int n) {
  float lane[8] = {};
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j) {
      lane[j] = std::fma(load1<kType>(row, i * kInterleave + j), x[i + j], lane[j]);
    }
  }
  float s =
      ((lane[0] + lane[4]) + (lane[2] + lane[6])) + ((lane[1] + lane[5]) + (lane[3] + lane[7]));
  for (; i < n; ++i) s = std::fma(load1<kType>(row, i), x[i], s);
  return s;
}

#if LMSERVE_HAVE_AVX2
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

// How far ahead of a multi-token tile an interleaved layout's stream is prefetched, into L2
// (into L1 the lines evict the ones in use: 4 tokens 96 -> 157 GFLOP/s on two threads with L2).
constexpr std::ptrdiff_t kPrefetchBytes = 8192;

// Adds w*x over k in [k0, k1) (multiples of 8) to the lane accumulators acc[r * T + t] of R
// rows and T tokens. Splitting k into ranges keeps every lane's sequence of FMAs, so the
// canonical order holds however the caller blocks the product.
template <WeightType kType, int kInterleave, int R, int T>
void accumulate(const void* const* w, const float* const* x, int k0, int k1, __m256* acc) {
  __m256 a[R][T];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) a[r][t] = acc[r * T + t];
  for (int i = k0; i < k1; i += 8) {
    if constexpr (kInterleave > 1 && T > 1) {
      // An interleaved tile reads one line a step; with several tokens the steps are long and
      // the hardware prefetcher alone kept too few lines in flight (4 tokens: 34 -> 48 GFLOP/s
      // a thread with this, one token unchanged, so it is left to the hardware there).
      _mm_prefetch(static_cast<const char*>(w[0]) +
                       static_cast<std::ptrdiff_t>(i) * kInterleave * sizeof(std::uint16_t) +
                       kPrefetchBytes,
                   _MM_HINT_T1);
    }
    __m256 wv[R];
    for (int r = 0; r < R; ++r) wv[r] = load8<kType>(w[r], i * kInterleave);
    for (int t = 0; t < T; ++t) {
      __m256 xv = _mm256_loadu_ps(x[t] + i);
      // One load per activation vector: left alone, GCC folds it into each of the R FMAs,
      // and the repeated loads, not the FMAs, then bound the tile.
      asm("" : "+v"(xv));
      for (int r = 0; r < R; ++r) a[r][t] = _mm256_fmadd_ps(wv[r], xv, a[r][t]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) acc[r * T + t] = a[r][t];
}

// out[r][t] = the lanes' sum, then the tail k >= n8 one by one.
template <WeightType kType, int R, int T>
void finish(const void* const* w, const float* const* x, int n8, int n, const __m256* acc,
            float* const* out) {
  for (int r = 0; r < R; ++r) {
    for (int t = 0; t < T; ++t) {
      float s = hsum(acc[r * T + t]);
      for (int k = n8; k < n; ++k) s = std::fma(load1<kType>(w[r], k), x[t][k], s);
      out[r][t] = s;
    }
  }
}

// Blocked so that each piece of data is read from the nearest cache: a block of weight rows
// times a block of columns (at most kBlockBytes) stays in L2 while every group of kTileTokens
// tokens uses it, and that group's activations for the column block stay in L1.
constexpr int kBlockCols = 1024;
constexpr int kMaxBlockRows = 64;
constexpr std::size_t kBlockBytes = 256 << 10;

template <WeightType kType, int kInterleave>
void matmul_rows(const WeightMatrix& w, const float* x, int n_tokens, float* y, int row_begin,
                 int row_end) {
  const int cols = w.cols;  // a multiple of kChunk when interleaved: no tail
  const int n8 = cols & ~7;
  const int fit = static_cast<int>(
      kBlockBytes / (static_cast<std::size_t>(std::min(cols, kBlockCols)) * element_size(kType)));
  const int block_rows = std::clamp(fit / kTileRows * kTileRows, kTileRows, kMaxBlockRows);
  // With one tile of tokens nothing is read twice: whole rows stream in order, which the
  // hardware prefetcher follows (decode is bound by how fast the weights arrive).
  const int block_cols = n_tokens <= kTileTokens ? n8 : kBlockCols;
  constexpr int kTileAccs = kTileRows * kTileTokens;
  __m256 acc[kMaxBlockRows / kTileRows][kTileAccs];
  for (int rb = row_begin; rb < row_end; rb += block_rows) {
    const int rb_end = std::min(row_end, rb + block_rows);
    for (int t0 = 0; t0 < n_tokens; t0 += kTileTokens) {
      const int nt = std::min(kTileTokens, n_tokens - t0);
      const float* xs[kTileTokens];
      for (int t = 0; t < nt; ++t) xs[t] = x + static_cast<std::size_t>(t0 + t) * cols;
      for (auto& tile_acc : acc)
        for (auto& a : tile_acc) a = _mm256_setzero_ps();
      for (int k0 = 0; k0 < n8; k0 += block_cols) {
        const int k1 = std::min(n8, k0 + block_cols);
        for (int r0 = rb, ti = 0; r0 < rb_end; r0 += kTileRows, ++ti) {
          const int nr = std::min(kTileRows, rb_end - r0);
          const void* rows[kTileRows];
          for (int i = 0; i < nr; ++i) rows[i] = row_ptr<kInterleave>(w, r0 + i);
          with_tile_shape<kTileRows, kTileTokens>(nr, nt, [&]<int R, int T>() {
            accumulate<kType, kInterleave, R, T>(rows, xs, k0, k1, acc[ti]);
          });
        }
      }
      for (int r0 = rb, ti = 0; r0 < rb_end; r0 += kTileRows, ++ti) {
        const int nr = std::min(kTileRows, rb_end - r0);
        const void* rows[kTileRows];
        for (int i = 0; i < nr; ++i) rows[i] = row_ptr<kInterleave>(w, r0 + i);
        float outs[kTileRows][kTileTokens];
        float* out_rows[kTileRows];
        for (int i = 0; i < kTileRows; ++i) out_rows[i] = outs[i];
        with_tile_shape<kTileRows, kTileTokens>(nr, nt, [&]<int R, int T>() {
          finish<kType, R, T>(rows, xs, n8, cols, acc[ti], out_rows);
        });
        for (int t = 0; t < nt; ++t) {
          float* yt = y + static_cast<std::size_t>(t0 + t) * w.rows + r0;
          for (int i = 0; i < nr; ++i) yt[i] = outs[i][t];
        }
      }
    }
  }
}
#else
template <WeightType kType, int kInterleave>
void matmul_rows(const WeightMatrix& w, const float* x, int n_tokens, float* y, int row_begin,
                 int row_end) {
  for (int t = 0; t < n_tokens; ++t) {
    const float* xt = x + static_cast<std::size_t>(t) * w.cols;
    float* yt = y + static_cast<std::size_t>(t) * w.rows;
    for (int r = row_begin; r < row_end; ++r) {
      yt[r] = dot_scalar<kType, kInterleave>(row_ptr<kInterleave>(w, r), xt, w.cols);
    }
  }
}
#endif

}  // namespace

#define LMSERVE_FLOAT_TYPE(name, element, interleave)                                      \
  void matmul_rows_##name(const WeightMatrix& w, const std::byte* x, std::size_t x_stride, \
                          int n_tokens, float* y, int r_begin, int r_end) {                \
    (void)x_stride; /* dense f32 rows of w.cols values */                                  \
    matmul_rows<WeightType::k##element, interleave>(w, reinterpret_cast<const float*>(x),  \
                                                    n_tokens, y, r_begin, r_end);          \
  }
LMSERVE_FLOAT_TYPE(F32, F32, 1)
LMSERVE_FLOAT_TYPE(F16, F16, 1)
LMSERVE_FLOAT_TYPE(BF16, BF16, 1)
LMSERVE_FLOAT_TYPE(F16x4, F16, kTileRows)
LMSERVE_FLOAT_TYPE(BF16x4, BF16, kTileRows)
#undef LMSERVE_FLOAT_TYPE

void dequantize_F32(const WeightMatrix& w, int row, float* out) {
  std::memcpy(out, weight_row(w, row), static_cast<std::size_t>(w.cols) * sizeof(float));
}
namespace {

template <WeightType kType, int kInterleave>
void dequantize(const WeightMatrix& w, int row, float* out) {
  const void* values = row_ptr<kInterleave>(w, row);
  for (int i = 0; i < w.cols; i += kChunk) {
    for (int j = 0; j < kChunk && i + j < w.cols; ++j) {
      out[i + j] = load1<kType>(values, i * kInterleave + j);
    }
  }
}

}  // namespace

void dequantize_F16(const WeightMatrix& w, int row, float* out) {
  dequantize<WeightType::kF16, 1>(w, row, out);
}
void dequantize_BF16(const WeightMatrix& w, int row, float* out) {
  dequantize<WeightType::kBF16, 1>(w, row, out);
}
void dequantize_F16x4(const WeightMatrix& w, int row, float* out) {
  dequantize<WeightType::kF16, kTileRows>(w, row, out);
}
void dequantize_BF16x4(const WeightMatrix& w, int row, float* out) {
  dequantize<WeightType::kBF16, kTileRows>(w, row, out);
}

// Groups [g_begin, g_end) of kTileRows rows of an f16 or bf16 matrix, interleaved kChunk values
// at a time into `out` (laid out as the whole interleaved matrix): its F16x4 or BF16x4 form.
void repack_16bit_x4(const WeightMatrix& w, std::byte* out, int g_begin, int g_end) {
  const std::size_t chunk_bytes = kChunk * sizeof(std::uint16_t);
  const std::size_t row_bytes = static_cast<std::size_t>(w.cols) * sizeof(std::uint16_t);
  for (int g = g_begin; g < g_end; ++g) {
    std::byte* group = out + static_cast<std::size_t>(g) * kTileRows * row_bytes;
    for (int r = 0; r < kTileRows; ++r) {
      const std::byte* src = weight_row(w, g * kTileRows + r);
      for (std::size_t c = 0; c < row_bytes; c += chunk_bytes) {
        std::memcpy(group + c * kTileRows + r * chunk_bytes, src + c, chunk_bytes);
      }
    }
  }
}

}  // namespace lmserve::kernels::LMSERVE_TARGET_NS
LMSERVE_TARGET_END
