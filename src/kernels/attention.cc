#include "kernels/attention.h"

#include <algorithm>
#include <vector>

#include "kernels/ops.h"

namespace lmserve::kernels {

namespace {
constexpr long kMinParallelWork = 1L << 15;
}

void attention(util::ThreadPool& pool, const AttentionShape& shape, const float* q, int n_tokens,
               int start_pos, const float* k, const float* v, long kv_stride, float scale,
               float* out) {
  const int hd = shape.head_dim;
  const int group = shape.n_heads / shape.n_kv_heads;
  const long q_stride = static_cast<long>(shape.n_heads) * hd;
  const int max_len = start_pos + n_tokens;

  auto body = [&](std::size_t begin, std::size_t end) {
    std::vector<float> scores(static_cast<std::size_t>(max_len));
    std::vector<float> acc(static_cast<std::size_t>(hd));
    for (std::size_t item = begin; item < end; ++item) {
      const int t = static_cast<int>(item / static_cast<std::size_t>(shape.n_heads));
      const int h = static_cast<int>(item % static_cast<std::size_t>(shape.n_heads));
      const int kvh = h / group;
      const int len = start_pos + t + 1;  // causal: up to and including this token
      const float* qh = q + t * q_stride + static_cast<long>(h) * hd;
      const float* kh = k + static_cast<long>(kvh) * hd;
      const float* vh = v + static_cast<long>(kvh) * hd;
      for (int j = 0; j < len; ++j) {
        const float* kj = kh + j * kv_stride;
        float s = 0.0f;
        for (int d = 0; d < hd; ++d) s += qh[d] * kj[d];
        scores[static_cast<std::size_t>(j)] = s * scale;
      }
      softmax(scores.data(), len);
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int j = 0; j < len; ++j) {
        const float p = scores[static_cast<std::size_t>(j)];
        const float* vj = vh + j * kv_stride;
        for (int d = 0; d < hd; ++d) acc[static_cast<std::size_t>(d)] += p * vj[d];
      }
      std::copy(acc.begin(), acc.end(), out + t * q_stride + static_cast<long>(h) * hd);
    }
  };

  const std::size_t items =
      static_cast<std::size_t>(n_tokens) * static_cast<std::size_t>(shape.n_heads);
  const long work = static_cast<long>(items) * max_len * hd * 2;
  if (work < kMinParallelWork || pool.size() == 1) {
    body(0, items);
    return;
  }
  pool.parallel_for(items, body, 1);
}

}  // namespace lmserve::kernels
