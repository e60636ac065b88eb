// Quantized-weight products: the scalar target against a double-precision reference over the
// dequantized weights and activations, and every SIMD target against the scalar one, for every
// format of the table, on random blocks and shapes that are not multiples of any tile.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "kernels/convert.h"
#include "kernels/cpu.h"
#include "kernels/matmul.h"
#include "kernels/quant/blocks.h"
#include "kernels/quant/quantize.h"
#include "kernels/target_kernels.h"

namespace lmserve::kernels {
namespace {

// Byte offsets of each format's f16 fields (scales and minimums), which random bytes must not
// turn into infinities or NaNs.
struct QuantCase {
  WeightType type;
  std::vector<int> half_offsets;
};

// Activation blocks are aligned types: buffers for them come in 64-byte units.
struct alignas(64) Chunk {
  std::byte bytes[64];
};
std::byte* aligned_bytes(std::vector<Chunk>& v, std::size_t n) {
  v.resize((n + 63) / 64);
  return v.front().bytes;
}

const QuantCase kCases[] = {
    {WeightType::kQ8_0, {0}},   {WeightType::kQ4_0, {0}},    {WeightType::kQ4_1, {0, 2}},
    {WeightType::kQ5_0, {0}},   {WeightType::kQ5_1, {0, 2}}, {WeightType::kQ2_K, {80, 82}},
    {WeightType::kQ3_K, {108}}, {WeightType::kQ4_K, {0, 2}}, {WeightType::kQ5_K, {0, 2}},
    {WeightType::kQ6_K, {208}}, {WeightType::kIQ4_NL, {0}},  {WeightType::kIQ4_XS, {0}},
};

std::vector<std::uint8_t> random_blocks(const QuantCase& c, int rows, int cols, std::mt19937& rng) {
  const auto& f = weight_format(c.type);
  const std::size_t n_blocks = static_cast<std::size_t>(rows) * (cols / f.block_elements);
  std::vector<std::uint8_t> bytes(n_blocks * static_cast<std::size_t>(f.block_bytes));
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> scale(0.001f, 0.05f);
  for (auto& b : bytes) b = static_cast<std::uint8_t>(byte(rng));
  for (std::size_t b = 0; b < n_blocks; ++b) {
    for (int off : c.half_offsets) {
      const std::uint16_t h = f32_to_f16(scale(rng));
      std::memcpy(bytes.data() + b * static_cast<std::size_t>(f.block_bytes) + off, &h, 2);
    }
  }
  return bytes;
}

// The scalar target's product of w with `tokens` random rows against a double-precision one of
// the dequantized weights and quantized activations, and every target's against the scalar one.
void check_product(const WeightMatrix& w, int tokens, std::mt19937& rng, util::ThreadPool& pool) {
  const TargetKernels& scalar = *cpu_target("scalar");
  const int rows = w.rows, cols = w.cols;
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(static_cast<std::size_t>(tokens) * static_cast<std::size_t>(cols));
  for (auto& v : x) v = dist(rng);

  // What the kernels multiply: dequantized weights and the quantized activations.
  std::vector<float> w_deq(static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols));
  for (int r = 0; r < rows; ++r) weight_row_to_f32(w, r, w_deq.data() + r * cols);
  const ActivationType act = weight_format(w.type).activation;
  const std::size_t act_bytes = activation_row_bytes(act, cols);
  std::vector<float> x_deq(x.size());
  for (int t = 0; t < tokens; ++t) {
    std::vector<Chunk> storage;
    std::byte* q = aligned_bytes(storage, act_bytes);
    scalar.quantize[static_cast<int>(act)](x.data() + t * cols, q, cols);
    for (int i = 0; i < cols; ++i) {
      float d;
      std::int8_t qi;
      if (act == ActivationType::kQ8_32) {
        const auto& b = reinterpret_cast<const quant::BlockQ8_32*>(q)[i / 32];
        d = b.d, qi = b.qs[i % 32];
      } else {
        const auto& b = reinterpret_cast<const quant::BlockQ8_256*>(q)[i / 256];
        d = b.d, qi = b.qs[i % 256];
      }
      x_deq[static_cast<std::size_t>(t * cols + i)] = d * qi;
    }
  }

  std::vector<float> y_scalar(static_cast<std::size_t>(tokens * rows));
  matmul(scalar, pool, w, x.data(), tokens, y_scalar.data());
  for (int t = 0; t < tokens; ++t) {
    for (int r = 0; r < rows; ++r) {
      double ref = 0.0, mag = 0.0;
      for (int i = 0; i < cols; ++i) {
        const double p = static_cast<double>(w_deq[static_cast<std::size_t>(r * cols + i)]) *
                         x_deq[static_cast<std::size_t>(t * cols + i)];
        ref += p;
        mag += std::abs(p);
      }
      // 1e-3: Q4_1/Q5_1 carry the activation sum times d rounded to f16, as llama.cpp does.
      ASSERT_NEAR(y_scalar[static_cast<std::size_t>(t * rows + r)], ref, 1e-3 * mag + 1e-6)
          << "t " << t << " r " << r;
    }
  }
  for (auto name : available_cpu_targets()) {
    std::vector<float> y(y_scalar.size());
    matmul(*cpu_target(name), pool, w, x.data(), tokens, y.data());
    if (w.group_size == 0) {
      // GGUF formats: every target gives the scalar kernel's bits (exact integer block dot
      // products, then the same float operations in the same order), so a model gives the
      // same results in the file's layout, repacked, or on another target.
      ASSERT_EQ(0, std::memcmp(y.data(), y_scalar.data(), y.size() * sizeof(float))) << name;
    }
    for (std::size_t i = 0; i < y.size(); ++i) {
      ASSERT_NEAR(y[i], y_scalar[i], 1e-5 * std::abs(y_scalar[i]) + 1e-4) << name << " " << i;
    }
  }
}

// (rows, blocks per row, tokens): odd rows and tokens, one and many blocks.
const int kShapes[][3] = {{1, 1, 1}, {3, 2, 1},  {5, 3, 2},   {7, 1, 5},
                          {9, 4, 3}, {33, 2, 7}, {130, 3, 1}, {67, 8, 9}};

TEST(QuantMatmul, ScalarMatchesDequantizedReferenceAndSimdMatchesScalar) {
  std::mt19937 rng(11);
  util::ThreadPool pool(2);
  for (const auto& c : kCases) {
    const auto& f = weight_format(c.type);
    for (const auto& s : kShapes) {
      const int rows = s[0], cols = s[1] * f.block_elements, tokens = s[2];
      SCOPED_TRACE(std::string(f.name) + " rows " + std::to_string(rows) + " cols " +
                   std::to_string(cols) + " tokens " + std::to_string(tokens));
      auto bytes = random_blocks(c, rows, cols, rng);
      check_product(WeightMatrix{c.type, bytes.data(), rows, cols}, tokens, rng, pool);
    }
  }
}

// MLX affine: random codes, scales of both signs and biases in each scale dtype, every width and
// group size; the groups of one row may be 1 to 8 (rows, tokens as above).
TEST(QuantMatmul, MlxAffineMatchesDequantizedReferenceOnEveryTarget) {
  std::mt19937 rng(13);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> param(-0.05f, 0.05f);
  util::ThreadPool pool(2);
  for (auto type : {WeightType::kMLX2, WeightType::kMLX3, WeightType::kMLX4, WeightType::kMLX5,
                    WeightType::kMLX6, WeightType::kMLX8}) {
    for (int group : {32, 64, 128}) {
      for (auto scale_type : {WeightType::kF32, WeightType::kF16, WeightType::kBF16}) {
        for (const auto& s : kShapes) {
          const int rows = s[0], cols = s[1] * group, tokens = s[2];
          SCOPED_TRACE(std::string(weight_format(type).name) + " group " + std::to_string(group) +
                       " scales " + std::string(weight_format(scale_type).name) + " rows " +
                       std::to_string(rows) + " cols " + std::to_string(cols));
          std::vector<std::uint8_t> codes(static_cast<std::size_t>(rows) *
                                          weight_row_bytes(type, cols));
          for (auto& b : codes) b = static_cast<std::uint8_t>(byte(rng));
          const std::size_t n_groups = static_cast<std::size_t>(rows) * (cols / group);
          std::vector<std::uint8_t> scales(n_groups * 4), biases(n_groups * 4);
          for (std::size_t g = 0; g < n_groups; ++g) {
            for (auto* p : {&scales, &biases}) {
              const float v = param(rng);
              if (scale_type == WeightType::kF32) {
                std::memcpy(p->data() + g * 4, &v, 4);
              } else {
                const std::uint16_t h =
                    scale_type == WeightType::kF16 ? f32_to_f16(v) : f32_to_bf16(v);
                std::memcpy(p->data() + g * 2, &h, 2);
              }
            }
          }
          WeightMatrix w{type, codes.data(), rows, cols};
          w.scales = scales.data();
          w.biases = biases.data();
          w.scale_type = scale_type;
          w.group_size = group;
          check_product(w, tokens, rng, pool);
          // A part of the rows reads its own groups' parameters.
          if (rows > 2) {
            const WeightMatrix part = weight_rows(w, 2, rows - 2);
            std::vector<float> a(static_cast<std::size_t>(cols)), b(a.size());
            weight_row_to_f32(w, rows - 1, a.data());
            weight_row_to_f32(part, rows - 3, b.data());
            ASSERT_EQ(a, b);
          }
        }
      }
    }
  }
}

// api-contract §6.7's worked examples of MLX's bit packing, dequantized exactly.
TEST(QuantMatmul, MlxAffineUnpacksTheContractExamples) {
  auto row = [](WeightType type, std::vector<std::uint8_t> bytes, float scale, float bias) {
    bytes.resize(weight_row_bytes(type, 32), 0);
    WeightMatrix w{type, bytes.data(), 1, 32};
    w.scales = &scale;
    w.biases = &bias;
    w.group_size = 32;
    std::vector<float> out(32);
    weight_row_to_f32(w, 0, out.data());
    return out;
  };
  const auto four = row(WeightType::kMLX4, {0x21, 0x43, 0x65, 0x87}, 0.5f, -1.0f);
  for (int k = 0; k < 8; ++k) EXPECT_EQ(four[k], 0.5f * (k + 1) - 1.0f) << k;
  const auto three = row(WeightType::kMLX3, {0xD1, 0x58, 0x1F}, 1.0f, 0.0f);
  EXPECT_EQ(std::vector<float>(three.begin(), three.begin() + 8),
            (std::vector<float>{1, 2, 3, 4, 5, 6, 7, 0}));
  const auto six = row(WeightType::kMLX6, {0x7F, 0x20, 0x0C}, 1.0f, 0.0f);
  EXPECT_EQ(std::vector<float>(six.begin(), six.begin() + 4), (std::vector<float>{63, 1, 2, 3}));
  // 3-bit element 10 straddles words 0 and 1: bits 30-31 of word 0 and bit 0 of word 1.
  const auto straddle = row(WeightType::kMLX3, {0, 0, 0, 0xC0, 0x01}, 1.0f, 0.0f);
  EXPECT_EQ(straddle[10], 7.0f);
  EXPECT_EQ(straddle[9], 0.0f);
  EXPECT_EQ(straddle[11], 0.0f);
}

// IQ4_NL and IQ4_XS blocks written byte by byte from the format's definition (llama.cpp's
// dequantize_row_iq4_nl / _iq4_xs): index q stands for the level kvalues_iq4nl[q], element j of a
// 32-value run is the low nibble of byte j (j < 16) or the high nibble of byte j - 16, and an
// IQ4_XS sub-block's six-bit scale is split between scales_l's nibbles and scales_h's bit pairs.
TEST(QuantMatmul, Iq4FormatsUnpackTheirDefinition) {
  const float levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                            1,    13,   25,  38,  53,  69,  89,  113};
  auto dequantized = [](WeightType type, std::vector<std::uint8_t>& bytes, int cols) {
    std::vector<float> out(static_cast<std::size_t>(cols));
    weight_row_to_f32(WeightMatrix{type, bytes.data(), 1, cols}, 0, out.data());
    return out;
  };
  {
    std::vector<std::uint8_t> nl(18);
    const std::uint16_t d = f32_to_f16(0.5f);
    std::memcpy(nl.data(), &d, 2);
    for (int j = 0; j < 16; ++j) nl[2 + j] = static_cast<std::uint8_t>(j | (15 - j) << 4);
    const auto x = dequantized(WeightType::kIQ4_NL, nl, 32);
    for (int j = 0; j < 16; ++j) {
      EXPECT_EQ(x[j], 0.5f * levels[j]) << j;
      EXPECT_EQ(x[j + 16], 0.5f * levels[15 - j]) << j;
    }
  }
  {
    std::vector<std::uint8_t> xs(136);
    const std::uint16_t d = f32_to_f16(0.25f);
    std::memcpy(xs.data(), &d, 2);
    // Sub-block scales (stored values, biased by 32): 0, 63, 32, 33, 17, 48, 5, 40.
    const int stored[8] = {0, 63, 32, 33, 17, 48, 5, 40};
    std::uint16_t scales_h = 0;
    for (int j = 0; j < 8; ++j) {
      xs[4 + j / 2] = static_cast<std::uint8_t>(xs[4 + j / 2] | (stored[j] & 15) << 4 * (j % 2));
      scales_h = static_cast<std::uint16_t>(scales_h | (stored[j] >> 4) << 2 * j);
    }
    std::memcpy(xs.data() + 2, &scales_h, 2);
    for (int i = 0; i < 128; ++i) xs[8 + i] = static_cast<std::uint8_t>((i * 7) % 256);
    const auto x = dequantized(WeightType::kIQ4_XS, xs, 256);
    for (int j = 0; j < 8; ++j) {
      const float dl = 0.25f * static_cast<float>(stored[j] - 32);
      for (int l = 0; l < 16; ++l) {
        const int byte = (16 * j + l) * 7 % 256;
        EXPECT_EQ(x[32 * j + l], dl * levels[byte & 15]) << j << " " << l;
        EXPECT_EQ(x[32 * j + l + 16], dl * levels[byte >> 4]) << j << " " << l;
      }
    }
  }
}

TEST(QuantMatmul, EveryTargetQuantizesActivationsToTheSameBytes) {
  std::mt19937 rng(5);
  std::normal_distribution<float> dist(0.0f, 3.0f);
  std::vector<float> x(512);
  for (auto& v : x) v = dist(rng);
  x[7] = 0.0f;
  std::fill(x.begin() + 32, x.begin() + 64, 0.0f);  // an all-zero block
  for (auto act : {ActivationType::kQ8_32, ActivationType::kQ8_256}) {
    const std::size_t bytes = activation_row_bytes(act, 512);
    std::vector<Chunk> want_storage, got_storage;
    std::byte* want = aligned_bytes(want_storage, bytes);
    std::byte* got = aligned_bytes(got_storage, bytes);
    cpu_target("scalar")->quantize[static_cast<int>(act)](x.data(), want, 512);
    for (auto name : available_cpu_targets()) {
      cpu_target(name)->quantize[static_cast<int>(act)](x.data(), got, 512);
      EXPECT_EQ(std::memcmp(got, want, bytes), 0) << name;
    }
  }
}

TEST(QuantMatmul, BatchInvariantOnEveryTarget) {
  // A token's outputs are bit-identical whether it is multiplied alone or among others.
  std::mt19937 rng(9);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  util::ThreadPool pool(2);
  for (const auto& c : kCases) {
    const auto& f = weight_format(c.type);
    const int rows = 37, cols = 4 * f.block_elements, tokens = 11;
    auto bytes = random_blocks(c, rows, cols, rng);
    const WeightMatrix w{c.type, bytes.data(), rows, cols};
    std::vector<float> x(static_cast<std::size_t>(tokens * cols));
    for (auto& v : x) v = dist(rng);
    for (auto name : available_cpu_targets()) {
      const TargetKernels& k = *cpu_target(name);
      std::vector<float> all(static_cast<std::size_t>(tokens * rows)), one(rows);
      matmul(k, pool, w, x.data(), tokens, all.data());
      for (int t = 0; t < tokens; ++t) {
        matmul(k, pool, w, x.data() + t * cols, 1, one.data());
        ASSERT_EQ(0, std::memcmp(one.data(), all.data() + t * rows, rows * sizeof(float)))
            << f.name << " " << name << " token " << t;
      }
    }
  }
}

// The interleaved layouts a target repacks file formats into: on every target (the scalar and
// AVX2 ones included, whose portable kernels read the layout too) the product gives the scalar
// kernel's bits over the file layout, for any token count, and rows dequantize to the same values.
TEST(QuantMatmul, RepackedLayoutsGiveTheScalarKernelsBits) {
  std::mt19937 rng(5);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  util::ThreadPool pool(2);
  const TargetKernels& scalar = *cpu_target("scalar");
  int repacked = 0;
  for (auto packer_name : available_cpu_targets()) {
    const TargetKernels& packer = *cpu_target(packer_name);
    for (const auto& c : kCases) {
      const auto& f = weight_format(c.type);
      const auto& packing = packer.repack[static_cast<int>(c.type)];
      if (packing.fn == nullptr) continue;
      const int group = weight_format(packing.type).interleave;
      // (groups, blocks per row): one group, several, a long row with an odd block count.
      for (const auto& [groups, blocks] : {std::pair{1, 1}, {2, 3}, {3, 7}, {9, 65}}) {
        const int rows = groups * group, cols = blocks * f.block_elements;
        auto bytes = random_blocks(c, rows, cols, rng);
        const WeightMatrix w{c.type, bytes.data(), rows, cols};
        const auto type = repacked_type(packer, w);
        ASSERT_EQ(type, packing.type);
        ++repacked;
        SCOPED_TRACE(std::string(packer_name) + " repacks " + std::string(f.name) + " rows " +
                     std::to_string(rows) + " cols " + std::to_string(cols));
        std::vector<Chunk> storage;
        const WeightMatrix packed =
            repack(packer, pool, w, aligned_bytes(storage, weight_row_bytes(w.type, cols) * rows));
        EXPECT_EQ(packed.type, *type);
        std::vector<float> a(cols), b(cols);
        for (int r = 0; r < rows; ++r) {
          scalar.dequantize[static_cast<int>(w.type)](w, r, a.data());
          scalar.dequantize[static_cast<int>(packed.type)](packed, r, b.data());
          ASSERT_EQ(0, std::memcmp(a.data(), b.data(), cols * sizeof(float))) << "row " << r;
        }
        for (int tokens : {1, 2, 7, 8, 9, 17}) {
          std::vector<float> x(static_cast<std::size_t>(tokens * cols));
          for (auto& v : x) v = dist(rng);
          std::vector<float> want(static_cast<std::size_t>(tokens * rows));
          matmul(scalar, pool, w, x.data(), tokens, want.data());
          for (auto name : available_cpu_targets()) {
            std::vector<float> got(want.size());
            matmul(*cpu_target(name), pool, packed, x.data(), tokens, got.data());
            ASSERT_EQ(0, std::memcmp(want.data(), got.data(), want.size() * sizeof(float)))
                << name << " tokens " << tokens;
          }
        }
        // A fused projection splits on whole groups only, and a matrix of part groups stays in
        // the file's layout.
        EXPECT_EQ(weight_rows(packed, group, rows - group).rows, rows - group);
        EXPECT_THROW(weight_rows(packed, group / 2, group / 2), std::invalid_argument);
        EXPECT_FALSE(repacked_type(packer, WeightMatrix{c.type, bytes.data(), rows - group / 2,
                                                        cols}));
      }
    }
  }
  // The AVX-512 target repacks Q8_0, Q4_0, Q5_0, Q4_K and Q6_K; without it nothing is.
  const auto targets = available_cpu_targets();
  const bool avx512 = std::find(targets.begin(), targets.end(), "avx512") != targets.end();
  EXPECT_EQ(repacked > 0, avx512);
}

// Products of one input run as one job (a layer's q/k/v): formats of different activation forms
// (Q8_32, Q8_256, f32) and layouts side by side, each output the bits of its own product, on
// every target and token count; inputs of other widths are refused.
TEST(QuantMatmul, ProductsOfOneInputEqualTheirOwnProducts) {
  std::mt19937 rng(21);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  util::ThreadPool pool(2);
  const int cols = 512;
  std::vector<std::vector<std::uint8_t>> storage;
  std::vector<WeightMatrix> matrices;
  for (const auto& [type, rows] : {std::pair{WeightType::kQ8_0, 48}, {WeightType::kQ4_K, 40},
                                   {WeightType::kQ6_K, 16}, {WeightType::kQ4_0, 24}}) {
    const QuantCase& c = *std::find_if(std::begin(kCases), std::end(kCases),
                                       [&](const QuantCase& q) { return q.type == type; });
    storage.push_back(random_blocks(c, rows, cols, rng));
    matrices.push_back(WeightMatrix{type, storage.back().data(), rows, cols});
  }
  std::vector<float> f32(static_cast<std::size_t>(8 * cols));
  for (auto& v : f32) v = dist(rng);
  matrices.push_back(WeightMatrix{WeightType::kF32, f32.data(), 8, cols});
  for (auto name : available_cpu_targets()) {
    const TargetKernels& k = *cpu_target(name);
    for (int tokens : {1, 3, 9}) {
      std::vector<float> x(static_cast<std::size_t>(tokens * cols));
      for (auto& v : x) v = dist(rng);
      std::vector<std::vector<float>> together, alone;
      std::vector<Product> products;
      for (const auto& w : matrices) {
        together.emplace_back(static_cast<std::size_t>(tokens * w.rows));
        alone.emplace_back(together.back().size());
        matmul(k, pool, w, x.data(), tokens, alone.back().data());
      }
      for (std::size_t i = 0; i < matrices.size(); ++i)
        products.push_back({&matrices[i], together[i].data()});
      matmul(k, pool, products, x.data(), tokens);
      for (std::size_t i = 0; i < matrices.size(); ++i)
        EXPECT_EQ(together[i], alone[i]) << name << " tokens " << tokens << " product " << i;
    }
  }
  const WeightMatrix narrow{WeightType::kF32, f32.data(), 16, cols / 2};
  std::vector<float> x(cols), y(64);
  const Product mixed[] = {{&matrices.back(), y.data()}, {&narrow, y.data()}};
  EXPECT_THROW(matmul(pool, mixed, x.data(), 1), std::invalid_argument);
}

TEST(QuantMatmul, OwnQuantizersRoundTripWithinTheirStep) {
  // Each format's quantizer, read back by the kernels' dequantization: every value within half a
  // quantization step of the block (plus f16 rounding of the scales).
  std::mt19937 rng(13);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  const struct {
    WeightType type;
    double levels;  // quantization levels across the block's range
  } cases[] = {{WeightType::kQ8_0, 254},
               {WeightType::kQ4_0, 15},
               {WeightType::kQ5_0, 31},
               {WeightType::kQ4_K, 15},
               {WeightType::kQ6_K, 62},
               // The IQ4 levels' widest gap is 24 of the 254 from -127 to 127.
               {WeightType::kIQ4_NL, 254.0 / 24},
               {WeightType::kIQ4_XS, 254.0 / 24}};
  for (const auto& c : cases) {
    ASSERT_TRUE(quant::can_quantize(c.type));
    const int n = 512;
    std::vector<float> x(n), back(n);
    for (auto& v : x) v = dist(rng);
    std::vector<std::byte> q(weight_row_bytes(c.type, n));
    quant::quantize_row(c.type, x.data(), q.data(), n);
    const WeightMatrix w{c.type, q.data(), 1, n};
    weight_row_to_f32(w, 0, back.data());
    double range = 0.0;
    for (float v : x) range = std::max(range, 2.0 * std::abs(static_cast<double>(v)));
    for (int i = 0; i < n; ++i) {
      // Sub-block scales are themselves quantized (6 or 8 bits), so allow a full step.
      EXPECT_NEAR(back[i], x[i], range / c.levels * 1.05) << weight_format(c.type).name << " " << i;
    }
  }
  EXPECT_FALSE(quant::can_quantize(WeightType::kQ2_K));
}

}  // namespace
}  // namespace lmserve::kernels
