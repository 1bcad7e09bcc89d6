// The Array handle and the checks shared by every kernel.
#include "array.h"
#include "perf_kernels.h"

#include <sys/mman.h>

#include <cstring>
#include <new>
#include <sstream>

namespace needle_cpp {

Array::Array(int64_t size, Dtype dtype) : size_(size), dtype_(dtype) {
  if (size < 0) throw std::invalid_argument("alloc: negative size " + std::to_string(size));
  if (size > 0) {
    const size_t item = dtype_bytes(dtype);
    if ((uint64_t)size > (uint64_t)(SIZE_MAX / 4) / item) throw std::bad_alloc();
    // Reused from the cache of freed buffers when one of this size class is there.
    ptr_ = cache_acquire((size_t)size * item, &held_);
  }
}

Array::Array(void* external, int64_t size, Dtype dtype, std::function<void()> release)
    : ptr_(external), size_(size), dtype_(dtype), release_(std::move(release)) {}

Array::~Array() {
  if (release_)
    release_();
  else
    cache_release(ptr_, held_);
}

Dtype parse_dtype(const std::string& kernel, const std::string& name) {
  if (name == "float32") return Dtype::Float32;
  if (name == "float64") return Dtype::Float64;
  type_error(kernel, "the cpp backend does not support dtype '" + name +
                         "'; supported: 'float32', 'float64'");
}

std::string fmt_tuple(const std::vector<int64_t>& v) {
  std::ostringstream s;
  s << "(";
  for (size_t i = 0; i < v.size(); ++i) s << (i ? ", " : "") << v[i];
  if (v.size() == 1) s << ",";
  s << ")";
  return s.str();
}

int64_t checked_mul(const char* kernel, int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) value_error(kernel, "size overflows int64");
  return r;
}

void check_nonneg(const char* kernel, const char* what, int64_t v) {
  if (v < 0) value_error(kernel, std::string("negative ") + what + " " + std::to_string(v));
}

void check_same_dtype(const char* kernel, const Array& a, const Array& b) {
  if (a.dtype() != b.dtype())
    type_error(kernel, std::string("dtype mismatch ") + dtype_name(a.dtype()) + " vs " +
                           dtype_name(b.dtype()));
}

void check_same_dtypes(const char* kernel, const Array& first, std::initializer_list<const Array*> rest) {
  for (const Array* h : rest) check_same_dtype(kernel, first, *h);
}

void check_dtypes3(const char* kernel, const Array& a, const Array& b, const Array& out) {
  if (a.dtype() != b.dtype() || a.dtype() != out.dtype())
    type_error(kernel, std::string("dtype mismatch ") + dtype_name(a.dtype()) + ", " +
                           dtype_name(b.dtype()) + ", " + dtype_name(out.dtype()));
}

void check_flat(const char* kernel, int64_t n, std::initializer_list<const Array*> handles) {
  const Array* first = *handles.begin();
  for (const Array* h : handles) {
    check_size(kernel, "input", *h, n);
    check_same_dtype(kernel, *first, *h);
  }
}

void check_size(const char* kernel, const char* what, const Array& h, int64_t n) {
  if (h.size() < n)
    value_error(kernel, std::string(what) + " has " + std::to_string(h.size()) +
                            " elements, need " + std::to_string(n));
}

View make_view(const char* kernel, const Array& buf, const std::vector<int64_t>& shape,
               const std::vector<int64_t>& strides, int64_t offset) {
  if (shape.size() != strides.size())
    value_error(kernel, "shape " + fmt_tuple(shape) + " and strides " + fmt_tuple(strides) +
                            " differ in length");
  if (shape.size() > 64) value_error(kernel, "at most 64 dimensions, got " + std::to_string(shape.size()));
  bool negative = offset < 0;
  for (size_t i = 0; i < shape.size(); ++i) negative |= shape[i] < 0 || strides[i] < 0;
  if (negative)
    value_error(kernel, "negative shape, stride or offset: shape " + fmt_tuple(shape) +
                            ", strides " + fmt_tuple(strides) + ", offset " +
                            std::to_string(offset));
  View v;
  v.full_shape = shape;
  v.offset = offset;
  int64_t size = 1;
  for (int64_t s : shape) size = checked_mul(kernel, size, s);
  v.size = size;
  if (size == 0) return v;
  // The last element reached must lie inside the buffer (strides are non-negative).
  int64_t last = offset;
  for (size_t i = 0; i < shape.size(); ++i) {
    int64_t step;
    if (__builtin_mul_overflow(shape[i] - 1, strides[i], &step) ||
        __builtin_add_overflow(last, step, &last))
      index_error(kernel, "view reaches beyond int64");
  }
  if (last >= buf.size())
    index_error(kernel, "view (shape " + fmt_tuple(shape) + ", strides " + fmt_tuple(strides) +
                            ", offset " + std::to_string(offset) + ") reaches element " +
                            std::to_string(last) + " of a buffer of " +
                            std::to_string(buf.size()));
  // Simplify: drop size-1 dims, merge a dim into its inner neighbour when contiguous.
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 1) continue;
    if (!v.shape.empty() && v.strides.back() == strides[i] * shape[i]) {
      v.shape.back() *= shape[i];
      v.strides.back() = strides[i];
    } else {
      v.shape.push_back(shape[i]);
      v.strides.push_back(strides[i]);
    }
  }
  if (v.shape.empty()) {
    v.shape.push_back(1);
    v.strides.push_back(1);
  }
  return v;
}

void check_distinct(const char* kernel, std::initializer_list<const Array*> outs,
                    std::initializer_list<const Array*> ins) {
  for (auto o = outs.begin(); o != outs.end(); ++o) {
    for (const Array* i : ins)
      if (*o == i) value_error(kernel, "an output buffer is also an input");
    for (auto o2 = o + 1; o2 != outs.end(); ++o2)
      if (*o == *o2) value_error(kernel, "two outputs are the same buffer");
  }
}

}  // namespace needle_cpp
