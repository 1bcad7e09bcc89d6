// Fused layer kernels: batch norm, layer norm and softmax cross-entropy (forward and
// backward). Sums are accumulated in double. Column sums (batch norm statistics and the
// weight gradients) run over fixed blocks of kRowBlock rows whose partial sums are added
// in block order, so every result is the same for any thread count.
#include "fused_norm.h"

#include <math.h>

#include <algorithm>
#include <vector>

#include "isa.h"
#include "kernels.h"
#include "parallel.h"

namespace needle_cpp {
namespace {

constexpr int64_t kRowBlock = 256;

void same_dtypes(const char* k, const Array& first, std::initializer_list<const Array*> rest) {
  for (const Array* h : rest) check_same_dtype(k, first, *h);
}

/// Calls body(begin, end) over rows [0, rows) in parallel tasks of about kGrain elements.
template <typename F>
void for_rows(int64_t rows, int64_t width, F&& body) {
  const int64_t per_row = std::max<int64_t>(1, width);
  const int64_t grain = per_row >= kGrain ? 1 : (kGrain + per_row - 1) / per_row;
  parallel_chunks(rows, grain, rows > 1 ? threads_for(saturating_mul(rows, per_row)) : 1, body);
}

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
  same_dtypes(k, x, {&w, &out, &stats});
  if (b) check_same_dtype(k, x, *b);
}

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
  const char* k = "batchnorm_backward";
  check_norm(k, x, w, nullptr, dx, stats, m, c, c);
  check_size(k, "dy", dy, checked_mul(k, m, c));
  check_size(k, "dwb", dwb, checked_mul(k, 2, c));
  same_dtypes(k, x, {&dy, &dwb});
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
    const T *X = x.data<T>(), *W = w.data<T>(), *B = b.data<T>();
    T *O = out.data<T>(), *S = stats.data<T>();
    for_rows(rows, 3 * d, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const T* r = X + i * d;
        double s = 0, q = 0;
        for (int64_t j = 0; j < d; ++j) s += r[j];
        const double mean = s / (double)d;
        for (int64_t j = 0; j < d; ++j) q += ((double)r[j] - mean) * ((double)r[j] - mean);
        const double var = q / (double)d, rs = 1.0 / sqrt(var + eps);
        S[i] = (T)mean;
        S[rows + i] = (T)var;
        T* o = O + i * d;
        for (int64_t j = 0; j < d; ++j) o[j] = (T)(((double)r[j] - mean) * rs) * W[j] + B[j];
      }
    });
  });
}

void check_layernorm_backward(const Array& x, const Array& dy, const Array& w, const Array& stats,
                              const Array& dx, const Array& dwb, int64_t rows, int64_t d) {
  const char* k = "layernorm_backward";
  check_norm(k, x, w, nullptr, dx, stats, rows, d, rows);
  check_size(k, "dy", dy, checked_mul(k, rows, d));
  check_size(k, "dwb", dwb, checked_mul(k, 2, d));
  same_dtypes(k, x, {&dy, &dwb});
}

void layernorm_backward(const Array& x, const Array& dy, const Array& w, const Array& stats,
                        Array& dx, Array& dwb, int64_t rows, int64_t d, double eps) {
  check_layernorm_backward(x, dy, w, stats, dx, dwb, rows, d);
  with_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T *X = x.data<T>(), *G = dy.data<T>(), *S = stats.data<T>(), *W = w.data<T>();
    T* D = dx.data<T>();
    auto rstd = [&](int64_t i) { return 1.0 / sqrt((double)S[rows + i] + eps); };
    for_rows(rows, 4 * d, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const T* xr = X + i * d;
        const T* gr = G + i * d;
        const double mean = S[i], r = rstd(i);
        double s1 = 0, s2 = 0;
        for (int64_t j = 0; j < d; ++j) {
          const double g = (double)gr[j] * W[j];
          s1 += g;
          s2 += g * ((double)xr[j] - mean) * r;
        }
        T* o = D + i * d;
        for (int64_t j = 0; j < d; ++j) {
          const double g = (double)gr[j] * W[j], xh = ((double)xr[j] - mean) * r;
          o[j] = (T)(r / (double)d * ((double)d * g - s1 - xh * s2));
        }
      }
    });
    std::vector<double> part, sums(2 * d);
    column_sums(rows, 2 * d, part, sums.data(), [&](int64_t i, double* acc) {
      const T* xr = X + i * d;
      const T* gr = G + i * d;
      const double mean = S[i], r = rstd(i);
      for (int64_t j = 0; j < d; ++j) {
        acc[j] += (double)gr[j] * (((double)xr[j] - mean) * r);
        acc[d + j] += gr[j];
      }
    });
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
  same_dtypes(k, a, {&labels, &out});
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
    const T *Z = a.data<T>(), *L = labels.data<T>();
    T* O = out.data<T>();
    for_rows(n, 3 * k, [&](int64_t i0, int64_t i1) {
      const auto& tbl = active_typed<T>();
      T buf[1024];
      for (int64_t i = i0; i < i1; ++i) {
        const T* row = Z + i * k;
        const T mx = tbl.max(row, k);
        const T shift = isfinite(mx) ? mx : T(0);
        double s = 0;
        for (int64_t j = 0; j < k; j += 1024) {
          const int64_t len = std::min<int64_t>(1024, k - j);
          tbl.scalar[kSub](row + j, shift, buf, len, false);
          tbl.unary[kExp](buf, buf, len, false);
          s += tbl.sum(buf, len);
        }
        O[i] = (T)(log(s) + (double)shift - (double)row[(int64_t)L[i]]);
      }
    });
  });
}

void softmax_xent_backward(const Array& a, const Array& labels, const Array& g, Array& out,
                           int64_t n, int64_t k) {
  check_softmax_xent("softmax_xent_backward", a, labels, &g, out, n, k, true);
  with_dtype(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T *Z = a.data<T>(), *L = labels.data<T>();
    const T scale = g.data<T>()[0];
    T* O = out.data<T>();
    for_rows(n, 4 * k, [&](int64_t i0, int64_t i1) {
      const auto& tbl = active_typed<T>();
      for (int64_t i = i0; i < i1; ++i) {
        const T* row = Z + i * k;
        T* o = O + i * k;
        const T mx = tbl.max(row, k);
        tbl.scalar[kSub](row, mx, o, k, false);
        tbl.unary[kExp](o, o, k, false);
        const double s = tbl.sum(o, k);
        tbl.scalar[kMul](o, (T)((double)scale / s), o, k, false);
        o[(int64_t)L[i]] -= scale;
      }
    });
  });
}

}  // namespace needle_cpp
