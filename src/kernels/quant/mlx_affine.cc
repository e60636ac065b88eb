// MLX affine quantization (mlx-lm safetensors), 2, 3, 4, 5, 6 and 8 bits: each row is one
// little-endian, LSB-first bit stream of codes q (32 codes fill `bits` uint32 words, so every
// group of 32/64/128 starts on a word), and group g of row r has its own scale and bias in
// w.scales / w.biases: w = scale * q + bias (docs: api-contract §6.4-6.5).
//
// The kernel multiplies with Q8_32 activations: a group's contribution is
//   scale * sum_b d_b * (c . x_b) + bias' * sum_b s_b   over its 32-value activation blocks b,
// with codes kept as signed bytes c = q - 2^(bits-1) (so 8-bit codes fit int8 and every width
// uses the same int8 dot) and the offset folded into bias' = bias + 2^(bits-1) * scale.
#include <cstdint>
#include <vector>

#include "kernels/convert.h"
#include "kernels/quant/blocks.h"
#include "kernels/quant/quant_matmul.h"
#include "kernels/simd.h"

LMSERVE_TARGET_BEGIN
namespace lmserve::kernels::LMSERVE_TARGET_NS {

namespace {

// The 32 codes starting at p (Bits * 4 bytes), as q - 2^(Bits-1).
template <int Bits>
void unpack32(const std::uint8_t* p, std::int8_t* c) {
#if LMSERVE_HAVE_AVX2
  if constexpr (Bits == 8) {  // q - 128 is q with its top bit flipped
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(c),
                        _mm256_xor_si256(v, _mm256_set1_epi8(static_cast<char>(0x80))));
    return;
  }
  if constexpr (Bits == 4) {  // element 2j: low nibble of byte j; element 2j + 1: its high one
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i nibble = _mm_set1_epi8(0x0F), eight = _mm_set1_epi8(8);
    const __m128i lo = _mm_and_si128(v, nibble), hi = _mm_and_si128(_mm_srli_epi16(v, 4), nibble);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(c), _mm_sub_epi8(_mm_unpacklo_epi8(lo, hi), eight));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(c + 16),
                     _mm_sub_epi8(_mm_unpackhi_epi8(lo, hi), eight));
    return;
  }
#endif
  constexpr int kOffset = 1 << (Bits - 1);
  constexpr std::uint32_t kMask = (1u << Bits) - 1;
  std::uint32_t acc = 0;
  int have = 0;
  for (int j = 0; j < 32; ++j) {
    if (have < Bits) {  // one more byte always suffices: Bits <= 8
      acc |= static_cast<std::uint32_t>(*p++) << have;
      have += 8;
    }
    c[j] = static_cast<std::int8_t>(static_cast<int>(acc & kMask) - kOffset);
    acc >>= Bits;
    have -= Bits;
  }
}

float group_param(const void* p, WeightType type, std::size_t i) {
  switch (type) {
    case WeightType::kF16:
      return f16_to_f32(static_cast<const std::uint16_t*>(p)[i]);
    case WeightType::kBF16:
      return bf16_to_f32(static_cast<const std::uint16_t*>(p)[i]);
    default:
      return static_cast<const float*>(p)[i];
  }
}

// One row's unpacked codes, scales and offset-folded biases times one activation row.
float row_dot(const std::int8_t* codes, const float* scale, const float* bias, int n_groups,
              int blocks_per_group, const quant::BlockQ8_32* x) {
#if LMSERVE_HAVE_AVX2
  // Eight f32 lanes per row: each block adds its 32-bit lane sums times scale * d.
  __m256 acc = _mm256_setzero_ps();
  float bias_acc = 0.0f;
  for (int g = 0, b = 0; g < n_groups; ++g) {
    float sum = 0.0f;
    for (int i = 0; i < blocks_per_group; ++i, ++b) {
      const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + b * 32));
      const __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].qs));
      // |c| (at most 128, unsigned) times x with c's sign; activations stay within +-127.
      const __m256i dot =
          dot_u8_s8(_mm256_setzero_si256(), _mm256_sign_epi8(c, c), _mm256_sign_epi8(xq, c));
      acc = _mm256_fmadd_ps(_mm256_set1_ps(scale[g] * x[b].d), _mm256_cvtepi32_ps(dot), acc);
      sum += x[b].s;
    }
    bias_acc += bias[g] * sum;
  }
  return hsum(acc) + bias_acc;
#else
  float acc = 0.0f;
  for (int g = 0, b = 0; g < n_groups; ++g) {
    float dot = 0.0f, sum = 0.0f;
    for (int i = 0; i < blocks_per_group; ++i, ++b) {
      dot += x[b].d * static_cast<float>(int8_dot(codes + b * 32, x[b].qs, 32));
      sum += x[b].s;
    }
    acc += scale[g] * dot + bias[g] * sum;
  }
  return acc;
#endif
}

template <int Bits>
struct MlxAffine {
  static constexpr int kOffset = 1 << (Bits - 1);
  static constexpr int kWordBytes = Bits * 4;  // bytes of 32 codes

  // Row r's signed codes (w.cols) and its per-group scale and offset-folded bias.
  static void unpack_row(const WeightMatrix& w, int r, std::int8_t* codes, float* scale,
                         float* bias) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(weight_row(w, r));
    for (int b = 0; b < w.cols / 32; ++b) unpack32<Bits>(p + b * kWordBytes, codes + b * 32);
    const int n_groups = w.cols / w.group_size;
    const std::size_t first = static_cast<std::size_t>(r) * static_cast<std::size_t>(n_groups);
    for (int g = 0; g < n_groups; ++g) {
      scale[g] = group_param(w.scales, w.scale_type, first + g);
      bias[g] = group_param(w.biases, w.scale_type, first + g) + kOffset * scale[g];
    }
  }

  static void matmul_rows(const WeightMatrix& w, const std::byte* x, std::size_t x_stride,
                          int n_tokens, float* y, int r_begin, int r_end) {
    const int n_groups = w.cols / w.group_size;
    const int blocks_per_group = w.group_size / 32;
    // Grown once per thread to the widest row seen; a row is unpacked once for all tokens.
    thread_local std::vector<std::int8_t> codes;
    thread_local std::vector<float> scale, bias;
    if (codes.size() < static_cast<std::size_t>(w.cols)) codes.resize(w.cols);
    if (scale.size() < static_cast<std::size_t>(n_groups)) {
      scale.resize(n_groups);
      bias.resize(n_groups);
    }
    for (int r = r_begin; r < r_end; ++r) {
      unpack_row(w, r, codes.data(), scale.data(), bias.data());
      for (int t = 0; t < n_tokens; ++t) {
        const auto* xb =
            reinterpret_cast<const quant::BlockQ8_32*>(x + static_cast<std::size_t>(t) * x_stride);
        y[static_cast<std::size_t>(t) * static_cast<std::size_t>(w.rows) + r] =
            row_dot(codes.data(), scale.data(), bias.data(), n_groups, blocks_per_group, xb);
      }
    }
  }

  // Exactly MLX's dequantization in f32: scale * q + bias.
  static void dequantize(const WeightMatrix& w, int row, float* out) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(weight_row(w, row));
    const std::size_t first =
        static_cast<std::size_t>(row) * static_cast<std::size_t>(w.cols / w.group_size);
    std::int8_t c[32];
    for (int b = 0; b < w.cols / 32; ++b) {
      unpack32<Bits>(p + b * kWordBytes, c);
      const std::size_t g = first + static_cast<std::size_t>(b * 32 / w.group_size);
      const float s = group_param(w.scales, w.scale_type, g);
      const float bias = group_param(w.biases, w.scale_type, g);
      for (int j = 0; j < 32; ++j) out[b * 32 + j] = s * static_cast<float>(c[j] + kOffset) + bias;
    }
  }
};

}  // namespace

#define LMSERVE_MLX_FORMAT(bits)                                                              \
  void dequantize_MLX##bits(const WeightMatrix& w, int row, float* out) {                     \
    MlxAffine<bits>::dequantize(w, row, out);                                                 \
  }                                                                                           \
  void matmul_rows_MLX##bits(const WeightMatrix& w, const std::byte* x, std::size_t x_stride, \
                             int n_tokens, float* y, int r_begin, int r_end) {                \
    MlxAffine<bits>::matmul_rows(w, x, x_stride, n_tokens, y, r_begin, r_end);                \
  }
LMSERVE_MLX_FORMAT(2)
LMSERVE_MLX_FORMAT(3)
LMSERVE_MLX_FORMAT(4)
LMSERVE_MLX_FORMAT(5)
LMSERVE_MLX_FORMAT(6)
LMSERVE_MLX_FORMAT(8)
#undef LMSERVE_MLX_FORMAT

}  // namespace lmserve::kernels::LMSERVE_TARGET_NS
LMSERVE_TARGET_END
