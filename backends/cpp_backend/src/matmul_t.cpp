// matmul_t and batched_matmul_t: matmul with operands read transposed in place (the packed
// gemm's packing reads either layout), so `a.T @ g` and `g @ b.T` need no compacting copy.
#include <string>

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
  check_dtypes3(k, a, b, out);
}

}  // namespace

void matmul_t(const Array& a, const Array& b, Array& out, int64_t m, int64_t n, int64_t p,
              int64_t trans_a, int64_t trans_b) {
  check_args("matmul_t", a, b, out, 1, m, n, p, trans_a, trans_b);
  batched_gemm(a, b, out, 1, m, n, p, trans_a != 0, trans_b != 0);
}

void batched_matmul_t(const Array& a, const Array& b, Array& out, int64_t batch, int64_t m,
                      int64_t n, int64_t p, int64_t trans_a, int64_t trans_b) {
  check_args("batched_matmul_t", a, b, out, batch, m, n, p, trans_a, trans_b);
  batched_gemm(a, b, out, batch, m, n, p, trans_a != 0, trans_b != 0);
}

}  // namespace needle_cpp
