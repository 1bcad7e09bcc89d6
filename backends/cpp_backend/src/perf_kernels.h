// Kernels for copy-free backward passes and replay (issue 12): transposed matmul operands,
// reductions over a middle axis, the direct convolution, the buffer cache and programs.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels.h"

namespace needle_cpp {

// matmul.cpp
/// out = op(a) @ op(b) for `batch` products laid out as matmul_t's (arguments already
/// checked); into a temporary first when out aliases an input.
void batched_gemm(const Array& a, const Array& b, Array& out, int64_t batch, int64_t m, int64_t n,
                  int64_t p, bool trans_a, bool trans_b);

// matmul_t.cpp
/// out (m, p) = op(a) @ op(b); a is stored (n, m) when trans_a, b is stored (p, n) when trans_b.
void matmul_t(const Array& a, const Array& b, Array& out, int64_t m, int64_t n, int64_t p,
              int64_t trans_a, int64_t trans_b);
void batched_matmul_t(const Array& a, const Array& b, Array& out, int64_t batch, int64_t m,
                      int64_t n, int64_t p, int64_t trans_a, int64_t trans_b);

// reduce_mid.cpp
/// out (outer, inner) = sum (or max) over axis 1 of compact a (outer, reduce, inner).
void reduce_sum_mid(const Array& a, Array& out, int64_t outer, int64_t reduce, int64_t inner);
void reduce_max_mid(const Array& a, Array& out, int64_t outer, int64_t reduce, int64_t inner);
/// The argument checks of reduce_sum_mid / reduce_max_mid (`max`); returns out's size.
int64_t check_reduce_mid(const char* kernel, bool max, const Array& a, const Array& out,
                         int64_t outer, int64_t reduce, int64_t inner);

// conv_direct.cpp
/// Output pixels per image (h_out * w_out) at or below which conv2d_nhwc packs its patches
/// straight from the image (no im2col buffer); unlimited unless NEEDLE_CPP_CONV_DIRECT_PIXELS
/// or set_conv_direct_max_pixels says otherwise.
int64_t conv_direct_max_pixels();
void set_conv_direct_max_pixels(int64_t pixels);
/// conv2d_nhwc's direct path; the caller has checked every argument and out aliases nothing.
void conv2d_nhwc_direct(const Array& x, const Array& w, Array& out, int64_t n, int64_t h,
                        int64_t w_, int64_t c_in, int64_t k, int64_t c_out, int64_t stride);

// alloc_cache.cpp
/// A buffer of at least `bytes`, rounded up to a size class (at most 1/8 more) and aligned
/// (64 bytes; 2 MiB and MADV_HUGEPAGE from 4 MiB on); reused from the cache when a buffer
/// of that class was freed. *held receives the bytes actually held.
void* cache_acquire(size_t bytes, size_t* held);
/// Hands a buffer from cache_acquire back: kept for reuse while the cache is under its cap
/// (NEEDLE_CPP_CACHE_MB, default 1024; 0 turns caching off), freed otherwise.
void cache_release(void* ptr, size_t held);

struct CacheStats {
  size_t cached_bytes, cached_buffers, limit_bytes, hits, misses;
};
CacheStats cache_stats();
/// Frees every cached buffer (buffers in use are not affected).
void cache_empty();
void cache_set_limit(size_t bytes);

}  // namespace needle_cpp
