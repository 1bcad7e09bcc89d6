// Buffer and layout kernels: fill, astype, compact, ewise_setitem, scalar_setitem.
//
// A strided view is (ndim <= 8, offset, shape[8], strides[8]) passed by value, counted
// in elements. The Python side has already checked that every element of the view lies
// inside the buffer, and merges contiguous dimensions before the launch.
#include "common.cuh"

#define ND_DEF_FILL(T, SUF)                                                  \
    extern "C" __global__ void fill_##SUF(T* out, T v, i64 n) {              \
        for (i64 i = nd::global_tid(); i < n; i += nd::global_stride())      \
            out[i] = v;                                                      \
    }
ND_DEF_FILL(float, f32)
ND_DEF_FILL(double, f64)

#define ND_DEF_ASTYPE(TI, SI, TO, SO)                                              \
    extern "C" __global__ void astype_##SI##_##SO(const TI* a, TO* out, i64 n) {   \
        for (i64 i = nd::global_tid(); i < n; i += nd::global_stride())            \
            out[i] = (TO)a[i];                                                     \
    }
ND_DEF_ASTYPE(float, f32, float, f32)
ND_DEF_ASTYPE(float, f32, double, f64)
ND_DEF_ASTYPE(double, f64, float, f32)
ND_DEF_ASTYPE(double, f64, double, f64)

// out[i] = a[view(i)] for i < n (n = number of elements of the view).
#define ND_DEF_LAYOUT(T, SUF)                                                              \
    extern "C" __global__ void compact_##SUF(const T* a, T* out, i64 n, ND_LAYOUT_PARAMS) { \
        const nd::Layout L(ND_LAYOUT_ARGS);                                                \
        for (i64 i = nd::global_tid(); i < n; i += nd::global_stride())                    \
            out[i] = a[L.index(i)];                                                        \
    }                                                                                      \
    extern "C" __global__ void ewise_setitem_##SUF(const T* a, T* out, i64 n,             \
                                                   ND_LAYOUT_PARAMS) {                     \
        const nd::Layout L(ND_LAYOUT_ARGS);                                                \
        for (i64 i = nd::global_tid(); i < n; i += nd::global_stride())                    \
            out[L.index(i)] = a[i];                                                        \
    }                                                                                      \
    extern "C" __global__ void scalar_setitem_##SUF(T v, T* out, i64 n, ND_LAYOUT_PARAMS) { \
        const nd::Layout L(ND_LAYOUT_ARGS);                                                \
        for (i64 i = nd::global_tid(); i < n; i += nd::global_stride())                    \
            out[L.index(i)] = v;                                                           \
    }
ND_DEF_LAYOUT(float, f32)
ND_DEF_LAYOUT(double, f64)
