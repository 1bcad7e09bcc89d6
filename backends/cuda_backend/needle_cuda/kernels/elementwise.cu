// Element-wise, scalar and unary kernels, plus ewise_where.
//
// All take compact buffers and an element count n; a grid-stride loop covers n.
// out may alias an input (in-place updates), so no __restrict__ here.
#include "common.cuh"

namespace nd {

template <typename T, typename Op>
__device__ __forceinline__ void ewise_binary(const T* a, const T* b, T* out, i64 n) {
    const Op op;
    for (i64 i = global_tid(); i < n; i += global_stride()) out[i] = op(a[i], b[i]);
}

template <typename T, typename Op>
__device__ __forceinline__ void scalar_binary(const T* a, T v, T* out, i64 n) {
    const Op op;
    for (i64 i = global_tid(); i < n; i += global_stride()) out[i] = op(a[i], v);
}

template <typename T, typename Op>
__device__ __forceinline__ void ewise_unary(const T* a, T* out, i64 n) {
    const Op op;
    for (i64 i = global_tid(); i < n; i += global_stride()) out[i] = op(a[i]);
}

#define ND_BINOP(NAME, EXPR)                                                          \
    struct Op_##NAME {                                                                \
        template <typename T>                                                         \
        __device__ __forceinline__ T operator()(T a, T b) const { return (EXPR); }    \
    };
#define ND_CMPOP(NAME, EXPR) ND_BINOP(NAME, (EXPR) ? T(1) : T(0))
#define ND_UNOP(NAME, EXPR)                                                           \
    struct Op_##NAME {                                                                \
        template <typename T>                                                         \
        __device__ __forceinline__ T operator()(T a) const { return (EXPR); }         \
    };

ND_BINOP(add, a + b)
ND_BINOP(sub, a - b)
ND_BINOP(mul, a * b)
ND_BINOP(div, a / b)
ND_BINOP(power, m_pow(a, b))
ND_BINOP(maximum, nan_max(a, b))
ND_CMPOP(eq, a == b)
ND_CMPOP(ne, a != b)
ND_CMPOP(lt, a < b)
ND_CMPOP(le, a <= b)
ND_CMPOP(gt, a > b)
ND_CMPOP(ge, a >= b)

ND_UNOP(neg, -a)
ND_UNOP(abs, m_abs(a))
ND_UNOP(log, m_log(a))
ND_UNOP(exp, m_exp(a))
ND_UNOP(tanh, m_tanh(a))
ND_UNOP(sqrt, m_sqrt(a))
ND_UNOP(sin, m_sin(a))
ND_UNOP(cos, m_cos(a))

}  // namespace nd

#define ND_DEF_BINARY_T(NAME, T, SUF)                                                     \
    extern "C" __global__ void ewise_##NAME##_##SUF(const T* a, const T* b, T* out, i64 n) { \
        nd::ewise_binary<T, nd::Op_##NAME>(a, b, out, n);                                  \
    }                                                                                      \
    extern "C" __global__ void scalar_##NAME##_##SUF(const T* a, T v, T* out, i64 n) {     \
        nd::scalar_binary<T, nd::Op_##NAME>(a, v, out, n);                                 \
    }
#define ND_DEF_BINARY(NAME) ND_DEF_BINARY_T(NAME, float, f32) ND_DEF_BINARY_T(NAME, double, f64)

#define ND_DEF_UNARY_T(NAME, T, SUF)                                                   \
    extern "C" __global__ void ewise_##NAME##_##SUF(const T* a, T* out, i64 n) {        \
        nd::ewise_unary<T, nd::Op_##NAME>(a, out, n);                                   \
    }
#define ND_DEF_UNARY(NAME) ND_DEF_UNARY_T(NAME, float, f32) ND_DEF_UNARY_T(NAME, double, f64)

ND_DEF_BINARY(add)
ND_DEF_BINARY(sub)
ND_DEF_BINARY(mul)
ND_DEF_BINARY(div)
ND_DEF_BINARY(power)
ND_DEF_BINARY(maximum)
ND_DEF_BINARY(eq)
ND_DEF_BINARY(ne)
ND_DEF_BINARY(lt)
ND_DEF_BINARY(le)
ND_DEF_BINARY(gt)
ND_DEF_BINARY(ge)

ND_DEF_UNARY(neg)
ND_DEF_UNARY(abs)
ND_DEF_UNARY(log)
ND_DEF_UNARY(exp)
ND_DEF_UNARY(tanh)
ND_DEF_UNARY(sqrt)
ND_DEF_UNARY(sin)
ND_DEF_UNARY(cos)

// out = a where cond != 0 else b (cond has the same dtype as a and b).
#define ND_DEF_WHERE(T, SUF)                                                                  \
    extern "C" __global__ void ewise_where_##SUF(const T* cond, const T* a, const T* b, T* out, \
                                                 i64 n) {                                     \
        for (i64 i = nd::global_tid(); i < n; i += nd::global_stride())                       \
            out[i] = (cond[i] != T(0)) ? a[i] : b[i];                                         \
    }
ND_DEF_WHERE(float, f32)
ND_DEF_WHERE(double, f64)
