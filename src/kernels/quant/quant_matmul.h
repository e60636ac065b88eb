// The loop every quantized format's matmul shares (compiled per CPU target): tiles of up to
// Kernel::kRows weight rows x Kernel::kTokens activation rows, over blocks of weight rows
// small enough to stay in L2 while every tile of tokens reads them.
//
// A Kernel provides kRows, kTokens and
//   template <int R, int T> static void tile(const std::byte* const* w, const std::byte* const* x,
//                                            int n_blocks, float* out);   // out[r * T + t]
// which must compute each (r, t) with the same operations whatever R and T are, so a token's
// result does not depend on how many others share its product (batch invariance).
#pragma once

#include <algorithm>
#include <cstddef>

#include "kernels/matmul.h"
#include "kernels/target.h"
#include "kernels/weight_format.h"

LMSERVE_TARGET_BEGIN
namespace lmserve::kernels::LMSERVE_TARGET_NS {

// Calls fn.template operator()<R, T>() for the instance that fits nr <= R rows and nt <= T
// tokens.
template <int R, int T, class Fn>
inline void with_tile_shape(int nr, int nt, Fn&& fn) {
  if constexpr (R > 1) {
    if (nr < R) return with_tile_shape<R - 1, T>(nr, nt, fn);
  }
  if constexpr (T > 1) {
    if (nt < T) return with_tile_shape<R, T - 1>(nr, nt, fn);
  }
  fn.template operator()<R, T>();
}

template <class Kernel>
void quantized_matmul_rows(const WeightMatrix& w, const std::byte* x, std::size_t x_stride,
                           int n_tokens, float* y, int r_begin, int r_end) {
  constexpr int kR = Kernel::kRows, kT = Kernel::kTokens;
  constexpr std::size_t kBlockBytes = 256 << 10;
  const std::size_t row_bytes = weight_row_bytes(w.type, w.cols);
  const int n_blocks = w.cols / weight_format(w.type).block_elements;
  const auto* base = static_cast<const std::byte*>(w.data);
  const int block_rows = n_tokens <= kT
                             ? r_end - r_begin
                             : std::max(kR, static_cast<int>(kBlockBytes / row_bytes) / kR * kR);
  for (int rb = r_begin; rb < r_end; rb += block_rows) {
    const int rb_end = std::min(r_end, rb + block_rows);
    for (int t0 = 0; t0 < n_tokens; t0 += kT) {
      const int nt = std::min(kT, n_tokens - t0);
      const std::byte* xs[kT];
      for (int t = 0; t < nt; ++t) xs[t] = x + static_cast<std::size_t>(t0 + t) * x_stride;
      for (int r0 = rb; r0 < rb_end; r0 += kR) {
        const int nr = std::min(kR, rb_end - r0);
        const std::byte* ws[kR];
        for (int i = 0; i < nr; ++i) ws[i] = base + static_cast<std::size_t>(r0 + i) * row_bytes;
        float out[kR * kT];
        int stride = kT;
        with_tile_shape<kR, kT>(nr, nt, [&]<int R, int T>() {
          Kernel::template tile<R, T>(ws, xs, n_blocks, out);
          stride = T;
        });
        for (int t = 0; t < nt; ++t) {
          float* yt = y + static_cast<std::size_t>(t0 + t) * static_cast<std::size_t>(w.rows) + r0;
          for (int i = 0; i < nr; ++i) yt[i] = out[i * stride + t];
        }
      }
    }
  }
}

// The portable kernel of a format whose Format::block_dot(const Block&, const Act&) gives one
// block's contribution; blocks are summed in order.
template <class Format>
struct ScalarKernel {
  static constexpr int kRows = 1, kTokens = 1;
  template <int R, int T>
  static void tile(const std::byte* const* w, const std::byte* const* x, int n_blocks, float* out) {
    for (int r = 0; r < R; ++r) {
      const auto* wb = reinterpret_cast<const typename Format::Block*>(w[r]);
      for (int t = 0; t < T; ++t) {
        const auto* xb = reinterpret_cast<const typename Format::Act*>(x[t]);
        float acc = 0.0f;
        for (int b = 0; b < n_blocks; ++b) acc += Format::block_dot(wb[b], xb[b]);
        out[r * T + t] = acc;
      }
    }
  }
};

// Sum of a[i] * b[i] over n int8 values.
inline int int8_dot(const std::int8_t* a, const std::int8_t* b, int n) {
  int s = 0;
  for (int i = 0; i < n; ++i) s += static_cast<int>(a[i]) * static_cast<int>(b[i]);
  return s;
}

}  // namespace lmserve::kernels::LMSERVE_TARGET_NS
LMSERVE_TARGET_END
