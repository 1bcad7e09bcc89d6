// A whole LSTM layer over a sequence in one call: lstm_layer (forward) and
// lstm_layer_backward (see fused_seq.h). Layouts are compact and row-major: gx, gates and dgx
// (t, n, 4h) with the gates of a row in the order i, f, g, o; hs, cs and dhs (t, n, h); h0,
// c0, dh_n, dc_n, dh0 and dc0 (n, h); w_hh and dw_hh (h, 4h).
//
// Forward, step s: gates[s] = gx[s], then gates[s] += h_{s-1} @ w_hh (one accumulating packed
// gemm straight into the gates buffer), then the gate math row by row, in place: gates[s]
// keeps the activated gates [sigmoid(i), sigmoid(f), tanh(g), sigmoid(o)], which is what the
// backward pass reads. Backward runs the steps in reverse with the adjoints of h and c
// carried in the dh0 and dc0 buffers (so they end up holding the adjoints of h0 and c0), one
// gemm per step for dh_{s-1} = dG_s @ w_hh^T (w_hh transposed once per call), then dw_hh =
// H_prev^T @ dG over all steps at once (H_prev = [h0, hs[0..t-2]], two products since h0 is
// a separate buffer). No allocation per step; results do not depend on the thread count.
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

/// Outputs must be fresh buffers: none may be an input or another output.
void all_distinct(const char* k, std::initializer_list<const Array*> outs,
                  std::initializer_list<const Array*> ins) {
  for (auto o = outs.begin(); o != outs.end(); ++o) {
    for (const Array* i : ins)
      if (*o == i) value_error(k, "an output buffer is also an input");
    for (auto o2 = o + 1; o2 != outs.end(); ++o2)
      if (*o == *o2) value_error(k, "two outputs are the same buffer");
  }
}

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

/// Threads for a product of m*n*p multiply-adds (as matmul does).
int gemm_threads(int64_t m, int64_t n, int64_t p) {
  const double work = (double)m * (double)n * (double)p / 8.0;
  return threads_for(work > 4e18 ? INT64_MAX : (int64_t)work);
}

/// Calls body(begin, end) over rows [0, rows) of `width` elements each, in parallel tasks.
template <typename F>
void over_rows(int64_t rows, int64_t width, F&& body) {
  const int64_t per_row = std::max<int64_t>(1, width);
  const int64_t grain = per_row >= kGrain ? 1 : (kGrain + per_row - 1) / per_row;
  parallel_chunks(rows, grain, rows > 1 ? threads_for(saturating_mul(rows, per_row)) : 1, body);
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
  for (const Array* a : {&w_hh, &h0, &c0, &hs, &cs, &gates}) check_same_dtype(k, gx, *a);
  all_distinct(k, {&hs, &cs, &gates}, {&gx, &w_hh, &h0, &c0});
}

void lstm_layer(const Array& gx, const Array& w_hh, const Array& h0, const Array& c0, Array& hs,
                Array& cs, Array& gates, int64_t t, int64_t n, int64_t h) {
  check_lstm_layer(gx, w_hh, h0, c0, hs, cs, gates, t, n, h);
  if (t == 0 || n == 0 || h == 0) return;
  with_dtype(gx.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const TypedTable<T>& tbl = active_typed<T>();
    const int64_t h4 = 4 * h, step_g = n * h4, step_s = n * h;
    const T* w = w_hh.data<T>();
    T* hp = hs.data<T>();
    T* cp = cs.data<T>();
    T* zp = gates.data<T>();
    std::memcpy(zp, gx.data<T>(), static_cast<size_t>(t * step_g) * sizeof(T));
    for (int64_t s = 0; s < t; ++s) {
      const T* h_prev = s ? hp + (s - 1) * step_s : h0.data<T>();
      const T* c_prev = s ? cp + (s - 1) * step_s : c0.data<T>();
      T* z = zp + s * step_g;
      product(tbl, h_prev, false, h, w, z, n, h, h4, true);  // z = gx[s] + h_prev @ w_hh
      T* h_out = hp + s * step_s;
      T* c_out = cp + s * step_s;
      over_rows(n, h4, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          T* a = z + r * h4;
          const T* cr = c_prev + r * h;
          T* co = c_out + r * h;
          T* ho = h_out + r * h;
          // sigmoid(x) = 1 / (1 + exp(-x)) on i, f and o; tanh on g (as lstm_cell does)
          for (int64_t j = 0; j < 2 * h; ++j) a[j] = -a[j];
          for (int64_t j = 3 * h; j < h4; ++j) a[j] = -a[j];
          tbl.unary[kExp](a, a, 2 * h, false);
          tbl.unary[kExp](a + 3 * h, a + 3 * h, h, false);
          tbl.unary[kTanh](a + 2 * h, a + 2 * h, h, false);
          for (int64_t j = 0; j < 2 * h; ++j) a[j] = T(1) / (T(1) + a[j]);
          for (int64_t j = 3 * h; j < h4; ++j) a[j] = T(1) / (T(1) + a[j]);
          for (int64_t j = 0; j < h; ++j) co[j] = a[h + j] * cr[j] + a[j] * a[2 * h + j];
          tbl.unary[kTanh](co, ho, h, false);
          for (int64_t j = 0; j < h; ++j) ho[j] = a[3 * h + j] * ho[j];
        }
      });
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
  for (const Array* a : {&h0, &c0, &hs, &cs, &gates, &dhs, &dh_n, &dc_n, &dgx, &dw_hh, &dh0, &dc0})
    check_same_dtype(k, w_hh, *a);
  all_distinct(k, {&dgx, &dw_hh, &dh0, &dc0},
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
    const int64_t h4 = 4 * h, step_g = n * h4, step_s = n * h;
    T* dH = dh0.data<T>();  // the adjoints of h and c, carried from step to step
    T* dC = dc0.data<T>();
    std::memcpy(dH, dh_n.data<T>(), static_cast<size_t>(step_s) * sizeof(T));
    std::memcpy(dC, dc_n.data<T>(), static_cast<size_t>(step_s) * sizeof(T));
    T* dw = dw_hh.data<T>();
    if (t == 0 || n == 0 || h == 0) {
      std::fill(dw, dw + h * h4, T(0));
      return;
    }
    // w_hh^T (4h, h), once: the per-step products then read a plain row-major operand.
    std::vector<T> wt(static_cast<size_t>(h4 * h));
    tbl.transpose(w_hh.data<T>(), h4, wt.data(), h, h, h4);
    // tanh(c) of a row, per thread
    std::vector<T> tanh_c(static_cast<size_t>(h * omp_get_max_threads()));
    const T* zp = gates.data<T>();
    const T* cp = cs.data<T>();
    const T* gh = dhs.data<T>();
    T* dz = dgx.data<T>();
    for (int64_t s = t - 1; s >= 0; --s) {
      const T* z = zp + s * step_g;
      const T* c_cur = cp + s * step_s;
      const T* c_prev = s ? cp + (s - 1) * step_s : c0.data<T>();
      const T* dh_out = gh + s * step_s;
      T* d = dz + s * step_g;
      over_rows(n, h4, [&](int64_t r0, int64_t r1) {
        T* tc = tanh_c.data() + h * omp_get_thread_num();
        for (int64_t r = r0; r < r1; ++r) {
          const T* a = z + r * h4;
          const T* cr = c_prev + r * h;
          const T* dho = dh_out + r * h;
          T* dhr = dH + r * h;
          T* dcr = dC + r * h;
          T* dr = d + r * h4;
          tbl.unary[kTanh](c_cur + r * h, tc, h, false);
          for (int64_t j = 0; j < h; ++j) {
            const T i = a[j], f = a[h + j], g = a[2 * h + j], o = a[3 * h + j];
            const T dh = dho[j] + dhr[j];
            const T dc = dcr[j] + dh * o * (T(1) - tc[j] * tc[j]);
            dr[j] = dc * g * i * (T(1) - i);
            dr[h + j] = dc * cr[j] * f * (T(1) - f);
            dr[2 * h + j] = dc * i * (T(1) - g * g);
            dr[3 * h + j] = dh * tc[j] * o * (T(1) - o);
            dcr[j] = dc * f;
          }
        }
      });
      product(tbl, d, false, h4, wt.data(), dH, n, h4, h, false);  // dh_{s-1} = dG_s @ w_hh^T
    }
    // dw_hh = h0^T @ dG_0 + hs[0..t-2]^T @ dG[1..t-1]
    product(tbl, h0.data<T>(), true, h, dz, dw, h, n, h4, false);
    if (t > 1) product(tbl, hs.data<T>(), true, h, dz + step_g, dw, h, (t - 1) * n, h4, true);
  });
}

namespace py = pybind11;

void bind_lstm_layer(py::module_& m) {
  using Release = py::call_guard<py::gil_scoped_release>;
  m.def("lstm_layer", &lstm_layer, py::arg("gx"), py::arg("w_hh"), py::arg("h0"), py::arg("c0"),
        py::arg("hs"), py::arg("cs"), py::arg("gates"), py::arg("t"), py::arg("n"), py::arg("h"),
        Release(),
        "An LSTM layer over t steps: hs, cs (t, n, h) and the activated gates (t, n, 4h) from "
        "the input projection gx (t, n, 4h), w_hh (h, 4h) and the state h0, c0 (n, h).");
  m.def("lstm_layer_backward", &lstm_layer_backward, py::arg("w_hh"), py::arg("h0"),
        py::arg("c0"), py::arg("hs"), py::arg("cs"), py::arg("gates"), py::arg("dhs"),
        py::arg("dh_n"), py::arg("dc_n"), py::arg("dgx"), py::arg("dw_hh"), py::arg("dh0"),
        py::arg("dc0"), py::arg("t"), py::arg("n"), py::arg("h"), Release(),
        "dgx (t, n, 4h), dw_hh (h, 4h), dh0 and dc0 (n, h) of lstm_layer given dhs (t, n, h) "
        "and the adjoints dh_n, dc_n of the final state.");
}

}  // namespace needle_cpp
