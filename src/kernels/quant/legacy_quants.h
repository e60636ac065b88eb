// The 32-value GGUF formats with 4 or 5 bits per value (Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL), compiled
// per CPU target: a format file describes its block (how to unpack it to integer quants in
// element order, the offset or the minimum) and gets its portable kernel and dequantization here.
#pragma once

#include <cstdint>

#include "kernels/convert.h"
#include "kernels/quant/blocks.h"
#include "kernels/quant/quant_matmul.h"
#include "kernels/simd.h"

LMSERVE_TARGET_BEGIN
namespace lmserve::kernels::LMSERVE_TARGET_NS {

// Element j of a 4-bit block: low nibble of qs[j] for j < 16, high nibble of qs[j - 16] after.
inline void unpack_nibbles(const std::uint8_t* qs, std::int8_t* q) {
  for (int j = 0; j < 16; ++j) {
    q[j] = static_cast<std::int8_t>(qs[j] & 0xF);
    q[j + 16] = static_cast<std::int8_t>(qs[j] >> 4);
  }
}

// 32 four-bit indices (nibbles ordered as unpack_nibbles) as the IQ4 formats' levels.
inline void unpack_iq4_levels(const std::uint8_t* qs, std::int8_t* q) {
  unpack_nibbles(qs, q);
  for (int j = 0; j < 32; ++j) q[j] = quant::kIq4Levels[q[j]];
}

// The same with each element's fifth bit from the 32-bit little-endian mask qh.
inline void unpack_nibbles_high_bit(const std::uint8_t* qs, const std::uint8_t* qh_bytes,
                                    std::int8_t* q) {
  const std::uint32_t qh =
      static_cast<std::uint32_t>(qh_bytes[0]) | static_cast<std::uint32_t>(qh_bytes[1]) << 8 |
      static_cast<std::uint32_t>(qh_bytes[2]) << 16 | static_cast<std::uint32_t>(qh_bytes[3]) << 24;
  unpack_nibbles(qs, q);
  for (int j = 0; j < 32; ++j) q[j] = static_cast<std::int8_t>(q[j] | (((qh >> j) & 1) << 4));
}

// Layout: Block, kOffset (x = d * (q - kOffset)) or, with kHasMin, x = d * q + m;
// static void unpack(const Block&, std::int8_t q[32]).
template <class Layout>
struct LegacyFormat {
  using Block = typename Layout::Block;
  using Act = quant::BlockQ8_32;

  static float block_dot(const Block& w, const Act& x) {
    std::int8_t q[32];
    Layout::unpack(w, q);
    const int dot = int8_dot(q, x.qs, 32);
    if constexpr (Layout::kHasMin) {
      return f16_to_f32(w.d) * x.d * static_cast<float>(dot) + f16_to_f32(w.m) * x.s;
    } else {
      return f16_to_f32(w.d) * x.d * static_cast<float>(dot - Layout::kOffset * x.sum);
    }
  }

  static void dequantize(const std::byte* row, float* out, int n) {
    const auto* b = reinterpret_cast<const Block*>(row);
    std::int8_t q[32];
    for (int i = 0; i < n / 32; ++i, out += 32) {
      Layout::unpack(b[i], q);
      const float d = f16_to_f32(b[i].d);
      for (int j = 0; j < 32; ++j) {
        if constexpr (Layout::kHasMin) {
          out[j] = d * static_cast<float>(q[j]) + f16_to_f32(b[i].m);
        } else {
          out[j] = d * static_cast<float>(q[j] - Layout::kOffset);
        }
      }
    }
  }
};

#if LMSERVE_HAVE_AVX2
// Lane i < R: the sum of v[i]'s eight lanes (integers: exact in any order); lanes from R on: 0.
template <int R>
inline __m128i sum_lanes(const __m256i* v) {
  static_assert(R >= 1 && R <= 4);
  const __m256i zero = _mm256_setzero_si256();
  const __m256i ab = _mm256_hadd_epi32(v[0], R > 1 ? v[1] : zero);
  const __m256i cd = R > 2 ? _mm256_hadd_epi32(v[2], R > 3 ? v[3] : zero) : zero;
  // Each 128-bit half holds the sums of its half of v[0..3].
  const __m256i halves = _mm256_hadd_epi32(ab, cd);
  return _mm_add_epi32(_mm256_castsi256_si128(halves), _mm256_extracti128_si256(halves, 1));
}

// The vector kernel: Layout also gives kSigned and
//   static __m256i unpack_simd(const Block&)   // the 32 quants, unsigned (or signed if kSigned)
// Each block's exact integer dot products of the R rows with a token go to R lanes, which then
// take the portable kernel's float operations in its order, so both give the same bits (and a
// matrix gives the same results in the file's layout or repacked).
template <class Layout>
struct LegacySimdKernel {
  using Block = typename Layout::Block;
  using Act = quant::BlockQ8_32;
  static constexpr int kRows = 4;
  static constexpr int kTokens = 4;

  template <int R, int T>
  static void tile(const std::byte* const* w, const std::byte* const* x, int n_blocks, float* out) {
    __m128 acc[T];  // lane r: row r
    for (auto& a : acc) a = _mm_setzero_ps();
    for (int b = 0; b < n_blocks; ++b) {
      __m256i wq[R], ws[R];
      float dw[4] = {}, mw[4] = {};
      for (int r = 0; r < R; ++r) {
        const Block& blk = reinterpret_cast<const Block*>(w[r])[b];
        wq[r] = Layout::unpack_simd(blk);
        // Signed quants multiply as |w| (unsigned) times x with w's sign.
        ws[r] = Layout::kSigned ? _mm256_sign_epi8(wq[r], wq[r]) : wq[r];
        dw[r] = half_to_float(blk.d);
        if constexpr (Layout::kHasMin) mw[r] = half_to_float(blk.m);
      }
      // Built in registers: a vector load of scalars just stored would wait for the stores.
      const __m128 dwv = _mm_setr_ps(dw[0], dw[1], dw[2], dw[3]);
      const __m128 mwv = _mm_setr_ps(mw[0], mw[1], mw[2], mw[3]);
      for (int t = 0; t < T; ++t) {
        const Act& xb = reinterpret_cast<const Act*>(x[t])[b];
        const __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb.qs));
        __m256i dots[R];
        for (int r = 0; r < R; ++r) {
          const __m256i xs = Layout::kSigned ? _mm256_sign_epi8(xq, wq[r]) : xq;
          dots[r] = dot_u8_s8(_mm256_setzero_si256(), ws[r], xs);
        }
        __m128i dot = sum_lanes<R>(dots);
        if constexpr (Layout::kOffset != 0) {
          dot = _mm_sub_epi32(dot, _mm_set1_epi32(Layout::kOffset * xb.sum));
        }
        __m128 term = _mm_mul_ps(_mm_mul_ps(dwv, _mm_set1_ps(xb.d)), _mm_cvtepi32_ps(dot));
        if constexpr (Layout::kHasMin) {
          term = _mm_add_ps(term, _mm_mul_ps(mwv, _mm_set1_ps(xb.s)));
        }
        acc[t] = _mm_add_ps(acc[t], term);
      }
    }
    for (int t = 0; t < T; ++t) {
      alignas(16) float rows[4];
      _mm_store_ps(rows, acc[t]);
      for (int r = 0; r < R; ++r) out[r * T + t] = rows[r];
    }
  }
};

// 16 bytes of nibbles as 32 unsigned bytes in element order (low nibbles, then high ones).
inline __m256i unpack_nibbles_simd(const std::uint8_t* qs) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v), _mm256_set1_epi8(0x0F));
}

// The 16 IQ4 levels (signed) in both lanes, for a byte shuffle by 4-bit index.
inline __m256i iq4_levels_i8() {
  const auto* table = reinterpret_cast<const __m128i*>(quant::kIq4Levels);
  return _mm256_broadcastsi128_si256(_mm_loadu_si128(table));
}

// The same plus 128: unsigned, for VNNI's u8 operand.
inline __m256i iq4_levels_u8() {
  return _mm256_xor_si256(iq4_levels_i8(), _mm256_set1_epi8(static_cast<char>(0x80)));
}

// 16 bytes of IQ4 indices as their 32 levels (signed) in element order: one byte shuffle.
inline __m256i iq4_levels_simd(const std::uint8_t* qs) {
  return _mm256_shuffle_epi8(iq4_levels_i8(), unpack_nibbles_simd(qs));
}

// The same with each element's fifth bit from the mask qh.
inline __m256i unpack_nibbles_high_bit_simd(const std::uint8_t* qs, const std::uint8_t* qh) {
  return _mm256_or_si256(unpack_nibbles_simd(qs),
                         _mm256_and_si256(bits_to_bytes(qh), _mm256_set1_epi8(0x10)));
}

// The fastest kernel this target has for a 32-value format.
template <class Layout>
using LegacyKernel = LegacySimdKernel<Layout>;
#else
template <class Layout>
using LegacyKernel = ScalarKernel<LegacyFormat<Layout> >;
#endif

}  // namespace lmserve::kernels::LMSERVE_TARGET_NS
LMSERVE_TARGET_END
