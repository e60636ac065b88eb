// Quantizers the project owns for the GGUF formats its benchmarks and tests write (Q8_0, Q4_0,
// Q5_0, Q4_K, Q6_K, IQ4_NL, IQ4_XS): plain round-to-nearest with per-block scales, valid files
// for any reader.
// (llama.cpp's quantizers search scales to minimise error; these aim at correct layouts and
// realistic bytes, not at the best accuracy.)
#pragma once

#include <cstddef>
#include <optional>

#include "kernels/weight_format.h"

namespace lmserve::kernels::quant {

// True when quantize_row can write `type`.
bool can_quantize(WeightType type);
// One row of n values (a multiple of the block) into weight_row_bytes(type, n) bytes.
void quantize_row(WeightType type, const float* x, std::byte* out, int n);

}  // namespace lmserve::kernels::quant
