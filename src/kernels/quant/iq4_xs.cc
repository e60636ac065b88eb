// GGUF IQ4_XS: super-blocks of 256 four-bit indices into IQ4_NL's table of levels, in 8
// sub-blocks of 32 with six-bit scales under an f16 scale d (quant/blocks.h); and IQ4_XSx8, its
// groups of 8 rows interleaved (quant/interleaved.h).
#include <algorithm>
#include <iterator>

#include "kernels/quant/k_quants.h"
#include "kernels/quant/legacy_quants.h"

LMSERVE_TARGET_BEGIN
namespace lmserve::kernels::LMSERVE_TARGET_NS {

namespace {

struct IQ4_XSLayout {
  using Block = quant::BlockIQ4_XS;
  static constexpr int kSubBlocks = 8;
  static constexpr bool kHasMin = false;
  static constexpr bool kSigned = true;
  static void unpack(const Block& b, std::int8_t* q, int* scales, [[maybe_unused]] int* mins) {
    for (int j = 0; j < 8; ++j) {
      scales[j] = quant::iq4xs_scale(b, j);
      unpack_iq4_levels(b.qs + 16 * j, q + 32 * j);
    }
  }
#if LMSERVE_HAVE_AVX2
  static void unpack_simd(const Block& b, KUnpacked& u) {
    for (int j = 0; j < 8; ++j) {
      u.q[j] = iq4_levels_simd(b.qs + 16 * j);
      u.scales[2 * j] = u.scales[2 * j + 1] = static_cast<std::int16_t>(quant::iq4xs_scale(b, j));
    }
    std::fill(std::begin(u.mins), std::end(u.mins), std::int16_t{0});
  }
#endif
};
using IQ4_XS = KFormat<IQ4_XSLayout>;

struct IQ4_XSx8Layout {
  static constexpr int kRows = kGroupRows;
  using Block = quant::BlockIQ4_XS;
  using Group = quant::BlockIQ4_XSx8;
  using Format = IQ4_XS;
  static constexpr int kSubBlocks = 8;
  static constexpr bool kHasMin = false;
  static constexpr int kOffset = 128;  // levels + 128: unsigned bytes for dpbusd
  static constexpr bool kPrefetchOneToken = false;

  static void pack(const Block* const* rows, Group& out) {
    for (int r = 0; r < kGroupRows; ++r) {
      const Block& b = *rows[r];
      out.d[r] = b.d;
      out.scales_h[r] = b.scales_h;
      out.scales_l[r] = load_word(b.scales_l);
      for (int k = 0; k < 32; ++k) store_word(out.qs + 32 * k + 4 * r, load_word(b.qs + 4 * k));
    }
  }
  static Block unpack(const Group& g, int r) {
    Block b;
    b.d = g.d[r];
    b.scales_h = g.scales_h[r];
    store_word(b.scales_l, g.scales_l[r]);
    for (int k = 0; k < 32; ++k) store_word(b.qs + 4 * k, load_word(g.qs + 32 * k + 4 * r));
    return b;
  }
#if LMSERVE_HAVE_AVX512
  // Sub-block j: its values 4i..4i+3 are the low nibbles of word 4j + i, values 16 + 4i.. the
  // high ones.
  static void unpack_sub(const Group& g, int j, __m256i q[8]) {
    const __m256i levels = iq4_levels_u8(), low4 = _mm256_set1_epi8(0x0F);
    for (int i = 0; i < 4; ++i) {
      const auto* word = reinterpret_cast<const __m256i*>(g.qs + 32 * (4 * j + i));
      const __m256i v = _mm256_loadu_si256(word);
      q[i] = _mm256_shuffle_epi8(levels, _mm256_and_si256(v, low4));
      q[4 + i] = _mm256_shuffle_epi8(levels, _mm256_and_si256(_mm256_srli_epi16(v, 4), low4));
    }
  }
  // scales[j]: the rows' scales of sub-block j (-32..31); pairs[j]: the same in both 16-bit
  // halves of each lane (the activations' sums 2j and 2j + 1 are sub-block j's two halves).
  static void scales_simd(const Group& g, __m256i scales[8], __m256i pairs[8]) {
    const __m256i low = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g.scales_l));
    const __m256i high =
        _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g.scales_h)));
    const __m256i low4 = _mm256_set1_epi32(0xF), two = _mm256_set1_epi32(3);
    const __m256i bias = _mm256_set1_epi32(32), low16 = _mm256_set1_epi32(0xFFFF);
    for (int j = 0; j < 8; ++j) {
      const __m256i l = _mm256_and_si256(_mm256_srli_epi32(low, 4 * j), low4);
      const __m256i h = _mm256_and_si256(_mm256_srli_epi32(high, 2 * j), two);
      scales[j] = _mm256_sub_epi32(_mm256_or_si256(l, _mm256_slli_epi32(h, 4)), bias);
      pairs[j] = _mm256_or_si256(_mm256_and_si256(scales[j], low16),
                                 _mm256_slli_epi32(scales[j], 16));
    }
  }
#endif
};

}  // namespace

void dequantize_IQ4_XS(const WeightMatrix& w, int row, float* out) {
  IQ4_XS::dequantize(weight_row(w, row), out, w.cols);
}

void matmul_rows_IQ4_XS(const WeightMatrix& w, const std::byte* x, std::size_t x_stride,
                        int n_tokens, float* y, int r_begin, int r_end) {
  quantized_matmul_rows<KKernel<IQ4_XSLayout>>(w, x, x_stride, n_tokens, y, r_begin, r_end);
}

void repack_IQ4_XSx8(const WeightMatrix& w, std::byte* out, int g_begin, int g_end) {
  repack_groups<IQ4_XSx8Layout>(w, out, g_begin, g_end);
}

void dequantize_IQ4_XSx8(const WeightMatrix& w, int row, float* out) {
  dequantize_interleaved<IQ4_XSx8Layout>(w, row, out);
}

void matmul_rows_IQ4_XSx8(const WeightMatrix& w, const std::byte* x, std::size_t x_stride,
                          int n_tokens, float* y, int r_begin, int r_end) {
  interleaved_matmul_rows<IQ4_XSx8Layout, KInterleavedKernel<IQ4_XSx8Layout>>(
      w, x, x_stride, n_tokens, y, r_begin, r_end);
}

}  // namespace lmserve::kernels::LMSERVE_TARGET_NS
LMSERVE_TARGET_END
