// matmul, batched_matmul and conv2d_nhwc (im2col + the packed gemm of the active ISA).
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <new>

#include "isa.h"
#include "kernels.h"
#include "parallel.h"
#include "perf_kernels.h"

namespace needle_cpp {
namespace {

void check_dims(const char* kernel, std::initializer_list<std::pair<const char*, int64_t>> dims) {
  for (auto [name, v] : dims) check_nonneg(kernel, name, v);
}

}  // namespace

void batched_gemm(const Array& a, const Array& b, Array& out, int64_t batch, int64_t m, int64_t n,
                  int64_t p, bool trans_a, bool trans_b) {
  // Empty first: with p == 0 the checks passed however large batch * m is (no overflow).
  if (batch == 0 || m == 0 || p == 0) return;
  const int64_t out_n = batch * m * p;
  if (&out == &a || &out == &b) {  // out aliases an input: work on a copy, as NumPy does
    Array tmp(out_n, out.dtype());
    batched_gemm(a, b, tmp, batch, m, n, p, trans_a, trans_b);
    std::memcpy(out.raw(), tmp.raw(), (size_t)out_n * dtype_bytes(out.dtype()));
    return;
  }
  with_dtype(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* c = out.data<T>();
    if (n == 0) {
      std::fill(c, c + out_n, T(0));
      return;
    }
    const T *x = a.data<T>(), *y = b.data<T>();
    const auto& tbl = active_typed<T>();
    const int64_t lda = trans_a ? m : n, ldb = trans_b ? n : p;
    auto one = [&](int64_t i, int threads) {
      GemmA<T> A;
      A.a = x + i * m * n;
      A.lda = lda;
      A.trans = trans_a;
      tbl.gemm_ex(A, y + i * n * p, ldb, trans_b, c + i * m * p, p, m, n, p, false, threads);
    };
    const int threads = gemm_threads(m, n, p);
    const int batch_threads = gemm_threads(batch * m, n, p);
    if (batch > 1 && threads == 1 && batch_threads > 1) {  // many small products: one per thread
      bool failed = false;  // an exception must not leave the OpenMP region
#pragma omp parallel for schedule(dynamic, 1) num_threads(batch_threads)
      for (int64_t i = 0; i < batch; ++i) {
        try {
          one(i, 1);
        } catch (...) {
#pragma omp atomic write
          failed = true;
        }
      }
      if (failed) throw std::bad_alloc();
      return;
    }
    for (int64_t i = 0; i < batch; ++i) one(i, threads);
  });
}

void check_gemm(const char* k, const Array& a, const Array& b, const Array& out, int64_t batch,
                int64_t m, int64_t n, int64_t p, int64_t trans_a, int64_t trans_b) {
  check_dims(k, {{"batch", batch}, {"m", m}, {"n", n}, {"p", p}});
  for (auto [name, v] : {std::pair<const char*, int64_t>{"trans_a", trans_a}, {"trans_b", trans_b}})
    if (v != 0 && v != 1) value_error(k, std::string(name) + " must be 0 or 1, got " + std::to_string(v));
  check_size(k, "a", a, checked_mul(k, batch, checked_mul(k, m, n)));
  check_size(k, "b", b, checked_mul(k, batch, checked_mul(k, n, p)));
  check_size(k, "out", out, checked_mul(k, batch, checked_mul(k, m, p)));
  check_dtypes3(k, a, b, out);
}

void matmul(const Array& a, const Array& b, Array& out, int64_t m, int64_t n, int64_t p) {
  check_gemm("matmul", a, b, out, 1, m, n, p, 0, 0);
  batched_gemm(a, b, out, 1, m, n, p, false, false);
}

void batched_matmul(const Array& a, const Array& b, Array& out, int64_t batch, int64_t m,
                    int64_t n, int64_t p) {
  check_gemm("batched_matmul", a, b, out, batch, m, n, p, 0, 0);
  batched_gemm(a, b, out, batch, m, n, p, false, false);
}

int64_t check_conv2d_nhwc(const Array& x, const Array& w, const Array& out, int64_t n, int64_t h,
                          int64_t w_, int64_t c_in, int64_t k, int64_t c_out, int64_t stride) {
  const char* kn = "conv2d_nhwc";
  check_dims(kn, {{"n", n}, {"h", h}, {"w", w_}, {"c_in", c_in}, {"k", k}, {"c_out", c_out}});
  if (k < 1) value_error(kn, "kernel size k must be >= 1, got " + std::to_string(k));
  if (stride < 1) value_error(kn, "stride must be >= 1, got " + std::to_string(stride));
  if (h < k || w_ < k)
    value_error(kn, "input " + std::to_string(h) + "x" + std::to_string(w_) +
                        " is smaller than the kernel " + std::to_string(k) + "x" +
                        std::to_string(k));
  const int64_t ho = (h - k) / stride + 1, wo = (w_ - k) / stride + 1;
  const int64_t kk = checked_mul(kn, checked_mul(kn, k, k), c_in);  // patch length
  check_size(kn, "x", x, checked_mul(kn, checked_mul(kn, n, h), checked_mul(kn, w_, c_in)));
  check_size(kn, "w", w, checked_mul(kn, kk, c_out));
  const int64_t out_n = checked_mul(kn, checked_mul(kn, n, ho), checked_mul(kn, wo, c_out));
  check_size(kn, "out", out, out_n);
  check_dtypes3(kn, x, w, out);
  return out_n;
}

void conv2d_nhwc(const Array& x, const Array& w, Array& out, int64_t n, int64_t h, int64_t w_,
                 int64_t c_in, int64_t k, int64_t c_out, int64_t stride) {
  const int64_t out_n = check_conv2d_nhwc(x, w, out, n, h, w_, c_in, k, c_out, stride);
  if (out_n == 0) return;
  const int64_t ho = (h - k) / stride + 1, wo = (w_ - k) / stride + 1, kk = k * k * c_in;
  if (&out == &x || &out == &w) {
    Array tmp(out_n, out.dtype());
    conv2d_nhwc(x, w, tmp, n, h, w_, c_in, k, c_out, stride);
    std::memcpy(out.raw(), tmp.raw(), (size_t)out_n * dtype_bytes(out.dtype()));
    return;
  }
  if (kk > 0 && !(k == 1 && stride == 1) && ho * wo <= conv_direct_max_pixels()) {
    conv2d_nhwc_direct(x, w, out, n, h, w_, c_in, k, c_out, stride);  // no im2col buffer
    return;
  }
  with_dtype(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T *xs = x.data<T>(), *ws = w.data<T>();
    T* os = out.data<T>();
    if (kk == 0) {
      std::fill(os, os + out_n, T(0));
      return;
    }
    auto gemm = active_typed<T>().gemm;
    if (k == 1 && stride == 1) {  // a 1x1 convolution is one product
      gemm(xs, c_in, ws, c_out, os, c_out, n * h * w_, c_in, c_out, gemm_threads(n * h * w_, c_in, c_out));
      return;
    }
    // im2col in chunks of output pixels (about 8 MiB of patches at a time).
    const int64_t pixels = n * ho * wo;
    const int64_t chunk = std::max<int64_t>(1, (int64_t)(8 << 20) / (int64_t)sizeof(T) / kk);
    T* patches = static_cast<T*>(scratch(1, (size_t)(std::min(chunk, pixels) * kk) * sizeof(T)));
    for (int64_t p0 = 0; p0 < pixels; p0 += chunk) {
      const int64_t rows = std::min(chunk, pixels - p0);
      const int threads = threads_for(rows * kk);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t pix = p0 + r, b = pix / (ho * wo), oh = pix / wo % ho, ow = pix % wo;
        T* dst = patches + r * kk;
        for (int64_t kh = 0; kh < k; ++kh) {  // k*c_in contiguous inputs per kernel row
          const T* src = xs + ((b * h + oh * stride + kh) * w_ + ow * stride) * c_in;
          std::memcpy(dst + kh * k * c_in, src, (size_t)(k * c_in) * sizeof(T));
        }
      }
      gemm(patches, kk, ws, c_out, os + p0 * c_out, c_out, rows, kk, c_out, gemm_threads(rows, kk, c_out));
    }
  });
}

}  // namespace needle_cpp
