// matmul_t and batched_matmul_t: matmul with operands read transposed in place (the packed
// gemm's packing reads either layout), so `a.T @ g` and `g @ b.T` need no compacting copy.
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "isa.h"
#include "parallel.h"
#include "perf_kernels.h"

namespace needle_cpp {
namespace {

void check_flag(const char* kernel, const char* name, int64_t v) {
  if (v != 0 && v != 1)
    value_error(kernel, std::string(name) + " must be 0 or 1, got " + std::to_string(v));
}

void check_args(const char* k, const Array& a, const Array& b, const Array& out, int64_t batch,
                int64_t m, int64_t n, int64_t p, int64_t ta, int64_t tb) {
  check_nonneg(k, "batch", batch);
  check_nonneg(k, "m", m);
  check_nonneg(k, "n", n);
  check_nonneg(k, "p", p);
  check_flag(k, "trans_a", ta);
  check_flag(k, "trans_b", tb);
  check_size(k, "a", a, checked_mul(k, batch, checked_mul(k, m, n)));
  check_size(k, "b", b, checked_mul(k, batch, checked_mul(k, n, p)));
  check_size(k, "out", out, checked_mul(k, batch, checked_mul(k, m, p)));
  if (a.dtype() != b.dtype() || a.dtype() != out.dtype())
    type_error(k, std::string("dtype mismatch ") + dtype_name(a.dtype()) + ", " +
                      dtype_name(b.dtype()) + ", " + dtype_name(out.dtype()));
}

void run(const Array& a, const Array& b, Array& out, int64_t batch, int64_t m, int64_t n,
         int64_t p, bool ta, bool tb) {
  // Empty first: with p == 0 the checks passed however large batch * m is (no overflow).
  if (batch == 0 || m == 0 || p == 0) return;
  const int64_t out_n = batch * m * p;
  if (&out == &a || &out == &b) {  // out aliases an input: work on a copy, as NumPy does
    Array tmp(out_n, out.dtype());
    run(a, b, tmp, batch, m, n, p, ta, tb);
    std::memcpy(out.raw(), tmp.raw(), (size_t)out_n * dtype_bytes(out.dtype()));
    return;
  }
  with_dtype(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* c = out.data<T>();
    if (n == 0) {
      std::fill(c, c + out_n, T(0));
      return;
    }
    const T *x = a.data<T>(), *y = b.data<T>();
    const auto& tbl = active_typed<T>();
    const int64_t lda = ta ? m : n, ldb = tb ? n : p;
    auto one = [&](int64_t i, int threads) {
      GemmA<T> A;
      A.a = x + i * m * n;
      A.lda = lda;
      A.trans = ta;
      tbl.gemm_ex(A, y + i * n * p, ldb, tb, c + i * m * p, p, m, n, p, false, threads);
    };
    const int threads = gemm_threads(m, n, p);
    const int batch_threads = gemm_threads(batch * m, n, p);
    if (batch > 1 && threads == 1 && batch_threads > 1) {  // many small products: one per thread
      bool failed = false;  // an exception must not leave the OpenMP region
#pragma omp parallel for schedule(dynamic, 1) num_threads(batch_threads)
      for (int64_t i = 0; i < batch; ++i) {
        try {
          one(i, 1);
        } catch (...) {
#pragma omp atomic write
          failed = true;
        }
      }
      if (failed) throw std::bad_alloc();
      return;
    }
    for (int64_t i = 0; i < batch; ++i) one(i, threads);
  });
}

}  // namespace

void matmul_t(const Array& a, const Array& b, Array& out, int64_t m, int64_t n, int64_t p,
              int64_t trans_a, int64_t trans_b) {
  check_args("matmul_t", a, b, out, 1, m, n, p, trans_a, trans_b);
  run(a, b, out, 1, m, n, p, trans_a != 0, trans_b != 0);
}

void batched_matmul_t(const Array& a, const Array& b, Array& out, int64_t batch, int64_t m,
                      int64_t n, int64_t p, int64_t trans_a, int64_t trans_b) {
  check_args("batched_matmul_t", a, b, out, batch, m, n, p, trans_a, trans_b);
  run(a, b, out, batch, m, n, p, trans_a != 0, trans_b != 0);
}

}  // namespace needle_cpp
