// GGUF Q6_K: 6-bit values (biased by 32) in 16 sub-blocks of 16 with int8 scales; low nibbles in
// ql, high two bits in qh. And Q6_Kx8, its groups of 8 rows interleaved (quant/interleaved.h).
#include <cstring>

#include "kernels/quant/k_quants.h"

LMSERVE_TARGET_BEGIN
namespace lmserve::kernels::LMSERVE_TARGET_NS {

namespace {

struct Q6_KLayout {
  using Block = quant::BlockQ6_K;
  static constexpr int kSubBlocks = 16;
  static constexpr bool kHasMin = false;
  static void unpack(const Block& b, std::int8_t* q, int* scales, [[maybe_unused]] int* mins) {
    for (int j = 0; j < 16; ++j) scales[j] = b.scales[j];
    // Each half of 128 values: 64 bytes of ql and 32 of qh; value 32 * k + l (k < 4, l < 32)
    // takes nibble k / 2 of ql[l + 32 * (k % 2)] and bits 2k, 2k + 1 of qh[l].
    for (int half = 0; half < 2; ++half) {
      const std::uint8_t* ql = b.ql + 64 * half;
      const std::uint8_t* qh = b.qh + 32 * half;
      for (int k = 0; k < 4; ++k) {
        for (int l = 0; l < 32; ++l) {
          const int low = (ql[l + 32 * (k % 2)] >> (4 * (k / 2))) & 0xF;
          const int high = (qh[l] >> (2 * k)) & 3;
          q[128 * half + 32 * k + l] = static_cast<std::int8_t>((low | (high << 4)) - 32);
        }
      }
    }
  }
#if LMSERVE_HAVE_AVX2
  static void unpack_simd(const Block& b, KUnpacked& u) {
    for (int j = 0; j < 16; ++j) {
      u.scales[j] = b.scales[j];
      u.mins[j] = static_cast<std::int16_t>(32 * b.scales[j]);  // values are q - 32
    }
    const __m256i low4 = _mm256_set1_epi8(0x0F), two = _mm256_set1_epi8(3);
    for (int half = 0; half < 2; ++half) {
      const auto* ql = reinterpret_cast<const __m256i*>(b.ql + 64 * half);
      const __m256i a = _mm256_loadu_si256(ql), c = _mm256_loadu_si256(ql + 1);
      const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh + 32 * half));
      auto high = [&](int k) {
        return _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2 * k), two), 4);
      };
      u.q[4 * half] = _mm256_or_si256(_mm256_and_si256(a, low4), high(0));
      u.q[4 * half + 1] = _mm256_or_si256(_mm256_and_si256(c, low4), high(1));
      u.q[4 * half + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(a, 4), low4), high(2));
      u.q[4 * half + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(c, 4), low4), high(3));
    }
  }
#endif
};
using Q6_K = KFormat<Q6_KLayout>;

struct Q6_Kx8Layout {
  static constexpr int kRows = kGroupRows;
  using Block = quant::BlockQ6_K;
  using Group = quant::BlockQ6_Kx8;
  using Format = Q6_K;
  static constexpr int kSubBlocks = 16;
  static constexpr bool kHasMin = false;
  static constexpr int kOffset = 32;
  // Six-bit values take twice Q4_K's unpacking a byte: one thread's decode product from memory
  // 21 -> 30 GB/s with the prefetch.
  static constexpr bool kPrefetchOneToken = true;

  // The file's value 128 h + 32 k + 4 m + i (half h, quarter k, group m < 8) has its low nibble
  // in nibble k / 2 of ql[64 h + 32 (k % 2) + 4 m + i] and its high bits at bit 2k of
  // qh[32 h + 4 m + i]; here it is vector v = 32 h + 8 k + m, so word by word:
  static void pack(const Block* const* rows, Group& out) {
    std::memset(out.qh, 0, sizeof(out.qh));
    for (int r = 0; r < kGroupRows; ++r) {
      const Block& b = *rows[r];
      out.d[r] = b.d;
      for (int j = 0; j < 16; ++j) out.scales[8 * j + r] = b.scales[j];
      for (int k = 0; k < 4; ++k) {
        for (int m = 0; m < 8; ++m) {
          const int shift = 4 * (k / 2), at = 32 * (k % 2) + 4 * m;
          const std::uint32_t h0 = load_word(b.ql + at) >> shift & 0x0F0F0F0Fu;
          const std::uint32_t h1 = load_word(b.ql + 64 + at) >> shift & 0x0F0F0F0Fu;
          store_word(out.ql + 32 * (8 * k + m) + 4 * r, h0 | h1 << 4);
          for (int h = 0; h < 2; ++h) {
            const std::uint32_t bits = load_word(b.qh + 32 * h + 4 * m) >> (2 * k) & 0x03030303u;
            std::uint8_t* word = out.qh + 32 * (8 * (k % 2) + m) + 4 * r;
            store_word(word, load_word(word) | bits << (2 * (2 * h + k / 2)));
          }
        }
      }
    }
  }
  static Block unpack(const Group& g, int r) {
    Block b{};
    b.d = g.d[r];
    for (int j = 0; j < 16; ++j) b.scales[j] = g.scales[8 * j + r];
    for (int k = 0; k < 4; ++k) {
      for (int m = 0; m < 8; ++m) {
        const int shift = 4 * (k / 2), at = 32 * (k % 2) + 4 * m;
        const std::uint32_t low = load_word(g.ql + 32 * (8 * k + m) + 4 * r);
        const std::uint32_t high = load_word(g.qh + 32 * (8 * (k % 2) + m) + 4 * r);
        for (int h = 0; h < 2; ++h) {
          store_word(b.ql + 64 * h + at,
                     load_word(b.ql + 64 * h + at) | (low >> (4 * h) & 0x0F0F0F0Fu) << shift);
          const std::uint32_t bits = high >> (2 * (2 * h + k / 2)) & 0x03030303u;
          store_word(b.qh + 32 * h + 4 * m, load_word(b.qh + 32 * h + 4 * m) | bits << (2 * k));
        }
      }
    }
    return b;
  }
#if LMSERVE_HAVE_AVX512
  // Sub-block j: vectors v = 4j..4j+3.
  static void unpack_sub(const Group& g, int j, __m256i q[4]) {
    const __m256i low4 = _mm256_set1_epi8(0x0F), high2 = _mm256_set1_epi8(0x30);
    for (int i = 0; i < 4; ++i) {
      const int v = 4 * j + i;
      __m256i low = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g.ql + 32 * (v % 32)));
      if (v >= 32) low = _mm256_srli_epi16(low, 4);
      // The two high bits sit at bit 2 * (v / 16): moved to bits 4..5.
      __m256i high = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g.qh + 32 * (v % 16)));
      const int at = 2 * (v / 16);
      high = at < 4 ? _mm256_slli_epi16(high, 4 - at) : _mm256_srli_epi16(high, at - 4);
      // low & 0x0F | high & 0x30 (ternary logic 0xF8: A | B & C).
      q[i] = _mm256_ternarylogic_epi32(_mm256_and_si256(low, low4), high, high2, 0xF8);
    }
  }
  // pairs[p]: the scales of sub-blocks 2p and 2p + 1 (one per 16 activations), for the offset.
  static void scales_simd(const Group& g, __m256i scales[16], __m256i pairs[8]) {
    for (int j = 0; j < 16; ++j) {
      scales[j] =
          _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(g.scales + 8 * j)));
    }
    const __m256i low16 = _mm256_set1_epi32(0xFFFF);
    for (int p = 0; p < 8; ++p) {
      pairs[p] = _mm256_or_si256(_mm256_and_si256(scales[2 * p], low16),
                                 _mm256_slli_epi32(scales[2 * p + 1], 16));
    }
  }
#endif
};

}  // namespace

void dequantize_Q6_K(const WeightMatrix& w, int row, float* out) {
  Q6_K::dequantize(weight_row(w, row), out, w.cols);
}

void matmul_rows_Q6_K(const WeightMatrix& w, const std::byte* x, std::size_t x_stride, int n_tokens,
                      float* y, int r_begin, int r_end) {
  quantized_matmul_rows<KKernel<Q6_KLayout>>(w, x, x_stride, n_tokens, y, r_begin, r_end);
}

void repack_Q6_Kx8(const WeightMatrix& w, std::byte* out, int g_begin, int g_end) {
  repack_groups<Q6_Kx8Layout>(w, out, g_begin, g_end);
}

void dequantize_Q6_Kx8(const WeightMatrix& w, int row, float* out) {
  dequantize_interleaved<Q6_Kx8Layout>(w, row, out);
}

void matmul_rows_Q6_Kx8(const WeightMatrix& w, const std::byte* x, std::size_t x_stride,
                        int n_tokens, float* y, int r_begin, int r_end) {
  interleaved_matmul_rows<Q6_Kx8Layout, KInterleavedKernel<Q6_Kx8Layout>>(w, x, x_stride, n_tokens,
                                                                          y, r_begin, r_end);
}

}  // namespace lmserve::kernels::LMSERVE_TARGET_NS
LMSERVE_TARGET_END
