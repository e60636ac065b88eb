// Sums of exponentials over long rows (compiled per CPU target): the normaliser of a softmax over
// a vocabulary, which a sampled or logprobs request needs every token. The scalar target sums
// std::exp in double; the vector targets evaluate exp on 8 lanes with Cephes' expf polynomial
// (within 2 ulp over the float range) and add each 1024 values' lanes into a double.
#include <cmath>

#include "kernels/target.h"

LMSERVE_TARGET_BEGIN
namespace lmserve::kernels::LMSERVE_TARGET_NS {

#if LMSERVE_HAVE_AVX2
namespace {

// exp(x) on 8 lanes: x = n ln2 + r with |r| <= ln2 / 2, exp(r) by a degree-6 polynomial, 2^n
// built in the exponent bits. Below -87.3 (e^x under the smallest normal float, and -inf) it
// gives 2^-126 rather than 0, a difference no sum of terms near 1 can show.
__m256 exp8(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.33654f)), _mm256_set1_ps(88.37626f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  // ln2 in two parts, so n * ln2_high is exact.
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  const __m256 y =
      _mm256_add_ps(_mm256_fmadd_ps(_mm256_mul_ps(p, r), r, r), _mm256_set1_ps(1.0f));
  const __m256i pow2n = _mm256_slli_epi32(
      _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(pow2n));
}

double hsum_double(__m256 v) {
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, v);
  double sum = 0.0;
  for (float lane : lanes) sum += lane;
  return sum;
}

}  // namespace
#endif

double sum_exp(const float* x, int n, float shift) {
  double sum = 0.0;
  int i = 0;
#if LMSERVE_HAVE_AVX2
  constexpr int kChunk = 1024;  // float lanes add at most this many terms before a double does
  const __m256 s = _mm256_set1_ps(shift);
  while (i + 16 <= n) {
    const int end = i + std::min(kChunk, (n - i) / 16 * 16);
    __m256 a = _mm256_setzero_ps(), b = _mm256_setzero_ps();
    for (; i < end; i += 16) {
      a = _mm256_add_ps(a, exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), s)));
      b = _mm256_add_ps(b, exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), s)));
    }
    sum += hsum_double(_mm256_add_ps(a, b));
  }
#endif
  for (; i < n; ++i) sum += std::exp(static_cast<double>(x[i] - shift));
  return sum;
}

}  // namespace lmserve::kernels::LMSERVE_TARGET_NS
LMSERVE_TARGET_END
