// Kernels over a vocabulary's logits and element-wise ones (compiled per CPU target): the
// greedy pick, the sum of exponentials that normalises a softmax (a sampled or logprobs request
// needs it every token) and SwiGLU's gate. Every target computes the same bits (exp_approx.h; the
// sum adds in the same lanes and order), the vector targets 8 lanes at a time.
#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>

#include "kernels/exp_approx.h"
#include "kernels/target.h"

LMSERVE_TARGET_BEGIN
namespace lmserve::kernels::LMSERVE_TARGET_NS {

// Two passes: the greatest value (max is exact, so lanes in any order agree), then its first
// index. A NaN is never the greatest: maxps returns its second operand, the running maximum,
// when the first is NaN, as the scalar comparison skips it.
int argmax(const float* x, int n) {
  float greatest = -std::numeric_limits<float>::infinity();
  int i = 0;
#if LMSERVE_HAVE_AVX2
  __m256 m[4];
  for (auto& lane : m) lane = _mm256_set1_ps(greatest);
  for (; i + 32 <= n; i += 32)
    for (int k = 0; k < 4; ++k) m[k] = _mm256_max_ps(_mm256_loadu_ps(x + i + 8 * k), m[k]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, _mm256_max_ps(_mm256_max_ps(m[0], m[1]), _mm256_max_ps(m[2], m[3])));
  for (const float v : lanes) greatest = std::max(greatest, v);
#endif
  for (; i < n; ++i)
    if (x[i] > greatest) greatest = x[i];
  i = 0;
#if LMSERVE_HAVE_AVX2
  const __m256 target = _mm256_set1_ps(greatest);
  for (; i + 8 <= n; i += 8) {
    const int hits = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i), target, _CMP_EQ_OQ));
    if (hits != 0) return i + std::countr_zero(static_cast<unsigned>(hits));
  }
#endif
  for (; i < n; ++i)
    if (x[i] == greatest) return i;
  return 0;  // every value NaN
}

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
