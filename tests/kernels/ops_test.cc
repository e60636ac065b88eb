// RMSNorm, RoPE (rotate_half), SiLU*mul, softmax and sums of exponentials against naive
// double-precision versions.
#include "kernels/ops.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu.h"
#include "kernels/target_kernels.h"

namespace lmserve::kernels {
namespace {

std::vector<float> random_vector(int n, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (auto& x : v) x = dist(rng);
  return v;
}

TEST(RmsNorm, MatchesDefinition) {
  std::mt19937 rng(1);
  for (int n : {1, 3, 8, 64, 171, 4096}) {
    auto x = random_vector(n, rng, 3.0f);
    auto w = random_vector(n, rng);
    std::vector<float> out(x.size());
    rms_norm(x.data(), w.data(), n, 1e-5f, out.data());
    double ss = 0;
    for (float v : x) ss += static_cast<double>(v) * v;
    double inv = 1.0 / std::sqrt(ss / n + 1e-5);
    for (int i = 0; i < n; ++i) {
      double ref = x[static_cast<std::size_t>(i)] * inv * w[static_cast<std::size_t>(i)];
      EXPECT_NEAR(out[static_cast<std::size_t>(i)], ref, 1e-5 * std::abs(ref) + 1e-7)
          << n << " " << i;
    }
    // In place gives the same answer.
    std::vector<float> y = x;
    rms_norm(y.data(), w.data(), n, 1e-5f, y.data());
    EXPECT_EQ(y, out);
  }
  // eps matters for a zero vector: no division by zero, the output is 0.
  std::vector<float> z(4, 0.0f), w(4, 1.0f), o(4, 1.0f);
  rms_norm(z.data(), w.data(), 4, 1e-6f, o.data());
  for (float v : o) EXPECT_EQ(v, 0.0f);
}

TEST(Rope, RotateHalfMatchesHfFormula) {
  std::mt19937 rng(2);
  const int n_heads = 3, head_dim = 10, half = 5;
  std::vector<float> inv_freq(half);
  for (int i = 0; i < half; ++i)
    inv_freq[static_cast<std::size_t>(i)] = std::pow(10000.0f, -2.0f * i / head_dim);
  for (int pos : {0, 1, 7, 300}) {
    auto x = random_vector(n_heads * head_dim, rng);
    auto orig = x;
    std::vector<float> c(half), s(half);
    rope_cos_sin(pos, inv_freq.data(), half, c.data(), s.data());
    rope_rotate_half(x.data(), n_heads, head_dim, half, c.data(), s.data());
    for (int h = 0; h < n_heads; ++h) {
      for (int i = 0; i < head_dim; ++i) {
        // HF: q * cos + rotate_half(q) * sin, rotate_half(q) = cat(-q2, q1).
        int j = i % half;
        double angle =
            static_cast<double>(static_cast<float>(pos) * inv_freq[static_cast<std::size_t>(j)]);
        double qi = orig[static_cast<std::size_t>(h * head_dim + i)];
        double rot = i < half ? -orig[static_cast<std::size_t>(h * head_dim + i + half)]
                              : orig[static_cast<std::size_t>(h * head_dim + i - half)];
        double ref = qi * std::cos(angle) + rot * std::sin(angle);
        EXPECT_NEAR(x[static_cast<std::size_t>(h * head_dim + i)], ref, 1e-5)
            << pos << " " << h << " " << i;
      }
    }
    if (pos == 0) {
      EXPECT_EQ(x, orig);
    }
  }
}

TEST(Rope, PreservesDotProductsOfEqualPositionOffsets) {
  // The point of RoPE: <rot(q, m), rot(k, n)> depends only on m - n.
  std::mt19937 rng(3);
  const int head_dim = 16, half = 8;
  std::vector<float> inv_freq(half);
  for (int i = 0; i < half; ++i)
    inv_freq[static_cast<std::size_t>(i)] = std::pow(10000.0f, -2.0f * i / head_dim);
  auto q = random_vector(head_dim, rng), k = random_vector(head_dim, rng);
  auto rotated_dot = [&](int m, int n) {
    auto a = q, b = k;
    std::vector<float> c(half), s(half);
    rope_cos_sin(m, inv_freq.data(), half, c.data(), s.data());
    rope_rotate_half(a.data(), 1, head_dim, half, c.data(), s.data());
    rope_cos_sin(n, inv_freq.data(), half, c.data(), s.data());
    rope_rotate_half(b.data(), 1, head_dim, half, c.data(), s.data());
    double d = 0;
    for (int i = 0; i < head_dim; ++i)
      d += a[static_cast<std::size_t>(i)] * b[static_cast<std::size_t>(i)];
    return d;
  };
  EXPECT_NEAR(rotated_dot(5, 2), rotated_dot(13, 10), 1e-4);
  EXPECT_NEAR(rotated_dot(0, 0), rotated_dot(40, 40), 1e-4);
}

// The SwiGLU gate within float rounding of the double-precision definition, over the range a gate
// takes and past exp's limits, and the same bits on every target and at every offset.
TEST(SiluMul, EveryTargetMatchesTheDefinition) {
  std::mt19937 rng(4);
  for (int n : {1, 7, 8, 37, 1000}) {
    auto g = random_vector(n, rng, 8.0f), u = random_vector(n, rng);
    g[0] = -120.0f;
    if (n > 1) g[1] = 95.0f;
    std::vector<float> scalar(static_cast<std::size_t>(n));
    cpu_target("scalar")->silu_mul(g.data(), u.data(), scalar.data(), n);
    for (std::size_t i = 0; i < scalar.size(); ++i) {
      const double ref = g[i] / (1.0 + std::exp(-static_cast<double>(g[i]))) * u[i];
      EXPECT_NEAR(scalar[i], ref, 1e-6 * std::abs(ref) + 1e-30) << "gate " << g[i];
    }
    for (auto name : available_cpu_targets()) {
      std::vector<float> out(scalar.size());
      cpu_target(name)->silu_mul(g.data(), u.data(), out.data(), n);
      EXPECT_EQ(out, scalar) << name;
      // A row's values give the same bits at any offset (in any lane).
      std::vector<float> shifted(scalar.size() - 1);
      cpu_target(name)->silu_mul(g.data() + 1, u.data() + 1, shifted.data(), n - 1);
      EXPECT_TRUE(std::equal(shifted.begin(), shifted.end(), scalar.begin() + 1)) << name;
    }
  }
}

TEST(Softmax, MatchesDefinitionAndIsStable) {
  std::vector<float> x = {1000.0f, 1001.0f, 999.0f, -1e30f};
  softmax(x.data(), 4);
  double e0 = std::exp(-1.0), e2 = std::exp(-2.0), sum = e0 + 1 + e2;
  EXPECT_NEAR(x[0], e0 / sum, 1e-6);
  EXPECT_NEAR(x[1], 1 / sum, 1e-6);
  EXPECT_NEAR(x[2], e2 / sum, 1e-6);
  EXPECT_EQ(x[3], 0.0f);
  float single = -3.0f;
  softmax(&single, 1);
  EXPECT_EQ(single, 1.0f);
}

// The sum of exponentials within 1e-6 (relative) of the double-precision sum, and the same bits
// on every target: logits of a vocabulary's spread, values far below the shift and -inf (a banned
// token), lengths that leave every kind of tail.
TEST(SumExp, EveryTargetMatchesTheDoubleSum) {
  std::mt19937 rng(11);
  for (int n : {0, 1, 7, 15, 16, 17, 1023, 1024, 1041, 32000, 128257}) {
    std::vector<float> x = random_vector(n, rng, 4.0f);
    for (int i = 0; i < n; i += 97) x[static_cast<std::size_t>(i)] = -200.0f;
    for (int i = 5; i < n; i += 131)
      x[static_cast<std::size_t>(i)] = -std::numeric_limits<float>::infinity();
    const float shift = n > 0 ? *std::max_element(x.begin(), x.end()) : 0.0f;
    double want = 0.0;
    for (float v : x) want += std::exp(static_cast<double>(v - shift));
    const double scalar = cpu_target("scalar")->sum_exp(x.data(), n, shift);
    EXPECT_NEAR(scalar, want, 1e-6 * want) << n;
    for (auto name : available_cpu_targets())
      EXPECT_EQ(cpu_target(name)->sum_exp(x.data(), n, shift), scalar) << name << " n " << n;
  }
}

// The first index of the greatest value on every target: ties (the first wins), the greatest in
// a vector body or in a tail, NaNs (never the greatest; 0 when all are), -inf everywhere.
TEST(Argmax, EveryTargetFindsTheFirstGreatest) {
  std::mt19937 rng(12);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  auto first_greatest = [](const std::vector<float>& x) {
    int best = -1;
    for (int i = 0; i < static_cast<int>(x.size()); ++i) {
      const float v = x[static_cast<std::size_t>(i)];
      if (!std::isnan(v) && (best < 0 || v > x[static_cast<std::size_t>(best)])) best = i;
    }
    return std::max(best, 0);
  };
  for (int n : {1, 7, 8, 31, 32, 33, 100, 1000, 151937}) {
    const std::vector<float> x = random_vector(n, rng, 4.0f);
    std::vector<std::vector<float>> cases = {x, std::vector<float>(static_cast<std::size_t>(n), -inf),
                                             std::vector<float>(static_cast<std::size_t>(n), nan)};
    for (int at : {0, n / 2, n - 1}) {
      std::vector<float> tie = x;
      tie[static_cast<std::size_t>(at)] = 1e3f;
      tie[static_cast<std::size_t>(n - 1)] = 1e3f;
      EXPECT_EQ(first_greatest(tie), at);
      cases.push_back(tie);
      tie[0] = nan;
      tie[static_cast<std::size_t>(std::min(at + 1, n - 1))] = nan;
      cases.push_back(tie);
    }
    for (auto name : available_cpu_targets()) {
      for (const auto& values : cases)
        EXPECT_EQ(cpu_target(name)->argmax(values.data(), n), first_greatest(values))
            << name << " n " << n;
    }
  }
}

TEST(AddInplace, Adds) {
  std::vector<float> y = {1, 2, 3}, x = {0.5f, -2, 10};
  add_inplace(y.data(), x.data(), 3);
  EXPECT_EQ(y, (std::vector<float>{1.5f, 0, 13}));
}

}  // namespace
}  // namespace lmserve::kernels
