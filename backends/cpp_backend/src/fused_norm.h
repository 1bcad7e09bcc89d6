// Fused layer kernels (issue 12, item 3): batch norm, layer norm, softmax cross-entropy.
// Each kernel first runs its check_* function (sizes, dtypes, labels), which throws the
// contract's ValueError/TypeError/IndexError naming the kernel before any memory is touched;
// perf_module.cpp registers the same checks for programs.
#pragma once

#include <cstdint>

#include "array.h"

namespace needle_cpp {

/// Training batch norm of compact x (m, c) per column: stats (2, c) = [mean; biased var],
/// out = (x - mean) / sqrt(var + eps) * w + b. Column sums run over fixed blocks of rows
/// combined in block order, so results do not depend on the thread count.
void batchnorm_forward(const Array& x, const Array& w, const Array& b, Array& out, Array& stats,
                       int64_t m, int64_t c, double eps);
void check_batchnorm_forward(const Array& x, const Array& w, const Array& b, const Array& out,
                             const Array& stats, int64_t m, int64_t c);
/// dwb (2, c) = [sum(dy xh); sum(dy)], dx = w r (dy - db/m - xh dw/m).
void batchnorm_backward(const Array& x, const Array& dy, const Array& w, const Array& stats,
                        Array& dx, Array& dwb, int64_t m, int64_t c, double eps);
void check_batchnorm_backward(const Array& x, const Array& dy, const Array& w, const Array& stats,
                              const Array& dx, const Array& dwb, int64_t m, int64_t c);

/// Layer norm of each row of compact x (rows, d): stats (2, rows) = [means; biased vars].
void layernorm_forward(const Array& x, const Array& w, const Array& b, Array& out, Array& stats,
                       int64_t rows, int64_t d, double eps);
void check_layernorm_forward(const Array& x, const Array& w, const Array& b, const Array& out,
                             const Array& stats, int64_t rows, int64_t d);
/// g = dy w; dx = r/d (d g - sum(g) - xh sum(g xh)); dwb (2, d) = [sum(dy xh); sum(dy)].
void layernorm_backward(const Array& x, const Array& dy, const Array& w, const Array& stats,
                        Array& dx, Array& dwb, int64_t rows, int64_t d, double eps);
void check_layernorm_backward(const Array& x, const Array& dy, const Array& w, const Array& stats,
                              const Array& dx, const Array& dwb, int64_t rows, int64_t d);

/// out (n) = logsumexp(row) - row[label] over compact logits a (n, k).
void softmax_xent(const Array& a, const Array& labels, Array& out, int64_t n, int64_t k);
/// out (n, k) = (softmax(row) - one_hot(label)) * g[0].
void softmax_xent_backward(const Array& a, const Array& labels, const Array& g, Array& out,
                           int64_t n, int64_t k);
/// Sizes and dtypes (g may be null: the forward kernel) and, when `labels_too`, every label
/// a whole number in [0, k) (IndexError otherwise). Programs check sizes at compile time
/// (the label buffer's contents change between runs); the kernels check labels each run.
void check_softmax_xent(const char* kernel, const Array& a, const Array& labels, const Array* g,
                        const Array& out, int64_t n, int64_t k, bool labels_too);

}  // namespace needle_cpp
