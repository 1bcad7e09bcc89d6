// Convolution with zero padding and its two gradients, without padded, dilated, flipped or
// permuted copies made in Python (issue 12):
//
// * conv2d_nhwc_pad: the padded image is written once here (one pass over x), then the
//   plain convolution (conv2d_nhwc: the packed gemm reading patches straight from the image)
//   runs on it, so its numbers are those of pad + conv2d_nhwc.
// * conv2d_nhwc_backward_input: cols = g @ W^T (one gemm, W read transposed), then a col2im
//   by dx rows: each row is summed by one thread from the taps that land on it, in a fixed
//   order (no races, the same result for any thread count). A strided layer does no work
//   for the zeros a dilation would add.
// * One-pixel images with one output pixel run as a single product with the one tap that
//   reaches the image (the rest of the kernel only ever meets padding).
// * conv2d_nhwc_backward_weight: dw = im2col(x)^T g, the im2col (padding written as zeros)
//   in chunks of output pixels in the per-thread scratch, the gemm reading it transposed and
//   accumulating over the chunks.
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "conv_ext.h"
#include "isa.h"
#include "parallel.h"

namespace needle_cpp {
namespace {

/// Rows of row_len elements in a buffer of about `bytes`: im2col patches and cols are made
/// and used chunk by chunk, small enough to still be in the core's L2 (2 MiB here) when
/// the gemm or the col2im reads them back. Measured (1 and 2 threads, ResNet9's layers and
/// 32x32x32 k=3): 8 MiB chunks were 5-20% slower than 256 KiB (weight gradient) and 1 MiB
/// (input gradient).
template <typename T>
int64_t chunk_rows(int64_t row_len, int64_t bytes) {
  return std::max<int64_t>(1, bytes / (int64_t)sizeof(T) / std::max<int64_t>(row_len, 1));
}

/// Writes the patch rows of output pixels [p0, p0 + rows) of x (zeros where the patch
/// leaves the image) into dst (rows, k*k*c_in).
template <typename T>
void im2col_pad(const T* xs, const ConvGeom& c, int64_t p0, int64_t rows, T* dst) {
  const int64_t kk = c.k * c.k * c.c_in, seg = c.c_in;
  const int threads = threads_for(rows * kk);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t pix = p0 + r, b = pix / (c.ho * c.wo), oh = pix / c.wo % c.ho, ow = pix % c.wo;
    T* d = dst + r * kk;
    for (int64_t kh = 0; kh < c.k; ++kh) {
      const int64_t ih = oh * c.stride + kh - c.pad;
      T* drow = d + kh * c.k * seg;
      if (ih < 0 || ih >= c.h) {
        std::fill(drow, drow + c.k * seg, T(0));
        continue;
      }
      const int64_t iw0 = ow * c.stride - c.pad;
      // Kernel columns [lo, hi) fall inside the image.
      const int64_t lo = std::min<int64_t>(c.k, std::max<int64_t>(0, -iw0));
      const int64_t hi = std::max<int64_t>(lo, std::min<int64_t>(c.k, c.w - iw0));
      std::fill(drow, drow + lo * seg, T(0));
      if (hi > lo)
        std::memcpy(drow + lo * seg, xs + ((b * c.h + ih) * c.w + iw0 + lo) * seg,
                    (size_t)((hi - lo) * seg) * sizeof(T));
      std::fill(drow + hi * seg, drow + c.k * seg, T(0));
    }
  }
}

/// One-pixel images with one output pixel (the last layers of small networks): the only
/// tap that reaches the image is (pad, pad), so the convolution is one product with that
/// tap's (c_in, c_out) block; -1 when no tap reaches it (pad >= k: the output is zeros).
int64_t single_pixel_tap(const ConvGeom& c) {
  if (c.h != 1 || c.w != 1 || c.ho != 1 || c.wo != 1) return -2;  // not this case
  return c.pad < c.k ? (c.pad * c.k + c.pad) * c.c_in * c.c_out : -1;
}

void check_geom(const char* kn, const ConvGeom& c) {
  const std::pair<const char*, int64_t> dims[] = {{"n", c.n},     {"h", c.h},         {"w_", c.w},
                                                  {"c_in", c.c_in}, {"c_out", c.c_out}};
  for (auto [name, v] : dims) check_nonneg(kn, name, v);
  if (c.k < 1) value_error(kn, "kernel size k must be >= 1, got " + std::to_string(c.k));
  if (c.stride < 1) value_error(kn, "stride must be >= 1, got " + std::to_string(c.stride));
  if (c.pad < 0) value_error(kn, "padding must be >= 0, got " + std::to_string(c.pad));
  // h + 2 * pad without overflow: pad < 2^61 keeps it in range once h is checked.
  if (c.pad > (INT64_MAX / 4) || c.h > INT64_MAX / 2 || c.w > INT64_MAX / 2)
    value_error(kn, "padding or image size too large");
  if (c.h + 2 * c.pad < c.k || c.w + 2 * c.pad < c.k)
    value_error(kn, "padded input " + std::to_string(c.h + 2 * c.pad) + "x" +
                        std::to_string(c.w + 2 * c.pad) + " is smaller than the kernel " +
                        std::to_string(c.k) + "x" + std::to_string(c.k));
}

void check_distinct(const char* kn, const Array& out, const Array& a, const Array& b) {
  if (&out == &a || &out == &b) value_error(kn, "the output buffer must not be an input");
}

}  // namespace

ConvGeom conv_geom(const char* kn, int64_t n, int64_t h, int64_t w_, int64_t c_in, int64_t k,
                   int64_t c_out, int64_t stride, int64_t padding) {
  ConvGeom c{n, h, w_, c_in, k, c_out, stride, padding, 0, 0};
  check_geom(kn, c);
  c.ho = (h + 2 * padding - k) / stride + 1;
  c.wo = (w_ + 2 * padding - k) / stride + 1;
  return c;
}

void check_conv_ext(const char* kn, const Array& x_like, const Array& w, const Array& g_like,
                    const ConvGeom& c) {
  // the buffers' names in this kernel's parameters: (x, w, out), (dx, w, g) or (x, dw, g)
  const bool fwd = std::strcmp(kn, "conv2d_nhwc_pad") == 0;
  const bool bwd_in = std::strcmp(kn, "conv2d_nhwc_backward_input") == 0;
  const int64_t kk = checked_mul(kn, checked_mul(kn, c.k, c.k), c.c_in);
  check_size(kn, bwd_in ? "dx" : "x", x_like,
             checked_mul(kn, checked_mul(kn, c.n, c.h), checked_mul(kn, c.w, c.c_in)));
  check_size(kn, fwd || bwd_in ? "w" : "dw", w, checked_mul(kn, kk, c.c_out));
  check_size(kn, fwd ? "out" : "g", g_like,
             checked_mul(kn, checked_mul(kn, c.n, c.ho), checked_mul(kn, c.wo, c.c_out)));
  check_dtypes3(kn, x_like, w, g_like);
}

void conv2d_nhwc_pad(const Array& x, const Array& w, Array& out, int64_t n, int64_t h, int64_t w_,
                     int64_t c_in, int64_t k, int64_t c_out, int64_t stride, int64_t padding) {
  const char* kn = "conv2d_nhwc_pad";
  const ConvGeom c = conv_geom(kn, n, h, w_, c_in, k, c_out, stride, padding);
  check_conv_ext(kn, x, w, out, c);
  if (&out == &x || &out == &w) {  // out may be an input: through a temporary
    const int64_t out_n = n * c.ho * c.wo * c_out;
    Array tmp(out_n, out.dtype());
    conv2d_nhwc_pad(x, w, tmp, n, h, w_, c_in, k, c_out, stride, padding);
    std::memcpy(out.raw(), tmp.raw(), (size_t)out_n * dtype_bytes(out.dtype()));
    return;
  }
  if (padding == 0) {
    conv2d_nhwc(x, w, out, n, h, w_, c_in, k, c_out, stride);
    return;
  }
  if (const int64_t tap = single_pixel_tap(c); tap != -2) {
    if (n * c_out == 0) return;
    with_dtype(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      T* os = out.data<T>();
      if (tap < 0 || c_in == 0) {
        std::fill(os, os + n * c_out, T(0));
        return;
      }
      GemmA<T> A;
      A.a = x.data<T>();
      A.lda = c_in;
      active_typed<T>().gemm_ex(A, w.data<T>() + tap, c_out, false, os, c_out, n, c_in, c_out,
                                false, gemm_threads(n, c_in, c_out));
    });
    return;
  }
  const int64_t hp = h + 2 * padding, wp = w_ + 2 * padding;
  const int64_t size = checked_mul(kn, checked_mul(kn, n, hp), checked_mul(kn, wp, c_in));
  Array xp(size, x.dtype());
  with_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* xs = x.data<T>();
    T* ps = xp.data<T>();
    const int64_t row = wp * c_in, border = padding * c_in, inner = w_ * c_in;
    // One padded row per task: zeros, the image row, zeros (or all zeros above and below).
    parallel_chunks(n * hp, std::max<int64_t>(1, kGrain / std::max<int64_t>(row, 1)),
                    threads_for(size), [&](int64_t r0, int64_t r1) {
                      for (int64_t r = r0; r < r1; ++r) {
                        T* d = ps + r * row;
                        const int64_t b = r / hp, ih = r % hp - padding;
                        if (ih < 0 || ih >= h) {
                          std::fill(d, d + row, T(0));
                          continue;
                        }
                        std::fill(d, d + border, T(0));
                        std::memcpy(d + border, xs + (b * h + ih) * inner, (size_t)inner * sizeof(T));
                        std::fill(d + border + inner, d + row, T(0));
                      }
                    });
  });
  conv2d_nhwc(xp, w, out, n, hp, wp, c_in, k, c_out, stride);
}

void conv2d_nhwc_backward_input(const Array& g, const Array& w, Array& dx, int64_t n, int64_t h,
                                int64_t w_, int64_t c_in, int64_t k, int64_t c_out,
                                int64_t stride, int64_t padding) {
  const char* kn = "conv2d_nhwc_backward_input";
  const ConvGeom c = conv_geom(kn, n, h, w_, c_in, k, c_out, stride, padding);
  check_conv_ext(kn, dx, w, g, c);
  check_distinct(kn, dx, g, w);
  const int64_t dx_n = n * h * w_ * c_in;
  if (dx_n == 0) return;
  with_dtype(dx.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T *gs = g.data<T>(), *ws = w.data<T>();
    T* ds = dx.data<T>();
    const int64_t kk = k * k * c_in;
    if (c_out == 0 || c.ho * c.wo == 0) {
      std::fill(ds, ds + dx_n, T(0));
      return;
    }
    const auto& tbl = active_typed<T>();
    if (const int64_t tap = single_pixel_tap(c); tap != -2) {  // dx = g @ W[p, p]^T
      if (tap < 0) {
        std::fill(ds, ds + dx_n, T(0));
        return;
      }
      GemmA<T> A;
      A.a = gs;
      A.lda = c_out;
      tbl.gemm_ex(A, ws + tap, c_out, true, ds, c_in, n, c_out, c_in, false, gemm_threads(n, c_out, c_in));
      return;
    }
    if (k == 1 && stride == 1 && padding == 0) {  // dx = g @ W^T, one product
      GemmA<T> A;
      A.a = gs;
      A.lda = c_out;
      const int64_t m = n * h * w_;
      tbl.gemm_ex(A, ws, c_out, true, ds, c_in, m, c_out, c_in, false, gemm_threads(m, c_out, c_in));
      return;
    }
    const int64_t img_pix = c.ho * c.wo;
    const int64_t imgs = std::max<int64_t>(1, chunk_rows<T>(img_pix * kk, 1 << 20));
    T* cols = static_cast<T*>(scratch(1, (size_t)(std::min(imgs, n) * img_pix * kk) * sizeof(T)));
    for (int64_t b0 = 0; b0 < n; b0 += imgs) {
      const int64_t nb = std::min(imgs, n - b0), rows = nb * img_pix;
      GemmA<T> A;
      A.a = gs + b0 * img_pix * c_out;
      A.lda = c_out;
      tbl.gemm_ex(A, ws, c_out, true, cols, kk, rows, c_out, kk, false, gemm_threads(rows, c_out, kk));
      // col2im, one task per dx row (b, ih): the taps kh that land on row ih (those with
      // ih + p - kh a multiple of the stride), then every (kw, ow) of that output row,
      // added at iw = ow s + kw - p. A row is written by one thread only, each element
      // summing its taps in (kh, kw) order: no races, the same result for any thread count.
      parallel_chunks(nb * h, std::max<int64_t>(1, kGrain / std::max<int64_t>(w_ * k * c_in, 1)),
                      threads_for(nb * h * w_ * kk), [&](int64_t r0, int64_t r1) {
                        for (int64_t r = r0; r < r1; ++r) {
                          const int64_t bl = r / h, ih = r % h;
                          T* drow = ds + ((b0 + bl) * h + ih) * w_ * c_in;
                          std::fill(drow, drow + w_ * c_in, T(0));
                          for (int64_t kh = (ih + padding) % stride; kh < k; kh += stride) {
                            const int64_t oh = (ih + padding - kh) / stride;
                            if (oh >= c.ho) continue;
                            if (oh < 0) break;
                            const T* crow = cols + (bl * img_pix + oh * c.wo) * kk + kh * k * c_in;
                            for (int64_t kw = 0; kw < k; ++kw) {
                              // output columns whose tap kw lands inside the row
                              const int64_t lo = kw >= padding ? 0 : (padding - kw + stride - 1) / stride;
                              const int64_t last = w_ - 1 + padding - kw;  // iw = w_ - 1
                              const int64_t hi = last < 0 ? 0 : std::min<int64_t>(c.wo, last / stride + 1);
                              for (int64_t ow = lo; ow < hi; ++ow) {
                                T* d = drow + (ow * stride + kw - padding) * c_in;
                                const T* src = crow + ow * kk + kw * c_in;
#pragma omp simd
                                for (int64_t ci = 0; ci < c_in; ++ci) d[ci] += src[ci];
                              }
                            }
                          }
                        }
                      });
    }
  });
}

void conv2d_nhwc_backward_weight(const Array& x, const Array& g, Array& dw, int64_t n, int64_t h,
                                 int64_t w_, int64_t c_in, int64_t k, int64_t c_out,
                                 int64_t stride, int64_t padding) {
  const char* kn = "conv2d_nhwc_backward_weight";
  const ConvGeom c = conv_geom(kn, n, h, w_, c_in, k, c_out, stride, padding);
  check_conv_ext(kn, x, dw, g, c);
  check_distinct(kn, dw, x, g);
  const int64_t kk = k * k * c_in, dw_n = kk * c_out;
  if (dw_n == 0) return;
  with_dtype(dw.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T *xs = x.data<T>(), *gs = g.data<T>();
    T* ds = dw.data<T>();
    const int64_t pixels = n * c.ho * c.wo;
    if (pixels == 0) {
      std::fill(ds, ds + dw_n, T(0));
      return;
    }
    const auto& tbl = active_typed<T>();
    GemmA<T> A;
    A.trans = true;  // A(i, p) = patches[p * kk + i]: the im2col matrix read transposed
    if (const int64_t tap = single_pixel_tap(c); tap != -2) {  // dw[p, p] = x^T g, else 0
      std::fill(ds, ds + dw_n, T(0));
      if (tap < 0 || c_in == 0) return;
      A.a = xs;
      A.lda = c_in;
      tbl.gemm_ex(A, gs, c_out, false, ds + tap, c_out, c_in, n, c_out, false, gemm_threads(c_in, n, c_out));
      return;
    }
    if (k == 1 && stride == 1 && padding == 0) {  // the image is its own im2col
      A.a = xs;
      A.lda = c_in;
      tbl.gemm_ex(A, gs, c_out, false, ds, c_out, kk, pixels, c_out, false, gemm_threads(kk, pixels, c_out));
      return;
    }
    const int64_t chunk = chunk_rows<T>(kk, 256 << 10);
    T* patches = static_cast<T*>(scratch(1, (size_t)(std::min(chunk, pixels) * kk) * sizeof(T)));
    A.a = patches;
    A.lda = kk;
    for (int64_t p0 = 0; p0 < pixels; p0 += chunk) {
      const int64_t rows = std::min(chunk, pixels - p0);
      im2col_pad(xs, c, p0, rows, patches);
      tbl.gemm_ex(A, gs + p0 * c_out, c_out, false, ds, c_out, kk, rows, c_out, p0 > 0,
                  gemm_threads(kk, rows, c_out));
    }
  });
}

// --- bindings ------------------------------------------------------------------------------
namespace py = pybind11;

void bind_conv_ext(py::module_& m) {
  using Release = py::call_guard<py::gil_scoped_release>;
  m.def("conv2d_nhwc_pad", &conv2d_nhwc_pad, py::arg("x"), py::arg("w"), py::arg("out"),
        py::arg("n"), py::arg("h"), py::arg("w_"), py::arg("c_in"), py::arg("k"), py::arg("c_out"),
        py::arg("stride"), py::arg("padding"), Release(),
        "Convolution of NHWC x (zero padding `padding` on H and W) with KKIO weights w.");
  m.def("conv2d_nhwc_backward_input", &conv2d_nhwc_backward_input, py::arg("g"), py::arg("w"),
        py::arg("dx"), py::arg("n"), py::arg("h"), py::arg("w_"), py::arg("c_in"), py::arg("k"),
        py::arg("c_out"), py::arg("stride"), py::arg("padding"), Release(),
        "dx (n, h, w_, c_in) of conv2d_nhwc_pad given the output gradient g.");
  m.def("conv2d_nhwc_backward_weight", &conv2d_nhwc_backward_weight, py::arg("x"), py::arg("g"),
        py::arg("dw"), py::arg("n"), py::arg("h"), py::arg("w_"), py::arg("c_in"), py::arg("k"),
        py::arg("c_out"), py::arg("stride"), py::arg("padding"), Release(),
        "dw (k, k, c_in, c_out) of conv2d_nhwc_pad given the input x and output gradient g.");
}

}  // namespace needle_cpp
