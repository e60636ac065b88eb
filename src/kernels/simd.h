// Small vector helpers shared by the kernels of the AVX2 and AVX-512 targets (compiled inside
// each target's region; empty for the scalar target).
#pragma once

#include <cstdint>
#include <cstring>

#include "kernels/target.h"

#if LMSERVE_HAVE_AVX2
LMSERVE_TARGET_BEGIN
namespace lmserve::kernels::LMSERVE_TARGET_NS {

inline float hsum(__m256 v) {
  __m128 lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
  return _mm_cvtss_f32(lo);
}

inline int hsum(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

// acc + the sums of each 4 products of unsigned bytes u with signed bytes s (32-bit lanes).
inline __m256i dot_u8_s8(__m256i acc, __m256i u, __m256i s) {
#if LMSERVE_HAVE_AVX512
  return _mm256_dpbusd_epi32(acc, u, s);
#else
  // maddubs saturates at 16 bits; callers keep u * s pairs below that (u <= 127).
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}

#if LMSERVE_HAVE_AVX512
// dot_u8_s8 with the same four signed bytes s4[0..3] in every lane, read by the instruction
// itself ({1to8} / {1to16} broadcast): compilers keep a broadcast of a load as an instruction of
// its own, one more op per product than the dot product needs.
inline __m256i dpbusd_broadcast(__m256i acc, __m256i u, const void* s4) {
  asm("vpdpbusd %2%{1to8%}, %1, %0"
      : "+v"(acc)
      : "v"(u), "m"(*static_cast<const std::int32_t*>(s4)));
  return acc;
}
inline __m512i dpbusd_broadcast(__m512i acc, __m512i u, const void* s4) {
  asm("vpdpbusd %2%{1to16%}, %1, %0"
      : "+v"(acc)
      : "v"(u), "m"(*static_cast<const std::int32_t*>(s4)));
  return acc;
}
#endif

// acc + the sums of each 2 products of 16-bit lanes (32-bit lanes).
inline __m256i dot_s16(__m256i acc, __m256i a, __m256i b) {
#if LMSERVE_HAVE_AVX512
  return _mm256_dpwssd_epi32(acc, a, b);
#else
  return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b));
#endif
}

// One f16 value, widened.
inline float half_to_float(std::uint16_t h) { return _cvtsh_ss(h); }

// 32 bytes, byte j = 0xFF where bit j of the little-endian 32-bit mask is set, else 0.
inline __m256i bits_to_bytes(const std::uint8_t* mask) {
  std::uint32_t m;
  std::memcpy(&m, mask, 4);
  const __m256i spread = _mm256_shuffle_epi8(
      _mm256_set1_epi32(static_cast<int>(m)),
      _mm256_setr_epi64x(0, 0x0101010101010101, 0x0202020202020202, 0x0303030303030303));
  const __m256i bit = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ULL));
  return _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
}

// f32 lanes of one vector width, for kernels written once for both widths: 8 lanes on 256-bit
// vectors (Lanes8), 16 on 512-bit ones (Lanes16). load() of f16 values widens them.
struct Lanes8 {
  using F = __m256;
  using I = __m256i;
  static constexpr int kWidth = 8;
  static F zero() { return _mm256_setzero_ps(); }
  static F load(const float* p) { return _mm256_loadu_ps(p); }
  static F load(const std::uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static I splat(std::int32_t v) { return _mm256_set1_epi32(v); }
  static F splat(float v) { return _mm256_set1_ps(v); }
  static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F add(F a, F b) { return _mm256_add_ps(a, b); }
  static F max(F a, F b) { return _mm256_max_ps(a, b); }
  static F fmadd(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static F to_float(I v) { return _mm256_cvtepi32_ps(v); }
  static void store(float* p, F v) { _mm256_storeu_ps(p, v); }
};

#if LMSERVE_HAVE_AVX512
struct Lanes16 {
  using F = __m512;
  using I = __m512i;
  static constexpr int kWidth = 16;
  static F zero() { return _mm512_setzero_ps(); }
  static F load(const float* p) { return _mm512_loadu_ps(p); }
  // The zero-masking forms with every lane kept are the plain instructions; GCC 12 warns that
  // the plain intrinsics' undefined pass-through value is uninitialized.
  static F load(const std::uint16_t* p) {
    return _mm512_maskz_cvtph_ps(0xFFFF, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static I splat(std::int32_t v) { return _mm512_set1_epi32(v); }
  static F splat(float v) { return _mm512_set1_ps(v); }
  static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F add(F a, F b) { return _mm512_add_ps(a, b); }
  static F max(F a, F b) { return _mm512_maskz_max_ps(0xFFFF, a, b); }
  static F fmadd(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static F to_float(I v) { return _mm512_maskz_cvtepi32_ps(0xFFFF, v); }
  static void store(float* p, F v) { _mm512_storeu_ps(p, v); }
};
#endif

}  // namespace lmserve::kernels::LMSERVE_TARGET_NS
LMSERVE_TARGET_END
#endif
