#include "model/rope.h"

namespace lmserve::model {

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

}  // namespace lmserve::model
