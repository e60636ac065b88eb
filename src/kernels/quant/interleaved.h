// Row-interleaved layouts a CPU target repacks a block-quantized matrix into at load: groups of
// Layout::kRows rows stored block by block (group g's block b holds block b of its rows, same
// bytes as the file's layout). One vector then holds the same four values of 8 rows (32 bytes)
// or 16 rows (64 bytes), so a u8 x s8 dot product (VNNI dpbusd) with four broadcast activation
// bytes adds up all the rows in their own lanes: no horizontal sums and one scale vector per
// block, where the row-by-row kernel spends a reduction per row and token.
//
// A Layout describes one interleaved format:
//   static constexpr int kRows;  // rows a group interleaves
//   using Block = the file format's block; using Group = kRows rows' block b (quant/blocks.h);
//   using Format = the file format's portable description (block_dot, dequantize);
//   static void pack(const Block* const* rows, Group& out);   // rows[r]: row r's block
//   static Block unpack(const Group& g, int r);               // row r's block, as in the file
// and, for the vector kernels:
//   static constexpr int kOffset;  // the Group's values minus kOffset are the weights
//   static void unpack_simd(const Group& g, V w[8]);  // w[k]: rows' values 4k..4k+3, V the
//                                                     // kernel's vector (__m256i or __m512i)
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels/quant/blocks.h"
#include "kernels/quant/quant_matmul.h"
#include "kernels/simd.h"

LMSERVE_TARGET_BEGIN
namespace lmserve::kernels::LMSERVE_TARGET_NS {

// The group height of the layouts whose kernels work on 256-bit vectors.
inline constexpr int kGroupRows = 8;

// Groups [g_begin, g_end) of w (a file format) into `out`, laid out as the whole interleaved
// matrix.
template <class Layout>
void repack_groups(const WeightMatrix& w, std::byte* out, int g_begin, int g_end) {
  using Block = typename Layout::Block;
  using Group = typename Layout::Group;
  constexpr int kRows = Layout::kRows;
  const int n_blocks = w.cols / weight_format(w.type).block_elements;
  auto* groups = reinterpret_cast<Group*>(out);
  for (int g = g_begin; g < g_end; ++g) {
    const Block* rows[kRows];
    for (int r = 0; r < kRows; ++r)
      rows[r] = reinterpret_cast<const Block*>(weight_row(w, g * kRows + r));
    for (int b = 0; b < n_blocks; ++b) {
      const Block* blocks[kRows];
      for (int r = 0; r < kRows; ++r) blocks[r] = rows[r] + b;
      Layout::pack(blocks, groups[static_cast<std::size_t>(g) * n_blocks + b]);
    }
  }
}

// Repacking moves 4-byte groups (one row's four values): as words, the load of a large model
// takes a fraction of a second.
inline std::uint32_t load_word(const void* p) {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline void store_word(void* p, std::uint32_t v) { std::memcpy(p, &v, 4); }

// The 16 nibble bytes of a 32-value block (low nibble: element j, high: element j + 16) of
// Rows rows, four bytes of each row in turn: the interleaved form of Q4_0's, IQ4_NL's and Q5_0's
// qs.
template <int Rows>
void interleave_nibbles(const std::uint8_t* const* rows, std::uint8_t* out) {
  for (int r = 0; r < Rows; ++r)
    for (int j = 0; j < 4; ++j) store_word(out + 4 * Rows * j + 4 * r, load_word(rows[r] + 4 * j));
}
template <int Rows>
void deinterleave_nibbles(const std::uint8_t* in, int r, std::uint8_t* out) {
  for (int j = 0; j < 4; ++j) store_word(out + 4 * j, load_word(in + 4 * Rows * j + 4 * r));
}

// The packing of the 32-value formats whose blocks are an f16 d and 16 nibble bytes (Q4_0,
// IQ4_NL) into groups of Rows rows laid out as quant::BlockQ4_0x8 or BlockQ4_0x16.
template <class Block, class Group, int Rows>
struct NibbleGroupPacking {
  static void pack(const Block* const* rows, Group& out) {
    const std::uint8_t* qs[Rows];
    for (int r = 0; r < Rows; ++r) {
      out.d[r] = rows[r]->d;
      qs[r] = rows[r]->qs;
    }
    interleave_nibbles<Rows>(qs, out.qs);
  }
  static Block unpack(const Group& g, int r) {
    Block b;
    b.d = g.d[r];
    deinterleave_nibbles<Rows>(g.qs, r, b.qs);
    return b;
  }
};

template <class Layout>
const typename Layout::Group* interleaved_group(const WeightMatrix& w, int group) {
  return reinterpret_cast<const typename Layout::Group*>(weight_row(w, group * Layout::kRows));
}

template <class Layout>
void dequantize_interleaved(const WeightMatrix& w, int row, float* out) {
  const auto* group = interleaved_group<Layout>(w, row / Layout::kRows);
  const int elements = weight_format(w.type).block_elements;
  for (int b = 0; b < w.cols / elements; ++b) {
    const typename Layout::Block block = Layout::unpack(group[b], row % Layout::kRows);
    Layout::Format::dequantize(reinterpret_cast<const std::byte*>(&block), out + elements * b,
                               elements);
  }
}

// The portable kernel: each row's blocks unpacked and multiplied as the file format's scalar
// kernel does, so it gives the same bits.
template <class Layout>
struct ScalarInterleavedKernel {
  static constexpr int kTokens = 1;
  template <int T>
  static void tile(const typename Layout::Group* group, const std::byte* const* x, int n_blocks,
                   float* y, std::size_t y_stride) {
    using Act = typename Layout::Format::Act;
    for (int t = 0; t < T; ++t) {
      const auto* xb = reinterpret_cast<const Act*>(x[t]);
      for (int r = 0; r < Layout::kRows; ++r) {
        float acc = 0.0f;
        for (int b = 0; b < n_blocks; ++b)
          acc += Layout::Format::block_dot(Layout::unpack(group[b], r), xb[b]);
        y[t * y_stride + r] = acc;
      }
    }
  }
};

// Rows [r_begin, r_end) (whole groups) for n_tokens activation rows: blocks of groups small
// enough to stay in L2 while every tile of Kernel::kTokens tokens reads them.
template <class Layout, class Kernel>
void interleaved_matmul_rows(const WeightMatrix& w, const std::byte* x, std::size_t x_stride,
                             int n_tokens, float* y, int r_begin, int r_end) {
  constexpr int kT = Kernel::kTokens;
  constexpr int kRows = Layout::kRows;
  constexpr std::size_t kBlockBytes = 256 << 10;
  const int n_blocks = w.cols / weight_format(w.type).block_elements;
  const int g_begin = r_begin / kRows, g_end = r_end / kRows;
  const std::size_t group_bytes = weight_row_bytes(w.type, w.cols) * kRows;
  const int groups_per_pass =
      n_tokens <= kT ? g_end - g_begin : std::max(1, static_cast<int>(kBlockBytes / group_bytes));
  const auto y_stride = static_cast<std::size_t>(w.rows);
  for (int gb = g_begin; gb < g_end; gb += groups_per_pass) {
    const int gb_end = std::min(g_end, gb + groups_per_pass);
    for (int t0 = 0; t0 < n_tokens; t0 += kT) {
      const int nt = std::min(kT, n_tokens - t0);
      const std::byte* xs[kT];
      for (int t = 0; t < nt; ++t) xs[t] = x + static_cast<std::size_t>(t0 + t) * x_stride;
      float* yt = y + static_cast<std::size_t>(t0) * y_stride;
      for (int g = gb; g < gb_end; ++g) {
        with_tile_shape<1, kT>(1, nt, [&]<int R, int T>() {
          Kernel::template tile<T>(interleaved_group<Layout>(w, g), xs, n_blocks,
                                   yt + g * kRows, y_stride);
        });
      }
    }
  }
}

#if LMSERVE_HAVE_AVX512
// A tile of several tokens reads its weights slower than one token's tile, slowly enough that the
// hardware prefetcher stops running ahead of it: 8 KiB ahead of `block` it is fetched by hand,
// into L2 (into L1 it evicts the lines in use: half the gain). 4-16 tokens' products from memory
// run 1.3-1.5x faster. A one-token tile is left to the hardware, which keeps up with it, except
// where unpacking is slow enough to fall behind too (Q6_K, k_quants.h kPrefetchOneToken).
template <class Group>
inline void prefetch_ahead(const Group* block) {
  constexpr int kAheadBytes = 8192, kLineBytes = 64;
  const char* ahead = reinterpret_cast<const char*>(block) + kAheadBytes;
  for (int line = 0; line < static_cast<int>(sizeof(Group)); line += kLineBytes)
    _mm_prefetch(ahead + line, _MM_HINT_T1);
}

// Interleaved nibbles as 8 vectors of 4-value groups: w[k] holds the rows' values 4k..4k+3.
inline void nibble_vectors(const std::uint8_t* qs, __m256i w[8]) {
  const __m256i low = _mm256_set1_epi8(0x0F);
  for (int j = 0; j < 4; ++j) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * j));
    w[j] = _mm256_and_si256(v, low);
    w[4 + j] = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
  }
}

// The same for 16 rows (64-byte vectors).
inline void nibble_vectors(const std::uint8_t* qs, __m512i w[8]) {
  const __m512i low = _mm512_set1_epi8(0x0F);
  for (int j = 0; j < 4; ++j) {
    const __m512i v = _mm512_loadu_si512(qs + 64 * j);
    w[j] = _mm512_and_si512(v, low);
    w[4 + j] = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
  }
}

// The VNNI kernel: per block, 8 dpbusd of the group's rows' values with broadcast activation
// bytes give the rows' exact integer dot products in their lanes; each is then scaled and added
// as the scalar kernel does ((dw * dx) * dot, then the sum over blocks), so both give the same
// bits. The tokens are the inner loop: T independent dpbusd chains side by side keep the VNNI
// units busy without relying on the out-of-order window to find one token's chain behind
// another's. A tile of several tokens is bound by instructions, not by the dot products (which
// run at the same rate on 256- and 512-bit vectors), hence 16-row groups on 512-bit vectors
// where a format has them, and the activation bytes broadcast by dpbusd itself.
template <class Layout>
struct InterleavedVnniKernel {
  // The lanes a VNNI kernel works in: 8 rows on 256-bit vectors, 16 on 512-bit ones.
  using V = std::conditional_t<Layout::kRows == 16, Lanes16, Lanes8>;
  static_assert(Layout::kRows == sizeof(typename V::F) / sizeof(float));
  static constexpr int kTokens = 8;
  template <int T>
  static void tile(const typename Layout::Group* group, const std::byte* const* x, int n_blocks,
                   float* y, std::size_t y_stride) {
    using Act = quant::BlockQ8_32;
    typename V::F acc[T];
    for (auto& a : acc) a = V::zero();
    for (int b = 0; b < n_blocks; ++b) {
      if constexpr (T > 1) prefetch_ahead(group + b);
      typename V::I w[8];
      Layout::unpack_simd(group[b], w);
      const typename V::F dw = V::load(group[b].d);
      const Act* xb[T];
      typename V::I dot[T];
      for (int t = 0; t < T; ++t) {
        xb[t] = reinterpret_cast<const Act*>(x[t]) + b;
        // The weights' offset, taken back: -kOffset * sum(x), ready in the block for Q8_0's.
        if constexpr (Layout::kOffset == 128) {
          dot[t] = V::splat(xb[t]->sum_neg128);
        } else {
          dot[t] = V::splat(-Layout::kOffset * xb[t]->sum);
        }
      }
      for (int k = 0; k < 8; ++k)
        for (int t = 0; t < T; ++t) dot[t] = dpbusd_broadcast(dot[t], w[k], xb[t]->qs + 4 * k);
      for (int t = 0; t < T; ++t) {
        const typename V::F scale = V::mul(dw, V::splat(xb[t]->d));
        acc[t] = V::add(acc[t], V::mul(scale, V::to_float(dot[t])));
      }
    }
    for (int t = 0; t < T; ++t) V::store(y + t * y_stride, acc[t]);
  }
};

template <class Layout>
using InterleavedKernel = InterleavedVnniKernel<Layout>;
#else
template <class Layout>
using InterleavedKernel = ScalarInterleavedKernel<Layout>;
#endif

}  // namespace lmserve::kernels::LMSERVE_TARGET_NS
LMSERVE_TARGET_END
