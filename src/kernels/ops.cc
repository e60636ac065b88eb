#include "kernels/ops.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu.h"
#include "kernels/target_kernels.h"

namespace lmserve::kernels {

void rms_norm(const float* x, const float* weight, int n, float eps, float* out) {
  // Double accumulation: the mean of squares is a long sum whose rounding error otherwise
  // grows with the hidden size.
  double ss = 0.0;
  for (int i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float scale = static_cast<float>(1.0 / std::sqrt(ss / n + static_cast<double>(eps)));
  for (int i = 0; i < n; ++i) out[i] = weight[i] * (x[i] * scale);
}

void rope_cos_sin(int pos, const float* inv_freq, int half, float* cos_out, float* sin_out) {
  // The angle is formed in f32 as the reference implementations (HF, llama2.c) do, so that
  // positions far from 0 round the same way.
  const float p = static_cast<float>(pos);
  for (int i = 0; i < half; ++i) {
    const float angle = p * inv_freq[i];
    cos_out[i] = std::cos(angle);
    sin_out[i] = std::sin(angle);
  }
}

void rope_rotate_half(float* x, int n_heads, int head_dim, int half, const float* cos_t,
                      const float* sin_t) {
  for (int h = 0; h < n_heads; ++h) {
    float* v = x + static_cast<long>(h) * head_dim;
    for (int i = 0; i < half; ++i) {
      const float a = v[i];
      const float b = v[i + half];
      v[i] = a * cos_t[i] - b * sin_t[i];
      v[i + half] = b * cos_t[i] + a * sin_t[i];
    }
  }
}

void rope_rotate_adjacent_pairs(float* x, int n_heads, int head_dim, int half, const float* cos_t,
                                const float* sin_t) {
  for (int h = 0; h < n_heads; ++h) {
    float* v = x + static_cast<long>(h) * head_dim;
    for (int i = 0; i < half; ++i) {
      const float a = v[2 * i];
      const float b = v[2 * i + 1];
      v[2 * i] = a * cos_t[i] - b * sin_t[i];
      v[2 * i + 1] = b * cos_t[i] + a * sin_t[i];
    }
  }
}

void silu_mul(const float* gate, const float* up, float* out, int n) {
  active_kernels().silu_mul(gate, up, out, n);
}

void gelu_tanh_mul(const float* gate, const float* up, float* out, int n) {
  constexpr float kSqrt2OverPi = 0.7978845608028654f;
  for (int i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = 0.5f * g * (1.0f + std::tanh(kSqrt2OverPi * (g + 0.044715f * g * g * g))) * up[i];
  }
}

void softcap(float* x, int n, float cap) {
  for (int i = 0; i < n; ++i) x[i] = cap * std::tanh(x[i] / cap);
}

int argmax(const float* x, int n) { return active_kernels().argmax(x, n); }

double sum_exp(const float* x, int n, float shift) { return active_kernels().sum_exp(x, n, shift); }

void softmax(float* x, int n) {
  if (n <= 0) return;
  const float m = *std::max_element(x, x + n);
  double sum = 0.0;
  for (int i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - m);
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int i = 0; i < n; ++i) x[i] *= inv;
}

void add_inplace(float* y, const float* x, int n) {
  for (int i = 0; i < n; ++i) y[i] += x[i];
}

}  // namespace lmserve::kernels
