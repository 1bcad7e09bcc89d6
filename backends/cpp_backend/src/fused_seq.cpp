// Fused sequence-layer kernels: embedding rows, the LSTM cell and the attention softmax (see
// fused_seq.h). Every result is the same for any thread count: the element-wise kernels
// compute each element once, the softmax gives each row to one thread, and scatter_add_rows
// splits the columns (never the ids) between threads, so repeated ids are always summed in
// increasing position order.
#include "fused_seq.h"

#include <pybind11/pybind11.h>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "isa.h"
#include "kernels.h"
#include "parallel.h"

namespace needle_cpp {
namespace {

/// The ids as row indices, after checking each is a whole number in [0, n_rows).
template <typename T>
std::vector<int64_t> row_ids(const char* k, const T* ids, int64_t n_ids, int64_t n_rows) {
  std::vector<int64_t> idx(static_cast<size_t>(n_ids));
  for (int64_t i = 0; i < n_ids; ++i) {
    const double v = static_cast<double>(ids[i]);
    if (!(v >= 0.0 && v < static_cast<double>(n_rows) && v == std::floor(v))) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.17g", v);
      index_error(k, std::string("id ") + buf + " at position " + std::to_string(i) +
                         " is not a row index in [0, " + std::to_string(n_rows) + ")");
    }
    idx[static_cast<size_t>(i)] = static_cast<int64_t>(v);
  }
  return idx;
}

/// Per-thread workspace of `per_thread` elements, allocated before a parallel region.
template <typename T>
struct Workspace {
  std::vector<T> buf;
  int64_t per_thread;
  explicit Workspace(int64_t n) : buf(static_cast<size_t>(n * omp_get_max_threads())), per_thread(n) {}
  T* mine() { return buf.data() + per_thread * omp_get_thread_num(); }
};

/// act (4h) = [sigmoid(i), sigmoid(f), tanh(g), sigmoid(o)] of one row of gates z (4h), and
/// t (h) = tanh(f c + i g), through the vectorised exp/tanh loops of the active ISA table.
template <typename T>
void lstm_row(const TypedTable<T>& tbl, const T* z, const T* c, int64_t h, T* act, T* t) {
  const int64_t h4 = 4 * h;
  for (int64_t j = 0; j < h4; ++j) act[j] = -z[j];
  tbl.unary[kExp](act, act, 2 * h, false);
  tbl.unary[kExp](act + 3 * h, act + 3 * h, h, false);
  tbl.unary[kTanh](z + 2 * h, act + 2 * h, h, false);
  for (int64_t j = 0; j < 2 * h; ++j) act[j] = T(1) / (T(1) + act[j]);
  for (int64_t j = 3 * h; j < h4; ++j) act[j] = T(1) / (T(1) + act[j]);
  for (int64_t j = 0; j < h; ++j) t[j] = act[h + j] * c[j] + act[j] * act[2 * h + j];
  tbl.unary[kTanh](t, t, h, false);
}

}  // namespace

// --- embedding rows ----------------------------------------------------------------------
void check_rows(const char* k, const Array& src, const Array& ids, const Array& out,
                int64_t n_ids, int64_t n_rows, int64_t width, bool gather) {
  check_nonneg(k, "n_ids", n_ids);
  check_nonneg(k, "n_rows", n_rows);
  check_nonneg(k, "width", width);
  const int64_t rows_n = checked_mul(k, n_rows, width), ids_n = checked_mul(k, n_ids, width);
  check_size(k, gather ? "w" : "g", src, gather ? rows_n : ids_n);
  check_size(k, "ids", ids, n_ids);
  check_size(k, "out", out, gather ? ids_n : rows_n);
  check_same_dtypes(k, src, {&ids, &out});
  check_distinct(k, {&out}, {&src, &ids});
}

void take_rows(const Array& w, const Array& ids, Array& out, int64_t n_ids, int64_t n_rows,
               int64_t width) {
  const char* k = "take_rows";
  check_rows(k, w, ids, out, n_ids, n_rows, width, true);
  with_dtype(w.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const std::vector<int64_t> idx = row_ids(k, ids.data<T>(), n_ids, n_rows);
    if (width == 0) return;
    const T* src = w.data<T>();
    T* dst = out.data<T>();
    for_rows(n_ids, width, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r)
        std::memcpy(dst + r * width, src + idx[static_cast<size_t>(r)] * width,
                    static_cast<size_t>(width) * sizeof(T));
    });
  });
}

void scatter_add_rows(const Array& g, const Array& ids, Array& out, int64_t n_ids,
                      int64_t n_rows, int64_t width) {
  const char* k = "scatter_add_rows";
  check_rows(k, g, ids, out, n_ids, n_rows, width, false);
  with_dtype(g.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const std::vector<int64_t> idx = row_ids(k, ids.data<T>(), n_ids, n_rows);
    const T* src = g.data<T>();
    T* dst = out.data<T>();
    std::fill(dst, dst + n_rows * width, T(0));
    if (width == 0 || n_ids == 0) return;
    // Column blocks of 64 elements; each block walks the ids in order.
    constexpr int64_t kCols = 64;
    const int64_t blocks = (width + kCols - 1) / kCols;
    const int64_t per_block = std::max<int64_t>(1, saturating_mul(n_ids, std::min(width, kCols)));
    const int64_t grain = per_block >= kGrain ? 1 : (kGrain + per_block - 1) / per_block;
    parallel_chunks(blocks, grain, threads_for(saturating_mul(n_ids, width)),
                    [&](int64_t b0, int64_t b1) {
                      const int64_t c0 = b0 * kCols, c1 = std::min(width, b1 * kCols);
                      for (int64_t r = 0; r < n_ids; ++r) {
                        T* o = dst + idx[static_cast<size_t>(r)] * width;
                        const T* s = src + r * width;
                        for (int64_t c = c0; c < c1; ++c) o[c] += s[c];
                      }
                    });
  });
}

// --- LSTM cell ---------------------------------------------------------------------------
namespace {
void check_lstm(const char* k, const Array& gates, std::initializer_list<const Array*> nh,
                int64_t n, int64_t h) {
  check_nonneg(k, "n", n);
  check_nonneg(k, "h", h);
  const int64_t size = checked_mul(k, n, h);
  check_size(k, "gates", gates, checked_mul(k, size, 4));
  for (const Array* a : nh) check_size(k, "state", *a, size);
  check_same_dtypes(k, gates, nh);
}
}  // namespace

void check_lstm_cell(const Array& gates, const Array& cell, const Array& h_out,
                     const Array& c_out, int64_t n, int64_t h) {
  check_lstm("lstm_cell", gates, {&cell, &h_out, &c_out}, n, h);
  check_distinct("lstm_cell", {&h_out, &c_out}, {&gates, &cell});
}

void lstm_cell(const Array& gates, const Array& cell, Array& h_out, Array& c_out, int64_t n,
               int64_t h) {
  check_lstm_cell(gates, cell, h_out, c_out, n, h);
  if (n == 0 || h == 0) return;
  with_dtype(gates.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const TypedTable<T>& tbl = active_typed<T>();
    const T* z = gates.data<T>();
    const T* c = cell.data<T>();
    T* ho = h_out.data<T>();
    T* co = c_out.data<T>();
    Workspace<T> ws(4 * h);
    for_rows(n, 4 * h, [&](int64_t r0, int64_t r1) {
      T* act = ws.mine();
      for (int64_t r = r0; r < r1; ++r) {
        const T* cr = c + r * h;
        T* cnew = co + r * h;
        T* hr = ho + r * h;
        lstm_row(tbl, z + r * 4 * h, cr, h, act, hr);  // hr = tanh(c')
        for (int64_t j = 0; j < h; ++j) {
          cnew[j] = act[h + j] * cr[j] + act[j] * act[2 * h + j];
          hr[j] = act[3 * h + j] * hr[j];
        }
      }
    });
  });
}

void check_lstm_cell_backward(const Array& gates, const Array& cell, const Array& dh,
                              const Array& dc, const Array& d_gates, const Array& d_cell,
                              int64_t n, int64_t h) {
  const char* k = "lstm_cell_backward";
  check_lstm(k, gates, {&cell, &dh, &dc, &d_cell}, n, h);
  check_size(k, "d_gates", d_gates, checked_mul(k, checked_mul(k, n, h), 4));
  check_same_dtype(k, gates, d_gates);
  check_distinct(k, {&d_gates, &d_cell}, {&gates, &cell, &dh, &dc});
}

void lstm_cell_backward(const Array& gates, const Array& cell, const Array& dh, const Array& dc,
                        Array& d_gates, Array& d_cell, int64_t n, int64_t h) {
  check_lstm_cell_backward(gates, cell, dh, dc, d_gates, d_cell, n, h);
  if (n == 0 || h == 0) return;
  with_dtype(gates.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const TypedTable<T>& tbl = active_typed<T>();
    const T* z = gates.data<T>();
    const T* c = cell.data<T>();
    const T* gh = dh.data<T>();
    const T* gc = dc.data<T>();
    T* dz = d_gates.data<T>();
    T* dcp = d_cell.data<T>();
    Workspace<T> ws(5 * h);
    for_rows(n, 4 * h, [&](int64_t r0, int64_t r1) {
      T* act = ws.mine();
      T* t = act + 4 * h;
      for (int64_t r = r0; r < r1; ++r) {
        const T* cr = c + r * h;
        const T* dhr = gh + r * h;
        const T* dcr = gc + r * h;
        T* dr = dz + r * 4 * h;
        T* dcpr = dcp + r * h;
        lstm_row(tbl, z + r * 4 * h, cr, h, act, t);
        for (int64_t j = 0; j < h; ++j) {
          const T i = act[j], f = act[h + j], g = act[2 * h + j], o = act[3 * h + j];
          const T kk = dcr[j] + dhr[j] * o * (T(1) - t[j] * t[j]);
          dr[j] = kk * g * i * (T(1) - i);
          dr[h + j] = kk * cr[j] * f * (T(1) - f);
          dr[2 * h + j] = kk * i * (T(1) - g * g);
          dr[3 * h + j] = dhr[j] * t[j] * o * (T(1) - o);
          dcpr[j] = kk * f;
        }
      }
    });
  });
}

// --- attention softmax -------------------------------------------------------------------
void check_attention_softmax(const Array& a, const Array& out, int64_t batch, int64_t t_q,
                             int64_t t_k, int64_t causal) {
  const char* k = "attention_softmax";
  check_nonneg(k, "batch", batch);
  check_nonneg(k, "t_q", t_q);
  if (t_k < 1) value_error(k, "t_k must be >= 1, got " + std::to_string(t_k));
  if (causal != 0 && causal != 1)
    value_error(k, "causal must be 0 or 1, got " + std::to_string(causal));
  const int64_t size = checked_mul(k, checked_mul(k, batch, t_q), t_k);
  check_size(k, "a", a, size);
  check_size(k, "out", out, size);
  check_same_dtype(k, a, out);
}

void attention_softmax(const Array& a, Array& out, int64_t batch, int64_t t_q, int64_t t_k,
                       double scale, int64_t causal) {
  check_attention_softmax(a, out, batch, t_q, t_k, causal);
  if (batch == 0 || t_q == 0) return;
  with_dtype(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const TypedTable<T>& tbl = active_typed<T>();
    const T* x = a.data<T>();
    T* y = out.data<T>();
    const T s = static_cast<T>(scale), masked = static_cast<T>(-1e9);
    for_rows(batch * t_q, t_k, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const T* xr = x + r * t_k;
        T* yr = y + r * t_k;
        const int64_t i = r % t_q;
        const int64_t last = causal ? i + t_k - t_q : t_k - 1;  // keys j > last are masked
        for (int64_t j = 0; j < t_k; ++j) yr[j] = xr[j] * s + (j > last ? masked : T(0));
        const T m = tbl.max(yr, t_k);  // NaN propagates
        for (int64_t j = 0; j < t_k; ++j) yr[j] -= m;
        tbl.unary[kExp](yr, yr, t_k, false);
        const T inv = static_cast<T>(1.0 / tbl.sum(yr, t_k));
        for (int64_t j = 0; j < t_k; ++j) yr[j] *= inv;
      }
    });
  });
}

// --- bindings ------------------------------------------------------------------------------
namespace py = pybind11;

void bind_fused_seq(py::module_& m) {
  using Release = py::call_guard<py::gil_scoped_release>;
  m.def("take_rows", &take_rows, py::arg("w"), py::arg("ids"), py::arg("out"), py::arg("n_ids"),
        py::arg("n_rows"), py::arg("width"), Release(),
        "out (n_ids, width) = rows ids of compact w (n_rows, width); bad ids -> IndexError.");
  m.def("scatter_add_rows", &scatter_add_rows, py::arg("g"), py::arg("ids"), py::arg("out"),
        py::arg("n_ids"), py::arg("n_rows"), py::arg("width"), Release(),
        "out (n_rows, width) = zeros with row k of g added at row ids[k], k in order.");
  m.def("lstm_cell", &lstm_cell, py::arg("gates"), py::arg("cell"), py::arg("h_out"),
        py::arg("c_out"), py::arg("n"), py::arg("h"), Release(),
        "One LSTM step from pre-activation gates (n, 4h) in the order i, f, g, o.");
  m.def("lstm_cell_backward", &lstm_cell_backward, py::arg("gates"), py::arg("cell"),
        py::arg("dh"), py::arg("dc"), py::arg("d_gates"), py::arg("d_cell"), py::arg("n"),
        py::arg("h"), Release(), "d_gates and d_cell of lstm_cell given dh and dc.");
  m.def("attention_softmax", &attention_softmax, py::arg("a"), py::arg("out"), py::arg("batch"),
        py::arg("t_q"), py::arg("t_k"), py::arg("scale"), py::arg("causal"), Release(),
        "Softmax over the keys of a * scale (+ the causal mask) for scores (batch, t_q, t_k).");
}

}  // namespace needle_cpp
