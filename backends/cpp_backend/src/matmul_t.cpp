// matmul_t and batched_matmul_t: matmul with operands read transposed in place (the packed
// gemm's packing reads either layout), so `a.T @ g` and `g @ b.T` need no compacting copy.
#include "perf_kernels.h"

namespace needle_cpp {

void matmul_t(const Array& a, const Array& b, Array& out, int64_t m, int64_t n, int64_t p,
              int64_t trans_a, int64_t trans_b) {
  check_gemm("matmul_t", a, b, out, 1, m, n, p, trans_a, trans_b);
  batched_gemm(a, b, out, 1, m, n, p, trans_a != 0, trans_b != 0);
}

void batched_matmul_t(const Array& a, const Array& b, Array& out, int64_t batch, int64_t m,
                      int64_t n, int64_t p, int64_t trans_a, int64_t trans_b) {
  check_gemm("batched_matmul_t", a, b, out, batch, m, n, p, trans_a, trans_b);
  batched_gemm(a, b, out, batch, m, n, p, trans_a != 0, trans_b != 0);
}

}  // namespace needle_cpp
