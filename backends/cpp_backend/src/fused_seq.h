// Fused sequence-layer kernels (issue 12, item 3): embedding row gather/scatter, the LSTM
// cell (forward and backward) and the attention softmax. Each kernel first runs its check_*
// function (sizes, dtypes, aliasing), which throws the contract's ValueError/TypeError naming
// the kernel before any memory is touched; ids are checked (IndexError) by the kernels
// themselves on every run, since their values change between program runs. perf_module.cpp
// registers the same checks for programs.
#pragma once

#include <cstdint>

#include "array.h"

namespace needle_cpp {

/// out (n_ids, width) = rows ids of compact w (n_rows, width).
void take_rows(const Array& w, const Array& ids, Array& out, int64_t n_ids, int64_t n_rows,
               int64_t width);
/// out (n_rows, width) = zeros, then row k of g added at row ids[k] for k = 0, 1, ...
/// (each column block is summed by one thread in that order: deterministic).
void scatter_add_rows(const Array& g, const Array& ids, Array& out, int64_t n_ids,
                      int64_t n_rows, int64_t width);
/// Sizes and dtypes of take_rows (`gather`) or scatter_add_rows.
void check_rows(const char* kernel, const Array& src, const Array& ids, const Array& out,
                int64_t n_ids, int64_t n_rows, int64_t width, bool gather);

/// One LSTM step from pre-activation gates (n, 4h) (i, f, g, o) and the cell state (n, h).
void lstm_cell(const Array& gates, const Array& cell, Array& h_out, Array& c_out, int64_t n,
               int64_t h);
void check_lstm_cell(const Array& gates, const Array& cell, const Array& h_out,
                     const Array& c_out, int64_t n, int64_t h);
/// d_gates (n, 4h) and d_cell (n, h) of lstm_cell given the adjoints dh and dc.
void lstm_cell_backward(const Array& gates, const Array& cell, const Array& dh, const Array& dc,
                        Array& d_gates, Array& d_cell, int64_t n, int64_t h);
void check_lstm_cell_backward(const Array& gates, const Array& cell, const Array& dh,
                              const Array& dc, const Array& d_gates, const Array& d_cell,
                              int64_t n, int64_t h);

/// A whole LSTM layer over t steps (lstm_layer.cpp): hs and cs (t, n, h) every step's hidden
/// and cell state and gates (t, 4h, n) the activated gates [sigmoid(i), sigmoid(f), tanh(g),
/// sigmoid(o)] of each step, transposed, from the input projection gx (t, n, 4h), w_hh (h, 4h)
/// and h0, c0 (n, h).
void lstm_layer(const Array& gx, const Array& w_hh, const Array& h0, const Array& c0, Array& hs,
                Array& cs, Array& gates, int64_t t, int64_t n, int64_t h);
void check_lstm_layer(const Array& gx, const Array& w_hh, const Array& h0, const Array& c0,
                      const Array& hs, const Array& cs, const Array& gates, int64_t t, int64_t n,
                      int64_t h);
/// dgx (t, n, 4h), dw_hh (h, 4h), dh0 and dc0 (n, h) of lstm_layer given the adjoints dhs
/// (t, n, h) of hs and dh_n, dc_n (n, h) of the final state.
void lstm_layer_backward(const Array& w_hh, const Array& h0, const Array& c0, const Array& hs,
                         const Array& cs, const Array& gates, const Array& dhs,
                         const Array& dh_n, const Array& dc_n, Array& dgx, Array& dw_hh,
                         Array& dh0, Array& dc0, int64_t t, int64_t n, int64_t h);
void check_lstm_layer_backward(const Array& w_hh, const Array& h0, const Array& c0,
                               const Array& hs, const Array& cs, const Array& gates,
                               const Array& dhs, const Array& dh_n, const Array& dc_n,
                               const Array& dgx, const Array& dw_hh, const Array& dh0,
                               const Array& dc0, int64_t t, int64_t n, int64_t h);

/// An Elman RNN layer over t steps (lstm_layer.cpp): hs (t, n, h) with hs[s] = act(gx[s] +
/// hs[s-1] @ w_hh), hs[-1] = h0, act tanh (relu 0) or relu (relu 1); w_hh (h, h).
void rnn_layer(const Array& gx, const Array& w_hh, const Array& h0, Array& hs, int64_t t,
               int64_t n, int64_t h, int64_t relu);
void check_rnn_layer(const Array& gx, const Array& w_hh, const Array& h0, const Array& hs,
                     int64_t t, int64_t n, int64_t h, int64_t relu);
/// dgx (t, n, h), dw_hh (h, h) and dh0 (n, h) of rnn_layer given the adjoint dhs of hs.
void rnn_layer_backward(const Array& w_hh, const Array& h0, const Array& hs, const Array& dhs,
                        Array& dgx, Array& dw_hh, Array& dh0, int64_t t, int64_t n, int64_t h,
                        int64_t relu);
void check_rnn_layer_backward(const Array& w_hh, const Array& h0, const Array& hs,
                              const Array& dhs, const Array& dgx, const Array& dw_hh,
                              const Array& dh0, int64_t t, int64_t n, int64_t h, int64_t relu);

/// out = softmax over the last axis of a (batch, t_q, t_k) * scale, plus -1e9 where key
/// j > i + t_k - t_q when causal. out may be a.
void attention_softmax(const Array& a, Array& out, int64_t batch, int64_t t_q, int64_t t_k,
                       double scale, int64_t causal);
void check_attention_softmax(const Array& a, const Array& out, int64_t batch, int64_t t_q,
                             int64_t t_k, int64_t causal);

}  // namespace needle_cpp
