// Float-weight matrix products against a naive double-precision reference on every CPU target
// this machine has, for shapes that are not multiples of the SIMD width or the row tile.
#include "kernels/matmul.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "kernels/convert.h"
#include "kernels/cpu.h"
#include "kernels/target_kernels.h"

namespace lmserve::kernels {
namespace {

struct Weights {
  WeightType type;
  std::vector<float> f32;          // used when type == kF32
  std::vector<std::uint16_t> u16;  // f16/bf16 storage
  std::vector<double> value;       // what each element means, exactly
  WeightMatrix matrix(int rows, int cols) const {
    return {type, type == WeightType::kF32 ? static_cast<const void*>(f32.data()) : u16.data(),
            rows, cols};
  }
};

Weights make_weights(WeightType type, int rows, int cols, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  Weights w{type, {}, {}, {}};
  const std::size_t n = static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols);
  for (std::size_t i = 0; i < n; ++i) {
    float v = dist(rng);
    if (type == WeightType::kF32) {
      w.f32.push_back(v);
      w.value.push_back(v);
    } else if (type == WeightType::kF16) {
      w.u16.push_back(f32_to_f16(v));
      w.value.push_back(f16_to_f32(w.u16.back()));
    } else {
      w.u16.push_back(f32_to_bf16(v));
      w.value.push_back(bf16_to_f32(w.u16.back()));
    }
  }
  return w;
}

const char* name(WeightType t) {
  return t == WeightType::kF32 ? "f32" : t == WeightType::kF16 ? "f16" : "bf16";
}

TEST(Matmul, MatchesNaiveReference) {
  std::mt19937 rng(42);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  util::ThreadPool pool(2);
  const int shapes[][3] = {{1, 1, 1},     {1, 7, 1},     {3, 5, 2},     {4, 8, 1},    {5, 33, 3},
                           {13, 64, 4},   {17, 100, 5},  {64, 172, 1},  {172, 64, 7}, {37, 1031, 2},
                           {300, 257, 9}, {513, 129, 1}, {1024, 128, 3}};
  const TargetKernels& scalar_target = *cpu_target("scalar");
  for (auto type : {WeightType::kF32, WeightType::kF16, WeightType::kBF16}) {
    for (const auto& s : shapes) {
      const int rows = s[0], cols = s[1], tokens = s[2];
      SCOPED_TRACE(std::string(name(type)) + " rows " + std::to_string(rows) + " cols " +
                   std::to_string(cols) + " tokens " + std::to_string(tokens));
      auto w = make_weights(type, rows, cols, rng);
      std::vector<float> x(static_cast<std::size_t>(tokens * cols));
      for (auto& v : x) v = dist(rng);
      std::vector<float> scalar_y(static_cast<std::size_t>(tokens * rows), -12345.0f);
      matmul(scalar_target, pool, w.matrix(rows, cols), x.data(), tokens, scalar_y.data());
      for (int t = 0; t < tokens; ++t) {
        for (int r = 0; r < rows; ++r) {
          double ref = 0.0, mag = 0.0;
          for (int c = 0; c < cols; ++c) {
            double p = w.value[static_cast<std::size_t>(r * cols + c)] *
                       x[static_cast<std::size_t>(t * cols + c)];
            ref += p;
            mag += std::abs(p);
          }
          ASSERT_NEAR(scalar_y[static_cast<std::size_t>(t * rows + r)], ref, 1e-5 * mag + 1e-6)
              << "t " << t << " r " << r;
        }
      }
      // Every SIMD target reduces in the scalar target's canonical order: equal bit for bit.
      for (auto target : available_cpu_targets()) {
        std::vector<float> y(scalar_y.size(), -12345.0f);
        matmul(*cpu_target(target), pool, w.matrix(rows, cols), x.data(), tokens, y.data());
        ASSERT_EQ(y, scalar_y) << target;
      }
    }
  }
}

TEST(Matmul, ThreadedEqualsSingleThreaded) {
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  util::ThreadPool one(1), four(4);
  for (auto type : {WeightType::kF32, WeightType::kF16, WeightType::kBF16}) {
    auto w = make_weights(type, 777, 301, rng);
    std::vector<float> x(301 * 6);
    for (auto& v : x) v = dist(rng);
    std::vector<float> a(777 * 6), b(777 * 6);
    matmul(one, w.matrix(777, 301), x.data(), 6, a.data());
    matmul(four, w.matrix(777, 301), x.data(), 6, b.data());
    EXPECT_EQ(a, b) << name(type);  // same per-row arithmetic whatever the split
  }
}

// The interleaved layouts SIMD targets repack f16 and bf16 into: on every target (the scalar one
// reads them too) the product gives the file layout's bits for any token count, rows dequantize
// to the same values, and fused projections split on whole groups.
TEST(Matmul, RepackedFloatLayoutsGiveTheFileLayoutsBits) {
  std::mt19937 rng(11);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  util::ThreadPool pool(2);
  const TargetKernels& scalar = *cpu_target("scalar");
  int repacked = 0;
  for (auto packer_name : available_cpu_targets()) {
    const TargetKernels& packer = *cpu_target(packer_name);
    for (auto type : {WeightType::kF16, WeightType::kBF16}) {
      for (const auto& [rows, cols] : {std::pair{4, 8}, {8, 24}, {12, 1032}, {40, 2048}}) {
        SCOPED_TRACE(std::string(packer_name) + " " + name(type) + " rows " + std::to_string(rows) +
                     " cols " + std::to_string(cols));
        const auto weights = make_weights(type, rows, cols, rng);
        const WeightMatrix w = weights.matrix(rows, cols);
        const auto packed_type = repacked_type(packer, w);
        if (!packed_type) continue;
        ++repacked;
        std::vector<std::uint16_t> storage(weights.u16.size() + 32);
        auto* out = reinterpret_cast<std::byte*>(storage.data());
        const WeightMatrix packed = repack(packer, pool, w, out);
        EXPECT_EQ(packed.type, *packed_type);
        std::vector<float> a(static_cast<std::size_t>(cols)), b(a.size());
        for (int r = 0; r < rows; ++r) {
          weight_row_to_f32(w, r, a.data());
          weight_row_to_f32(packed, r, b.data());
          ASSERT_EQ(a, b) << "row " << r;
        }
        for (int tokens : {1, 3, 4, 5, 9}) {
          std::vector<float> x(static_cast<std::size_t>(tokens * cols));
          for (auto& v : x) v = dist(rng);
          std::vector<float> want(static_cast<std::size_t>(tokens * rows));
          matmul(scalar, pool, w, x.data(), tokens, want.data());
          for (auto target : available_cpu_targets()) {
            std::vector<float> got(want.size());
            matmul(*cpu_target(target), pool, packed, x.data(), tokens, got.data());
            ASSERT_EQ(got, want) << target << " tokens " << tokens;
          }
        }
        EXPECT_EQ(weight_rows(packed, 4, rows - 4).rows, rows - 4);
        EXPECT_THROW(weight_rows(packed, 2, 2), std::invalid_argument);
      }
      // Rows that do not fill the groups, or a row that does not fill a chunk, stay as they are.
      EXPECT_FALSE(repacked_type(packer, make_weights(type, 6, 8, rng).matrix(6, 8)));
      EXPECT_FALSE(repacked_type(packer, make_weights(type, 4, 12, rng).matrix(4, 12)));
    }
  }
  // Every SIMD target repacks them; the scalar one alone would not.
  EXPECT_EQ(repacked > 0, available_cpu_targets().size() > 1);
}

TEST(Matmul, WeightRowToF32) {
  std::mt19937 rng(3);
  for (auto type : {WeightType::kF32, WeightType::kF16, WeightType::kBF16}) {
    auto w = make_weights(type, 5, 19, rng);
    std::vector<float> row(19);
    weight_row_to_f32(w.matrix(5, 19), 3, row.data());
    for (int c = 0; c < 19; ++c)
      EXPECT_EQ(row[static_cast<std::size_t>(c)], w.value[static_cast<std::size_t>(3 * 19 + c)]);
  }
}

}  // namespace
}  // namespace lmserve::kernels
