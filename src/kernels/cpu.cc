#include "kernels/cpu.h"

#include <cstdlib>
#include <stdexcept>

#include "kernels/target_kernels.h"

namespace lmserve::kernels {

namespace {

struct Target {
  std::string_view name;
  const TargetKernels& (*kernels)();
  bool (*supported)();
};

#if defined(LMSERVE_X86_TARGETS)
bool avx2_supported() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
         __builtin_cpu_supports("f16c") && __builtin_cpu_supports("bmi2");
}
bool avx512_supported() {
  return avx2_supported() && __builtin_cpu_supports("avx512f") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vnni");
}
#endif
bool always() { return true; }

// Best first.
const Target kTargets[] = {
#if defined(LMSERVE_X86_TARGETS)
    {"avx512", &avx512::target_kernels, &avx512_supported},
    {"avx2", &avx2::target_kernels, &avx2_supported},
#endif
    {"scalar", &scalar::target_kernels, &always},
};

const Target& choose() {
  const char* forced = std::getenv("LMSERVE_CPU");
  if (forced == nullptr || *forced == '\0') {
    for (const auto& t : kTargets) {
      if (t.supported()) return t;
    }
  }
  for (const auto& t : kTargets) {
    if (t.name != forced) continue;
    if (!t.supported()) {
      throw std::runtime_error("LMSERVE_CPU=" + std::string(forced) +
                               ": this CPU does not support that target");
    }
    return t;
  }
  std::string names;
  for (const auto& t : kTargets) {
    if (!names.empty()) names += ", ";
    names += t.name;
  }
  throw std::runtime_error("LMSERVE_CPU=" + std::string(forced) +
                           ": unknown target (this build has " + names + ")");
}

const Target& chosen() {
  static const Target& target = choose();
  return target;
}

}  // namespace

const TargetKernels& active_kernels() {
  static const TargetKernels& kernels = chosen().kernels();
  return kernels;
}

std::string_view cpu_target_name() { return chosen().name; }

std::vector<std::string_view> available_cpu_targets() {
  std::vector<std::string_view> names;
  for (const auto& t : kTargets) {
    if (t.supported()) names.push_back(t.name);
  }
  return names;
}

const TargetKernels* cpu_target(std::string_view name) {
  for (const auto& t : kTargets) {
    if (t.name == name && t.supported()) return &t.kernels();
  }
  return nullptr;
}

std::string cpu_description() {
  std::string features;
#if defined(LMSERVE_X86_TARGETS)
  __builtin_cpu_init();
  auto add = [&](const char* name, bool present) {
    if (!present) return;
    if (!features.empty()) features += ' ';
    features += name;
  };
  add("avx2", __builtin_cpu_supports("avx2"));
  add("fma", __builtin_cpu_supports("fma"));
  add("f16c", __builtin_cpu_supports("f16c"));
  add("avx512f", __builtin_cpu_supports("avx512f"));
  add("avx512bw", __builtin_cpu_supports("avx512bw"));
  add("avx512vl", __builtin_cpu_supports("avx512vl"));
  add("avx512dq", __builtin_cpu_supports("avx512dq"));
  add("avx512vnni", __builtin_cpu_supports("avx512vnni"));
  add("avx512bf16", __builtin_cpu_supports("avx512bf16"));
#endif
  return std::string(cpu_target_name()) + " (cpu: " + (features.empty() ? "baseline" : features) +
         ")";
}

}  // namespace lmserve::kernels
