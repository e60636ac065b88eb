// Which CPU target the kernels run on: chosen once, at first use, from what the CPU supports
// (cpuid, with the OS's consent for wide registers), or forced by LMSERVE_CPU=scalar|avx2|avx512.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace lmserve::kernels {

struct TargetKernels;

// The kernels of the chosen target. Throws std::runtime_error on first use when LMSERVE_CPU
// names a target this CPU (or build) cannot run.
const TargetKernels& active_kernels();

// "avx512" / "avx2" / "scalar": the chosen target.
std::string_view cpu_target_name();
// The targets this CPU and build can run, best first (tests compare every one with scalar).
std::vector<std::string_view> available_cpu_targets();
// The kernels of a named target; nullptr when it is not available.
const TargetKernels* cpu_target(std::string_view name);
// "avx512 (cpu: avx2 fma f16c avx512f avx512bw avx512vl avx512dq avx512vnni avx512bf16)":
// the chosen target and the features detected, for logs, --version and /props.
std::string cpu_description();

}  // namespace lmserve::kernels
