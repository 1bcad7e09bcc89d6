// Row reductions over compact rows: reduce_sum, reduce_max, reduce_argmax,
// logsumexp_last and softmax_last.
//
// Row r is a[r*rs : (r+1)*rs]. Each row is handled by one "group": a whole block (the
// _block kernels, for long rows) or one warp (the _warp kernels, several rows per block,
// for short rows). Lanes of the group stride over the row, then combine with warp
// shuffles and, for blocks, a 32-entry shared-memory array of per-warp partials. Rows are
// covered by a grid-stride loop, so any grid size is correct. Blocks must have a multiple
// of 32 threads (the Python side launches 256). Accumulation is in double for both dtypes.
#include "common.cuh"

namespace nd {

template <bool WARP>
struct Group {
    __device__ __forceinline__ static int lane() { return WARP ? (threadIdx.x & 31) : threadIdx.x; }
    __device__ __forceinline__ static int size() { return WARP ? 32 : blockDim.x; }
    __device__ __forceinline__ static i64 first() {
        return WARP ? (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5) : (i64)blockIdx.x;
    }
    __device__ __forceinline__ static i64 count() {
        return WARP ? (i64)gridDim.x * (blockDim.x >> 5) : (i64)gridDim.x;
    }
};

struct SumR {
    __device__ __forceinline__ static double id() { return 0.0; }
    __device__ __forceinline__ static double op(double x, double y) { return x + y; }
};
struct MaxR {
    __device__ __forceinline__ static double id() { return -pos_inf(); }
    __device__ __forceinline__ static double op(double x, double y) { return nan_max(x, y); }
};

// All-reduce v over the group; every lane gets the same result.
template <bool WARP, typename R>
__device__ __forceinline__ double group_all(double v, double* smem) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = R::op(v, __shfl_xor_sync(0xffffffffu, v, o));
    if (WARP) return v;
    const int nw = (blockDim.x + 31) >> 5;
    __syncthreads();  // smem may still be read from the previous call
    if ((threadIdx.x & 31) == 0) smem[threadIdx.x >> 5] = v;
    __syncthreads();
    double r = smem[0];
    for (int w = 1; w < nw; ++w) r = R::op(r, smem[w]);
    return r;
}

template <bool WARP, typename T, typename R>
__device__ __forceinline__ void row_reduce(const T* a, T* out, i64 rows, i64 rs) {
    __shared__ double smem[32];
    const int lane = Group<WARP>::lane(), gsize = Group<WARP>::size();
    for (i64 r = Group<WARP>::first(); r < rows; r += Group<WARP>::count()) {
        const T* row = a + r * rs;
        double acc = R::id();
        for (i64 j = lane; j < rs; j += gsize) acc = R::op(acc, (double)row[j]);
        acc = group_all<WARP, R>(acc, smem);
        if (lane == 0) out[r] = (T)acc;
    }
}

// (value, index) pairs: NaN beats everything, then the larger value, then the smaller index.
__device__ __forceinline__ void argmax_combine(double& v, i64& i, double v2, i64 i2) {
    const bool n1 = v != v, n2 = v2 != v2;
    bool take2;
    if (n1 || n2) take2 = (n1 && n2) ? (i2 < i) : n2;
    else take2 = (v2 > v) || (v2 == v && i2 < i);
    if (take2) { v = v2; i = i2; }
}

template <bool WARP, typename T>
__device__ __forceinline__ void row_argmax(const T* a, T* out, i64 rows, i64 rs) {
    __shared__ double sv[32];
    __shared__ i64 si[32];
    const int lane = Group<WARP>::lane(), gsize = Group<WARP>::size();
    for (i64 r = Group<WARP>::first(); r < rows; r += Group<WARP>::count()) {
        const T* row = a + r * rs;
        double v = -pos_inf();
        i64 idx = 0x7fffffffffffffffLL;
        for (i64 j = lane; j < rs; j += gsize) argmax_combine(v, idx, (double)row[j], j);
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            const double v2 = __shfl_xor_sync(0xffffffffu, v, o);
            const i64 i2 = __shfl_xor_sync(0xffffffffu, idx, o);
            argmax_combine(v, idx, v2, i2);
        }
        if (!WARP) {
            const int nw = (blockDim.x + 31) >> 5;
            __syncthreads();
            if ((threadIdx.x & 31) == 0) { sv[threadIdx.x >> 5] = v; si[threadIdx.x >> 5] = idx; }
            __syncthreads();
            v = sv[0]; idx = si[0];
            for (int w = 1; w < nw; ++w) argmax_combine(v, idx, sv[w], si[w]);
        }
        if (lane == 0) out[r] = (T)idx;
    }
}

// log(sum(exp(row - shift))) + shift with shift = max(row) when finite, else 0.
template <bool WARP, typename T>
__device__ __forceinline__ void row_logsumexp(const T* a, T* out, i64 rows, i64 rs) {
    __shared__ double smem[32];
    const int lane = Group<WARP>::lane(), gsize = Group<WARP>::size();
    for (i64 r = Group<WARP>::first(); r < rows; r += Group<WARP>::count()) {
        const T* row = a + r * rs;
        double m = MaxR::id();
        for (i64 j = lane; j < rs; j += gsize) m = MaxR::op(m, (double)row[j]);
        m = group_all<WARP, MaxR>(m, smem);
        const bool finite = (m == m) && (m != pos_inf()) && (m != -pos_inf());
        const T shift = finite ? (T)m : T(0);
        double s = 0.0;
        for (i64 j = lane; j < rs; j += gsize) s += (double)m_exp(row[j] - shift);
        s = group_all<WARP, SumR>(s, smem);
        if (lane == 0) out[r] = (T)(log(s) + (double)shift);
    }
}

// out_row = exp(row - max) / sum(exp(row - max)).
template <bool WARP, typename T>
__device__ __forceinline__ void row_softmax(const T* a, T* out, i64 rows, i64 rs) {
    __shared__ double smem[32];
    const int lane = Group<WARP>::lane(), gsize = Group<WARP>::size();
    for (i64 r = Group<WARP>::first(); r < rows; r += Group<WARP>::count()) {
        const T* row = a + r * rs;
        T* orow = out + r * rs;
        double m = MaxR::id();
        for (i64 j = lane; j < rs; j += gsize) m = MaxR::op(m, (double)row[j]);
        const T mx = (T)group_all<WARP, MaxR>(m, smem);
        double s = 0.0;
        for (i64 j = lane; j < rs; j += gsize) s += (double)m_exp(row[j] - mx);
        s = group_all<WARP, SumR>(s, smem);
        for (i64 j = lane; j < rs; j += gsize) orow[j] = (T)((double)m_exp(row[j] - mx) / s);
    }
}

}  // namespace nd

#define ND_DEF_ROWS_T(NAME, CALL, T, SUF)                                                     \
    extern "C" __global__ void NAME##_warp_##SUF(const T* a, T* out, i64 rows, i64 rs) {      \
        CALL<true, T>(a, out, rows, rs);                                                      \
    }                                                                                         \
    extern "C" __global__ void NAME##_block_##SUF(const T* a, T* out, i64 rows, i64 rs) {     \
        CALL<false, T>(a, out, rows, rs);                                                     \
    }
#define ND_DEF_ROWS(NAME, CALL) ND_DEF_ROWS_T(NAME, CALL, float, f32) ND_DEF_ROWS_T(NAME, CALL, double, f64)

namespace nd {
template <bool WARP, typename T>
__device__ __forceinline__ void row_sum(const T* a, T* out, i64 rows, i64 rs) {
    row_reduce<WARP, T, SumR>(a, out, rows, rs);
}
template <bool WARP, typename T>
__device__ __forceinline__ void row_max(const T* a, T* out, i64 rows, i64 rs) {
    row_reduce<WARP, T, MaxR>(a, out, rows, rs);
}
}  // namespace nd

ND_DEF_ROWS(reduce_sum, nd::row_sum)
ND_DEF_ROWS(reduce_max, nd::row_max)
ND_DEF_ROWS(reduce_argmax, nd::row_argmax)
ND_DEF_ROWS(logsumexp_last, nd::row_logsumexp)
ND_DEF_ROWS(softmax_last, nd::row_softmax)
