// The 256-value GGUF "K" formats (Q2_K ... Q6_K) and IQ4_XS, compiled per CPU target: each is a
// super-block of sub-blocks (16 of 16 values or 8 of 32) with small integer scales under an f16
// scale d. With minimums (Q2_K, Q4_K, Q5_K): x = d * scale_j * q - dmin * min_j, q unsigned;
// without (Q3_K, Q6_K, IQ4_XS): x = d * scale_j * q, q signed.
// A format file describes how to unpack its block; the portable kernel and dequantization are
// shared here.
#pragma once

#include <cstdint>
#include <cstring>

#include "kernels/convert.h"
#include "kernels/quant/blocks.h"
#include "kernels/quant/interleaved.h"
#include "kernels/quant/quant_matmul.h"
#include "kernels/simd.h"

LMSERVE_TARGET_BEGIN
namespace lmserve::kernels::LMSERVE_TARGET_NS {

// Layout: Block, kSubBlocks (16 or 8), kHasMin, and
//   static void unpack(const Block&, std::int8_t q[256], int scales[kSubBlocks],
//                      int mins[kSubBlocks]);   // mins untouched without kHasMin
// with q in element order. d and (with kHasMin) dmin are the block's f16 fields.
template <class Layout>
struct KFormat {
  using Block = typename Layout::Block;
  using Act = quant::BlockQ8_256;
  static constexpr int kSub = Layout::kSubBlocks;
  static constexpr int kSubSize = 256 / kSub;

  static float block_dot(const Block& w, const Act& x) {
    std::int8_t q[256];
    int scales[kSub], mins[kSub];
    Layout::unpack(w, q, scales, mins);
    int sum = 0;
    for (int j = 0; j < kSub; ++j) {
      sum += scales[j] * int8_dot(q + j * kSubSize, x.qs + j * kSubSize, kSubSize);
    }
    if constexpr (Layout::kHasMin) {
      int min_sum = 0;  // the activations' sums per 16, weighted by each sub-block's minimum
      for (int j = 0; j < 16; ++j) min_sum += mins[j * kSub / 16] * x.bsums[j];
      return x.d * (f16_to_f32(w.d) * static_cast<float>(sum) -
                    f16_to_f32(w.dmin) * static_cast<float>(min_sum));
    } else {
      return x.d * f16_to_f32(w.d) * static_cast<float>(sum);
    }
  }

  static void dequantize(const std::byte* row, float* out, int n) {
    const auto* b = reinterpret_cast<const Block*>(row);
    std::int8_t q[256];
    int scales[kSub], mins[kSub];
    for (int i = 0; i < n / 256; ++i) {
      Layout::unpack(b[i], q, scales, mins);
      const float d = f16_to_f32(b[i].d);
      for (int j = 0; j < kSub; ++j) {
        const float dl = d * static_cast<float>(scales[j]);
        float ml = 0.0f;
        if constexpr (Layout::kHasMin) ml = f16_to_f32(b[i].dmin) * static_cast<float>(mins[j]);
        for (int l = 0; l < kSubSize; ++l, ++out) {
          *out = dl * static_cast<float>(q[j * kSubSize + l]) - ml;
        }
      }
    }
  }
};

#if LMSERVE_HAVE_AVX2
// A block as the vector kernel reads it: unsigned quants, and per 16 values an integer scale
// and an integer minimum (for the formats with an offset instead, offset * scale).
struct KUnpacked {
  __m256i q[8];  // values 32 i ... 32 i + 31
  alignas(32) std::int16_t scales[16];
  alignas(32) std::int16_t mins[16];
};

// Q4_K's and Q5_K's 6-bit scales and mins (one per 32 values) as KUnpacked's per-16 entries.
inline void k4_unpacked_scales(const std::uint8_t* packed, KUnpacked& u) {
  std::uint8_t sm[16];
  quant::k4_scales_mins(packed, sm);
  for (int j = 0; j < 16; ++j) {
    u.scales[j] = sm[j / 2];
    u.mins[j] = sm[8 + j / 2];
  }
}

// The vector kernel: Layout also gives
//   static void unpack_simd(const Block&, KUnpacked&)
// and may set kSigned: its KUnpacked quants are then signed (IQ4_XS's levels, -127..113) and
// multiply as |q| times x with q's sign.
// Sums are exact integers per block, combined with the scales in the portable kernel's float
// operations, so it equals the scalar target bit for bit.
template <class Layout>
struct KSimdKernel {
  using Block = typename Layout::Block;
  using Act = quant::BlockQ8_256;
  static constexpr int kRows = 2;
  static constexpr int kTokens = 4;
  static constexpr bool kSigned = requires { requires Layout::kSigned; };

  static float block_dot(const KUnpacked& u, const Block& w, const Act& x) {
    __m256i acc = _mm256_setzero_si256();
    for (int i = 0; i < 8; ++i) {
      const __m256i xq = _mm256_load_si256(reinterpret_cast<const __m256i*>(x.qs) + i);
      // Pairs of products stay below maddubs' 16-bit saturation: |q|, |x| <= 127.
      const __m256i p = kSigned ? _mm256_maddubs_epi16(_mm256_sign_epi8(u.q[i], u.q[i]),
                                                       _mm256_sign_epi8(xq, u.q[i]))
                                : _mm256_maddubs_epi16(u.q[i], xq);
      const __m256i s =
          _mm256_set_m128i(_mm_set1_epi16(u.scales[2 * i + 1]), _mm_set1_epi16(u.scales[2 * i]));
      acc = dot_s16(acc, p, s);
    }
    const int sum = hsum(acc);
    const int min_sum =
        hsum(_mm256_madd_epi16(_mm256_load_si256(reinterpret_cast<const __m256i*>(x.bsums)),
                               _mm256_load_si256(reinterpret_cast<const __m256i*>(u.mins))));
    if constexpr (Layout::kHasMin) {
      return x.d * (half_to_float(w.d) * static_cast<float>(sum) -
                    half_to_float(w.dmin) * static_cast<float>(min_sum));
    } else {
      return x.d * half_to_float(w.d) * static_cast<float>(sum - min_sum);
    }
  }

  template <int R, int T>
  static void tile(const std::byte* const* w, const std::byte* const* x, int n_blocks, float* out) {
    float acc[R * T] = {};
    KUnpacked u[R];
    for (int b = 0; b < n_blocks; ++b) {
      for (int r = 0; r < R; ++r)
        Layout::unpack_simd(reinterpret_cast<const Block*>(w[r])[b], u[r]);
      for (int t = 0; t < T; ++t) {
        const Act& xb = reinterpret_cast<const Act*>(x[t])[b];
        for (int r = 0; r < R; ++r)
          acc[r * T + t] += block_dot(u[r], reinterpret_cast<const Block*>(w[r])[b], xb);
      }
    }
    for (int i = 0; i < R * T; ++i) out[i] = acc[i];
  }
};

template <class Layout>
using KKernel = KSimdKernel<Layout>;

#if LMSERVE_HAVE_AVX512
// The VNNI kernel of an interleaved K format (quant/interleaved.h); the Layout also gives
//   kOffset (the stored values minus kOffset are the quants; then without minimums),
//   static void unpack_sub(const Group&, int j, __m256i q[]);  // sub-block j's 4-value vectors
//   static void scales_simd(const Group&, __m256i scales[kSubBlocks], __m256i pairs[8]);
//   kPrefetchOneToken: whether a one-token tile unpacks so slowly that the hardware prefetcher
//                      falls behind it too (quant/interleaved.h prefetch_ahead)
// where pairs[p] holds, per row, the two 16-bit weights of the activations' sums bsums[2p] and
// bsums[2p + 1]: the minimums, or (with an offset) the scales. Each sub-block's 8 dot products
// are exact integers in 8 lanes, times the rows' scales, and the sums term is one dpwssd per
// pair; the block's sums then take the portable kernel's float operations, so both give the same
// bits. A sub-block's values stay in registers for all the tile's tokens.
template <class Layout>
struct KInterleavedVnniKernel {
  static constexpr int kTokens = 8;
  static constexpr int kSub = Layout::kSubBlocks;
  static constexpr int kVectors = 64 / kSub;  // 4-value vectors per sub-block
  template <int T>
  static void tile(const typename Layout::Group* group, const std::byte* const* x, int n_blocks,
                   float* y, std::size_t y_stride) {
    using Act = quant::BlockQ8_256;
    __m256 acc[T];
    for (auto& a : acc) a = _mm256_setzero_ps();
    const Act* xb[T];
    for (int b = 0; b < n_blocks; ++b) {
      if constexpr (T > 1 || Layout::kPrefetchOneToken) prefetch_ahead(group + b);
      const auto& g = group[b];
      for (int t = 0; t < T; ++t) xb[t] = reinterpret_cast<const Act*>(x[t]) + b;
      __m256i scales[kSub], pairs[8];
      Layout::scales_simd(g, scales, pairs);
      __m256i sum[T];
      for (auto& s : sum) s = _mm256_setzero_si256();
#pragma GCC unroll 16
      for (int j = 0; j < kSub; ++j) {
        __m256i q[kVectors];
        Layout::unpack_sub(g, j, q);
        // Tokens inner: T independent dpbusd chains side by side.
        __m256i dot[T];
        for (auto& d : dot) d = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int v = 0; v < kVectors; ++v) {
          for (int t = 0; t < T; ++t)
            dot[t] = dpbusd_broadcast(dot[t], q[v], xb[t]->qs + 4 * (j * kVectors + v));
        }
        for (int t = 0; t < T; ++t)
          sum[t] = _mm256_add_epi32(sum[t], _mm256_mullo_epi32(dot[t], scales[j]));
      }
      const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g.d)));
      for (int t = 0; t < T; ++t) {
        const auto* bsum_pairs = reinterpret_cast<const int*>(xb[t]->bsums);
        __m256i weighted = _mm256_setzero_si256();
        for (int p = 0; p < 8; ++p)
          weighted = _mm256_dpwssd_epi32(weighted, pairs[p], _mm256_set1_epi32(bsum_pairs[p]));
        const __m256 xd = _mm256_set1_ps(xb[t]->d);
        if constexpr (Layout::kHasMin) {
          const __m256 dmin =
              _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g.dmin)));
          acc[t] = _mm256_add_ps(
              acc[t],
              _mm256_mul_ps(xd, _mm256_sub_ps(_mm256_mul_ps(dw, _mm256_cvtepi32_ps(sum[t])),
                                              _mm256_mul_ps(dmin, _mm256_cvtepi32_ps(weighted)))));
        } else {
          const __m256i total = _mm256_sub_epi32(
              sum[t], _mm256_mullo_epi32(weighted, _mm256_set1_epi32(Layout::kOffset)));
          acc[t] = _mm256_add_ps(acc[t],
                                 _mm256_mul_ps(_mm256_mul_ps(xd, dw), _mm256_cvtepi32_ps(total)));
        }
      }
    }
    for (int t = 0; t < T; ++t) _mm256_storeu_ps(y + t * y_stride, acc[t]);
  }
};

template <class Layout>
using KInterleavedKernel = KInterleavedVnniKernel<Layout>;
#else
template <class Layout>
using KInterleavedKernel = ScalarInterleavedKernel<Layout>;
#endif
#else
template <class Layout>
using KKernel = ScalarKernel<KFormat<Layout> >;
template <class Layout>
using KInterleavedKernel = ScalarInterleavedKernel<Layout>;
#endif

}  // namespace lmserve::kernels::LMSERVE_TARGET_NS
LMSERVE_TARGET_END
