// Bulk f16 <-> f32 conversions (compiled per CPU target; F16C where the target has it).
#include "kernels/convert.h"
#include "kernels/target.h"

LMSERVE_TARGET_BEGIN
namespace lmserve::kernels::LMSERVE_TARGET_NS {

void f16_to_f32(const std::uint16_t* in, float* out, int n) {
  int i = 0;
#if LMSERVE_HAVE_AVX2
  for (; i + 8 <= n; i += 8) {
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i));
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(h));
  }
#endif
  for (; i < n; ++i) out[i] = kernels::f16_to_f32(in[i]);
}

void f32_to_f16(const float* in, std::uint16_t* out, int n) {
  int i = 0;
#if LMSERVE_HAVE_AVX2
  for (; i + 8 <= n; i += 8) {
    __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), h);
  }
#endif
  for (; i < n; ++i) out[i] = kernels::f32_to_f16(in[i]);
}

}  // namespace lmserve::kernels::LMSERVE_TARGET_NS
LMSERVE_TARGET_END
