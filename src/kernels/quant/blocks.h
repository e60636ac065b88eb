// Byte layouts of the quantized weight blocks (GGUF's, bit for bit as ggml writes them) and of
// the int8 activation blocks the integer kernels multiply them with, plus the small unpacking
// helpers every CPU target shares.
#pragma once

#include <cstdint>
#include <cstring>

namespace lmserve::kernels::quant {

// ---- Activations (our own layout: aligned quants first, then the block's scalars) ----

inline constexpr int kQ8_32Elements = 32;
inline constexpr int kQ8_256Elements = 256;

// 32 values as int8 quants q with x ~= d * q. d is rounded to f16 precision, as llama.cpp's
// Q8_0/Q8_1 store it; sum = sum(q) and s = d * sum (rounded the same way) serve the formats
// with an offset or a minimum (Q4_0, Q4_1, Q5_0, Q5_1). sum_neg128 = -128 * sum corrects a
// product whose signed weights are stored as unsigned bytes q + 128 (VNNI's u8 operand); a
// kernel loads it straight into its accumulators.
struct alignas(16) BlockQ8_32 {
  std::int8_t qs[kQ8_32Elements];
  float d;
  float s;
  std::int32_t sum;
  std::int32_t sum_neg128;
};
static_assert(sizeof(BlockQ8_32) == 48);

// 256 values as int8 quants with an f32 scale and the sum of each 16 quants (llama.cpp's Q8_K),
// which the K-quant formats use for their per-sub-block minimums.
struct alignas(32) BlockQ8_256 {
  std::int8_t qs[kQ8_256Elements];
  std::int16_t bsums[16];
  float d;
};
static_assert(sizeof(BlockQ8_256) == 320);

// ---- Weights (ggml's layouts; `half` fields are IEEE f16 bits) ----

struct BlockQ8_0 {
  std::uint16_t d;
  std::int8_t qs[32];
};
struct BlockQ4_0 {
  std::uint16_t d;
  std::uint8_t qs[16];  // element j in the low nibble of qs[j], element j + 16 in the high one
};
struct BlockQ4_1 {
  std::uint16_t d, m;
  std::uint8_t qs[16];
};
struct BlockQ5_0 {
  std::uint16_t d;
  std::uint8_t qh[4];  // bit j: the fifth bit of element j
  std::uint8_t qs[16];
};
struct BlockQ5_1 {
  std::uint16_t d, m;
  std::uint8_t qh[4];
  std::uint8_t qs[16];
};
struct BlockQ2_K {
  std::uint8_t scales[16];  // per 16 values: scale in the low nibble, min in the high one
  std::uint8_t qs[64];
  std::uint16_t d, dmin;
};
struct BlockQ3_K {
  std::uint8_t hmask[32];
  std::uint8_t qs[64];
  std::uint8_t scales[12];  // 16 six-bit scales, biased by 32
  std::uint16_t d;
};
struct BlockQ4_K {
  std::uint16_t d, dmin;
  std::uint8_t scales[12];  // 8 six-bit scales and 8 six-bit mins
  std::uint8_t qs[128];
};
struct BlockQ5_K {
  std::uint16_t d, dmin;
  std::uint8_t scales[12];
  std::uint8_t qh[32];
  std::uint8_t qs[128];
};
struct BlockQ6_K {
  std::uint8_t ql[128];
  std::uint8_t qh[64];
  std::int8_t scales[16];
  std::uint16_t d;
};
// The 16 levels of the IQ4 formats (llama.cpp's kvalues_iq4nl): a 4-bit index q stands for
// kIq4Levels[q], a curve denser near zero, where most weights sit.
inline constexpr std::int8_t kIq4Levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                               1,    13,   25,  38,  53,  69,  89,  113};
struct BlockIQ4_NL {
  std::uint16_t d;
  std::uint8_t qs[16];  // indices into kIq4Levels, nibbles ordered as Q4_0's
};
// 8 sub-blocks of 32 values, x = d * (scale_j - 32) * kIq4Levels[q]: scale_j's low four bits are
// nibble j % 2 of scales_l[j / 2], its high two bits bits 2j..2j+1 of scales_h; sub-block j's
// indices are qs[16 j ..16 j + 15], nibbles ordered as Q4_0's.
struct BlockIQ4_XS {
  std::uint16_t d;
  std::uint16_t scales_h;
  std::uint8_t scales_l[4];
  std::uint8_t qs[128];
};
static_assert(sizeof(BlockIQ4_NL) == 18 && sizeof(BlockIQ4_XS) == 136);

// Sub-block j's scale (-32..31) of an IQ4_XS block.
inline int iq4xs_scale(const BlockIQ4_XS& b, int j) {
  const int low = (b.scales_l[j / 2] >> (4 * (j % 2))) & 0xF;
  const int high = (b.scales_h >> (2 * j)) & 3;
  return (low | (high << 4)) - 32;
}

static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 &&
              sizeof(BlockQ5_0) == 22 && sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ2_K) == 84 && sizeof(BlockQ3_K) == 110 && sizeof(BlockQ4_K) == 144 &&
              sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210);

// Scale j and min j (six bits each, j < 8) of a Q4_K/Q5_K block.
inline void k4_scale_min(const std::uint8_t* s, int j, int& scale, int& min) {
  if (j < 4) {
    scale = s[j] & 63;
    min = s[j + 4] & 63;
  } else {
    scale = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
    min = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// All 8 scales (out[0..7]) and 8 mins (out[8..15]) of a Q4_K/Q5_K block, unpacked with 32-bit
// word operations.
inline void k4_scales_mins(const std::uint8_t* s, std::uint8_t out[16]) {
  std::uint32_t w[3];
  std::memcpy(w, s, 12);
  constexpr std::uint32_t kLow6 = 0x3f3f3f3f, kLow4 = 0x0f0f0f0f, kLow2 = 0x03030303;
  const std::uint32_t words[4] = {
      w[0] & kLow6,
      (w[2] & kLow4) | (((w[0] >> 6) & kLow2) << 4),
      w[1] & kLow6,
      ((w[2] >> 4) & kLow4) | (((w[1] >> 6) & kLow2) << 4),
  };
  std::memcpy(out, words, 16);
}

// The 16 signed scales (-32..31) of a Q3_K block.
inline void q3k_scales(const std::uint8_t* packed, std::int8_t out[16]) {
  for (int j = 0; j < 16; ++j) {
    const int low = j < 8 ? packed[j] & 0xF : packed[j - 8] >> 4;
    const int high = (packed[8 + j % 4] >> (2 * (j / 4))) & 3;
    out[j] = static_cast<std::int8_t>((low | (high << 4)) - 32);
  }
}

// ---- Interleaved groups (a target's repacked layouts, quant/interleaved.h) ----

// Block b of 16 rows of Q8_0: qs[64 * k + 4 * r + i] is row r's element 4k + i plus 128
// (unsigned, so the 16 rows' values 4k..4k+3 are one 64-byte vector for an u8 x s8 dot product).
struct BlockQ8_0x16 {
  std::uint16_t d[16];
  std::uint8_t qs[512];
};
static_assert(sizeof(BlockQ8_0x16) == 16 * 34);

// Block b of 8 rows of IQ4_NL (or of Q4_0: the same bytes): qs[32 * j + 4 * r + i] is row r's
// qs[4j + i], whose low nibble is element 4j + i and high nibble element 16 + 4j + i.
struct BlockQ4_0x8 {
  std::uint16_t d[8];
  std::uint8_t qs[128];
};
static_assert(sizeof(BlockQ4_0x8) == 8 * 18);

// Block b of 16 rows of Q4_0: as BlockQ4_0x8 with 16 rows, qs[64 * j + 4 * r + i].
struct BlockQ4_0x16 {
  std::uint16_t d[16];
  std::uint8_t qs[256];
};
static_assert(sizeof(BlockQ4_0x16) == 16 * 18);

// Block b of 8 rows of Q5_0: qs as in BlockQ4_0x8, and qh[k] holds the fifth bits of the rows'
// values 4k..4k+3, row r's at bits 4r..4r+3.
struct BlockQ5_0x8 {
  std::uint16_t d[8];
  std::uint32_t qh[8];
  std::uint8_t qs[128];
};
static_assert(sizeof(BlockQ5_0x8) == 8 * 22);

// Block b of 8 rows of Q6_K. Value k-vector v (values 4v..4v+3 of the 8 rows, 4 bytes a row):
// low nibbles in ql[32 * (v % 32) + 4 * r + i] (the high nibble for v >= 32), high two bits in
// qh[32 * (v % 16) + 4 * r + i] at bit 2 * (v / 16); scales[8 * j + r] is row r's scale of
// sub-block j.
struct BlockQ6_Kx8 {
  std::uint16_t d[8];
  std::int8_t scales[16 * 8];
  std::uint8_t ql[1024];
  std::uint8_t qh[512];
};
static_assert(sizeof(BlockQ6_Kx8) == 8 * 210);

// Block b of 8 rows of Q4_K: qs[32 * j + 4 * r + i] is row r's qs[4j + i]; sub-block j's 6-bit
// scale and min of row r are (sm_low[8 * j + r] & 15 | (sm_high[j] >> 4r & 3) << 4) and
// (sm_low[8 * j + r] >> 4 | (sm_high[j] >> (4r + 2) & 3) << 4).
struct BlockQ4_Kx8 {
  std::uint16_t d[8];
  std::uint16_t dmin[8];
  std::uint8_t sm_low[64];
  std::uint32_t sm_high[8];
  std::uint8_t qs[1024];
};
static_assert(sizeof(BlockQ4_Kx8) == 8 * 144);

// Block b of 8 rows of IQ4_XS: qs[32 * k + 4 * r + i] is row r's qs[4k + i] (sub-block k / 4's
// bytes 4 (k % 4) .. 4 (k % 4) + 3); row r's scales as in its block.
struct BlockIQ4_XSx8 {
  std::uint16_t d[8];
  std::uint16_t scales_h[8];
  std::uint32_t scales_l[8];
  std::uint8_t qs[1024];
};
static_assert(sizeof(BlockIQ4_XSx8) == 8 * 136);

}  // namespace lmserve::kernels::quant
