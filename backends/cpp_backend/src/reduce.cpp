// Row reductions over compact rows: sum, max, argmax, log-sum-exp, softmax.
#include <math.h>
#include <omp.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "isa.h"
#include "parallel.h"
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

/// Calls row_fn(i) for every row, in parallel tasks of rows when the work is large.
template <typename F>
void for_each_row(int64_t rows, int64_t reduce_size, int64_t cost, F&& row_fn) {
  // Saturating products: a reduce_size near 2**62 must not overflow into a zero grain.
  const int64_t per_row = std::max<int64_t>(1, saturating_mul(reduce_size, cost));
  parallel_chunks(rows, per_row >= kGrain ? 1 : (kGrain + per_row - 1) / per_row,
                  rows > 1 ? threads_for(saturating_mul(rows, per_row)) : 1,
                  [&](int64_t b, int64_t e) {
                    for (int64_t i = b; i < e; ++i) row_fn(i);
                  });
}

/// Few long rows: each row is cut into tasks shared by the threads; the partial results
/// are combined in task order, so the answer does not depend on the schedule.
template <typename P, typename Part, typename Combine>
P split_row(int64_t n, Part&& part, Combine&& combine) {
  const int64_t tasks = (n + kGrain - 1) / kGrain;
  std::vector<P> partial(tasks);
  parallel_chunks(tasks, 1, threads_for(n), [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t b = t * kGrain;
      partial[t] = part(b, std::min(n, b + kGrain) - b);
    }
  });
  P r = partial[0];
  for (int64_t t = 1; t < tasks; ++t) r = combine(r, partial[t]);
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
        const T* row = x + i * rs;
        // Partials in double: a row cut in pieces must not lose float32 precision.
        o[i] = (T)split_row<double>(rs, [&](int64_t b, int64_t n) { return sum(row + b, n); },
                                    [](double p, double q) { return p + q; });
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
        o[i] = split_row<T>(rs, [&](int64_t b, int64_t n) { return max(x + i * rs + b, n); }, nan_max<T>);
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
    for_each_row(out.size(), rs, 16, [&](int64_t i) {
      const T* row = x + i * rs;
      if (rs == 0) {
        o[i] = -std::numeric_limits<T>::infinity();
        return;
      }
      const auto& tbl = active_typed<T>();
      const T m = tbl.max(row, rs);
      const T shift = isfinite(m) ? m : T(0);  // rows of -inf (or +inf/NaN) are not shifted
      // exp(row - shift) in blocks through the vectorised loops, summed in double.
      T buf[1024];
      double s = 0;
      for (int64_t j = 0; j < rs; j += 1024) {
        const int64_t len = std::min<int64_t>(1024, rs - j);
        tbl.scalar[kSub](row + j, shift, buf, len, false);
        tbl.unary[kExp](buf, buf, len, false);
        s += tbl.sum(buf, len);
      }
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
    for_each_row(rows, rs, 16, [&](int64_t i) {
      const T* row = x + i * rs;
      T* orow = o + i * rs;
      const auto& tbl = active_typed<T>();
      const T m = tbl.max(row, rs);  // no isfinite shift here: the reference has none
      tbl.scalar[kSub](row, m, orow, rs, false);
      tbl.unary[kExp](orow, orow, rs, false);
      tbl.scalar[kDiv](orow, (T)tbl.sum(orow, rs), orow, rs, false);
    });
  });
}

}  // namespace needle_cpp
