// Fused layer kernels: batch norm, layer norm and softmax cross-entropy (forward and
// backward). Sums are accumulated in double. Column sums (batch norm statistics and the
// weight gradients) run over fixed blocks of kRowBlock rows whose partial sums are added
// in block order, so every result is the same for any thread count.
#include "fused_norm.h"

#include <math.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "fast_math.h"
#include "isa.h"
#include "kernels.h"
#include "parallel.h"

namespace needle_cpp {
namespace {

constexpr int64_t kRowBlock = 256;

/// result[j] = sum over rows i of the values row(i, acc) adds into acc[j], j < width: each
/// block of kRowBlock rows sums into its own partial (in row order); the partials are then
/// added in block order. `part` is scratch (allocated here, outside the parallel region).
template <typename RowFn>
void column_sums(int64_t rows, int64_t width, std::vector<double>& part, double* result,
                 RowFn&& row) {
  const int64_t blocks = (rows + kRowBlock - 1) / kRowBlock;
  part.assign(static_cast<size_t>(blocks * width), 0.0);
  const int64_t per_block = std::max<int64_t>(1, saturating_mul(kRowBlock, width));
  const int64_t grain = per_block >= kGrain ? 1 : (kGrain + per_block - 1) / per_block;
  parallel_chunks(blocks, grain, threads_for(saturating_mul(rows, width)),
                  [&](int64_t b0, int64_t b1) {
                    for (int64_t blk = b0; blk < b1; ++blk) {
                      double* acc = part.data() + blk * width;
                      const int64_t end = std::min(rows, (blk + 1) * kRowBlock);
                      for (int64_t i = blk * kRowBlock; i < end; ++i) row(i, acc);
                    }
                  });
  std::fill(result, result + width, 0.0);
  for (int64_t blk = 0; blk < blocks; ++blk)
    for (int64_t j = 0; j < width; ++j) result[j] += part[blk * width + j];
}

void check_norm(const char* k, const Array& x, const Array& w, const Array* b, const Array& out,
                const Array& stats, int64_t rows, int64_t cols, int64_t n_stats) {
  check_nonneg(k, "rows", rows);
  check_nonneg(k, "columns", cols);
  const int64_t size = checked_mul(k, rows, cols);
  check_size(k, "x", x, size);
  check_size(k, "out", out, size);
  check_size(k, "w", w, cols);
  if (b) check_size(k, "b", *b, cols);
  check_size(k, "stats", stats, checked_mul(k, 2, n_stats));
  check_same_dtypes(k, x, {&w, &out, &stats});
  if (b) check_same_dtype(k, x, *b);
}

/// check_norm for a backward pass (dx in place of out), then its dy (rows, cols) and dwb (2, cols).
void check_norm_backward(const char* k, const Array& x, const Array& dy, const Array& w,
                         const Array& stats, const Array& dx, const Array& dwb, int64_t rows,
                         int64_t cols, int64_t n_stats) {
  check_norm(k, x, w, nullptr, dx, stats, rows, cols, n_stats);
  check_size(k, "dy", dy, checked_mul(k, rows, cols));
  check_size(k, "dwb", dwb, checked_mul(k, 2, cols));
  check_same_dtypes(k, x, {&dy, &dwb});
}

// --- row kernels of layer norm and softmax cross-entropy ---------------------------------
// Written as loops the compiler vectorises (sums as `omp simd` reductions in double, exp
// inline), compiled once per instruction set below and picked by the active kernel table's
// name. Each row is summed by one thread in a fixed order: results do not depend on the
// thread count.
template <typename T>
struct LnArgs {
  const T *x, *w, *b, *dy, *stats;
  T *out, *st_out;
  int64_t rows, d;
  double eps;
};

template <typename T>
NEEDLE_ALWAYS_INLINE void ln_forward_rows(const LnArgs<T>& a, int64_t i0, int64_t i1) {
  const int64_t d = a.d;
  for (int64_t i = i0; i < i1; ++i) {
    const T* r = a.x + i * d;
    double s = 0, q = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < d; ++j) s += (double)r[j];
    const double mean = s / (double)d;
#pragma omp simd reduction(+ : q)
    for (int64_t j = 0; j < d; ++j) q += ((double)r[j] - mean) * ((double)r[j] - mean);
    const double var = q / (double)d, rs = 1.0 / sqrt(var + a.eps);
    a.st_out[i] = (T)mean;
    a.st_out[a.rows + i] = (T)var;
    T* o = a.out + i * d;
    const T tm = (T)mean, trs = (T)rs;
#pragma omp simd
    for (int64_t j = 0; j < d; ++j) o[j] = ((r[j] - tm) * trs) * a.w[j] + a.b[j];
  }
}

/// Layer-norm backward over rows [i0, i1), one pass over x and dy: the dx rows, and the
/// column sums acc[j] += dy * xhat, acc[d + j] += dy (in row order) for dw and db.
template <typename T>
NEEDLE_ALWAYS_INLINE void ln_backward_rows(const LnArgs<T>& a, int64_t i0, int64_t i1,
                                           double* acc) {
  const int64_t d = a.d;
  for (int64_t i = i0; i < i1; ++i) {
    const T* xr = a.x + i * d;
    const T* gr = a.dy + i * d;
    const double mean = a.stats[i], r = 1.0 / sqrt((double)a.stats[a.rows + i] + a.eps);
    // the row sums in T (float rows vectorise 16 wide; a row is short), the rest in double
    // (16 lane sums, then added in lane order: GCC does not vectorise these reductions
    // as `omp simd reduction` loops)
    const T tmean = (T)mean, tr = (T)r;
    const T* __restrict w = a.w;
    T l1[16] = {}, l2[16] = {};
    int64_t j0 = 0;
    for (; j0 + 16 <= d; j0 += 16) {
#pragma omp simd
      for (int l = 0; l < 16; ++l) {
        const T g = gr[j0 + l] * w[j0 + l];
        l1[l] += g;
        l2[l] += g * ((xr[j0 + l] - tmean) * tr);
      }
    }
    for (int64_t j = j0; j < d; ++j) {
      const T g = gr[j] * w[j];
      l1[0] += g;
      l2[0] += g * ((xr[j] - tmean) * tr);
    }
    double s1 = 0, s2 = 0;
    for (int l = 0; l < 16; ++l) {
      s1 += l1[l];
      s2 += l2[l];
    }
    double* __restrict acc_w = acc;
    double* __restrict acc_b = acc + d;
#pragma omp simd
    for (int64_t j = 0; j < d; ++j) {
      acc_w[j] += (double)gr[j] * (((double)xr[j] - mean) * r);
      acc_b[j] += (double)gr[j];
    }
    T* o = a.out + i * d;
    const double c0 = r / (double)d;
#pragma omp simd
    for (int64_t j = 0; j < d; ++j) {
      const double g = (double)gr[j] * (double)a.w[j], xh = ((double)xr[j] - mean) * r;
      o[j] = (T)(c0 * ((double)d * g - s1 - xh * s2));
    }
  }
}

template <typename T>
struct XentArgs {
  const T *z, *labels;
  T* out;
  int64_t k;
  T scale;  // backward: the upstream gradient g[0]
};

template <typename T>
NEEDLE_ALWAYS_INLINE T row_max(const T* r, int64_t k) {
  T m = r[0];
#pragma omp simd reduction(max : m)
  for (int64_t j = 0; j < k; ++j) m = r[j] > m ? r[j] : m;
  return m;  // a NaN in the row reaches the sum of exps below, so the result, anyway
}

// Rows shorter than this are too short for the loops over one row to vectorise (the exp
// runs in the loop's scalar tail: 128 rows of 10 classes took 20 us instead of 1): a block
// of rows is shifted by their maxima and exponentiated by one loop over the whole block.
constexpr int64_t kShortRow = 32;
constexpr int64_t kShortBlock = 1024;  // elements per block

// e[i * k + j] = exp(z[i * k + j] - shift[i]) for `rows` rows of k elements.
template <typename T>
NEEDLE_ALWAYS_INLINE void exp_shifted_rows(const T* z, int64_t rows, int64_t k, const T* shift, T* e) {
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < k; ++j) e[i * k + j] = z[i * k + j] - shift[i];
  const int64_t total = rows * k;
#pragma omp simd
  for (int64_t t = 0; t < total; ++t) e[t] = row_exp(e[t]);
}

template <typename T>
NEEDLE_ALWAYS_INLINE double short_row_sum(const T* r, int64_t k) {
  double s = 0;
  for (int64_t j = 0; j < k; ++j) s += (double)r[j];
  return s;
}

// Rows [i0, i1) of a short-row softmax (see kShortRow); on_row(i, row of exps, sum, shift)
// finishes each row. The exps go to `e`: a scratch block of kShortBlock elements reused by
// every block, or (in_place) rows [i0, i1) of the output itself.
template <typename T, typename F>
NEEDLE_ALWAYS_INLINE void short_softmax_rows(const T* z, int64_t k, int64_t i0, int64_t i1, bool finite_shift,
                                             T* e, bool in_place, F&& on_row) {
  const int64_t block = std::max<int64_t>(1, kShortBlock / k);
  T shift[kShortBlock];
  for (int64_t b0 = i0; b0 < i1; b0 += block) {
    const int64_t rows = std::min(block, i1 - b0);
    for (int64_t i = 0; i < rows; ++i) {
      const T mx = row_max(z + (b0 + i) * k, k);
      shift[i] = finite_shift && !std::isfinite(mx) ? T(0) : mx;
    }
    T* eb = in_place ? e + (b0 - i0) * k : e;
    exp_shifted_rows(z + b0 * k, rows, k, shift, eb);
    for (int64_t i = 0; i < rows; ++i) on_row(b0 + i, eb + i * k, short_row_sum(eb + i * k, k), shift[i]);
  }
}

template <typename T>
NEEDLE_ALWAYS_INLINE void xent_rows(const XentArgs<T>& a, int64_t i0, int64_t i1) {
  if (a.k < kShortRow) {
    T e[kShortBlock];
    short_softmax_rows(a.z, a.k, i0, i1, true, e, false, [&](int64_t i, const T*, double s, T shift) {
      a.out[i] = (T)(log(s) + (double)shift - (double)a.z[i * a.k + (int64_t)a.labels[i]]);
    });
    return;
  }
  for (int64_t i = i0; i < i1; ++i) {
    const T* r = a.z + i * a.k;
    const T mx = row_max(r, a.k);
    const T shift = std::isfinite(mx) ? mx : T(0);
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < a.k; ++j) s += (double)row_exp(r[j] - shift);
    a.out[i] = (T)(log(s) + (double)shift - (double)r[(int64_t)a.labels[i]]);
  }
}

template <typename T>
NEEDLE_ALWAYS_INLINE void xent_backward_rows(const XentArgs<T>& a, int64_t i0, int64_t i1) {
  if (a.k < kShortRow) {
    short_softmax_rows(a.z, a.k, i0, i1, false, a.out + i0 * a.k, true, [&](int64_t i, T* o, double s, T) {
      const T f = (T)((double)a.scale / s);
      for (int64_t j = 0; j < a.k; ++j) o[j] *= f;
      o[(int64_t)a.labels[i]] -= a.scale;
    });
    return;
  }
  for (int64_t i = i0; i < i1; ++i) {
    const T* r = a.z + i * a.k;
    T* o = a.out + i * a.k;
    const T mx = row_max(r, a.k);
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < a.k; ++j) {
      o[j] = row_exp(r[j] - mx);
      s += (double)o[j];
    }
    const T f = (T)((double)a.scale / s);
#pragma omp simd
    for (int64_t j = 0; j < a.k; ++j) o[j] *= f;
    o[(int64_t)a.labels[i]] -= a.scale;
  }
}

// One copy of each per instruction set.
NEEDLE_ISA_COPIES(ln_forward_rows, , (const LnArgs<T>& a, int64_t i0, int64_t i1), (a, i0, i1))
NEEDLE_ISA_COPIES(ln_backward_rows, , (const LnArgs<T>& a, int64_t i0, int64_t i1, double* acc),
                  (a, i0, i1, acc))
NEEDLE_ISA_COPIES(xent_rows, , (const XentArgs<T>& a, int64_t i0, int64_t i1), (a, i0, i1))
NEEDLE_ISA_COPIES(xent_backward_rows, , (const XentArgs<T>& a, int64_t i0, int64_t i1), (a, i0, i1))

}  // namespace

// --- batch norm -------------------------------------------------------------------------
void check_batchnorm_forward(const Array& x, const Array& w, const Array& b, const Array& out,
                             const Array& stats, int64_t m, int64_t c) {
  check_norm("batchnorm_forward", x, w, &b, out, stats, m, c, c);
  if (m < 1) value_error("batchnorm_forward", "needs at least one row, got m = " + std::to_string(m));
}

void batchnorm_forward(const Array& x, const Array& w, const Array& b, Array& out, Array& stats,
                       int64_t m, int64_t c, double eps) {
  check_batchnorm_forward(x, w, b, out, stats, m, c);
  with_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* X = x.data<T>();
    std::vector<double> part, sum(c), sq(c);
    column_sums(m, c, part, sum.data(), [&](int64_t i, double* acc) {
      const T* r = X + i * c;
      for (int64_t j = 0; j < c; ++j) acc[j] += r[j];
    });
    std::vector<double> mean(c);
    for (int64_t j = 0; j < c; ++j) mean[j] = sum[j] / (double)m;
    column_sums(m, c, part, sq.data(), [&](int64_t i, double* acc) {
      const T* r = X + i * c;
      for (int64_t j = 0; j < c; ++j) {
        const double d = (double)r[j] - mean[j];
        acc[j] += d * d;
      }
    });
    std::vector<T> mu(c), scale(c), shift(c);
    T* S = stats.data<T>();
    const T* W = w.data<T>();
    const T* B = b.data<T>();
    for (int64_t j = 0; j < c; ++j) {
      const double var = sq[j] / (double)m;
      S[j] = (T)mean[j];
      S[c + j] = (T)var;
      mu[j] = (T)mean[j];
      scale[j] = (T)((double)W[j] / sqrt(var + eps));
      shift[j] = B[j];
    }
    T* O = out.data<T>();
    for_rows(m, c, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const T* r = X + i * c;
        T* o = O + i * c;
        for (int64_t j = 0; j < c; ++j) o[j] = (r[j] - mu[j]) * scale[j] + shift[j];
      }
    });
  });
}

void check_batchnorm_backward(const Array& x, const Array& dy, const Array& w, const Array& stats,
                              const Array& dx, const Array& dwb, int64_t m, int64_t c) {
  check_norm_backward("batchnorm_backward", x, dy, w, stats, dx, dwb, m, c, c);
}

void batchnorm_backward(const Array& x, const Array& dy, const Array& w, const Array& stats,
                        Array& dx, Array& dwb, int64_t m, int64_t c, double eps) {
  check_batchnorm_backward(x, dy, w, stats, dx, dwb, m, c);
  with_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T *X = x.data<T>(), *G = dy.data<T>(), *S = stats.data<T>(), *W = w.data<T>();
    std::vector<double> part, sums(2 * c);
    column_sums(m, 2 * c, part, sums.data(), [&](int64_t i, double* acc) {
      const T* xr = X + i * c;
      const T* gr = G + i * c;
      for (int64_t j = 0; j < c; ++j) {
        acc[j] += gr[j];
        acc[c + j] += (double)gr[j] * ((double)xr[j] - (double)S[j]);
      }
    });
    std::vector<T> mu(c), ca(c), cb(c), cc(c);
    T* DWB = dwb.data<T>();
    for (int64_t j = 0; j < c; ++j) {
      const double r = 1.0 / sqrt((double)S[c + j] + eps);
      const double db = sums[j], dw = sums[c + j] * r, wr = (double)W[j] * r;
      DWB[j] = (T)dw;
      DWB[c + j] = (T)db;
      mu[j] = S[j];
      ca[j] = (T)wr;
      cb[j] = (T)(m ? -wr * r * dw / (double)m : 0.0);
      cc[j] = (T)(m ? -wr * db / (double)m : 0.0);
    }
    T* D = dx.data<T>();
    for_rows(m, c, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const T* xr = X + i * c;
        const T* gr = G + i * c;
        T* o = D + i * c;
        for (int64_t j = 0; j < c; ++j) o[j] = ca[j] * gr[j] + cb[j] * (xr[j] - mu[j]) + cc[j];
      }
    });
  });
}

// --- layer norm -------------------------------------------------------------------------
void check_layernorm_forward(const Array& x, const Array& w, const Array& b, const Array& out,
                             const Array& stats, int64_t rows, int64_t d) {
  check_norm("layernorm_forward", x, w, &b, out, stats, rows, d, rows);
  if (d < 1) value_error("layernorm_forward", "needs at least one column, got d = " + std::to_string(d));
}

void layernorm_forward(const Array& x, const Array& w, const Array& b, Array& out, Array& stats,
                       int64_t rows, int64_t d, double eps) {
  check_layernorm_forward(x, w, b, out, stats, rows, d);
  with_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const LnArgs<T> a{x.data<T>(), w.data<T>(), b.data<T>(), nullptr, nullptr,
                      out.data<T>(), stats.data<T>(), rows, d, eps};
    const auto fn = NEEDLE_PICK(ln_forward_rows, T);
    for_rows(rows, 3 * d, [&](int64_t i0, int64_t i1) { fn(a, i0, i1); });
  });
}

void check_layernorm_backward(const Array& x, const Array& dy, const Array& w, const Array& stats,
                              const Array& dx, const Array& dwb, int64_t rows, int64_t d) {
  check_norm_backward("layernorm_backward", x, dy, w, stats, dx, dwb, rows, d, rows);
}

void layernorm_backward(const Array& x, const Array& dy, const Array& w, const Array& stats,
                        Array& dx, Array& dwb, int64_t rows, int64_t d, double eps) {
  check_layernorm_backward(x, dy, w, stats, dx, dwb, rows, d);
  with_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const LnArgs<T> a{x.data<T>(), w.data<T>(), nullptr, dy.data<T>(), stats.data<T>(),
                      dx.data<T>(), nullptr, rows, d, eps};
    // Blocks of kLnBlock rows, each with its own column partial sums, added in block
    // order afterwards: the same result for any thread count.
    constexpr int64_t kLnBlock = 64;
    const auto fn = NEEDLE_PICK(ln_backward_rows, T);
    const int64_t blocks = (rows + kLnBlock - 1) / kLnBlock;
    std::vector<double> part(static_cast<size_t>(blocks * 2 * d), 0.0), sums(2 * d, 0.0);
    const int64_t per_block = std::max<int64_t>(1, saturating_mul(kLnBlock, 4 * d));
    const int64_t grain = per_block >= kGrain ? 1 : (kGrain + per_block - 1) / per_block;
    parallel_chunks(blocks, grain, threads_for(saturating_mul(rows, 4 * d)),
                    [&](int64_t b0, int64_t b1) {
                      for (int64_t blk = b0; blk < b1; ++blk)
                        fn(a, blk * kLnBlock, std::min(rows, (blk + 1) * kLnBlock),
                           part.data() + blk * 2 * d);
                    });
    for (int64_t blk = 0; blk < blocks; ++blk)
      for (int64_t j = 0; j < 2 * d; ++j) sums[j] += part[blk * 2 * d + j];
    T* DWB = dwb.data<T>();
    for (int64_t j = 0; j < 2 * d; ++j) DWB[j] = (T)sums[j];
  });
}

// --- softmax cross-entropy ----------------------------------------------------------------
void check_softmax_xent(const char* k, const Array& a, const Array& labels, const Array* g,
                        const Array& out, int64_t n, int64_t classes, bool labels_too) {
  check_nonneg(k, "n", n);
  check_nonneg(k, "k", classes);
  if (classes < 1) value_error(k, "k must be >= 1, got " + std::to_string(classes));
  const int64_t size = checked_mul(k, n, classes);
  check_size(k, "a", a, size);
  check_size(k, "labels", labels, n);
  check_size(k, "out", out, g ? size : n);
  check_same_dtypes(k, a, {&labels, &out});
  if (g) {
    check_size(k, "g", *g, 1);
    check_same_dtype(k, a, *g);
  }
  if (!labels_too) return;
  with_dtype(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* L = labels.data<T>();
    for (int64_t i = 0; i < n; ++i) {
      const T v = L[i];
      if (!(v >= 0 && v < (T)classes) || v != (T)(int64_t)v)
        index_error(k, "label " + std::to_string((double)v) + " of row " + std::to_string(i) +
                           " is not a whole number in [0, " + std::to_string(classes) + ")");
    }
  });
}

void softmax_xent(const Array& a, const Array& labels, Array& out, int64_t n, int64_t k) {
  check_softmax_xent("softmax_xent", a, labels, nullptr, out, n, k, true);
  with_dtype(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const XentArgs<T> args{a.data<T>(), labels.data<T>(), out.data<T>(), k, T(0)};
    const auto fn = NEEDLE_PICK(xent_rows, T);
    for_rows(n, 3 * k, [&](int64_t i0, int64_t i1) { fn(args, i0, i1); });
  });
}

void softmax_xent_backward(const Array& a, const Array& labels, const Array& g, Array& out,
                           int64_t n, int64_t k) {
  check_softmax_xent("softmax_xent_backward", a, labels, &g, out, n, k, true);
  with_dtype(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const XentArgs<T> args{a.data<T>(), labels.data<T>(), out.data<T>(), k, g.data<T>()[0]};
    const auto fn = NEEDLE_PICK(xent_backward_rows, T);
    for_rows(n, 4 * k, [&](int64_t i0, int64_t i1) { fn(args, i0, i1); });
  });
}

}  // namespace needle_cpp
