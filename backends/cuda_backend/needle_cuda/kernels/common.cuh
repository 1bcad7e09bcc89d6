// Shared helpers for the needle CUDA kernels.
//
// Each .cu file in this folder includes this header. At run time the loader
// (needle_cuda/sources.py) pastes this file in place of the #include line so that
// NVRTC (through cupy.RawModule) sees one self-contained translation unit; the
// compile check runs nvcc on the files as they are.
//
// Kernels are written once as templates over the element type and instantiated for
// float and double by macros with extern "C" names ending in _f32 / _f64, so the
// Python side looks them up by plain names.
#ifndef NEEDLE_CUDA_COMMON_CUH
#define NEEDLE_CUDA_COMMON_CUH

typedef long long i64;

namespace nd {

// ---- math overloads (explicit so NVRTC needs no C++ math headers) ------------------
__device__ __forceinline__ float m_exp(float x) { return expf(x); }
__device__ __forceinline__ double m_exp(double x) { return exp(x); }
__device__ __forceinline__ float m_log(float x) { return logf(x); }
__device__ __forceinline__ double m_log(double x) { return log(x); }
__device__ __forceinline__ float m_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double m_tanh(double x) { return tanh(x); }
__device__ __forceinline__ float m_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double m_sqrt(double x) { return sqrt(x); }
__device__ __forceinline__ float m_sin(float x) { return sinf(x); }
__device__ __forceinline__ double m_sin(double x) { return sin(x); }
__device__ __forceinline__ float m_cos(float x) { return cosf(x); }
__device__ __forceinline__ double m_cos(double x) { return cos(x); }
__device__ __forceinline__ float m_abs(float x) { return fabsf(x); }
__device__ __forceinline__ double m_abs(double x) { return fabs(x); }
__device__ __forceinline__ float m_pow(float x, float y) { return powf(x, y); }
__device__ __forceinline__ double m_pow(double x, double y) { return pow(x, y); }

__device__ __forceinline__ double pos_inf() { return __longlong_as_double(0x7ff0000000000000LL); }

template <typename T>
__device__ __forceinline__ bool is_nan(T x) { return x != x; }

// NumPy's maximum: a if (a >= b or a is NaN) else b -- NaN wins from either side.
template <typename T>
__device__ __forceinline__ T nan_max(T a, T b) { return (a >= b || a != a) ? a : b; }

// ---- launch geometry ------------------------------------------------------------------
__device__ __forceinline__ i64 global_tid() { return (i64)blockIdx.x * blockDim.x + threadIdx.x; }
__device__ __forceinline__ i64 global_stride() { return (i64)gridDim.x * blockDim.x; }

// Strided views: at most ND_MAX_DIMS dimensions, passed by value as kernel arguments.
#define ND_MAX_DIMS 8
#define ND_LAYOUT_PARAMS                                                                 \
    int ndim, i64 offset, i64 d0, i64 d1, i64 d2, i64 d3, i64 d4, i64 d5, i64 d6, i64 d7, \
        i64 s0, i64 s1, i64 s2, i64 s3, i64 s4, i64 s5, i64 s6, i64 s7
#define ND_LAYOUT_ARGS ndim, offset, d0, d1, d2, d3, d4, d5, d6, d7, s0, s1, s2, s3, s4, s5, s6, s7

struct Layout {
    int ndim;
    i64 offset;
    i64 shape[ND_MAX_DIMS];
    i64 strides[ND_MAX_DIMS];

    __device__ __forceinline__ Layout(ND_LAYOUT_PARAMS) : ndim(ndim), offset(offset) {
        shape[0] = d0; shape[1] = d1; shape[2] = d2; shape[3] = d3;
        shape[4] = d4; shape[5] = d5; shape[6] = d6; shape[7] = d7;
        strides[0] = s0; strides[1] = s1; strides[2] = s2; strides[3] = s3;
        strides[4] = s4; strides[5] = s5; strides[6] = s6; strides[7] = s7;
    }

    // Buffer index of the i-th element of the view in row-major order.
    __device__ __forceinline__ i64 index(i64 i) const {
        i64 idx = offset;
#pragma unroll
        for (int d = ND_MAX_DIMS - 1; d >= 0; --d) {
            if (d < ndim) {
                const i64 n = shape[d];
                idx += (i % n) * strides[d];
                i /= n;
            }
        }
        return idx;
    }
};

}  // namespace nd

#endif  // NEEDLE_CUDA_COMMON_CUH
