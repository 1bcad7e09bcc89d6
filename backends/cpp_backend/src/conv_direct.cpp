// conv2d_nhwc's direct path: the packed gemm reads each patch straight from the image
// (GemmA::rows, one pointer per output pixel, k segments of k*c_in elements each), so no
// im2col buffer is written and read back. The result is bit-identical to the im2col path:
// the packed panels hold the same values and the micro-kernel runs the same operations.
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "isa.h"
#include "perf_kernels.h"

namespace needle_cpp {
namespace {

int64_t initial_max_pixels() {
  // NEEDLE_CPP_CONV_DIRECT_PIXELS overrides the default (for comparisons).
  if (const char* env = std::getenv("NEEDLE_CPP_CONV_DIRECT_PIXELS")) {
    char* end = nullptr;
    const long long v = std::strtoll(env, &end, 10);
    if (end != env && *end == '\0' && v >= 0) return v;
  }
  // Measured (bench_issue12.py and 1-2 threads, loaded machine): the direct path was as
  // fast or faster at every size tried, 4x4 to 64x64 outputs (1.04-2.9x; most where c_in
  // is small), so it is the default everywhere; the knob is for comparisons.
  return INT64_MAX;
}

std::atomic<int64_t> g_max_pixels{initial_max_pixels()};

}  // namespace

int64_t conv_direct_max_pixels() { return g_max_pixels.load(std::memory_order_relaxed); }

void set_conv_direct_max_pixels(int64_t pixels) {
  if (pixels < 0)
    value_error("set_conv_direct_max_pixels", "need a non-negative pixel count, got " +
                                                  std::to_string(pixels));
  g_max_pixels.store(pixels);
}

void conv2d_nhwc_direct(const Array& x, const Array& w, Array& out, int64_t n, int64_t h,
                        int64_t w_, int64_t c_in, int64_t k, int64_t c_out, int64_t stride) {
  const int64_t ho = (h - k) / stride + 1, wo = (w_ - k) / stride + 1;
  const int64_t pixels = n * ho * wo, kk = k * k * c_in;
  with_dtype(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T *xs = x.data<T>(), *ws = w.data<T>();
    T* os = out.data<T>();
    std::vector<const T*> rows((size_t)pixels);
    for (int64_t b = 0, r = 0; b < n; ++b)
      for (int64_t oh = 0; oh < ho; ++oh)
        for (int64_t ow = 0; ow < wo; ++ow, ++r)
          rows[(size_t)r] = xs + ((b * h + oh * stride) * w_ + ow * stride) * c_in;
    GemmA<T> A;
    A.rows = rows.data();
    A.seg = k * c_in;     // one kernel row: k pixels of c_in channels, contiguous
    A.sstep = w_ * c_in;  // the next kernel row is one image row further
    const double work = (double)pixels * (double)kk * (double)c_out / 8.0;
    const int threads = threads_for(work > 4e18 ? INT64_MAX : (int64_t)work);
    active_typed<T>().gemm_ex(A, ws, c_out, false, os, c_out, pixels, kk, c_out, false, threads);
  });
}

}  // namespace needle_cpp
