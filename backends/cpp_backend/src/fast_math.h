// Small inline math for the fused row kernels (attention.cpp, fused_norm.cpp): an exp that
// the compiler can vectorise inside their own loops (libm's expf is a call per element,
// and libmvec's vector variants leave the loop tails, and any lane that underflows, to
// the scalar function), and the target attributes that compile a loop once per
// instruction set. Nothing here is exported: each file picks its copy at run time from
// the active kernel table's name (see isa.h), so set_simd_level applies to it too.
// Files that use it are built with -fno-trapping-math (CMakeLists.txt): without it GCC
// keeps the comparisons of selects as branches in the AVX2 copies, and their loops do not
// vectorise.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "isa.h"

#define NEEDLE_ALWAYS_INLINE inline __attribute__((always_inline))
#if defined(__clang__)  // no prefer-vector-width target option, no optimize attribute
#define NEEDLE_TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")))
#define NEEDLE_NO_MEMCALLS
#else
#define NEEDLE_TARGET_AVX512 \
  __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,prefer-vector-width=512")))
/// Keeps GCC from turning short copy and fill loops into memmove/memset calls.
#define NEEDLE_NO_MEMCALLS __attribute__((optimize("no-tree-loop-distribute-patterns")))
#endif
#define NEEDLE_TARGET_AVX2 __attribute__((target("avx2,fma")))

namespace needle_cpp {

/// exp(x) for float: Cody-Waite range reduction x = n ln2 + r, |r| <= ln2 / 2, and a
/// degree-6 polynomial for exp(r) (Cephes' expf coefficients), then the exponent n put
/// in by integer arithmetic. Max error about 1.5 ulp against exp in double. Results that
/// would be subnormal (x < -87.33) are 0; x > 88.72 gives inf; NaN stays NaN. Branch-free,
/// so `#pragma omp simd` loops calling it vectorise.
NEEDLE_ALWAYS_INLINE float fast_expf(float x) {
  constexpr float kHi = 88.7228f, kLo = -87.3365f;
  const float xc = x < kLo ? kLo : (x > kHi ? kHi : x);
  // round(xc / ln2) with the 1.5 * 2^23 trick (round to nearest even, |xc / ln2| < 2^22)
  const float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  float y = p * scale;
  y = x < kLo ? 0.0f : y;
  y = x > kHi ? HUGE_VALF : y;
  return x != x ? x : y;
}

/// exp for the kernels' dtypes: fast_expf for float, libm's exp for double (float64 is
/// for gradient checks, where accuracy matters more than speed).
NEEDLE_ALWAYS_INLINE float row_exp(float x) { return fast_expf(x); }
NEEDLE_ALWAYS_INLINE double row_exp(double x) { return std::exp(x); }

/// The copy of a kernel for the active kernel table's instruction set.
template <typename Fn>
Fn pick(Fn avx512, Fn avx2, Fn plain) {
  const char* name = active().name;
  if (std::strcmp(name, "avx512") == 0) return avx512;
  if (std::strcmp(name, "avx2") == 0) return avx2;
  return plain;
}

/// Defines NAME_avx512, NAME_avx2 and NAME_plain (templates on T), one copy of the
/// always-inline NAME per instruction set: `PARAMS` is the parenthesised parameter list,
/// `ARGS` the parenthesised call arguments, `ATTRS` extra attributes (may be empty).
#define NEEDLE_ISA_COPIES(NAME, ATTRS, PARAMS, ARGS)                                \
  template <typename T>                                                            \
  NEEDLE_TARGET_AVX512 ATTRS void NAME##_avx512 PARAMS { NAME ARGS; }              \
  template <typename T>                                                            \
  NEEDLE_TARGET_AVX2 ATTRS void NAME##_avx2 PARAMS { NAME ARGS; }                  \
  template <typename T>                                                            \
  ATTRS void NAME##_plain PARAMS { NAME ARGS; }

/// The copy of NAME<T> (made by NEEDLE_ISA_COPIES) for the active instruction set.
#define NEEDLE_PICK(NAME, T) pick(&NAME##_avx512<T>, &NAME##_avx2<T>, &NAME##_plain<T>)

}  // namespace needle_cpp
