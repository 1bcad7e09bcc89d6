// Splitting loops across OpenMP threads.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>

#include "array.h"

namespace needle_cpp {

/// a*b for work estimates (thread counts, task sizes): INT64_MAX instead of overflowing.
inline int64_t saturating_mul(int64_t a, int64_t b) {
  int64_t r;
  return __builtin_mul_overflow(a, b, &r) ? INT64_MAX : r;
}

/// Threads for a product of m*n*p multiply-adds (one below ~64^3).
inline int gemm_threads(int64_t m, int64_t n, int64_t p) {
  const double work = (double)m * (double)n * (double)p / 8.0;
  return threads_for(work > 4e18 ? INT64_MAX : (int64_t)work);
}

/// Elements of work per task: about 256 KiB of float32, large enough to amortise scheduling.
constexpr int64_t kGrain = 1 << 16;

/// Runs body(begin, end) over [0, n) in tasks of `grain`, handed out dynamically: a thread
/// that the OS preempts (2 cores, shared with NumPy's and other threads) does not hold the
/// others back, as a static split would. One call when the work is too small to share.
template <typename F>
void parallel_chunks(int64_t n, int64_t grain, int threads, F&& body) {
  grain = std::max<int64_t>(grain, 1);
  if (threads <= 1 || n <= grain) {
    if (n > 0) body(int64_t(0), n);
    return;
  }
  const int64_t chunks = (n + grain - 1) / grain;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int64_t c = 0; c < chunks; ++c) body(c * grain, std::min(n, (c + 1) * grain));
}

/// Calls body(begin, end) over rows [0, rows) of `width` elements each, in parallel tasks of
/// about kGrain elements.
template <typename F>
void for_rows(int64_t rows, int64_t width, F&& body) {
  const int64_t per_row = std::max<int64_t>(1, width);
  const int64_t grain = per_row >= kGrain ? 1 : (kGrain + per_row - 1) / per_row;
  parallel_chunks(rows, grain, rows > 1 ? threads_for(saturating_mul(rows, per_row)) : 1, body);
}

}  // namespace needle_cpp
