#include "kernels/convert.h"

#include "kernels/cpu.h"
#include "kernels/target_kernels.h"

namespace lmserve::kernels {

void f16_to_f32(const std::uint16_t* in, float* out, int n) {
  active_kernels().f16_to_f32(in, out, n);
}

void f32_to_f16(const float* in, std::uint16_t* out, int n) {
  active_kernels().f32_to_f16(in, out, n);
}

void bf16_to_f32(const std::uint16_t* in, float* out, int n) {
  // A shift per element; the compiler vectorises this loop on its own.
  for (int i = 0; i < n; ++i) out[i] = bf16_to_f32(in[i]);
}

}  // namespace lmserve::kernels
