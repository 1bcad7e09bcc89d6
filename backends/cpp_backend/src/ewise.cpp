// Element-wise and scalar kernels: checks, then the active ISA's loop split across threads.
#include <omp.h>

#include "isa.h"
#include "kernels.h"

namespace needle_cpp {
namespace {

/// Like the reference backend's _flat: every handle holds out.size elements, one dtype.
void check_flat(const char* kernel, int64_t n, std::initializer_list<const Array*> handles) {
  const Array* first = *handles.begin();
  for (const Array* h : handles) {
    check_size(kernel, "input", *h, n);
    check_same_dtype(kernel, *first, *h);
  }
}

/// Runs body(begin, end) over n elements, in per-thread chunks when it pays.
template <typename F>
void split(int64_t n, int64_t cost, F&& body) {
  const int threads = threads_for(n * cost);
  if (threads <= 1) {
    body(int64_t(0), n);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    // Chunk edges on 64-byte boundaries keep threads off each other's cache lines.
    const int64_t b = (n * t / nt) & ~int64_t(15), e = t + 1 == nt ? n : (n * (t + 1) / nt) & ~int64_t(15);
    if (b < e) body(b, e);
  }
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
    split(out.size(), op_cost(op, false), [&](int64_t s, int64_t e) { fn(x + s, y + s, o + s, e - s); });
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
    split(out.size(), op_cost(op, false), [&](int64_t s, int64_t e) { fn(x + s, v, o + s, e - s); });
  });
}

void ewise_unary(int op, const char* kernel, const Array& a, Array& out) {
  check_flat(kernel, out.size(), {&a, &out});
  with_dtype(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    auto fn = active_typed<T>().unary[op];
    const T* x = a.data<T>();
    T* o = out.data<T>();
    split(out.size(), op_cost(op, true), [&](int64_t s, int64_t e) { fn(x + s, o + s, e - s); });
  });
}

void ewise_where(const Array& cond, const Array& a, const Array& b, Array& out) {
  check_flat("ewise_where", out.size(), {&cond, &a, &b, &out});
  with_dtype(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T *c = cond.data<T>(), *x = a.data<T>(), *y = b.data<T>();
    T* o = out.data<T>();
    split(out.size(), 1, [&](int64_t s, int64_t e) {
#pragma omp simd
      for (int64_t i = s; i < e; ++i) o[i] = c[i] != T(0) ? x[i] : y[i];
    });
  });
}

}  // namespace needle_cpp
