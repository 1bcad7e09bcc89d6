// The flat buffer handle and the argument checks every kernel runs first.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <vector>

namespace needle_cpp {

enum class Dtype { Float32, Float64 };

inline const char* dtype_name(Dtype d) { return d == Dtype::Float32 ? "float32" : "float64"; }
inline size_t dtype_bytes(Dtype d) { return d == Dtype::Float32 ? 4 : 8; }

/// A 64-byte aligned flat buffer of `size` elements of one dtype. Owns its memory, except
/// an external one: memory owned elsewhere, element-aligned, with `release` run when the
/// Array dies. External Arrays are DLPack imports (dlpack.cpp) and views of another Array
/// (buffer_view, module.cpp: 64-byte aligned, holding their parent).
class Array {
 public:
  Array(int64_t size, Dtype dtype);
  Array(void* external, int64_t size, Dtype dtype, std::function<void()> release);
  ~Array();  // hands the memory to the buffer cache (alloc_cache.cpp), or releases it
  Array(const Array&) = delete;
  Array& operator=(const Array&) = delete;

  int64_t size() const { return size_; }
  Dtype dtype() const { return dtype_; }
  template <typename T>
  T* data() const { return static_cast<T*>(ptr_); }
  void* raw() const { return ptr_; }

 private:
  void* ptr_ = nullptr;
  size_t held_ = 0;  // bytes held (the size class of the request)
  std::function<void()> release_;  // set for external memory
  int64_t size_;
  Dtype dtype_;
};

/// Raised as TypeError on the Python side (pybind11 registers the translation).
struct TypeErrorEx : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] inline void value_error(const std::string& kernel, const std::string& msg) {
  throw std::invalid_argument(kernel + ": " + msg);
}
[[noreturn]] inline void type_error(const std::string& kernel, const std::string& msg) {
  throw TypeErrorEx(kernel + ": " + msg);
}
[[noreturn]] inline void index_error(const std::string& kernel, const std::string& msg) {
  throw std::out_of_range(kernel + ": " + msg);
}

Dtype parse_dtype(const std::string& kernel, const std::string& name);

/// a*b with a ValueError on overflow (sizes come from Python ints).
int64_t checked_mul(const char* kernel, int64_t a, int64_t b);
void check_nonneg(const char* kernel, const char* what, int64_t v);
void check_same_dtype(const char* kernel, const Array& a, const Array& b);
/// check_same_dtype(kernel, first, *h) for each h in rest.
void check_same_dtypes(const char* kernel, const Array& first, std::initializer_list<const Array*> rest);
/// The operands and output of a product share one dtype (TypeError naming all three).
void check_dtypes3(const char* kernel, const Array& a, const Array& b, const Array& out);
/// Like the reference backend's _flat: every handle holds n elements, one dtype.
void check_flat(const char* kernel, int64_t n, std::initializer_list<const Array*> handles);
/// Outputs must be fresh buffers: none may be an input or another output (ValueError).
void check_distinct(const char* kernel, std::initializer_list<const Array*> outs,
                    std::initializer_list<const Array*> ins);
/// `h` must hold at least `n` elements (ValueError otherwise).
void check_size(const char* kernel, const char* what, const Array& h, int64_t n);

/// A strided view after checking it against its buffer, with dims simplified:
/// size-1 dims dropped and mergeable neighbours merged (the element order is unchanged).
struct View {
  std::vector<int64_t> shape;    // simplified; never empty unless size == 0
  std::vector<int64_t> strides;  // simplified
  std::vector<int64_t> full_shape;
  int64_t offset = 0;
  int64_t size = 0;  // element count
};

View make_view(const char* kernel, const Array& buf, const std::vector<int64_t>& shape,
               const std::vector<int64_t>& strides, int64_t offset);

std::string fmt_tuple(const std::vector<int64_t>& v);

/// Threads for a loop over `work` elements: 1 below the threshold, else omp_get_max_threads.
int threads_for(int64_t work);

}  // namespace needle_cpp
