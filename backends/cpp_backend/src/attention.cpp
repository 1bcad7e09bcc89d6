// Fused multi-head attention, forward and backward (see attention.h). Each (batch, head)
// pair is one task, computed by one thread in a fixed order, so every result is the same
// for any thread count. Rows of q, k, v, out (and their gradients) are contiguous in both
// layouts; only the distance between consecutive rows of one head differs. Keys past a
// query's causal limit get probability exactly 0 (what exp(-1e9 - max) rounds to) and are
// skipped; a query with no key inside its limit (t_q > t_k) gets the reference's softmax of
// the scores with -1e9 added to all of them.
#include "attention.h"

#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <string>

#include "fast_math.h"
#include "isa.h"
#include "kernels.h"
#include "parallel.h"

namespace needle_cpp {
namespace {

/// The shared arguments of one call, as typed pointers.
template <typename T>
struct Attn {
  const T *q, *k, *v, *mask, *probs_in, *d_out;
  T *out, *probs, *dq, *dk, *dv;
  int64_t heads, t_q, t_k, d, d_v;
  bool interleaved, causal;
  T scale;

  /// First element of row 0 of `pair` in a tensor with t rows of width w, and the distance
  /// between its consecutive rows.
  int64_t base(int64_t pair, int64_t t, int64_t w) const {
    return interleaved ? ((pair / heads) * t * heads + pair % heads) * w : pair * t * w;
  }
  int64_t step(int64_t w) const { return interleaved ? heads * w : w; }

  /// Keys that query i sees: [0, n); `all_masked` when it sees none (n is then t_k and
  /// every score gets the -1e9 of the mask).
  int64_t keys(int64_t i, bool& all_masked) const {
    const int64_t last = causal ? i + t_k - t_q : t_k - 1;
    all_masked = last < 0;
    return all_masked ? t_k : std::min(t_k, last + 1);
  }
};

// Rows are padded to whole blocks of kB elements in per-task scratch (zeros past the end),
// so every inner loop has a constant trip count and vectorises with no remainder loop: the
// rows here are short (a few dozen keys, head widths of 16 to 64).
constexpr int64_t kB = 8;

inline int64_t padded(int64_t n) { return (n + kB - 1) / kB * kB; }

// One block as a GCC generic vector: the sums below stay in registers (one ymm for float
// under AVX2 and AVX-512, two xmm in the plain copy) instead of going through memory each
// step. Blocks were 16 elements (64 bytes) before: without AVX-512 GCC has no register for
// such a vector and kept it on the stack, and attention_forward of 32 x 4 heads x 20 x 20
// x 16 took about 1 ms on an AVX2-only CPU (`OMP_NUM_THREADS=1 python -m
// benchmarks.kernel_profile --model transformer --top 8`).
template <typename T>
struct Block;
template <>
struct Block<float> {
  typedef float type __attribute__((vector_size(kB * sizeof(float))));
};
template <>
struct Block<double> {
  typedef double type __attribute__((vector_size(kB * sizeof(double))));
};
template <typename T>
using Vec = typename Block<T>::type;

template <typename T>
NEEDLE_ALWAYS_INLINE Vec<T> load(const T* p) {
  Vec<T> v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <typename T>
NEEDLE_ALWAYS_INLINE void store(T* p, const Vec<T>& v) {
  std::memcpy(p, &v, sizeof v);
}

/// y[0, nb * kB) = sum over r < rows of a[r * sa] * x[r * ldx + (0, nb * kB)]: a small
/// matrix-vector product with the block sums held in registers.
template <typename T>
NEEDLE_ALWAYS_INLINE void gemv(const T* a, int64_t sa, const T* x, int64_t ldx, int64_t rows,
                               T* y, int64_t nb) {
  for (int64_t b = 0; b < nb * kB; b += kB) {
    Vec<T> acc0 = {}, acc1 = {};  // two chains of dependent FMAs, half as long
    int64_t r = 0;
    for (; r + 2 <= rows; r += 2) {
      acc0 += a[r * sa] * load(x + r * ldx + b);
      acc1 += a[(r + 1) * sa] * load(x + (r + 1) * ldx + b);
    }
    if (r < rows) acc0 += a[r * sa] * load(x + r * ldx + b);
    store(y + b, acc0 + acc1);
  }
}

/// Sum / maximum of the kB lanes of v as a tree (3 steps, not a chain of 7).
template <typename T>
NEEDLE_ALWAYS_INLINE T lane_sum(Vec<T> v) {
  T t[kB];
  std::memcpy(t, &v, sizeof t);
  for (int w = kB / 2; w >= 1; w /= 2)
    for (int l = 0; l < w; ++l) t[l] += t[l + w];
  return t[0];
}
template <typename T>
NEEDLE_ALWAYS_INLINE T lane_max(Vec<T> v) {
  T t[kB];
  std::memcpy(t, &v, sizeof t);
  for (int w = kB / 2; w >= 1; w /= 2)
    for (int l = 0; l < w; ++l) t[l] = t[l + w] > t[l] ? t[l + w] : t[l];
  return t[0];
}

/// Short copies and fills as plain loops (the wrappers below keep GCC from turning them
/// back into memmove/memset calls, which cost more than the copy for a row of 20).
template <typename T>
NEEDLE_ALWAYS_INLINE void copy_row(const T* src, int64_t n, T* dst) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) dst[j] = src[j];
}
template <typename T>
NEEDLE_ALWAYS_INLINE void fill_row(T* dst, int64_t n, T value) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) dst[j] = value;
}

/// y[0, nb * kB) += a * x[0, nb * kB)
template <typename T>
NEEDLE_ALWAYS_INLINE void axpy(T a, const T* x, T* y, int64_t nb) {
  for (int64_t b = 0; b < nb * kB; b += kB) {
#pragma omp simd
    for (int64_t l = 0; l < kB; ++l) y[b + l] += a * x[b + l];
  }
}

/// dst (cols, ld) = the transpose of rows of src (rows, cols) `step` apart, zero-padded
/// to ld columns (ld >= rows).
template <typename T>
NEEDLE_ALWAYS_INLINE void gather_t(const T* src, int64_t step, int64_t rows, int64_t cols, T* dst,
                                   int64_t ld) {
  fill_row(dst, cols * ld, T(0));
  for (int64_t j = 0; j < rows; ++j)
    for (int64_t c = 0; c < cols; ++c) dst[c * ld + j] = src[j * step + c];
}

/// dst (rows, ld) = rows of src (rows, cols) `step` apart, zero-padded to ld columns.
template <typename T>
NEEDLE_ALWAYS_INLINE void gather(const T* src, int64_t step, int64_t rows, int64_t cols, T* dst,
                                 int64_t ld) {
  for (int64_t j = 0; j < rows; ++j) {
    copy_row(src + j * step, cols, dst + j * ld);
    fill_row(dst + j * ld + cols, ld - cols, T(0));
  }
}

/// s[0, n) = softmax of s[0, n); s[n, np) = 0 (np = padded(n) >= 1). The maximum skips
/// NaN, but a NaN (or an inf, through inf - inf) still makes the sum, so the whole row,
/// NaN: the reference's result.
template <typename T>
NEEDLE_ALWAYS_INLINE void softmax_row(T* s, int64_t n, int64_t np) {
  fill_row(s + n, np - n, -std::numeric_limits<T>::infinity());
  Vec<T> mv = load(s);
  for (int64_t b = kB; b < np; b += kB) {
    const Vec<T> x = load(s + b);
    mv = x > mv ? x : mv;
  }
  const T m = lane_max<T>(mv);
  Vec<T> acc = {};
  for (int64_t b = 0; b < np; b += kB) {
#pragma omp simd
    for (int64_t l = 0; l < kB; ++l) {
      const T e = row_exp(s[b + l] - m);
      s[b + l] = b + l < n ? e : T(0);
    }
    acc += load(s + b);
  }
  const T inv = T(1) / lane_sum<T>(acc);
  for (int64_t b = 0; b < np; b += kB) {
#pragma omp simd
    for (int64_t l = 0; l < kB; ++l) s[b + l] *= inv;
  }
}

/// Scratch elements per task.
int64_t forward_work(int64_t t_k, int64_t d, int64_t d_v) {
  return d * padded(t_k) + padded(t_k) + t_k * padded(d_v) + padded(d_v);
}
int64_t backward_work(int64_t t_q, int64_t t_k, int64_t d, int64_t d_v) {
  const int64_t kp = padded(t_k), dp = padded(d), vp = padded(d_v);
  return d_v * kp + 4 * kp + 2 * t_k * dp + t_k * vp + 2 * dp + vp;
}

template <typename T>
NEEDLE_ALWAYS_INLINE void forward_pairs(const Attn<T>& a, int64_t p0, int64_t p1, T* work) {
  const int64_t t_q = a.t_q, t_k = a.t_k, d = a.d, d_v = a.d_v;
  const int64_t kp = padded(t_k), vp = padded(d_v);
  T* kt = work;           // k^T (d, kp)
  T* s = kt + d * kp;     // scores, then probabilities, of one query (kp)
  T* vv = s + kp;         // v (t_k, vp)
  T* o = vv + t_k * vp;   // output row (vp)
  for (int64_t pair = p0; pair < p1; ++pair) {
    const int64_t sq = a.step(d), sv = a.step(d_v);
    const T* q = a.q + a.base(pair, t_q, d);
    T* out = a.out + a.base(pair, t_q, d_v);
    gather_t(a.k + a.base(pair, t_k, d), sq, t_k, d, kt, kp);
    gather(a.v + a.base(pair, t_k, d_v), sv, t_k, d_v, vv, vp);
    for (int64_t i = 0; i < t_q; ++i) {
      bool all_masked;
      const int64_t n = a.keys(i, all_masked), nb = padded(n) / kB;
      const T* qi = q + i * sq;
      gemv(qi, 1, kt, kp, d, s, nb);
      const T add = all_masked ? T(-1e9) : T(0);
      for (int64_t b = 0; b < nb * kB; b += kB) store(s + b, load(s + b) * a.scale + add);
      softmax_row(s, n, padded(n));
      T* p = a.probs + (pair * t_q + i) * t_k;
      copy_row(s, n, p);
      fill_row(p + n, t_k - n, T(0));
      const T* m = a.mask ? a.mask + (pair * t_q + i) * t_k : nullptr;
      if (m)
        for (int64_t j = 0; j < n; ++j) s[j] *= m[j];
      gemv(s, 1, vv, vp, n, o, vp / kB);
      copy_row(o, d_v, out + i * sv);
    }
  }
}

template <typename T>
NEEDLE_ALWAYS_INLINE void backward_pairs(const Attn<T>& a, int64_t p0, int64_t p1, T* work) {
  const int64_t t_q = a.t_q, t_k = a.t_k, d = a.d, d_v = a.d_v;
  const int64_t kp = padded(t_k), dp = padded(d), vp = padded(d_v);
  T* vt = work;              // v^T (d_v, kp)
  T* dw = vt + d_v * kp;     // adjoint of one query's weights (kp)
  T* w = dw + kp;            // its weights probs * mask (kp)
  T* p = w + kp;             // its probabilities (kp)
  T* ds = p + kp;            // adjoint of its scaled scores (kp)
  T* kk = ds + kp;           // k (t_k, dp)
  T* dk = kk + t_k * dp;     // dk accumulator (t_k, dp)
  T* dv = dk + t_k * dp;     // dv accumulator (t_k, vp)
  T* qi = dv + t_k * vp;     // q row (dp)
  T* dqi = qi + dp;          // dq row (dp)
  T* gi = dqi + dp;          // d_out row (vp)
  for (int64_t pair = p0; pair < p1; ++pair) {
    const int64_t sq = a.step(d), sv = a.step(d_v);
    const T* q = a.q + a.base(pair, t_q, d);
    const T* g = a.d_out + a.base(pair, t_q, d_v);
    T* dq_out = a.dq + a.base(pair, t_q, d);
    gather_t(a.v + a.base(pair, t_k, d_v), sv, t_k, d_v, vt, kp);
    gather(a.k + a.base(pair, t_k, d), sq, t_k, d, kk, dp);
    fill_row(dk, t_k * dp, T(0));
    fill_row(dv, t_k * vp, T(0));
    fill_row(p, kp, T(0));
    fill_row(w, kp, T(0));
    for (int64_t i = 0; i < t_q; ++i) {
      bool all_masked;
      const int64_t n = a.keys(i, all_masked), nb = padded(n) / kB;
      const T* pr = a.probs_in + (pair * t_q + i) * t_k;
      const T* m = a.mask ? a.mask + (pair * t_q + i) * t_k : nullptr;
      copy_row(pr, n, p);
      fill_row(p + n, kp - n, T(0));
      for (int64_t j = 0; j < n; ++j) w[j] = m ? p[j] * m[j] : p[j];
      fill_row(w + n, kp - n, T(0));
      gather(q + i * sq, 0, 1, d, qi, dp);
      gather(g + i * sv, 0, 1, d_v, gi, vp);
      gemv(gi, 1, vt, kp, d_v, dw, nb);
      Vec<T> acc = {};
      for (int64_t b = 0; b < nb * kB; b += kB) acc += load(w + b) * load(dw + b);
      const T r = lane_sum<T>(acc);
      for (int64_t b = 0; b < nb * kB; b += kB) {
#pragma omp simd
        for (int64_t l = 0; l < kB; ++l) ds[b + l] = (w[b + l] * dw[b + l] - p[b + l] * r) * a.scale;
      }
      gemv(ds, 1, kk, dp, n, dqi, dp / kB);
      for (int64_t j = 0; j < n; ++j) {
        axpy(ds[j], qi, dk + j * dp, dp / kB);
        axpy(w[j], gi, dv + j * vp, vp / kB);
      }
      copy_row(dqi, d, dq_out + i * sq);
    }
    T* dk_out = a.dk + a.base(pair, t_k, d);
    T* dv_out = a.dv + a.base(pair, t_k, d_v);
    for (int64_t j = 0; j < t_k; ++j) {
      copy_row(dk + j * dp, d, dk_out + j * sq);
      copy_row(dv + j * vp, d_v, dv_out + j * sv);
    }
  }
}

// One copy per instruction set; the active kernel table's name picks (set_simd_level too).
NEEDLE_ISA_COPIES(forward_pairs, NEEDLE_NO_MEMCALLS, (const Attn<T>& a, int64_t p0, int64_t p1, T* w),
                  (a, p0, p1, w))
NEEDLE_ISA_COPIES(backward_pairs, NEEDLE_NO_MEMCALLS, (const Attn<T>& a, int64_t p0, int64_t p1, T* w),
                  (a, p0, p1, w))

/// Runs fn over the pairs in parallel, each task with its own scratch of `per_task` T.
template <typename T>
void run_pairs(void (*fn)(const Attn<T>&, int64_t, int64_t, T*), const Attn<T>& a,
               int64_t pairs, int64_t per_task) {
  const int64_t per_pair = std::max<int64_t>(
      1, saturating_mul(saturating_mul(a.t_q, a.t_k), a.d + a.d_v));
  const int64_t grain = per_pair >= kGrain ? 1 : (kGrain + per_pair - 1) / per_pair;
  const size_t bytes = static_cast<size_t>(std::max<int64_t>(per_task, 1)) * sizeof(T);
  parallel_chunks(pairs, grain, pairs > 1 ? threads_for(saturating_mul(pairs, per_pair)) : 1,
                  [&](int64_t p0, int64_t p1) {
                    fn(a, p0, p1, static_cast<T*>(scratch(3, bytes)));
                  });
}

struct Sizes {
  int64_t q, k, v, out, probs;
};

Sizes check_common(const char* kn, const Array& q, const Array& k, const Array& v,
                   const Array& mask, int64_t batch, int64_t heads, int64_t t_q, int64_t t_k,
                   int64_t d, int64_t d_v, int64_t layout, int64_t causal) {
  if (causal != 0 && causal != 1)
    value_error(kn, "causal must be 0 or 1, got " + std::to_string(causal));
  check_nonneg(kn, "batch", batch);
  check_nonneg(kn, "heads", heads);
  check_nonneg(kn, "t_q", t_q);
  check_nonneg(kn, "d", d);
  check_nonneg(kn, "d_v", d_v);
  if (t_k < 1) value_error(kn, "t_k must be >= 1, got " + std::to_string(t_k));
  if (layout != 0 && layout != 1)
    value_error(kn, "layout must be 0 or 1, got " + std::to_string(layout));
  const int64_t bh = checked_mul(kn, batch, heads);
  const Sizes s{checked_mul(kn, checked_mul(kn, bh, t_q), d),
                checked_mul(kn, checked_mul(kn, bh, t_k), d),
                checked_mul(kn, checked_mul(kn, bh, t_k), d_v),
                checked_mul(kn, checked_mul(kn, bh, t_q), d_v),
                checked_mul(kn, checked_mul(kn, bh, t_q), t_k)};
  check_size(kn, "q", q, s.q);
  check_size(kn, "k", k, s.k);
  check_size(kn, "v", v, s.v);
  check_same_dtype(kn, q, k);
  check_same_dtype(kn, q, v);
  if (mask.size() != 0) {
    check_size(kn, "mask", mask, s.probs);
    check_same_dtype(kn, q, mask);
  }
  return s;
}

}  // namespace

void check_attention_forward(const Array& q, const Array& k, const Array& v, const Array& mask,
                             const Array& out, const Array& probs, int64_t batch, int64_t heads,
                             int64_t t_q, int64_t t_k, int64_t d, int64_t d_v, int64_t layout,
                             int64_t causal) {
  const char* kn = "attention_forward";
  const Sizes s = check_common(kn, q, k, v, mask, batch, heads, t_q, t_k, d, d_v, layout, causal);
  check_size(kn, "out", out, s.out);
  check_size(kn, "probs", probs, s.probs);
  check_same_dtype(kn, q, out);
  check_same_dtype(kn, q, probs);
  check_distinct(kn, {&out, &probs}, {&q, &k, &v, &mask});
}

void attention_forward(const Array& q, const Array& k, const Array& v, const Array& mask,
                       Array& out, Array& probs, int64_t batch, int64_t heads, int64_t t_q,
                       int64_t t_k, int64_t d, int64_t d_v, int64_t layout, int64_t causal,
                       double scale) {
  check_attention_forward(q, k, v, mask, out, probs, batch, heads, t_q, t_k, d, d_v, layout,
                          causal);
  const int64_t pairs = batch * heads;
  if (pairs == 0 || t_q == 0) return;
  with_dtype(q.dtype(), [&](auto tag) {
    using T = decltype(tag);
    Attn<T> a{q.data<T>(), k.data<T>(), v.data<T>(), mask.size() ? mask.data<T>() : nullptr,
              nullptr, nullptr, out.data<T>(), probs.data<T>(), nullptr, nullptr, nullptr,
              heads, t_q, t_k, d, d_v, layout == 1, causal == 1, static_cast<T>(scale)};
    run_pairs<T>(NEEDLE_PICK(forward_pairs, T), a, pairs, forward_work(t_k, d, d_v));
  });
}

void check_attention_backward(const Array& q, const Array& k, const Array& v,
                              const Array& probs, const Array& mask, const Array& d_out,
                              const Array& dq, const Array& dk, const Array& dv, int64_t batch,
                              int64_t heads, int64_t t_q, int64_t t_k, int64_t d, int64_t d_v,
                              int64_t layout, int64_t causal) {
  const char* kn = "attention_backward";
  const Sizes s = check_common(kn, q, k, v, mask, batch, heads, t_q, t_k, d, d_v, layout, causal);
  check_size(kn, "probs", probs, s.probs);
  check_size(kn, "d_out", d_out, s.out);
  check_size(kn, "dq", dq, s.q);
  check_size(kn, "dk", dk, s.k);
  check_size(kn, "dv", dv, s.v);
  check_same_dtypes(kn, q, {&probs, &d_out, &dq, &dk, &dv});
  check_distinct(kn, {&dq, &dk, &dv}, {&q, &k, &v, &probs, &mask, &d_out});
}

void attention_backward(const Array& q, const Array& k, const Array& v, const Array& probs,
                        const Array& mask, const Array& d_out, Array& dq, Array& dk, Array& dv,
                        int64_t batch, int64_t heads, int64_t t_q, int64_t t_k, int64_t d,
                        int64_t d_v, int64_t layout, int64_t causal, double scale) {
  check_attention_backward(q, k, v, probs, mask, d_out, dq, dk, dv, batch, heads, t_q, t_k, d,
                           d_v, layout, causal);
  const int64_t pairs = batch * heads;
  if (pairs == 0) return;
  with_dtype(q.dtype(), [&](auto tag) {
    using T = decltype(tag);
    Attn<T> a{q.data<T>(), k.data<T>(), v.data<T>(), mask.size() ? mask.data<T>() : nullptr,
              probs.data<T>(), d_out.data<T>(), nullptr, nullptr, dq.data<T>(), dk.data<T>(),
              dv.data<T>(), heads, t_q, t_k, d, d_v, layout == 1, causal == 1,
              static_cast<T>(scale)};
    run_pairs<T>(NEEDLE_PICK(backward_pairs, T), a, pairs, backward_work(t_q, t_k, d, d_v));
  });
}

// --- bindings ------------------------------------------------------------------------------
namespace py = pybind11;

void bind_attention(py::module_& m) {
  using Release = py::call_guard<py::gil_scoped_release>;
  m.def("attention_forward", &attention_forward, py::arg("q"), py::arg("keys"), py::arg("values"),
        py::arg("mask"), py::arg("out"), py::arg("probs"), py::arg("batch"), py::arg("heads"),
        py::arg("t_q"), py::arg("t_k"), py::arg("d"), py::arg("d_v"), py::arg("layout"),
        py::arg("causal"), py::arg("scale"), Release(),
        "probs = softmax(q k^T * scale + causal mask); out = (probs [* mask]) @ v.");
  m.def("attention_backward", &attention_backward, py::arg("q"), py::arg("keys"), py::arg("values"),
        py::arg("probs"), py::arg("mask"), py::arg("d_out"), py::arg("dq"), py::arg("dk"),
        py::arg("dv"), py::arg("batch"), py::arg("heads"), py::arg("t_q"), py::arg("t_k"),
        py::arg("d"), py::arg("d_v"), py::arg("layout"), py::arg("causal"), py::arg("scale"),
        Release(), "dq, dk, dv of attention_forward given d_out and the forward's probs.");
}

}  // namespace needle_cpp
