// Fused multi-head attention (issue 12): softmax(q k^T * scale + causal mask) [* mask] @ v
// and its gradient, one (batch, head) pair per task, straight from the projections' layout.
// Each kernel first runs its check_* function (sizes, flags, dtypes, aliasing), which throws
// the contract's ValueError/TypeError naming the kernel before any memory is touched;
// perf_module.cpp registers the same checks for programs.
//
// Layouts (`layout`): 0 = q (batch, heads, t_q, d), k (batch, heads, t_k, d), v (batch, heads,
// t_k, d_v), out (batch, heads, t_q, d_v); 1 = the same with the time and head axes swapped,
// q (batch, t_q, heads, d) and so on: the (B, T, heads * d) output of a linear projection,
// read in place. probs and mask are (batch, heads, t_q, t_k) in both. All compact.
#pragma once

#include <cstdint>

#include "array.h"

namespace needle_cpp {

/// probs = softmax over the keys of q k^T * scale, plus -1e9 where key j > i + t_k - t_q when
/// causal; out = (probs [* mask]) @ v. mask is an empty buffer (size 0) for none.
void attention_forward(const Array& q, const Array& k, const Array& v, const Array& mask,
                       Array& out, Array& probs, int64_t batch, int64_t heads, int64_t t_q,
                       int64_t t_k, int64_t d, int64_t d_v, int64_t layout, int64_t causal,
                       double scale);
void check_attention_forward(const Array& q, const Array& k, const Array& v, const Array& mask,
                             const Array& out, const Array& probs, int64_t batch, int64_t heads,
                             int64_t t_q, int64_t t_k, int64_t d, int64_t d_v, int64_t layout,
                             int64_t causal);

/// dq, dk, dv of attention_forward given d_out (out's layout) and the forward's probs
/// (causal as in the forward: the keys it masked are skipped).
void attention_backward(const Array& q, const Array& k, const Array& v, const Array& probs,
                        const Array& mask, const Array& d_out, Array& dq, Array& dk, Array& dv,
                        int64_t batch, int64_t heads, int64_t t_q, int64_t t_k, int64_t d,
                        int64_t d_v, int64_t layout, int64_t causal, double scale);
void check_attention_backward(const Array& q, const Array& k, const Array& v,
                              const Array& probs, const Array& mask, const Array& d_out,
                              const Array& dq, const Array& dk, const Array& dv, int64_t batch,
                              int64_t heads, int64_t t_q, int64_t t_k, int64_t d, int64_t d_v,
                              int64_t layout, int64_t causal);

}  // namespace needle_cpp
