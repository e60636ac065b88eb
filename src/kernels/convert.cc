#include "kernels/convert.h"

#ifdef __AVX2__
#include <immintrin.h>
#endif

namespace lmserve::kernels {

void f16_to_f32(const std::uint16_t* in, float* out, int n) {
  int i = 0;
#if defined(__AVX2__) && defined(__F16C__)
  for (; i + 8 <= n; i += 8) {
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i));
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(h));
  }
#endif
  for (; i < n; ++i) out[i] = f16_to_f32(in[i]);
}

void f32_to_f16(const float* in, std::uint16_t* out, int n) {
  int i = 0;
#if defined(__AVX2__) && defined(__F16C__)
  for (; i + 8 <= n; i += 8) {
    __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), h);
  }
#endif
  for (; i < n; ++i) out[i] = f32_to_f16(in[i]);
}

void bf16_to_f32(const std::uint16_t* in, float* out, int n) {
  // A shift per element; the compiler vectorises this loop on its own.
  for (int i = 0; i < n; ++i) out[i] = bf16_to_f32(in[i]);
}

}  // namespace lmserve::kernels
