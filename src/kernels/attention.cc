#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/convert.h"
#include "kernels/cpu.h"
#include "kernels/target_kernels.h"

namespace lmserve::kernels {

namespace {

std::size_t q8_group(int head_dim) {
  return head_dim % 32 == 0 ? 32 : static_cast<std::size_t>(head_dim);
}

}  // namespace

std::size_t kv_row_bytes(KvElement element, int head_dim) {
  const auto hd = static_cast<std::size_t>(head_dim);
  switch (element) {
    case KvElement::kF32:
      return hd * 4;
    case KvElement::kF16:
      return hd * 2;
    case KvElement::kQ8_0:
      return hd / q8_group(head_dim) * (2 + q8_group(head_dim));
  }
  return 0;
}

void store_kv_row(KvElement element, const float* in, std::byte* out, int head_dim) {
  switch (element) {
    case KvElement::kF32:
      std::memcpy(out, in, static_cast<std::size_t>(head_dim) * sizeof(float));
      return;
    case KvElement::kF16:
      f32_to_f16(in, reinterpret_cast<std::uint16_t*>(out), head_dim);
      return;
    case KvElement::kQ8_0: {
      const std::size_t group = q8_group(head_dim);
      for (std::size_t g = 0; g < static_cast<std::size_t>(head_dim);
           g += group, out += 2 + group) {
        float amax = 0.0f;
        for (std::size_t i = 0; i < group; ++i) amax = std::max(amax, std::fabs(in[g + i]));
        const float d = amax / 127.0f;
        const float inv = d > 0.0f ? 1.0f / d : 0.0f;
        const std::uint16_t scale = f32_to_f16(d);
        std::memcpy(out, &scale, 2);
        auto* q = reinterpret_cast<std::int8_t*>(out + 2);
        for (std::size_t i = 0; i < group; ++i) {
          q[i] = static_cast<std::int8_t>(std::lround(in[g + i] * inv));
        }
      }
      return;
    }
  }
}

void load_kv_row(KvElement element, const std::byte* in, float* out, int head_dim) {
  switch (element) {
    case KvElement::kF32:
      std::memcpy(out, in, static_cast<std::size_t>(head_dim) * sizeof(float));
      return;
    case KvElement::kF16:
      f16_to_f32(reinterpret_cast<const std::uint16_t*>(in), out, head_dim);
      return;
    case KvElement::kQ8_0: {
      const std::size_t group = q8_group(head_dim);
      for (std::size_t g = 0; g < static_cast<std::size_t>(head_dim); g += group, in += 2 + group) {
        std::uint16_t scale;
        std::memcpy(&scale, in, 2);
        const float d = f16_to_f32(scale);
        const auto* q = reinterpret_cast<const std::int8_t*>(in + 2);
        for (std::size_t i = 0; i < group; ++i) out[g + i] = d * static_cast<float>(q[i]);
      }
      return;
    }
  }
}

namespace {

// One key into slot `slot` of a dimension-major block part (see PagedKv).
void store_key_dimension_major(KvElement element, const float* in, std::byte* block, int slot,
                               int block_size, int head_dim) {
  for (int i = 0; i < head_dim; ++i) {
    const auto at = static_cast<std::size_t>(i * block_size + slot);
    if (element == KvElement::kF16) {
      reinterpret_cast<std::uint16_t*>(block)[at] = f32_to_f16(in[i]);
    } else {
      reinterpret_cast<float*>(block)[at] = in[i];
    }
  }
}

}  // namespace

void store_kv(const PagedKv& kv, const AttentionShape& shape, const std::int32_t* blocks, int pos,
              const float* k, const float* v) {
  const int hd = shape.head_dim;
  for (int h = 0; h < shape.n_kv_heads; ++h) {
    if (keys_dimension_major(kv.element)) {
      store_key_dimension_major(kv.element, k + h * hd, kv_block(kv.keys, kv, blocks, h, pos),
                                pos % kv.block_size, kv.block_size, hd);
    } else {
      store_kv_row(kv.element, k + h * hd, kv_slot(kv.keys, kv, blocks, h, pos, hd), hd);
    }
    store_kv_row(kv.element, v + h * hd, kv_slot(kv.values, kv, blocks, h, pos, hd), hd);
  }
}

void paged_attention(util::ThreadPool& pool, const AttentionShape& shape, const PagedKv& kv,
                     std::span<const AttentionSequence> sequences, const float* q, float scale,
                     float* out, const ScoreOptions& options) {
  active_kernels().paged_attention(pool, shape, kv, sequences, q, scale, out, options);
}

}  // namespace lmserve::kernels
