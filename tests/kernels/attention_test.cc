// Causal GQA attention against a naive double-precision implementation.
#include "kernels/attention.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace lmserve::kernels {
namespace {

TEST(Attention, CausalGqaMatchesNaive) {
  std::mt19937 rng(5);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  util::ThreadPool pool(3);
  struct Case {
    int heads, kv_heads, head_dim, start, tokens;
  };
  for (auto c : {Case{1, 1, 4, 0, 1}, Case{8, 4, 8, 0, 9}, Case{8, 4, 8, 5, 1},
                 Case{4, 1, 16, 3, 6}, Case{6, 2, 12, 40, 30}, Case{32, 8, 64, 100, 20}}) {
    SCOPED_TRACE(std::to_string(c.heads) + "/" + std::to_string(c.kv_heads) + " hd " +
                 std::to_string(c.head_dim) + " start " + std::to_string(c.start) + " tokens " +
                 std::to_string(c.tokens));
    const int len = c.start + c.tokens;
    const long kv_stride = static_cast<long>(c.kv_heads) * c.head_dim + 3;  // padded rows
    std::vector<float> k(static_cast<std::size_t>(len * kv_stride)), v(k.size());
    std::vector<float> q(static_cast<std::size_t>(c.tokens * c.heads * c.head_dim));
    for (auto* vec : {&k, &v, &q}) {
      for (auto& x : *vec) x = dist(rng);
    }
    std::vector<float> out(q.size());
    const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
    attention(pool, {c.heads, c.kv_heads, c.head_dim}, q.data(), c.tokens, c.start, k.data(),
              v.data(), kv_stride, scale, out.data());
    const int group = c.heads / c.kv_heads;
    for (int t = 0; t < c.tokens; ++t) {
      for (int h = 0; h < c.heads; ++h) {
        const int kvh = h / group;
        const int n = c.start + t + 1;
        std::vector<double> s(static_cast<std::size_t>(n));
        double m = -1e300;
        for (int j = 0; j < n; ++j) {
          double d = 0;
          for (int i = 0; i < c.head_dim; ++i) {
            d += static_cast<double>(
                     q[static_cast<std::size_t>((t * c.heads + h) * c.head_dim + i)]) *
                 k[static_cast<std::size_t>(j * kv_stride + kvh * c.head_dim + i)];
          }
          s[static_cast<std::size_t>(j)] = d * scale;
          m = std::max(m, s[static_cast<std::size_t>(j)]);
        }
        double sum = 0;
        for (auto& x : s) sum += (x = std::exp(x - m));
        for (int i = 0; i < c.head_dim; ++i) {
          double ref = 0;
          for (int j = 0; j < n; ++j) {
            ref += s[static_cast<std::size_t>(j)] / sum *
                   v[static_cast<std::size_t>(j * kv_stride + kvh * c.head_dim + i)];
          }
          ASSERT_NEAR(out[static_cast<std::size_t>((t * c.heads + h) * c.head_dim + i)], ref, 1e-5)
              << "t " << t << " h " << h << " i " << i;
        }
      }
    }
  }
}

// A token never sees the future: changing keys/values after its position leaves it unchanged.
TEST(Attention, IsCausal) {
  util::ThreadPool pool(1);
  const int hd = 4, len = 5;
  std::vector<float> q(static_cast<std::size_t>(len * hd), 0.3f), k(q.size()), v(q.size()),
      a(q.size()), b(q.size());
  for (std::size_t i = 0; i < k.size(); ++i) {
    k[i] = static_cast<float>(i % 7) * 0.1f;
    v[i] = static_cast<float>(i % 5);
  }
  attention(pool, {1, 1, hd}, q.data(), len, 0, k.data(), v.data(), hd, 0.5f, a.data());
  for (int i = 0; i < hd; ++i) {
    k[static_cast<std::size_t>(4 * hd + i)] = 100.0f;
    v[static_cast<std::size_t>(4 * hd + i)] = -100.0f;
  }
  attention(pool, {1, 1, hd}, q.data(), len, 0, k.data(), v.data(), hd, 0.5f, b.data());
  for (int i = 0; i < 4 * hd; ++i)
    EXPECT_EQ(a[static_cast<std::size_t>(i)], b[static_cast<std::size_t>(i)]);
  EXPECT_NE(a[static_cast<std::size_t>(4 * hd)], b[static_cast<std::size_t>(4 * hd)]);
  // The first token attends only to itself: its output is its own value row.
  for (int i = 0; i < hd; ++i)
    EXPECT_EQ(a[static_cast<std::size_t>(i)], v[static_cast<std::size_t>(i)]);
}

}  // namespace
}  // namespace lmserve::kernels
