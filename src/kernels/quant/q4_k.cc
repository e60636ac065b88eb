// GGUF Q4_K: 4-bit values in 8 sub-blocks of 32, each with a 6-bit scale and minimum. And
// Q4_Kx8, its groups of 8 rows interleaved (quant/interleaved.h).
#include <cstring>

#include "kernels/quant/k_quants.h"

LMSERVE_TARGET_BEGIN
namespace lmserve::kernels::LMSERVE_TARGET_NS {

namespace {

struct Q4_KLayout {
  using Block = quant::BlockQ4_K;
  static constexpr int kSubBlocks = 8;
  static constexpr bool kHasMin = true;
  static void unpack(const Block& b, std::int8_t* q, int* scales, [[maybe_unused]] int* mins) {
    for (int j = 0; j < 8; ++j) quant::k4_scale_min(b.scales, j, scales[j], mins[j]);
    // Each 64 values: 32 bytes, low nibbles first.
    for (int chunk = 0; chunk < 4; ++chunk) {
      const std::uint8_t* qs = b.qs + 32 * chunk;
      for (int l = 0; l < 32; ++l) {
        q[64 * chunk + l] = static_cast<std::int8_t>(qs[l] & 0xF);
        q[64 * chunk + 32 + l] = static_cast<std::int8_t>(qs[l] >> 4);
      }
    }
  }
#if LMSERVE_HAVE_AVX2
  static void unpack_simd(const Block& b, KUnpacked& u) {
    k4_unpacked_scales(b.scales, u);
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    for (int c = 0; c < 4; ++c) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs) + c);
      u.q[2 * c] = _mm256_and_si256(v, low4);
      u.q[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
    }
  }
#endif
};
using Q4_K = KFormat<Q4_KLayout>;

struct Q4_Kx8Layout {
  static constexpr int kRows = kGroupRows;
  using Block = quant::BlockQ4_K;
  using Group = quant::BlockQ4_Kx8;
  using Format = Q4_K;
  static constexpr int kSubBlocks = 8;
  static constexpr bool kHasMin = true;
  static constexpr int kOffset = 0;
  static constexpr bool kPrefetchOneToken = false;  // the hardware keeps up (measured: ~8% slower)

  static void pack(const Block* const* rows, Group& out) {
    std::memset(&out, 0, sizeof(out));
    for (int r = 0; r < kGroupRows; ++r) {
      const Block& b = *rows[r];
      out.d[r] = b.d;
      out.dmin[r] = b.dmin;
      for (int j = 0; j < 8; ++j) {
        int scale, min;
        quant::k4_scale_min(b.scales, j, scale, min);
        out.sm_low[8 * j + r] = static_cast<std::uint8_t>((scale & 0xF) | (min & 0xF) << 4);
        out.sm_high[j] |= static_cast<std::uint32_t>((scale >> 4) | (min >> 4) << 2) << (4 * r);
      }
      for (int j = 0; j < 32; ++j) store_word(out.qs + 32 * j + 4 * r, load_word(b.qs + 4 * j));
    }
  }
  static Block unpack(const Group& g, int r) {
    Block b{};
    b.d = g.d[r];
    b.dmin = g.dmin[r];
    int scale[8], min[8];
    for (int j = 0; j < 8; ++j) {
      const int low = g.sm_low[8 * j + r], high = static_cast<int>(g.sm_high[j] >> (4 * r));
      scale[j] = (low & 0xF) | (high & 3) << 4;
      min[j] = low >> 4 | (high >> 2 & 3) << 4;
    }
    // Back to the file's 12-byte packing (see quant::k4_scale_min).
    for (int j = 0; j < 4; ++j) {
      b.scales[j] = static_cast<std::uint8_t>(scale[j] | (scale[j + 4] >> 4) << 6);
      b.scales[j + 4] = static_cast<std::uint8_t>(min[j] | (min[j + 4] >> 4) << 6);
      b.scales[j + 8] = static_cast<std::uint8_t>((scale[j + 4] & 0xF) | (min[j + 4] & 0xF) << 4);
    }
    for (int j = 0; j < 32; ++j) store_word(b.qs + 4 * j, load_word(g.qs + 32 * j + 4 * r));
    return b;
  }
#if LMSERVE_HAVE_AVX512
  // Sub-block j: the low (j even) or high nibbles of qs vectors 8 (j / 2) .. 8 (j / 2) + 7.
  static void unpack_sub(const Group& g, int j, __m256i q[8]) {
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    for (int i = 0; i < 8; ++i) {
      __m256i v =
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g.qs + 32 * (8 * (j / 2) + i)));
      if (j % 2 == 1) v = _mm256_srli_epi16(v, 4);
      q[i] = _mm256_and_si256(v, low4);
    }
  }
  // pairs[p]: sub-block p's minimum twice (bsums 2p and 2p + 1 are its two halves).
  // All 8 sub-blocks of the 8 rows are decoded at once as bytes [sub-block][row], then widened:
  // a third of the instructions of decoding them sub-block by sub-block.
  static void scales_simd(const Group& g, __m256i scales[8], __m256i pairs[8]) {
    const __m256i low4 = _mm256_set1_epi8(0x0F), two = _mm256_set1_epi8(3);
    // sm_high[j] holds row r's two high bits of scale and of minimum in nibble r: bytes of the
    // even rows' nibbles and of the odd rows', interleaved, give [j][r] bytes (j = 0, 1, 4, 5
    // in `lo`, 2, 3, 6, 7 in `hi`: unpacking works within 128-bit lanes).
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g.sm_high));
    const __m256i even = _mm256_and_si256(h, low4);
    const __m256i odd = _mm256_and_si256(_mm256_srli_epi16(h, 4), low4);
    const __m256i l0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g.sm_low));
    const __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g.sm_low + 32));
    const __m256i high[2] = {_mm256_unpacklo_epi8(even, odd), _mm256_unpackhi_epi8(even, odd)};
    const __m256i low[2] = {_mm256_permute2x128_si256(l0, l1, 0x20),
                            _mm256_permute2x128_si256(l0, l1, 0x31)};
    constexpr int kSubBlock[2][4] = {{0, 1, 4, 5}, {2, 3, 6, 7}};
    for (int half = 0; half < 2; ++half) {
      const __m256i scale =
          _mm256_or_si256(_mm256_and_si256(low[half], low4),
                          _mm256_slli_epi16(_mm256_and_si256(high[half], two), 4));
      const __m256i min = _mm256_or_si256(
          _mm256_and_si256(_mm256_srli_epi16(low[half], 4), low4),
          _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(high[half], 2), two), 4));
      for (int lane = 0; lane < 2; ++lane) {
        const __m128i s =
            lane == 0 ? _mm256_castsi256_si128(scale) : _mm256_extracti128_si256(scale, 1);
        const __m128i m =
            lane == 0 ? _mm256_castsi256_si128(min) : _mm256_extracti128_si256(min, 1);
        const int j = kSubBlock[half][2 * lane];
        scales[j] = _mm256_cvtepu8_epi32(s);
        scales[j + 1] = _mm256_cvtepu8_epi32(_mm_unpackhi_epi64(s, s));
        // Each row's minimum in both 16-bit halves of its lane.
        const __m256i m16 = _mm256_cvtepu8_epi16(m);  // [j rows | j + 1 rows]
        const __m256i dup_low = _mm256_unpacklo_epi16(m16, m16);
        const __m256i dup_high = _mm256_unpackhi_epi16(m16, m16);
        pairs[j] = _mm256_permute2x128_si256(dup_low, dup_high, 0x20);
        pairs[j + 1] = _mm256_permute2x128_si256(dup_low, dup_high, 0x31);
      }
    }
  }
#endif
};

}  // namespace

void dequantize_Q4_K(const WeightMatrix& w, int row, float* out) {
  Q4_K::dequantize(weight_row(w, row), out, w.cols);
}

void matmul_rows_Q4_K(const WeightMatrix& w, const std::byte* x, std::size_t x_stride, int n_tokens,
                      float* y, int r_begin, int r_end) {
  quantized_matmul_rows<KKernel<Q4_KLayout>>(w, x, x_stride, n_tokens, y, r_begin, r_end);
}

void repack_Q4_Kx8(const WeightMatrix& w, std::byte* out, int g_begin, int g_end) {
  repack_groups<Q4_Kx8Layout>(w, out, g_begin, g_end);
}

void dequantize_Q4_Kx8(const WeightMatrix& w, int row, float* out) {
  dequantize_interleaved<Q4_Kx8Layout>(w, row, out);
}

void matmul_rows_Q4_Kx8(const WeightMatrix& w, const std::byte* x, std::size_t x_stride,
                        int n_tokens, float* y, int r_begin, int r_end) {
  interleaved_matmul_rows<Q4_Kx8Layout, KInterleavedKernel<Q4_Kx8Layout>>(w, x, x_stride, n_tokens,
                                                                          y, r_begin, r_end);
}

}  // namespace lmserve::kernels::LMSERVE_TARGET_NS
LMSERVE_TARGET_END
