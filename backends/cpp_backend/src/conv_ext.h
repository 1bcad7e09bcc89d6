// Convolution with zero padding and its input and weight gradients (conv_ext.cpp). Each
// kernel checks its sizes, dtypes and geometry first (ValueError/TypeError naming the
// kernel); perf_module.cpp registers the same checks for programs.
#pragma once

#include <cstdint>

#include "kernels.h"

namespace needle_cpp {

/// The geometry shared by the three kernels: x (n, h, w, c_in), w (k, k, c_in, c_out),
/// output (n, ho, wo, c_out) with ho = (h + 2 pad - k) / stride + 1 (wo alike).
struct ConvGeom {
  int64_t n, h, w, c_in, k, c_out, stride, pad, ho, wo;
};

/// The checked geometry (ValueError naming `kernel` for negative sizes, k < 1, stride < 1,
/// padding < 0 or a kernel larger than the padded image).
ConvGeom conv_geom(const char* kernel, int64_t n, int64_t h, int64_t w_, int64_t c_in, int64_t k,
                   int64_t c_out, int64_t stride, int64_t padding);
/// Sizes of an x-shaped, a weight-shaped and an output-shaped buffer, and equal dtypes.
void check_conv_ext(const char* kernel, const Array& x_like, const Array& w, const Array& g_like,
                    const ConvGeom& c);

/// out (n, ho, wo, c_out) = x convolved with w, x zero-padded by `padding` on H and W.
void conv2d_nhwc_pad(const Array& x, const Array& w, Array& out, int64_t n, int64_t h, int64_t w_,
                     int64_t c_in, int64_t k, int64_t c_out, int64_t stride, int64_t padding);
/// dx (n, h, w_, c_in) of conv2d_nhwc_pad given its output gradient g (n, ho, wo, c_out).
void conv2d_nhwc_backward_input(const Array& g, const Array& w, Array& dx, int64_t n, int64_t h,
                                int64_t w_, int64_t c_in, int64_t k, int64_t c_out,
                                int64_t stride, int64_t padding);
/// dw (k, k, c_in, c_out) of conv2d_nhwc_pad given its input x and output gradient g.
void conv2d_nhwc_backward_weight(const Array& x, const Array& g, Array& dw, int64_t n, int64_t h,
                                 int64_t w_, int64_t c_in, int64_t k, int64_t c_out,
                                 int64_t stride, int64_t padding);

}  // namespace needle_cpp
