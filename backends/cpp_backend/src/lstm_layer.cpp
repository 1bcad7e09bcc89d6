// A whole LSTM layer over a sequence in one call: lstm_layer (forward) and
// lstm_layer_backward (see fused_seq.h); the Elman RNN layer (rnn_layer, rnn_layer_backward,
// at the end) follows the same scheme. Layouts are compact and row-major: gx and dgx
// (t, n, 4h) with the gates of a row in the order i, f, g, o; hs, cs and dhs (t, n, h); h0,
// c0, dh_n, dc_n, dh0 and dc0 (n, h); w_hh and dw_hh (h, 4h); gates (t, 4h, n): every step's
// activated gates [sigmoid(i), sigmoid(f), tanh(g), sigmoid(o)] transposed.
//
// The recurrence runs on transposed states (h, n): step s is z = gx[s]^T, then z += w_hh^T @
// h^T (one accumulating packed gemm straight into the gates buffer, whose large operand
// w_hh^T (4h, h), transposed once per call, is read in place while the small one, h^T, is
// packed: the other way round, (n, h) @ (h, 4h), packs all of w_hh at every step), then the
// gate math over contiguous (h, n) blocks. Backward runs the steps in reverse with the
// adjoints of h and c carried transposed, one gemm per step for dh^T = w_hh @ dz^T, then
// dw_hh = H_prev^T @ dG over all steps at once (H_prev = [h0, hs[0..t-2]]: two products,
// h0 being a separate buffer). No allocation per step; results do not depend on the thread
// count (the packed gemm sums each element in a fixed order; the element-wise loops have no
// reductions).
#include <pybind11/pybind11.h>

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "fused_seq.h"
#include "isa.h"
#include "kernels.h"
#include "parallel.h"

namespace needle_cpp {
namespace {

struct Sizes {
  int64_t state, steps_state, steps_gates, weights;  // n*h, t*n*h, t*n*4h, h*4h
};

Sizes layer_sizes(const char* k, int64_t t, int64_t n, int64_t h) {
  check_nonneg(k, "t", t);
  check_nonneg(k, "n", n);
  check_nonneg(k, "h", h);
  Sizes s;
  s.state = checked_mul(k, n, h);
  s.steps_state = checked_mul(k, t, s.state);
  s.steps_gates = checked_mul(k, s.steps_state, 4);
  s.weights = checked_mul(k, checked_mul(k, h, h), 4);
  return s;
}

/// Calls body(begin, end) over [0, count) in parallel tasks; each index touches `arrays`
/// arrays (the work estimate).
template <typename F>
void over_elements(int64_t count, int64_t arrays, F&& body) {
  parallel_chunks(count, kGrain / arrays, threads_for(saturating_mul(count, arrays)), body);
}

/// C (m, p) (+)= A (m, k) @ B (k, p), all compact row-major (leading dimensions k and p).
template <typename T>
void product(const TypedTable<T>& tbl, const T* a, bool trans_a, int64_t lda, const T* b,
             T* c, int64_t m, int64_t k, int64_t p, bool accumulate) {
  GemmA<T> A;
  A.a = a;
  A.lda = lda;
  A.trans = trans_a;
  tbl.gemm_ex(A, b, p, false, c, p, m, k, p, accumulate, gemm_threads(m, k, p));
}

}  // namespace

void check_lstm_layer(const Array& gx, const Array& w_hh, const Array& h0, const Array& c0,
                      const Array& hs, const Array& cs, const Array& gates, int64_t t, int64_t n,
                      int64_t h) {
  const char* k = "lstm_layer";
  const Sizes s = layer_sizes(k, t, n, h);
  check_size(k, "gx", gx, s.steps_gates);
  check_size(k, "w_hh", w_hh, s.weights);
  check_size(k, "h0", h0, s.state);
  check_size(k, "c0", c0, s.state);
  check_size(k, "hs", hs, s.steps_state);
  check_size(k, "cs", cs, s.steps_state);
  check_size(k, "gates", gates, s.steps_gates);
  check_same_dtypes(k, gx, {&w_hh, &h0, &c0, &hs, &cs, &gates});
  check_distinct(k, {&hs, &cs, &gates}, {&gx, &w_hh, &h0, &c0});
}

void lstm_layer(const Array& gx, const Array& w_hh, const Array& h0, const Array& c0, Array& hs,
                Array& cs, Array& gates, int64_t t, int64_t n, int64_t h) {
  check_lstm_layer(gx, w_hh, h0, c0, hs, cs, gates, t, n, h);
  if (t == 0 || n == 0 || h == 0) return;
  with_dtype(gx.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const TypedTable<T>& tbl = active_typed<T>();
    const int64_t h4 = 4 * h, hn = h * n;
    // workspace: w_hh^T (4h, h), then the state h^T and c^T (h, n)
    std::vector<T> ws(static_cast<size_t>(h4 * h + 2 * hn));
    T* wt = ws.data();
    T* ht = wt + h4 * h;
    T* ct = ht + hn;
    tbl.transpose(w_hh.data<T>(), h4, wt, h, h, h4);
    tbl.transpose(h0.data<T>(), h, ht, n, n, h);
    tbl.transpose(c0.data<T>(), h, ct, n, n, h);
    for (int64_t s = 0; s < t; ++s) {
      T* z = gates.data<T>() + s * h4 * n;  // step s, transposed: (4h, n)
      tbl.transpose(gx.data<T>() + s * n * h4, h4, z, n, n, h4);
      product(tbl, wt, false, h, ht, z, h4, h, n, true);  // z += w_hh^T @ h^T
      T *zi = z, *zf = z + hn, *zg = z + 2 * hn, *zo = z + 3 * hn;
      over_elements(hn, 4, [&](int64_t j0, int64_t j1) {
        const int64_t len = j1 - j0;
        // sigmoid(x) = 1 / (1 + exp(-x)) on i, f and o; tanh on g (as lstm_cell does)
        for (T* a : {zi, zf, zo}) {
          for (int64_t j = j0; j < j1; ++j) a[j] = -a[j];
          tbl.unary[kExp](a + j0, a + j0, len, false);
          for (int64_t j = j0; j < j1; ++j) a[j] = T(1) / (T(1) + a[j]);
        }
        tbl.unary[kTanh](zg + j0, zg + j0, len, false);
        for (int64_t j = j0; j < j1; ++j) ct[j] = zf[j] * ct[j] + zi[j] * zg[j];
        tbl.unary[kTanh](ct + j0, ht + j0, len, false);
        for (int64_t j = j0; j < j1; ++j) ht[j] = zo[j] * ht[j];
      });
      tbl.transpose(ht, n, hs.data<T>() + s * n * h, h, h, n);
      tbl.transpose(ct, n, cs.data<T>() + s * n * h, h, h, n);
    }
  });
}

void check_lstm_layer_backward(const Array& w_hh, const Array& h0, const Array& c0,
                               const Array& hs, const Array& cs, const Array& gates,
                               const Array& dhs, const Array& dh_n, const Array& dc_n,
                               const Array& dgx, const Array& dw_hh, const Array& dh0,
                               const Array& dc0, int64_t t, int64_t n, int64_t h) {
  const char* k = "lstm_layer_backward";
  const Sizes s = layer_sizes(k, t, n, h);
  check_size(k, "w_hh", w_hh, s.weights);
  check_size(k, "h0", h0, s.state);
  check_size(k, "c0", c0, s.state);
  check_size(k, "hs", hs, s.steps_state);
  check_size(k, "cs", cs, s.steps_state);
  check_size(k, "gates", gates, s.steps_gates);
  check_size(k, "dhs", dhs, s.steps_state);
  check_size(k, "dh_n", dh_n, s.state);
  check_size(k, "dc_n", dc_n, s.state);
  check_size(k, "dgx", dgx, s.steps_gates);
  check_size(k, "dw_hh", dw_hh, s.weights);
  check_size(k, "dh0", dh0, s.state);
  check_size(k, "dc0", dc0, s.state);
  check_same_dtypes(k, w_hh,
                    {&h0, &c0, &hs, &cs, &gates, &dhs, &dh_n, &dc_n, &dgx, &dw_hh, &dh0, &dc0});
  check_distinct(k, {&dgx, &dw_hh, &dh0, &dc0},
               {&w_hh, &h0, &c0, &hs, &cs, &gates, &dhs, &dh_n, &dc_n});
}

void lstm_layer_backward(const Array& w_hh, const Array& h0, const Array& c0, const Array& hs,
                         const Array& cs, const Array& gates, const Array& dhs,
                         const Array& dh_n, const Array& dc_n, Array& dgx, Array& dw_hh,
                         Array& dh0, Array& dc0, int64_t t, int64_t n, int64_t h) {
  check_lstm_layer_backward(w_hh, h0, c0, hs, cs, gates, dhs, dh_n, dc_n, dgx, dw_hh, dh0, dc0,
                            t, n, h);
  with_dtype(w_hh.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const TypedTable<T>& tbl = active_typed<T>();
    const int64_t h4 = 4 * h, hn = h * n;
    T* dw = dw_hh.data<T>();
    if (t == 0 || n == 0 || h == 0) {
      std::memcpy(dh0.data<T>(), dh_n.data<T>(), static_cast<size_t>(hn) * sizeof(T));
      std::memcpy(dc0.data<T>(), dc_n.data<T>(), static_cast<size_t>(hn) * sizeof(T));
      std::fill(dw, dw + h * h4, T(0));
      return;
    }
    // workspace, all transposed (h, n) but the last (4h, n): the carried adjoints dh and dc,
    // dhs[s], c of steps s and s-1, tanh(c), then d gates of step s
    std::vector<T> ws(static_cast<size_t>(6 * hn + h4 * n));
    T* dht = ws.data();
    T* dct = dht + hn;
    T* dyt = dct + hn;
    T* c_cur = dyt + hn;
    T* c_prev = c_cur + hn;
    T* tc = c_prev + hn;
    T* dzt = tc + hn;
    tbl.transpose(dh_n.data<T>(), h, dht, n, n, h);
    tbl.transpose(dc_n.data<T>(), h, dct, n, n, h);
    tbl.transpose(cs.data<T>() + (t - 1) * n * h, h, c_cur, n, n, h);
    const T* w = w_hh.data<T>();
    T* dz = dgx.data<T>();
    for (int64_t s = t - 1; s >= 0; --s) {
      const T* z = gates.data<T>() + s * h4 * n;
      const T *zi = z, *zf = z + hn, *zg = z + 2 * hn, *zo = z + 3 * hn;
      tbl.transpose(s ? cs.data<T>() + (s - 1) * n * h : c0.data<T>(), h, c_prev, n, n, h);
      tbl.transpose(dhs.data<T>() + s * n * h, h, dyt, n, n, h);
      over_elements(hn, 8, [&](int64_t j0, int64_t j1) {
        tbl.unary[kTanh](c_cur + j0, tc + j0, j1 - j0, false);
        for (int64_t j = j0; j < j1; ++j) {
          const T i = zi[j], f = zf[j], g = zg[j], o = zo[j];
          const T d_h = dyt[j] + dht[j];
          const T d_c = dct[j] + d_h * o * (T(1) - tc[j] * tc[j]);
          dzt[j] = d_c * g * i * (T(1) - i);
          dzt[hn + j] = d_c * c_prev[j] * f * (T(1) - f);
          dzt[2 * hn + j] = d_c * i * (T(1) - g * g);
          dzt[3 * hn + j] = d_h * tc[j] * o * (T(1) - o);
          dct[j] = d_c * f;
        }
      });
      tbl.transpose(dzt, n, dz + s * n * h4, h4, h4, n);
      product(tbl, w, false, h4, dzt, dht, h, h4, n, false);  // dh^T = w_hh @ d gates^T
      std::swap(c_cur, c_prev);
    }
    tbl.transpose(dht, n, dh0.data<T>(), h, h, n);
    tbl.transpose(dct, n, dc0.data<T>(), h, h, n);
    // dw_hh = h0^T @ dG_0 + hs[0..t-2]^T @ dG[1..t-1]
    product(tbl, h0.data<T>(), true, h, dz, dw, h, n, h4, false);
    if (t > 1) product(tbl, hs.data<T>(), true, h, dz + n * h4, dw, h, (t - 1) * n, h4, true);
  });
}

// --- Elman RNN layer: the same scheme with h_s = act(gx[s] + h_{s-1} @ w_hh), act tanh or
// relu, w_hh (h, h); backward reads hs only (act' is 1 - y^2 for tanh, y > 0 for relu).
void check_rnn_layer(const Array& gx, const Array& w_hh, const Array& h0, const Array& hs,
                     int64_t t, int64_t n, int64_t h, int64_t relu) {
  const char* k = "rnn_layer";
  const Sizes s = layer_sizes(k, t, n, h);
  if (relu != 0 && relu != 1) value_error(k, "relu must be 0 or 1, got " + std::to_string(relu));
  check_size(k, "gx", gx, s.steps_state);
  check_size(k, "w_hh", w_hh, checked_mul(k, h, h));
  check_size(k, "h0", h0, s.state);
  check_size(k, "hs", hs, s.steps_state);
  check_same_dtypes(k, gx, {&w_hh, &h0, &hs});
  check_distinct(k, {&hs}, {&gx, &w_hh, &h0});
}

void rnn_layer(const Array& gx, const Array& w_hh, const Array& h0, Array& hs, int64_t t,
               int64_t n, int64_t h, int64_t relu) {
  check_rnn_layer(gx, w_hh, h0, hs, t, n, h, relu);
  if (t == 0 || n == 0 || h == 0) return;
  with_dtype(gx.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const TypedTable<T>& tbl = active_typed<T>();
    const int64_t hn = h * n;
    // workspace: w_hh^T (h, h), the state h^T (h, n), the pre-activation z (h, n)
    std::vector<T> ws(static_cast<size_t>(h * h + 2 * hn));
    T* wt = ws.data();
    T* ht = wt + h * h;
    T* z = ht + hn;
    tbl.transpose(w_hh.data<T>(), h, wt, h, h, h);
    tbl.transpose(h0.data<T>(), h, ht, n, n, h);
    for (int64_t s = 0; s < t; ++s) {
      tbl.transpose(gx.data<T>() + s * hn, h, z, n, n, h);
      product(tbl, wt, false, h, ht, z, h, h, n, true);  // z += w_hh^T @ h^T
      over_elements(hn, 2, [&](int64_t j0, int64_t j1) {
        if (relu)
          for (int64_t j = j0; j < j1; ++j) ht[j] = z[j] > T(0) ? z[j] : T(0);
        else
          tbl.unary[kTanh](z + j0, ht + j0, j1 - j0, false);
      });
      tbl.transpose(ht, n, hs.data<T>() + s * hn, h, h, n);
    }
  });
}

void check_rnn_layer_backward(const Array& w_hh, const Array& h0, const Array& hs,
                              const Array& dhs, const Array& dgx, const Array& dw_hh,
                              const Array& dh0, int64_t t, int64_t n, int64_t h, int64_t relu) {
  const char* k = "rnn_layer_backward";
  const Sizes s = layer_sizes(k, t, n, h);
  if (relu != 0 && relu != 1) value_error(k, "relu must be 0 or 1, got " + std::to_string(relu));
  check_size(k, "w_hh", w_hh, checked_mul(k, h, h));
  check_size(k, "h0", h0, s.state);
  check_size(k, "hs", hs, s.steps_state);
  check_size(k, "dhs", dhs, s.steps_state);
  check_size(k, "dgx", dgx, s.steps_state);
  check_size(k, "dw_hh", dw_hh, checked_mul(k, h, h));
  check_size(k, "dh0", dh0, s.state);
  check_same_dtypes(k, w_hh, {&h0, &hs, &dhs, &dgx, &dw_hh, &dh0});
  check_distinct(k, {&dgx, &dw_hh, &dh0}, {&w_hh, &h0, &hs, &dhs});
}

void rnn_layer_backward(const Array& w_hh, const Array& h0, const Array& hs, const Array& dhs,
                        Array& dgx, Array& dw_hh, Array& dh0, int64_t t, int64_t n, int64_t h,
                        int64_t relu) {
  check_rnn_layer_backward(w_hh, h0, hs, dhs, dgx, dw_hh, dh0, t, n, h, relu);
  with_dtype(w_hh.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const TypedTable<T>& tbl = active_typed<T>();
    const int64_t hn = h * n;
    T* dw = dw_hh.data<T>();
    if (t == 0 || n == 0 || h == 0) {
      std::fill(dh0.data<T>(), dh0.data<T>() + hn, T(0));
      std::fill(dw, dw + h * h, T(0));
      return;
    }
    // workspace, transposed (h, n): the carried adjoint of h, hs[s], dhs[s], d pre-activation
    std::vector<T> ws(static_cast<size_t>(4 * hn));
    T* dht = ws.data();
    T* yt = dht + hn;
    T* dyt = yt + hn;
    T* dzt = dyt + hn;
    std::fill(dht, dht + hn, T(0));
    const T* w = w_hh.data<T>();
    T* dz = dgx.data<T>();
    for (int64_t s = t - 1; s >= 0; --s) {
      tbl.transpose(hs.data<T>() + s * hn, h, yt, n, n, h);
      tbl.transpose(dhs.data<T>() + s * hn, h, dyt, n, n, h);
      over_elements(hn, 4, [&](int64_t j0, int64_t j1) {
        for (int64_t j = j0; j < j1; ++j) {
          const T y = yt[j], d = dyt[j] + dht[j];
          dzt[j] = relu ? (y > T(0) ? d : T(0)) : d * (T(1) - y * y);
        }
      });
      tbl.transpose(dzt, n, dz + s * hn, h, h, n);
      product(tbl, w, false, h, dzt, dht, h, h, n, false);  // dh^T = w_hh @ dz^T
    }
    tbl.transpose(dht, n, dh0.data<T>(), h, h, n);
    // dw_hh = h0^T @ dZ_0 + hs[0..t-2]^T @ dZ[1..t-1]
    product(tbl, h0.data<T>(), true, h, dz, dw, h, n, h, false);
    if (t > 1) product(tbl, hs.data<T>(), true, h, dz + hn, dw, h, (t - 1) * n, h, true);
  });
}

namespace py = pybind11;

void bind_lstm_layer(py::module_& m) {
  using Release = py::call_guard<py::gil_scoped_release>;
  m.def("lstm_layer", &lstm_layer, py::arg("gx"), py::arg("w_hh"), py::arg("h0"), py::arg("c0"),
        py::arg("hs"), py::arg("cs"), py::arg("gates"), py::arg("t"), py::arg("n"), py::arg("h"),
        Release(),
        "An LSTM layer over t steps: hs, cs (t, n, h) and the activated gates (t, 4h, n) from "
        "the input projection gx (t, n, 4h), w_hh (h, 4h) and the state h0, c0 (n, h).");
  m.def("lstm_layer_backward", &lstm_layer_backward, py::arg("w_hh"), py::arg("h0"),
        py::arg("c0"), py::arg("hs"), py::arg("cs"), py::arg("gates"), py::arg("dhs"),
        py::arg("dh_n"), py::arg("dc_n"), py::arg("dgx"), py::arg("dw_hh"), py::arg("dh0"),
        py::arg("dc0"), py::arg("t"), py::arg("n"), py::arg("h"), Release(),
        "dgx (t, n, 4h), dw_hh (h, 4h), dh0 and dc0 (n, h) of lstm_layer given dhs (t, n, h) "
        "and the adjoints dh_n, dc_n of the final state.");
  m.def("rnn_layer", &rnn_layer, py::arg("gx"), py::arg("w_hh"), py::arg("h0"), py::arg("hs"),
        py::arg("t"), py::arg("n"), py::arg("h"), py::arg("relu"), Release(),
        "An Elman RNN layer over t steps: hs (t, n, h), hs[s] = act(gx[s] + hs[s-1] @ w_hh) "
        "with act tanh (relu 0) or relu (relu 1) and hs[-1] = h0.");
  m.def("rnn_layer_backward", &rnn_layer_backward, py::arg("w_hh"), py::arg("h0"),
        py::arg("hs"), py::arg("dhs"), py::arg("dgx"), py::arg("dw_hh"), py::arg("dh0"),
        py::arg("t"), py::arg("n"), py::arg("h"), py::arg("relu"), Release(),
        "dgx (t, n, h), dw_hh (h, h) and dh0 (n, h) of rnn_layer given dhs (t, n, h).");
}

}  // namespace needle_cpp
