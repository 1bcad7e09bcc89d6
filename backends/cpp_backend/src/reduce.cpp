// Row reductions over compact rows: sum, max, argmax, log-sum-exp, softmax.
#include <math.h>
#include <omp.h>

#include <limits>
#include <vector>

#include "isa.h"
#include "kernels.h"

namespace needle_cpp {
namespace {

/// Like the reference backend's _rows: a holds out.size rows of reduce_size, same dtype.
void check_rows(const char* kernel, const Array& a, const Array& out, int64_t reduce_size,
                int64_t min_reduce) {
  if (reduce_size < min_reduce)
    value_error(kernel, "reduce_size must be >= " + std::to_string(min_reduce) + ", got " +
                            std::to_string(reduce_size));
  check_size(kernel, "input", a, checked_mul(kernel, out.size(), reduce_size));
  check_same_dtype(kernel, a, out);
}

/// Calls row_fn(i) for every row, in parallel over rows when the work is large.
template <typename F>
void for_each_row(int64_t rows, int64_t reduce_size, int64_t cost, F&& row_fn) {
  const int threads = rows > 1 ? threads_for(rows * reduce_size * cost) : 1;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t i = 0; i < rows; ++i) row_fn(i);
}

/// Few long rows: each row is split across the threads, partial results combined.
template <typename T, typename Part, typename Combine>
T split_row(const T* x, int64_t n, Part&& part, Combine&& combine) {
  const int threads = threads_for(n);
  if (threads <= 1) return part(x, n);
  std::vector<T> partial(threads);
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t b = n * t / nt, e = n * (t + 1) / nt;
    partial[t] = part(x + b, e - b);
  }
  T r = partial[0];
  for (int t = 1; t < threads; ++t) r = combine(r, partial[t]);
  return r;
}

bool few_long_rows(int64_t rows, int64_t reduce_size) {
  return rows < 2 * omp_get_max_threads() && threads_for(reduce_size) > 1;
}

template <typename T>
T nan_max(T a, T b) { return (b > a || b != b) ? b : a; }

}  // namespace

void reduce_sum(const Array& a, Array& out, int64_t reduce_size) {
  check_rows("reduce_sum", a, out, reduce_size, 0);
  with_dtype(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* x = a.data<T>();
    T* o = out.data<T>();
    const int64_t rows = out.size(), rs = reduce_size;
    auto sum = active_typed<T>().sum;
    if (few_long_rows(rows, rs)) {
      for (int64_t i = 0; i < rows; ++i) {
        // Partials in double: a row split in two must not lose float32 precision.
        std::vector<double> partial(omp_get_max_threads(), 0.0);
        const int threads = threads_for(rs);
#pragma omp parallel num_threads(threads)
        {
          const int t = omp_get_thread_num(), nt = omp_get_num_threads();
          const int64_t b = rs * t / nt, e = rs * (t + 1) / nt;
          partial[t] = sum(x + i * rs + b, e - b);
        }
        double s = 0;
        for (double p : partial) s += p;
        o[i] = (T)s;
      }
      return;
    }
    for_each_row(rows, rs, 1, [&](int64_t i) { o[i] = (T)sum(x + i * rs, rs); });
  });
}

void reduce_max(const Array& a, Array& out, int64_t reduce_size) {
  check_rows("reduce_max", a, out, reduce_size, 1);
  with_dtype(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* x = a.data<T>();
    T* o = out.data<T>();
    const int64_t rows = out.size(), rs = reduce_size;
    auto max = active_typed<T>().max;
    if (few_long_rows(rows, rs)) {
      for (int64_t i = 0; i < rows; ++i)
        o[i] = split_row<T>(x + i * rs, rs, max, nan_max<T>);
      return;
    }
    for_each_row(rows, rs, 1, [&](int64_t i) { o[i] = max(x + i * rs, rs); });
  });
}

void reduce_argmax(const Array& a, Array& out, int64_t reduce_size) {
  check_rows("reduce_argmax", a, out, reduce_size, 1);
  with_dtype(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* x = a.data<T>();
    T* o = out.data<T>();
    const int64_t rs = reduce_size;
    for_each_row(out.size(), rs, 1, [&](int64_t i) {
      const T* row = x + i * rs;
      int64_t best_j = 0;
      T best = row[0];
      if (best == best) {
        for (int64_t j = 1; j < rs; ++j) {
          if (row[j] != row[j]) {  // like np.argmax, the first NaN is the maximum
            best_j = j;
            break;
          }
          if (row[j] > best) {
            best = row[j];
            best_j = j;
          }
        }
      }
      o[i] = (T)best_j;
    });
  });
}

void logsumexp_last(const Array& a, Array& out, int64_t reduce_size) {
  check_rows("logsumexp_last", a, out, reduce_size, 0);
  with_dtype(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* x = a.data<T>();
    T* o = out.data<T>();
    const int64_t rs = reduce_size;
    auto max = active_typed<T>().max;
    for_each_row(out.size(), rs, 16, [&](int64_t i) {
      const T* row = x + i * rs;
      if (rs == 0) {
        o[i] = -std::numeric_limits<T>::infinity();
        return;
      }
      const T m = max(row, rs);
      const T shift = isfinite(m) ? m : T(0);  // rows of -inf (or +inf/NaN) are not shifted
      double s = 0;
      for (int64_t j = 0; j < rs; ++j) s += (double)(T)exp(row[j] - shift);
      o[i] = (T)(log(s) + (double)shift);
    });
  });
}

void softmax_last(const Array& a, Array& out, int64_t reduce_size) {
  if (reduce_size < 1)
    value_error("softmax_last", "reduce_size must be >= 1, got " + std::to_string(reduce_size));
  const int64_t rows = a.size() / reduce_size;
  check_size("softmax_last", "output", out, rows * reduce_size);
  check_same_dtype("softmax_last", a, out);
  with_dtype(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* x = a.data<T>();
    T* o = out.data<T>();
    const int64_t rs = reduce_size;
    auto max = active_typed<T>().max;
    for_each_row(rows, rs, 16, [&](int64_t i) {
      const T* row = x + i * rs;
      T* orow = o + i * rs;
      const T m = max(row, rs);
      double s = 0;
      for (int64_t j = 0; j < rs; ++j) {
        orow[j] = (T)exp(row[j] - m);
        s += (double)orow[j];
      }
      const T inv = (T)s;
      for (int64_t j = 0; j < rs; ++j) orow[j] = orow[j] / inv;
    });
  });
}

}  // namespace needle_cpp
