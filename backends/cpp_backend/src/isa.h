// Kernels compiled once per instruction set (isa_impl.inc) and picked at run time.
#pragma once

#include <cstddef>
#include <cstdint>

namespace needle_cpp {

enum BinaryOp : int { kAdd, kSub, kMul, kDiv, kPower, kMaximum, kEq, kNe, kLt, kLe, kGt, kGe, kBinaryCount };
enum UnaryOp : int { kNeg, kAbs, kLog, kExp, kTanh, kSqrt, kSin, kCos, kUnaryCount };

/// How a gemm reads its left operand A(i, k) (TypedTable::gemm_ex).
template <typename T>
struct GemmA {
  const T* a = nullptr;  // plain: a[i * lda + k]; trans: a[k * lda + i]
  int64_t lda = 0;
  bool trans = false;
  /// When set, A(i, k) = rows[i][(k / seg) * sstep + k % seg]: row i is a list of
  /// contiguous segments of seg elements, sstep apart (an implicit im2col).
  const T* const* rows = nullptr;
  int64_t seg = 1, sstep = 0;
};

/// Single-threaded inner loops for one dtype; the callers split work across threads.
/// gemm is the exception: it runs its own OpenMP region.
template <typename T>
struct TypedTable {
  // stream: write with non-temporal stores (for outputs much larger than the caches).
  void (*binary[kBinaryCount])(const T* a, const T* b, T* out, int64_t n, bool stream);
  void (*scalar[kBinaryCount])(const T* a, T value, T* out, int64_t n, bool stream);
  void (*unary[kUnaryCount])(const T* a, T* out, int64_t n, bool stream);
  double (*sum)(const T* a, int64_t n);
  T (*max)(const T* a, int64_t n);  // n >= 1; NaN propagates
  /// dst[c * dst_ld + r] = src[r * src_ld + c] for r < rows, c < cols.
  void (*transpose)(const T* src, int64_t src_ld, T* dst, int64_t dst_ld, int64_t rows, int64_t cols);
  /// C (m x p, ldc) = A (m x n, lda) @ B (n x p, ldb); all row-major; n >= 1.
  void (*gemm)(const T* a, int64_t lda, const T* b, int64_t ldb, T* c, int64_t ldc, int64_t m,
               int64_t n, int64_t p, int threads);
  /// C (m x p, ldc) = (or += when accumulate) A @ op(B): A read as `a` says; B is
  /// b[k * ldb + j], or b[j * ldb + k] when trans_b. n >= 1.
  void (*gemm_ex)(const GemmA<T>& a, const T* b, int64_t ldb, bool trans_b, T* c, int64_t ldc,
                  int64_t m, int64_t n, int64_t p, bool accumulate, int threads);
};

struct KernelTable {
  const char* name;
  TypedTable<float> f32;
  TypedTable<double> f64;
};

const KernelTable& table_scalar();
const KernelTable& table_avx2();
const KernelTable& table_avx512();

/// The table in use: the best the CPU supports, or lower if set_simd_level chose so.
const KernelTable& active();
template <typename T>
const TypedTable<T>& active_typed();
template <>
inline const TypedTable<float>& active_typed<float>() { return active().f32; }
template <>
inline const TypedTable<double>& active_typed<double>() { return active().f64; }

/// A per-thread 64-byte aligned scratch buffer of at least `bytes` (reused across calls).
void* scratch(int slot, size_t bytes);

}  // namespace needle_cpp
