// reduce_sum_mid / reduce_max_mid: reduce axis 1 of a compact (outer, reduce, inner) array
// in place, so sums over leading or middle axes (bias gradients, unbroadcasting, batch
// norm statistics over N*H*W) need no permuting copy first.
#include <algorithm>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "parallel.h"
#include "perf_kernels.h"

namespace needle_cpp {
namespace {

constexpr int64_t kJ = 4096;  // inner elements per task

template <typename T>
inline T nan_max2(T acc, T x) { return (x > acc || x != x) ? x : acc; }

// acc[j] += rows[r * stride + j] for r < n_rows, j < len: the inner loop of the sums,
// compiled for AVX-512, AVX2 and the baseline and picked at load time (the result is the
// same on each: every acc[j] adds the same values in the same order).
#define NEEDLE_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
NEEDLE_CLONES void add_rows(double* acc, const float* rows, int64_t n_rows, int64_t stride,
                            int64_t len) {
  for (int64_t r = 0; r < n_rows; ++r) {
    const float* row = rows + r * stride;
#pragma omp simd
    for (int64_t j = 0; j < len; ++j) acc[j] += (double)row[j];
  }
}
NEEDLE_CLONES void add_rows(double* acc, const double* rows, int64_t n_rows, int64_t stride,
                            int64_t len) {
  for (int64_t r = 0; r < n_rows; ++r) {
    const double* row = rows + r * stride;
#pragma omp simd
    for (int64_t j = 0; j < len; ++j) acc[j] += row[j];
  }
}
#undef NEEDLE_CLONES

}  // namespace

int64_t check_reduce_mid(const char* kn, bool max, const Array& a, const Array& out, int64_t outer,
                         int64_t reduce, int64_t inner) {
  check_nonneg(kn, "outer", outer);
  check_nonneg(kn, "reduce", reduce);
  check_nonneg(kn, "inner", inner);
  if (max && reduce < 1) value_error(kn, "reduce must be >= 1, got " + std::to_string(reduce));
  const int64_t out_n = checked_mul(kn, outer, inner);
  check_size(kn, "a", a, checked_mul(kn, out_n, reduce));
  check_size(kn, "out", out, out_n);
  check_same_dtype(kn, a, out);
  return out_n;
}

namespace {

template <bool MAX>
void reduce_mid(const char* kn, const Array& a, Array& out, int64_t outer, int64_t reduce,
                int64_t inner) {
  const int64_t out_n = check_reduce_mid(kn, MAX, a, out, outer, reduce, inner);
  if (out_n == 0) return;
  if (&out == &a) {  // out aliases the input: reduce into a copy
    Array tmp(out_n, out.dtype());
    reduce_mid<MAX>(kn, a, tmp, outer, reduce, inner);
    std::memcpy(out.raw(), tmp.raw(), (size_t)out_n * dtype_bytes(out.dtype()));
    return;
  }
  with_dtype(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using Acc = std::conditional_t<MAX, T, double>;  // sums in double, as reduce_sum does
    const T* x = a.data<T>();
    T* o = out.data<T>();
    if (reduce == 0) {  // sum of nothing
      std::fill(o, o + out_n, T(0));
      return;
    }
    // Tasks: (outer index, block of rows of the reduced axis, block of kJ inner elements).
    // The number of row blocks depends only on the sizes, so the result does not depend
    // on the thread count or the schedule.
    const int64_t jlen = std::min(inner, kJ);
    const int64_t jblocks = (inner + kJ - 1) / kJ;
    const int64_t rchunk = std::max<int64_t>(1, kGrain / jlen);
    const int64_t rblocks = (reduce + rchunk - 1) / rchunk;
    const int64_t tasks1 = outer * jblocks;
    if (rblocks == 1) {  // one row block: accumulate on the stack, write out directly
      const int threads = tasks1 > 1 ? threads_for(out_n * reduce) : 1;
      parallel_chunks(tasks1, std::max<int64_t>(1, kGrain / (reduce * jlen)), threads,
                      [&](int64_t t0, int64_t t1) {
        Acc acc[kJ];
        for (int64_t t = t0; t < t1; ++t) {
          const int64_t jb = t % jblocks, oi = t / jblocks;
          const int64_t j0 = jb * kJ, len = std::min(inner, j0 + kJ) - j0;
          const T* first = x + oi * reduce * inner + j0;
          for (int64_t j = 0; j < len; ++j) acc[j] = (Acc)first[j];
          if constexpr (MAX) {
            for (int64_t r = 1; r < reduce; ++r) {
              const T* row = first + r * inner;
              for (int64_t j = 0; j < len; ++j) acc[j] = nan_max2(acc[j], row[j]);
            }
          } else {
            add_rows(acc, first + inner, reduce - 1, inner, len);
          }
          T* dst = o + oi * inner + j0;
          for (int64_t j = 0; j < len; ++j) dst[j] = (T)acc[j];
        }
      });
      return;
    }
    std::vector<Acc> partial((size_t)(out_n * rblocks));
    const int64_t tasks = outer * rblocks * jblocks;
    const int threads = tasks > 1 ? threads_for(out_n * reduce) : 1;
    const int64_t per_task = std::min(reduce, rchunk) * jlen;  // elements read by one task
    parallel_chunks(tasks, std::max<int64_t>(1, kGrain / per_task), threads, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t jb = t % jblocks, rb = t / jblocks % rblocks, oi = t / jblocks / rblocks;
        const int64_t j0 = jb * kJ, j1 = std::min(inner, j0 + kJ);
        const int64_t r0 = rb * rchunk, r1 = std::min(reduce, r0 + rchunk);
        Acc* acc = partial.data() + (oi * rblocks + rb) * inner;
        const T* first = x + (oi * reduce + r0) * inner;
        for (int64_t j = j0; j < j1; ++j) acc[j] = (Acc)first[j];
        if constexpr (MAX) {
          for (int64_t r = r0 + 1; r < r1; ++r) {
            const T* row = x + (oi * reduce + r) * inner;
            for (int64_t j = j0; j < j1; ++j) acc[j] = nan_max2(acc[j], row[j]);
          }
        } else {
          add_rows(acc + j0, first + inner + j0, r1 - r0 - 1, inner, j1 - j0);
        }
      }
    });
    // Combine the row blocks in order.
    parallel_chunks(out_n, kGrain, rblocks > 1 ? threads_for(out_n * rblocks) : 1,
                    [&](int64_t b, int64_t e) {
      for (int64_t q = b; q < e; ++q) {
        const int64_t oi = q / inner, j = q % inner;
        Acc v = partial[(size_t)(oi * rblocks * inner + j)];
        for (int64_t rb = 1; rb < rblocks; ++rb) {
          const Acc w = partial[(size_t)((oi * rblocks + rb) * inner + j)];
          if constexpr (MAX) v = nan_max2(v, w); else v += w;
        }
        o[q] = (T)v;
      }
    });
  });
}

}  // namespace

void reduce_sum_mid(const Array& a, Array& out, int64_t outer, int64_t reduce, int64_t inner) {
  reduce_mid<false>("reduce_sum_mid", a, out, outer, reduce, inner);
}

void reduce_max_mid(const Array& a, Array& out, int64_t outer, int64_t reduce, int64_t inner) {
  reduce_mid<true>("reduce_max_mid", a, out, outer, reduce, inner);
}

}  // namespace needle_cpp
