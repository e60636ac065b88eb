// Activation rows quantized to int8 blocks, once per product (compiled per CPU target). Every
// target produces the same bytes (the same float operations, round-to-nearest-even), so a
// kernel's result depends on its target only through its own arithmetic.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/convert.h"
#include "kernels/quant/blocks.h"
#include "kernels/target.h"

LMSERVE_TARGET_BEGIN
namespace lmserve::kernels::LMSERVE_TARGET_NS {

// Q8_32 (llama.cpp's Q8_0/Q8_1 as its x86 code computes them): q = round(x * 127 / amax),
// d = amax / 127 rounded to f16.
void quantize_q8_32(const float* x, std::byte* out, int n) {
  auto* blocks = reinterpret_cast<quant::BlockQ8_32*>(out);
  for (int b = 0; b < n / 32; ++b, x += 32) {
    quant::BlockQ8_32& y = blocks[b];
    float amax = 0.0f;
#if LMSERVE_HAVE_AVX2
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_setzero_ps();
    for (int i = 0; i < 32; i += 8)
      m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    amax = _mm_cvtss_f32(h);
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    const __m256 vid = _mm256_set1_ps(id);
    __m256i sum = _mm256_setzero_si256();
    for (int i = 0; i < 32; i += 8) {
      const __m256i v = _mm256_cvtps_epi32(
          _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vid), _MM_FROUND_TO_NEAREST_INT));
      sum = _mm256_add_epi32(sum, v);
      const __m128i v16 =
          _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
      _mm_storel_epi64(reinterpret_cast<__m128i*>(y.qs + i), _mm_packs_epi16(v16, v16));
    }
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
    y.sum = _mm_cvtsi128_si32(s4);
#else
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[i]));
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    int sum = 0;
    for (int i = 0; i < 32; ++i) {
      const int v = static_cast<int>(std::nearbyint(x[i] * id));
      y.qs[i] = static_cast<std::int8_t>(v);
      sum += v;
    }
    y.sum = sum;
#endif
    const float d = amax / 127.0f;
    y.d = f16_to_f32(f32_to_f16(d));
    y.s = f16_to_f32(f32_to_f16(d * static_cast<float>(y.sum)));
    y.sum_neg128 = -128 * y.sum;
  }
}

// Q8_256 (llama.cpp's Q8_K): scaled so that the value of largest magnitude maps to -127, with
// the sum of each 16 quants.
void quantize_q8_256(const float* x, std::byte* out, int n) {
  auto* blocks = reinterpret_cast<quant::BlockQ8_256*>(out);
  for (int b = 0; b < n / 256; ++b, x += 256) {
    quant::BlockQ8_256& y = blocks[b];
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < 256; ++i) {
      if (std::fabs(x[i]) > amax) amax = std::fabs(x[i]), max = x[i];
    }
    if (amax == 0.0f) {
      std::memset(&y, 0, sizeof(y));
      continue;
    }
    const float iscale = -127.0f / max;
    for (int i = 0; i < 256; ++i) {
      y.qs[i] =
          static_cast<std::int8_t>(std::min(127, static_cast<int>(std::nearbyint(iscale * x[i]))));
    }
    for (int j = 0; j < 16; ++j) {
      int s = 0;
      for (int i = 0; i < 16; ++i) s += y.qs[16 * j + i];
      y.bsums[j] = static_cast<std::int16_t>(s);
    }
    y.d = 1.0f / iscale;
  }
}

}  // namespace lmserve::kernels::LMSERVE_TARGET_NS
LMSERVE_TARGET_END
