// Declarations of the kernels bound in module.cpp (one definition file per family).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "array.h"

namespace needle_cpp {

using Shape = std::vector<int64_t>;

/// Calls f(float{}) or f(double{}) for a dtype: the one place dtypes become C++ types.
template <typename F>
decltype(auto) with_dtype(Dtype d, F&& f) {
  if (d == Dtype::Float32) return f(float{});
  return f(double{});
}

// layout.cpp
void fill(Array& out, double value);
void astype(const Array& a, Array& out);
void compact(const Array& a, Array& out, const Shape& shape, const Shape& strides, int64_t offset);
void ewise_setitem(const Array& a, Array& out, const Shape& shape, const Shape& strides,
                   int64_t offset);
void scalar_setitem(int64_t size, double value, Array& out, const Shape& shape,
                    const Shape& strides, int64_t offset);
/// Copies the strided view into dst (a compact buffer of view.size elements of a's dtype).
void gather_view(const Array& a, const View& v, void* dst);

// ewise.cpp
void ewise_binary(int op, const char* kernel, const Array& a, const Array& b, Array& out);
void scalar_binary(int op, const char* kernel, const Array& a, double value, Array& out);
void ewise_unary(int op, const char* kernel, const Array& a, Array& out);
void ewise_where(const Array& cond, const Array& a, const Array& b, Array& out);

// reduce.cpp
void reduce_sum(const Array& a, Array& out, int64_t reduce_size);
void reduce_max(const Array& a, Array& out, int64_t reduce_size);
void reduce_argmax(const Array& a, Array& out, int64_t reduce_size);
void logsumexp_last(const Array& a, Array& out, int64_t reduce_size);
void softmax_last(const Array& a, Array& out, int64_t reduce_size);

// matmul.cpp
/// The argument checks of matmul, batched_matmul, matmul_t and batched_matmul_t (batch 1
/// and flags 0 for the plain ones): dimensions, 0/1 flags, buffer sizes, one dtype.
void check_gemm(const char* kernel, const Array& a, const Array& b, const Array& out,
                int64_t batch, int64_t m, int64_t n, int64_t p, int64_t trans_a, int64_t trans_b);
void matmul(const Array& a, const Array& b, Array& out, int64_t m, int64_t n, int64_t p);
void batched_matmul(const Array& a, const Array& b, Array& out, int64_t batch, int64_t m,
                    int64_t n, int64_t p);
void conv2d_nhwc(const Array& x, const Array& w, Array& out, int64_t n, int64_t h, int64_t w_,
                 int64_t c_in, int64_t k, int64_t c_out, int64_t stride);
/// conv2d_nhwc's argument checks (what it raises, before any write); returns out's size.
int64_t check_conv2d_nhwc(const Array& x, const Array& w, const Array& out, int64_t n, int64_t h,
                          int64_t w_, int64_t c_in, int64_t k, int64_t c_out, int64_t stride);

// dispatch.cpp
std::string simd_level();
std::string best_simd_level();
void set_simd_level(const std::string& name);

}  // namespace needle_cpp
