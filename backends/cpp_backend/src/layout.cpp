// fill, astype, compact, ewise_setitem, scalar_setitem: copies between strided views.
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <utility>

#include "isa.h"
#include "parallel.h"
#include "kernels.h"

namespace needle_cpp {
namespace {

/// Calls fn(row, element_offset) for rows [begin, end) of a simplified view, where a row is
/// the innermost dim and element_offset is where the row starts in the buffer.
template <typename F>
void for_rows(const View& v, int64_t begin, int64_t end, F&& fn) {
  const int outer = (int)v.shape.size() - 1;
  int64_t idx[64];
  int64_t off = v.offset, r = begin;
  for (int d = outer - 1; d >= 0; --d) {
    idx[d] = r % v.shape[d];
    r /= v.shape[d];
    off += idx[d] * v.strides[d];
  }
  for (int64_t row = begin; row < end; ++row) {
    fn(row, off);
    for (int d = outer - 1; d >= 0; --d) {
      off += v.strides[d];
      if (++idx[d] < v.shape[d]) break;
      off -= v.strides[d] * v.shape[d];
      idx[d] = 0;
    }
  }
}

/// True when no two elements of the view share memory (writes may then run in parallel).
bool non_overlapping(const View& v) {
  std::vector<std::pair<int64_t, int64_t>> dims;  // (stride, shape)
  for (size_t i = 0; i < v.shape.size(); ++i) dims.emplace_back(v.strides[i], v.shape[i]);
  std::sort(dims.begin(), dims.end());
  int64_t extent = 0;  // highest offset reached by the smaller-stride dims
  for (auto [stride, n] : dims) {
    if (n > 1 && stride <= extent) return false;
    extent += (n - 1) * stride;
  }
  return true;
}

/// Runs body(begin, end) over n items that hold `work` elements in all, in dynamic tasks of
/// about kGrain elements (one call when small, or when writes may overlap).
template <typename F>
void parallel_ranges(int64_t n, int64_t work, F&& body, bool allow_parallel = true) {
  const int threads = allow_parallel ? threads_for(work) : 1;
  const int64_t per_item = std::clamp<int64_t>(work / std::max<int64_t>(n, 1), 1, kGrain);
  parallel_chunks(n, (kGrain + per_item - 1) / per_item, threads, body);
}

template <typename Tin, typename Tout>
void copy_row(const Tin* src, int64_t sstride, Tout* dst, int64_t dstride, int64_t n) {
  if (sstride == 1 && dstride == 1) {
    if constexpr (std::is_same_v<Tin, Tout>) {
      std::memcpy(dst, src, (size_t)n * sizeof(Tin));
    } else {
      for (int64_t i = 0; i < n; ++i) dst[i] = (Tout)src[i];
    }
  } else if (sstride == 0 && dstride == 1) {  // broadcast source
    std::fill(dst, dst + n, (Tout)src[0]);
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i * dstride] = (Tout)src[i * sstride];
  }
}

/// Is the simplified view a (batch of) 2-D transpose: last two dims with strides (1, ld)?
bool is_transposed(const View& v) {
  const size_t nd = v.shape.size();
  return nd >= 2 && nd <= 3 && v.strides[nd - 2] == 1 && v.strides[nd - 1] > 1 &&
         (nd == 2 || v.strides[0] > 0);
}

// view -> compact (compact) or compact -> view (setitem) for one (batch of) transpose.
template <typename T>
void transpose_view(const View& v, T* buf, T* compact_buf, bool to_compact) {
  const size_t nd = v.shape.size();
  const int64_t batch = nd == 3 ? v.shape[0] : 1, bstride = nd == 3 ? v.strides[0] : 0;
  const int64_t R = v.shape[nd - 2], C = v.shape[nd - 1], ld = v.strides[nd - 1];
  const auto& tbl = active_typed<T>();
  for (int64_t bi = 0; bi < batch; ++bi) {
    T* view_base = buf + v.offset + bi * bstride;  // element (i, j) at view_base[i + j * ld]
    T* comp = compact_buf + bi * R * C;            // element (i, j) at comp[i * C + j]
    // Split over i: each thread writes its own rows of the compact side (or columns of the
    // view side), in blocks of 64 so no two threads share a cache line of either side.
    const int64_t blocks = (R + 63) / 64;
    parallel_ranges(blocks, R * C, [&](int64_t b0, int64_t b1) {
      const int64_t i0 = b0 * 64, i1 = std::min(R, b1 * 64);
      if (to_compact)
        tbl.transpose(view_base + i0, ld, comp + i0 * C, C, C, i1 - i0);
      else
        tbl.transpose(comp + i0 * C, C, view_base + i0, ld, i1 - i0, C);
    });
  }
}

template <typename Tin, typename Tout>
void compact_impl(const Tin* src, const View& v, Tout* out) {
  if constexpr (std::is_same_v<Tin, Tout>) {
    if (is_transposed(v)) {
      transpose_view<Tin>(v, const_cast<Tin*>(src), out, true);
      return;
    }
  }
  const int64_t inner = v.shape.back(), istride = v.strides.back();
  const int64_t rows = v.size / inner;
  if (rows == 1) {  // one long row: split it
    parallel_ranges(inner, v.size, [&](int64_t b, int64_t e) {
      copy_row(src + v.offset + b * istride, istride, out + b, 1, e - b);
    });
    return;
  }
  parallel_ranges(rows, v.size, [&](int64_t b, int64_t e) {
    for_rows(v, b, e, [&](int64_t row, int64_t off) {
      copy_row(src + off, istride, out + row * inner, 1, inner);
    });
  });
}

template <typename Tin, typename Tout>
void setitem_impl(const Tin* a, const View& v, Tout* out) {
  const bool parallel = non_overlapping(v);
  if constexpr (std::is_same_v<Tin, Tout>) {
    if (parallel && is_transposed(v)) {
      transpose_view<Tin>(v, out, const_cast<Tin*>(a), false);
      return;
    }
  }
  const int64_t inner = v.shape.back(), istride = v.strides.back();
  const int64_t rows = v.size / inner;
  if (rows == 1) {
    parallel_ranges(
        inner, v.size,
        [&](int64_t b, int64_t e) { copy_row(a + b, 1, out + v.offset + b * istride, istride, e - b); },
        parallel);
    return;
  }
  parallel_ranges(
      rows, v.size,
      [&](int64_t b, int64_t e) {
        for_rows(v, b, e, [&](int64_t row, int64_t off) {
          copy_row(a + row * inner, 1, out + off, istride, inner);
        });
      },
      parallel);
}

/// A private copy of a's first n elements, for kernels whose source and target are the same
/// buffer (NumPy copies overlapping operands first; so do we).
std::unique_ptr<Array> copy_prefix(const Array& a, int64_t n) {
  auto tmp = std::make_unique<Array>(n, a.dtype());
  if (n) std::memcpy(tmp->raw(), a.raw(), (size_t)n * dtype_bytes(a.dtype()));
  return tmp;
}

}  // namespace

void fill(Array& out, double value) {
  with_dtype(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* o = out.data<T>();
    const T v = (T)value;
    parallel_ranges(out.size(), out.size(), [&](int64_t b, int64_t e) { std::fill(o + b, o + e, v); });
  });
}

void astype(const Array& a, Array& out) {
  check_size("astype", "source", a, out.size());
  with_dtype(a.dtype(), [&](auto tin) {
    with_dtype(out.dtype(), [&](auto tout) {
      using Tin = decltype(tin);
      using Tout = decltype(tout);
      const Tin* s = a.data<Tin>();
      Tout* o = out.data<Tout>();
      if ((const void*)s == (const void*)o) return;  // same buffer, same dtype: nothing to do
      parallel_ranges(out.size(), out.size(), [&](int64_t b, int64_t e) { copy_row(s + b, 1, o + b, 1, e - b); });
    });
  });
}

void gather_view(const Array& a, const View& v, void* dst) {
  if (v.size == 0) return;
  with_dtype(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    compact_impl<T, T>(a.data<T>(), v, static_cast<T*>(dst));
  });
}

void compact(const Array& a, Array& out, const Shape& shape, const Shape& strides, int64_t offset) {
  const View v = make_view("compact", a, shape, strides, offset);
  check_same_dtype("compact", a, out);
  check_size("compact", "output", out, v.size);
  if (v.size == 0) return;
  std::unique_ptr<Array> tmp;
  const Array* src = &a;
  if (&a == &out) {
    tmp = copy_prefix(a, a.size());
    src = tmp.get();
  }
  with_dtype(src->dtype(), [&](auto tin) {
    with_dtype(out.dtype(), [&](auto tout) {
      using Tin = decltype(tin);
      using Tout = decltype(tout);
      compact_impl<Tin, Tout>(src->data<Tin>(), v, out.data<Tout>());
    });
  });
}

void ewise_setitem(const Array& a, Array& out, const Shape& shape, const Shape& strides,
                   int64_t offset) {
  const View v = make_view("ewise_setitem", out, shape, strides, offset);
  check_same_dtype("ewise_setitem", a, out);
  check_size("ewise_setitem", "source", a, v.size);
  if (v.size == 0) return;
  std::unique_ptr<Array> tmp;
  const Array* src = &a;
  if (&a == &out) {
    tmp = copy_prefix(a, v.size);
    src = tmp.get();
  }
  with_dtype(src->dtype(), [&](auto tin) {
    with_dtype(out.dtype(), [&](auto tout) {
      using Tin = decltype(tin);
      using Tout = decltype(tout);
      setitem_impl<Tin, Tout>(src->data<Tin>(), v, out.data<Tout>());
    });
  });
}

void scalar_setitem(int64_t size, double value, Array& out, const Shape& shape,
                    const Shape& strides, int64_t offset) {
  const View full = make_view("scalar_setitem", out, shape, strides, offset);
  if (full.size != size)
    value_error("scalar_setitem", "size " + std::to_string(size) + " does not match the view's " +
                                      std::to_string(full.size) + " elements");
  if (full.size == 0) return;
  // Stride-0 axes only repeat elements: write each element once (a broadcast view of
  // 2**40 elements over one element takes one store, not minutes).
  Shape dims, steps;
  for (size_t i = 0; i < shape.size(); ++i)
    if (strides[i] != 0) dims.push_back(shape[i]), steps.push_back(strides[i]);
  const View v = make_view("scalar_setitem", out, dims, steps, offset);
  with_dtype(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* o = out.data<T>();
    const T val = (T)value;
    const int64_t inner = v.shape.back(), istride = v.strides.back(), rows = v.size / inner;
    const bool parallel = non_overlapping(v);
    parallel_ranges(
        rows, v.size,
        [&](int64_t b, int64_t e) {
          for_rows(v, b, e, [&](int64_t, int64_t off) {
            if (istride == 1) std::fill(o + off, o + off + inner, val);
            else for (int64_t i = 0; i < inner; ++i) o[off + i * istride] = val;
          });
        },
        parallel);
  });
}

}  // namespace needle_cpp
