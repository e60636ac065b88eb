// Compiling one kernel source for several CPU targets. CMake builds each file listed as a
// target source once per target with LMSERVE_TARGET_ID set; the file wraps its code in
//   LMSERVE_TARGET_BEGIN namespace lmserve::kernels::LMSERVE_TARGET_NS { ... } LMSERVE_TARGET_END
// after its #includes. The region enables the target's instructions per function (a pragma, not
// -m flags), so code the headers bring in (std templates, inline helpers) stays baseline x86-64
// and the linker can never pick an AVX-512 copy of a shared inline function for a scalar caller.
#pragma once

#define LMSERVE_TARGET_STRINGIFY(x) LMSERVE_TARGET_STRINGIFY_(x)
#define LMSERVE_TARGET_STRINGIFY_(x) #x

#define LMSERVE_TARGET_SCALAR 0
#define LMSERVE_TARGET_AVX2 1
#define LMSERVE_TARGET_AVX512 2

#ifndef LMSERVE_TARGET_ID
#error "target sources are compiled through lmserve_target_sources() in CMake"
#endif

#if LMSERVE_TARGET_ID == LMSERVE_TARGET_SCALAR
#define LMSERVE_TARGET_NS scalar
#define LMSERVE_HAVE_AVX2 0
#define LMSERVE_HAVE_AVX512 0
#define LMSERVE_TARGET_BEGIN
#define LMSERVE_TARGET_END
#else
#if LMSERVE_TARGET_ID == LMSERVE_TARGET_AVX2
#define LMSERVE_TARGET_NS avx2
#define LMSERVE_HAVE_AVX2 1
#define LMSERVE_HAVE_AVX512 0
#define LMSERVE_TARGET_FEATURES "avx2,fma,f16c,bmi2"
#elif LMSERVE_TARGET_ID == LMSERVE_TARGET_AVX512
#define LMSERVE_TARGET_NS avx512
#define LMSERVE_HAVE_AVX2 1
#define LMSERVE_HAVE_AVX512 1
#define LMSERVE_TARGET_FEATURES "avx2,fma,f16c,bmi2,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni"
#else
#error "unknown LMSERVE_TARGET_ID"
#endif
#include <immintrin.h>
#if defined(__clang__)
#define LMSERVE_TARGET_BEGIN                             \
  _Pragma(LMSERVE_TARGET_STRINGIFY(clang attribute push( \
      __attribute__((target(LMSERVE_TARGET_FEATURES))), apply_to = function)))
#define LMSERVE_TARGET_END _Pragma("clang attribute pop")
#else
#define LMSERVE_TARGET_BEGIN \
  _Pragma("GCC push_options") _Pragma(LMSERVE_TARGET_STRINGIFY(GCC target(LMSERVE_TARGET_FEATURES)))
#define LMSERVE_TARGET_END _Pragma("GCC pop_options")
#endif
#endif
