// Element-wise and scalar kernels: checks, then the active ISA's loop split across threads.
#include "isa.h"
#include "parallel.h"
#include "kernels.h"

namespace needle_cpp {
namespace {

/// Runs body(begin, end, stream) over n elements of T, in dynamic tasks when it pays.
/// Outputs over half the L3 cache are streamed past it (they cannot stay cached anyway).
template <typename T, typename F>
void split(int64_t n, int64_t cost, F&& body) {
  const bool stream = n * (int64_t)sizeof(T) >= (int64_t(16) << 20);
  parallel_chunks(n, kGrain, threads_for(saturating_mul(n, cost)),
                  [&](int64_t b, int64_t e) { body(b, e, stream); });
}

int64_t op_cost(int op, bool unary) {
  if (unary) return op == kNeg || op == kAbs ? 1 : 16;  // libm calls are ~16x an add
  return op == kPower ? 16 : 1;
}

}  // namespace

void ewise_binary(int op, const char* kernel, const Array& a, const Array& b, Array& out) {
  check_flat(kernel, out.size(), {&a, &b, &out});
  with_dtype(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    auto fn = active_typed<T>().binary[op];
    const T *x = a.data<T>(), *y = b.data<T>();
    T* o = out.data<T>();
    split<T>(out.size(), op_cost(op, false), [&](int64_t s, int64_t e, bool st) { fn(x + s, y + s, o + s, e - s, st); });
  });
}

void scalar_binary(int op, const char* kernel, const Array& a, double value, Array& out) {
  check_flat(kernel, out.size(), {&a, &out});
  with_dtype(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    auto fn = active_typed<T>().scalar[op];
    const T* x = a.data<T>();
    T* o = out.data<T>();
    const T v = (T)value;  // rounded to the dtype first, as NumPy does
    split<T>(out.size(), op_cost(op, false), [&](int64_t s, int64_t e, bool st) { fn(x + s, v, o + s, e - s, st); });
  });
}

void ewise_unary(int op, const char* kernel, const Array& a, Array& out) {
  check_flat(kernel, out.size(), {&a, &out});
  with_dtype(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    auto fn = active_typed<T>().unary[op];
    const T* x = a.data<T>();
    T* o = out.data<T>();
    split<T>(out.size(), op_cost(op, true), [&](int64_t s, int64_t e, bool st) { fn(x + s, o + s, e - s, st); });
  });
}

void ewise_where(const Array& cond, const Array& a, const Array& b, Array& out) {
  check_flat("ewise_where", out.size(), {&cond, &a, &b, &out});
  with_dtype(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T *c = cond.data<T>(), *x = a.data<T>(), *y = b.data<T>();
    T* o = out.data<T>();
    split<T>(out.size(), 1, [&](int64_t s, int64_t e, bool) {
#pragma omp simd
      for (int64_t i = s; i < e; ++i) o[i] = c[i] != T(0) ? x[i] : y[i];
    });
  });
}

}  // namespace needle_cpp
