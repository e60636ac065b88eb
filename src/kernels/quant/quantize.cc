#include "kernels/quant/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "kernels/convert.h"
#include "kernels/quant/blocks.h"

namespace lmserve::kernels::quant {

namespace {

int round_clamp(float v, int lo, int hi) {
  return std::clamp(static_cast<int>(std::nearbyint(v)), lo, hi);
}

// Sub-block scales round up, so no value of the sub-block falls outside its levels.
int ceil_clamp(float v, int lo, int hi) {
  return std::clamp(static_cast<int>(std::ceil(v)), lo, hi);
}

float amax_of(const float* x, int n) {
  float m = 0.0f;
  for (int i = 0; i < n; ++i) m = std::max(m, std::fabs(x[i]));
  return m;
}

void quantize_q8_0(const float* x, BlockQ8_0& b) {
  const float d = amax_of(x, 32) / 127.0f;
  b.d = f32_to_f16(d);
  const float id = d > 0.0f ? 1.0f / d : 0.0f;
  for (int i = 0; i < 32; ++i)
    b.qs[i] = static_cast<std::int8_t>(round_clamp(x[i] * id, -127, 127));
}

// A block of 32 with `levels` unsigned levels around an offset of levels / 2: the value of
// largest magnitude maps to -levels / 2 (Q4_0: 16 levels, Q5_0: 32). Writes d and q[32].
std::uint16_t quantize_offset_block(const float* x, int levels, int* q) {
  float max = 0.0f;
  for (int i = 0; i < 32; ++i) {
    if (std::fabs(x[i]) > std::fabs(max)) max = x[i];
  }
  const float half = static_cast<float>(levels / 2);
  const float d = max / -half;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  for (int i = 0; i < 32; ++i) q[i] = round_clamp(x[i] * id + half, 0, levels - 1);
  return f32_to_f16(d);
}

void quantize_q4_0(const float* x, BlockQ4_0& b) {
  int q[32];
  b.d = quantize_offset_block(x, 16, q);
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<std::uint8_t>(q[j] | (q[j + 16] << 4));
}

void quantize_q5_0(const float* x, BlockQ5_0& b) {
  int q[32];
  b.d = quantize_offset_block(x, 32, q);
  std::uint32_t qh = 0;
  for (int j = 0; j < 16; ++j)
    b.qs[j] = static_cast<std::uint8_t>((q[j] & 0xF) | (q[j + 16] & 0xF) << 4);
  for (int j = 0; j < 32; ++j) qh |= static_cast<std::uint32_t>(q[j] >> 4) << j;
  std::memcpy(b.qh, &qh, 4);  // little-endian, as ggml stores it
}

// Q4_K: per 32 values x ~= scale * q - min with q in 0..15; scales and mins as 6-bit multiples
// of the block's d and dmin.
void quantize_q4_k(const float* x, BlockQ4_K& b) {
  float scales[8], mins[8];
  for (int j = 0; j < 8; ++j) {
    const float* v = x + 32 * j;
    const float lo = std::min(0.0f, *std::min_element(v, v + 32));
    const float hi = *std::max_element(v, v + 32);
    scales[j] = (hi - lo) / 15.0f;
    mins[j] = -lo;
  }
  const float max_scale = *std::max_element(scales, scales + 8);
  const float max_min = *std::max_element(mins, mins + 8);
  const float d = max_scale / 63.0f, dmin = max_min / 63.0f;
  b.d = f32_to_f16(d);
  b.dmin = f32_to_f16(dmin);
  std::uint8_t sc[8], mn[8];
  for (int j = 0; j < 8; ++j) {
    sc[j] = static_cast<std::uint8_t>(d > 0.0f ? ceil_clamp(scales[j] / d, 0, 63) : 0);
    mn[j] = static_cast<std::uint8_t>(dmin > 0.0f ? round_clamp(mins[j] / dmin, 0, 63) : 0);
  }
  // The packing k4_scale_min reads back.
  for (int j = 0; j < 4; ++j) {
    b.scales[j] = static_cast<std::uint8_t>((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
    b.scales[j + 4] = static_cast<std::uint8_t>((mn[j] & 63) | ((mn[j + 4] >> 4) << 6));
    b.scales[j + 8] = static_cast<std::uint8_t>((sc[j + 4] & 0xF) | ((mn[j + 4] & 0xF) << 4));
  }
  const float dd = f16_to_f32(b.d), dm = f16_to_f32(b.dmin);
  for (int j = 0; j < 8; ++j) {
    const float step = dd * static_cast<float>(sc[j]);
    const float min = dm * static_cast<float>(mn[j]);
    const float inv = step > 0.0f ? 1.0f / step : 0.0f;
    for (int l = 0; l < 32; ++l) {
      const int q = round_clamp((x[32 * j + l] + min) * inv, 0, 15);
      // Values 64c .. 64c + 31 are low nibbles of qs[32c ..], the next 32 the high ones.
      std::uint8_t& byte = b.qs[32 * (j / 2) + l];
      byte = static_cast<std::uint8_t>(j % 2 == 0 ? (byte & 0xF0) | q : (byte & 0x0F) | (q << 4));
    }
  }
}

// Q6_K: per 16 values x ~= d * scale * (q - 32) with q in 0..63 and an int8 scale.
void quantize_q6_k(const float* x, BlockQ6_K& b) {
  float scales[16];
  for (int j = 0; j < 16; ++j) scales[j] = amax_of(x + 16 * j, 16) / 31.0f;
  const float max_scale = *std::max_element(scales, scales + 16);
  const float d = max_scale / 127.0f;
  b.d = f32_to_f16(d);
  const float dd = f16_to_f32(b.d);
  std::memset(b.ql, 0, sizeof(b.ql));
  std::memset(b.qh, 0, sizeof(b.qh));
  for (int j = 0; j < 16; ++j) {
    b.scales[j] = static_cast<std::int8_t>(d > 0.0f ? ceil_clamp(scales[j] / d, 0, 127) : 0);
    const float step = dd * static_cast<float>(b.scales[j]);
    const float inv = step != 0.0f ? 1.0f / step : 0.0f;
    for (int l = 0; l < 16; ++l) {
      const int e = 16 * j + l;  // value e = 128 half + 32 k + i
      const int q = round_clamp(x[e] * inv + 32.0f, 0, 63);
      const int half = e / 128, k = (e % 128) / 32, i = e % 32;
      std::uint8_t& low = b.ql[64 * half + i + 32 * (k % 2)];
      low = static_cast<std::uint8_t>(low | ((q & 0xF) << (4 * (k / 2))));
      b.qh[32 * half + i] = static_cast<std::uint8_t>(b.qh[32 * half + i] | ((q >> 4) << (2 * k)));
    }
  }
}

// The index of the IQ4 level nearest to v.
std::uint8_t nearest_iq4_level(float v) {
  int best = 0;
  for (int i = 1; i < 16; ++i) {
    if (std::fabs(v - kIq4Levels[i]) < std::fabs(v - kIq4Levels[best])) best = i;
  }
  return static_cast<std::uint8_t>(best);
}

// n = 32 values as IQ4 indices for the step d (x ~= d * level), nibbles ordered as Q4_0's.
void iq4_indices(const float* x, float d, std::uint8_t* qs) {
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  for (int j = 0; j < 16; ++j) {
    qs[j] = static_cast<std::uint8_t>(nearest_iq4_level(x[j] * id) |
                                      nearest_iq4_level(x[j + 16] * id) << 4);
  }
}

// The step that maps a block's value of largest magnitude to the level -127, as llama.cpp's
// first guess does.
float iq4_step(const float* x) {
  float max = 0.0f;
  for (int i = 0; i < 32; ++i) {
    if (std::fabs(x[i]) > std::fabs(max)) max = x[i];
  }
  return max / kIq4Levels[0];
}

void quantize_iq4_nl(const float* x, BlockIQ4_NL& b) {
  b.d = f32_to_f16(iq4_step(x));
  iq4_indices(x, f16_to_f32(b.d), b.qs);
}

// IQ4_XS: each sub-block's step as a six-bit signed multiple (-32..31) of the block's d.
void quantize_iq4_xs(const float* x, BlockIQ4_XS& b) {
  float steps[8], max_step = 0.0f;
  for (int j = 0; j < 8; ++j) {
    steps[j] = iq4_step(x + 32 * j);
    if (std::fabs(steps[j]) > std::fabs(max_step)) max_step = steps[j];
  }
  b.d = f32_to_f16(max_step / -32.0f);
  const float d = f16_to_f32(b.d);
  b.scales_h = 0;
  std::memset(b.scales_l, 0, sizeof(b.scales_l));
  for (int j = 0; j < 8; ++j) {
    const int scale = d != 0.0f ? round_clamp(steps[j] / d, -32, 31) : 0;
    const int stored = scale + 32;
    std::uint8_t& low = b.scales_l[j / 2];
    low = static_cast<std::uint8_t>(low | (stored & 0xF) << (4 * (j % 2)));
    b.scales_h = static_cast<std::uint16_t>(b.scales_h | (stored >> 4) << (2 * j));
    iq4_indices(x + 32 * j, d * static_cast<float>(scale), b.qs + 16 * j);
  }
}

template <class Block, class Fn>
void blocks(const float* x, std::byte* out, int n, int per_block, Fn fn) {
  auto* b = reinterpret_cast<Block*>(out);
  for (int i = 0; i < n / per_block; ++i) fn(x + i * per_block, b[i]);
}

}  // namespace

bool can_quantize(WeightType type) {
  return type == WeightType::kQ8_0 || type == WeightType::kQ4_0 || type == WeightType::kQ5_0 ||
         type == WeightType::kQ4_K || type == WeightType::kQ6_K || type == WeightType::kIQ4_NL ||
         type == WeightType::kIQ4_XS;
}

void quantize_row(WeightType type, const float* x, std::byte* out, int n) {
  switch (type) {
    case WeightType::kQ8_0:
      return blocks<BlockQ8_0>(x, out, n, 32, quantize_q8_0);
    case WeightType::kQ4_0:
      return blocks<BlockQ4_0>(x, out, n, 32, quantize_q4_0);
    case WeightType::kQ5_0:
      return blocks<BlockQ5_0>(x, out, n, 32, quantize_q5_0);
    case WeightType::kQ4_K:
      return blocks<BlockQ4_K>(x, out, n, 256, quantize_q4_k);
    case WeightType::kQ6_K:
      return blocks<BlockQ6_K>(x, out, n, 256, quantize_q6_k);
    case WeightType::kIQ4_NL:
      return blocks<BlockIQ4_NL>(x, out, n, 32, quantize_iq4_nl);
    case WeightType::kIQ4_XS:
      return blocks<BlockIQ4_XS>(x, out, n, 256, quantize_iq4_xs);
    default:
      throw std::invalid_argument("no quantizer for " + std::string(weight_format(type).name));
  }
}

}  // namespace lmserve::kernels::quant
