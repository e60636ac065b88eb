// Element-wise kernels built on exp (compiled per CPU target): the sum of exponentials that
// normalises a softmax over a vocabulary (a sampled or logprobs request needs it every token)
// and SwiGLU's gate. Every target computes the same bits (exp_approx.h; the sum adds in the
// same lanes and order), the vector targets 8 lanes at a time.
#include <algorithm>
#include <cmath>

#include "kernels/exp_approx.h"
#include "kernels/target.h"

LMSERVE_TARGET_BEGIN
namespace lmserve::kernels::LMSERVE_TARGET_NS {

// Terms go to 16 float lanes, 2 x 8 (value i to lane i % 16), for at most 1024 values; the lanes
// are then added pairwise and in order into a double. The tail past the last 16 adds in double.
double sum_exp(const float* x, int n, float shift) {
  constexpr int kLanes = 16, kChunk = 1024;
  double sum = 0.0;
  int i = 0;
  while (i + kLanes <= n) {
    const int end = i + std::min(kChunk, (n - i) / kLanes * kLanes);
    alignas(32) float lanes[kLanes];
#if LMSERVE_HAVE_AVX2
    const __m256 s = _mm256_set1_ps(shift);
    __m256 a = _mm256_setzero_ps(), b = _mm256_setzero_ps();
    for (; i < end; i += kLanes) {
      a = _mm256_add_ps(a, exp_approx8(_mm256_sub_ps(_mm256_loadu_ps(x + i), s)));
      b = _mm256_add_ps(b, exp_approx8(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), s)));
    }
    _mm256_store_ps(lanes, a);
    _mm256_store_ps(lanes + 8, b);
#else
    std::fill_n(lanes, kLanes, 0.0f);
    for (; i < end; i += kLanes)
      for (int l = 0; l < kLanes; ++l) lanes[l] += exp_approx(x[i + l] - shift);
#endif
    for (int l = 0; l < kLanes / 2; ++l) sum += static_cast<double>(lanes[l] + lanes[l + 8]);
  }
  for (; i < n; ++i) sum += static_cast<double>(exp_approx(x[i] - shift));
  return sum;
}

void silu_mul(const float* gate, const float* up, float* out, int n) {
  int i = 0;
#if LMSERVE_HAVE_AVX2
  const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
  for (; i + 8 <= n; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    const __m256 e = exp_approx8(_mm256_xor_ps(g, sign));
    _mm256_storeu_ps(out + i,
                     _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), _mm256_loadu_ps(up + i)));
  }
#endif
  for (; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + exp_approx(-g)) * up[i];
  }
}

}  // namespace lmserve::kernels::LMSERVE_TARGET_NS
LMSERVE_TARGET_END
