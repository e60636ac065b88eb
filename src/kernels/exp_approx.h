// exp as the kernels compute it, one value or 8 lanes, giving the same bits either way on every
// CPU target: a softmax or gate then does not depend on which lanes a value fell in (batch
// invariance) nor on the target. Within 2 ulp of exp over the float range: x = n ln2 + r with
// |r| <= ln2 / 2, exp(r) by Cephes' expf polynomial, 2^n built in the exponent bits; separate
// multiplies and adds (no FMA, which the scalar target lacks). x is clamped to [-87.3, 88]:
// below, e^x is under the smallest normal float (-inf included) and this gives 2^-126 rather
// than 0, a difference no sum with terms near 1 can show; above, it saturates at e^88.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/target.h"

LMSERVE_TARGET_BEGIN
namespace lmserve::kernels::LMSERVE_TARGET_NS {

namespace exp_approx_constants {
inline constexpr float kLow = -87.33654f, kHigh = 88.0f, kLog2e = 1.44269504088896341f;
// ln2 in two parts: n * kLn2High is exact.
inline constexpr float kLn2High = 0.693359375f, kLn2Low = -2.12194440e-4f;
inline constexpr float kPoly[6] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                                   4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};
}  // namespace exp_approx_constants

inline float exp_approx(float x) {
  using namespace exp_approx_constants;
  // The vector min/max's semantics, NaN included.
  x = x > kLow ? x : kLow;
  x = x < kHigh ? x : kHigh;
  const float n = std::nearbyint(x * kLog2e);
  float r = x - n * kLn2High;
  r = r - n * kLn2Low;
  float p = kPoly[0];
  for (int i = 1; i < 6; ++i) p = p * r + kPoly[i];
  const float y = (p * r * r + r) + 1.0f;
  const std::uint32_t bits = static_cast<std::uint32_t>(static_cast<int>(n) + 127) << 23;
  float pow2n;
  std::memcpy(&pow2n, &bits, 4);
  return y * pow2n;
}

#if LMSERVE_HAVE_AVX2
inline __m256 exp_approx8(__m256 x) {
  using namespace exp_approx_constants;
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(kLow)), _mm256_set1_ps(kHigh));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_sub_ps(x, _mm256_mul_ps(n, _mm256_set1_ps(kLn2High)));
  r = _mm256_sub_ps(r, _mm256_mul_ps(n, _mm256_set1_ps(kLn2Low)));
  __m256 p = _mm256_set1_ps(kPoly[0]);
  for (int i = 1; i < 6; ++i) p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(kPoly[i]));
  const __m256 y = _mm256_add_ps(
      _mm256_add_ps(_mm256_mul_ps(_mm256_mul_ps(p, r), r), r), _mm256_set1_ps(1.0f));
  const __m256i pow2n = _mm256_slli_epi32(
      _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(pow2n));
}
#endif

}  // namespace lmserve::kernels::LMSERVE_TARGET_NS
LMSERVE_TARGET_END
